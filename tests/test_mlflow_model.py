"""The fitted inference PipelineModel in MLflow: logged with a signature and an input
example, registered under an alias, loaded back and predicting as the original."""
import collections
import os

import pytest

from trained_models import pipeline_lines


@pytest.mark.slow
@pytest.mark.horovod
def test_pipeline_logged_registered_and_loaded_predicts_the_same(trained, pipeline_output,
                                                                  mlflow_store, tmp_path):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from focalseq.tracking import log_pipeline_model

    pipeline = trained["pipeline"]
    example = pd.DataFrame({"path": [pipeline_output["path"]]})
    with mlflow.start_run() as run:
        info = log_pipeline_model(pipeline, example, registered_model_name="focalseq-tiny",
                                  alias="champion")
    client = MlflowClient(mlflow_store)
    version = client.get_model_version_by_alias("focalseq-tiny", "champion")
    assert str(version.version) == str(info.registered_model_version)
    assert version.run_id == run.info.run_id
    params = client.get_run(run.info.run_id).data.params
    assert params["BiLSTMModel.labels"] == str(trained["cfg"].labels)
    assert params["Windower.windowSize"] == str(trained["cfg"].windows.size)

    uri = "models:/focalseq-tiny@champion"
    described = mlflow.models.get_model_info(uri)
    assert described.signature.inputs.input_names() == ["path"]
    assert described.signature.outputs.input_names() == ["prediction"]
    assert "spark" in described.flavors and "python_function" in described.flavors
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model"))
    assert os.path.exists(os.path.join(local, "input_example.json"))
    assert os.path.isdir(os.path.join(local, "sparkml", "stages"))

    loaded = mlflow.spark.load_model(uri)
    assert [type(s).__name__ for s in loaded.stages] == \
        ["YeddaParser", "LineFeaturizer", "Windower", "BiLSTMModel"]
    expected = pipeline_output["lines"]  # the original pipeline over the same file
    assert expected
    assert pipeline_lines(loaded, pipeline_output["files"]) == expected

    # The generic pyfunc flavour serves the same per-line predictions (in no fixed order).
    served = mlflow.pyfunc.load_model(uri).predict(example)
    assert collections.Counter(served) == collections.Counter(p for p, _ in expected.values())
