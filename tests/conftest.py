"""Shared fixtures: one local Spark session for the whole run, and the fixture modules
of this folder registered as plugins.

The plugins: `trained_models` (`trained`, the tiny ensemble trained once per session, and
`pipeline_output`), `redis_server` (`redis_server`, `redis_client`) and `mlflow_store`.
Pytest puts this folder on sys.path before importing this file (its default "prepend"
import mode; tests/ is not a package), which is how these modules and the Horovod worker
modules import by their plain names. Importing a plugin costs nothing: its fixtures only
run when a test asks for them.
"""
import os
import sys

import pytest

pytest_plugins = ["trained_models", "redis_server", "mlflow_store", "cluster_fixture"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


# What the suite imports; all of it is installed by `make setup` (scripts/setup_env.sh).
STACK = ("focalseq", "pyspark", "tensorflow", "horovod", "mlflow", "petastorm", "sklearn",
         "redis")


def pytest_configure(config):
    """Stops at once, naming the fix, when pytest runs outside the project's environment
    (for example the system Python): otherwise every test module fails to import."""
    import importlib.util

    missing = [name for name in STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"{sys.executable} lacks {', '.join(missing)}: the tests run in the project's "
            "environment. Run `make test` (it builds .venv with `make setup` first) or "
            "`.venv/bin/python -m pytest tests`.")


@pytest.fixture(scope="session")
def spark():
    from focalseq.pipelines.session import get_spark

    session = get_spark("local[2]", "focalseq-tests",
                        {"spark.sql.shuffle.partitions": "4",
                         "spark.default.parallelism": "2"})
    yield session
    session.stop()
