"""An MLflow tracking store of its own for a test: SQLite and artifacts under tmp_path.

tests/conftest.py registers this module as a plugin, so tests ask for `mlflow_store`
without importing it.
"""
import pytest


@pytest.fixture
def mlflow_store(tmp_path):
    """Points MLflow at sqlite:///<tmp>/mlflow.db with a fresh experiment whose artifacts
    live in <tmp>/artifacts; yields the tracking URI and restores the previous one."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.MlflowClient().create_experiment(
        "focalseq-tests", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    try:
        yield uri
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
        # Forget the experiment id: it names an experiment of this store only.
        mlflow.tracking.fluent._active_experiment_id = None
