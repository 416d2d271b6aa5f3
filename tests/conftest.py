"""Shared fixtures: one local Spark session for the whole run."""
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from focalseq.pipelines.session import get_spark

    session = get_spark("local[2]", "focalseq-tests",
                        {"spark.sql.shuffle.partitions": "4",
                         "spark.default.parallelism": "2"})
    yield session
    session.stop()
