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


def cluster_env() -> dict:
    """The environment of a driver process started by a cluster test."""
    import sys

    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="2",
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


@pytest.fixture(scope="session")
def cluster_prepared(local_cluster, tmp_path_factory):
    """Windows prepared once on the cluster (tiny synthetic corpus) in a shared folder,
    every location a file:// URL; a driver folder elsewhere; the MLflow experiment keeps
    its artifacts in the shared folder. {"conf", "shared", "driver"}."""
    import subprocess
    import sys

    import yaml

    shared = tmp_path_factory.mktemp("shared")
    driver = tmp_path_factory.mktemp("driver")
    conf = dict(local_cluster.spark_conf())
    master = conf.pop("spark.master")
    # Splits by file name: hashed doc ids (file: URLs under pytest's numbered temp folder)
    # would leave the validation split that early stopping needs empty in some runs.
    cfg = {"data": {"synthetic": {"n_docs": 12, "lines_per_doc": 60, "ratio": [1, 5, 20]},
                    "split": {"patterns": [["test", "doc_0000[0-2]"],
                                           ["validation", "doc_0000[3-5]"],
                                           ["train", ".*"]]}},
           "features": {"vocab_size": 2000},
           "train": {"epochs": 400, "batch_size": 8, "hidden_size": 16, "embedding_dim": 16,
                     "num_proc": 2},
           "output": {"dir": f"file://{shared}/run"},
           "mlflow": {"tracking_uri": f"sqlite:///{shared}/mlflow.db"},
           "spark": {"master": master, "conf": conf}}
    path = os.path.join(shared, "conf.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    focalseq = os.path.join(os.path.dirname(sys.executable), "focalseq")
    proc = subprocess.run([focalseq, "prepare", "--conf", path, "-q"], cwd=driver,
                          env=cluster_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"conf": path, "shared": str(shared), "driver": str(driver)}


def netns_processes(netns: str):
    """{pid: (cmdline, environ)} of the processes in a worker's network namespace."""
    import subprocess

    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    found = {}
    for pid in map(int, out.stdout.split()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = dict(item.split("=", 1) for item in
                               fh.read().decode(errors="replace").split("\0") if "=" in item)
        except OSError:
            continue
        found[pid] = (cmdline, environ)
    return found
