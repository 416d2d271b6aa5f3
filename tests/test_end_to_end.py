"""The walking skeleton end to end: synthetic files -> Parquet windows -> 2-process
Horovod training -> per-line predictions -> per-label F1 in a real MLflow store."""
import os

import pytest

from focalseq.config import load_config


@pytest.mark.slow
@pytest.mark.horovod
def test_run_all_beats_majority_and_logs_to_mlflow(spark, tmp_path):
    from mlflow.tracking import MlflowClient

    from focalseq.pipelines.run import run_all

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(None, [
        f"output.dir={tmp_path}/run",
        f"mlflow.tracking_uri={tracking}",
        "data.synthetic.n_docs=30", "data.synthetic.lines_per_doc=100",
        "data.synthetic.ratio=[1, 5, 20]",
        "train.loss=soft_f1", "train.epochs=5", "train.batch_size=8",
        "train.hidden_size=32", "train.embedding_dim=32",
        "mlflow.register_model=focalseq-e2e", "mlflow.alias=champion",
    ])
    result = run_all(spark, cfg)

    test = result["reports"]["test"]
    # A majority-class predictor (always Misc-exposition) scores F1 = 0 on both rare labels.
    assert test["per_label"]["Nomenclature"]["support"] > 0
    assert test["per_label"]["Description"]["support"] > 0
    assert test["per_label"]["Nomenclature"]["f1"] > 0.5
    assert test["per_label"]["Description"]["f1"] > 0.5
    # Every non-empty line of the test documents is predicted exactly once.
    assert test["n"] == result["manifest"]["label_counts"]["test"]["Nomenclature"] + \
        result["manifest"]["label_counts"]["test"]["Description"] + \
        result["manifest"]["label_counts"]["test"]["Misc-exposition"]

    run = MlflowClient(tracking).get_run(result["mlflow_run_id"])
    for label in ("Nomenclature", "Description", "Misc-exposition"):
        assert run.data.metrics[f"test_f1_{label}"] == pytest.approx(
            test["per_label"][label]["f1"])
    # Per-epoch training metrics arrive from rank 0 of the Horovod job.
    history = MlflowClient(tracking).get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == 5
    assert history[-1].value < history[0].value
    assert os.path.exists(os.path.join(tmp_path, "run", "model", "network.keras"))

    # The registered files -> predictions pipeline loads back and predicts like the model.
    import mlflow

    mlflow.set_tracking_uri(tracking)
    loaded = mlflow.spark.load_model("models:/focalseq-e2e@champion")
    one = spark.createDataFrame([(str(tmp_path / "run" / "corpus" / "doc_00003.txt.ann"),)],
                                ["path"])
    from focalseq.pipelines.train import inference_pipeline

    expected = inference_pipeline(cfg, result["model"]).transform(one)
    got = loaded.transform(one)
    key = ["doc_id", "line_idx", "prediction"]
    assert sorted(map(tuple, got.select(*key).collect())) == \
        sorted(map(tuple, expected.select(*key).collect()))
    assert got.count() > 0
