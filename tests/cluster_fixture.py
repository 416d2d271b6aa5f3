"""The `local_cluster` fixture: a Spark standalone master and two workers, each worker a
separate host (its own network and UTS namespace), started once per test session.

See `focalseq.local_cluster`. Without root or iproute2 the workers run on loopback and
the start logs a warning saying so; tests that need two hosts check `state.mode`.
"""
import os

import pytest

CLUSTER_DIR = os.environ.get("FOCALSEQ_TEST_CLUSTER_DIR", "/tmp/focalseq-test-cluster")


@pytest.fixture(scope="session")
def local_cluster():
    """The started cluster's `ClusterState` (master URL, driver conf, workers)."""
    from focalseq.local_cluster import LocalCluster

    cluster = LocalCluster(CLUSTER_DIR)
    state = cluster.start()
    try:
        yield state
    finally:
        cluster.stop()
