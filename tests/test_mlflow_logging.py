"""What the evaluator, the tuner and log_stage_params leave in a real MLflow store."""
import json
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from focalseq.stages.evaluation import PerLabelEvaluator
from focalseq.stages.thresholds import ThresholdTuner
from focalseq.tracking import log_stage_params, metric_key

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
FOCAL = ["Nomenclature", "Description"]
SCHEMA = "split string, label string, prediction string, probability array<double>"


def _rows(split, n, seed):
    rng = np.random.default_rng(seed)
    true = rng.choice(3, size=n, p=[0.1, 0.3, 0.6])
    p = rng.dirichlet([1, 1, 1], size=n)
    p[np.arange(n), true] += rng.uniform(0, 1, n)  # informative, not perfect
    p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    return [(split, LABELS[t], LABELS[q], [float(x) for x in row])
            for t, q, row in zip(true, pred, p)]


@pytest.fixture(scope="module")
def predictions(spark):
    rows = _rows("validation", 300, 0) + _rows("test", 300, 1)
    df = spark.createDataFrame(rows, SCHEMA).cache()
    yield rows, df
    df.unpersist()


def _png_ok(path):
    from matplotlib.image import imread

    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 0.01  # something is drawn


def test_evaluator_logs_metrics_reports_and_plots(predictions, mlflow_store, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    rows, df = predictions
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, logToMlflow=True)
    with mlflow.start_run() as run:
        for split in ("validation", "test"):
            ev.setSplitName(split).evaluate(df.filter(df.split == split))
    client = MlflowClient(mlflow_store)
    logged = client.get_run(run.info.run_id).data

    test = [r for r in rows if r[0] == "test"]
    y_true = [r[1] for r in test]
    y_pred = [r[2] for r in test]
    f1 = f1_score(y_true, y_pred, labels=LABELS, average=None)
    for i, lab in enumerate(LABELS):
        assert logged.metrics[f"test_f1_{lab}"] == pytest.approx(f1[i])
        for name in ("precision", "recall", "support"):
            assert f"test_{name}_{lab}" in logged.metrics
            assert f"validation_{name}_{lab}" in logged.metrics
    assert logged.metrics["test_f1_Nomenclature"] == pytest.approx(f1[0])
    assert logged.metrics["test_focal_macro_f1"] == pytest.approx(f1[:2].mean())
    assert logged.metrics["test_macro_f1"] == pytest.approx(f1.mean())
    for lab in FOCAL:
        j = LABELS.index(lab)
        assert logged.metrics[f"test_average_precision_{lab}"] == pytest.approx(
            average_precision_score([t == lab for t in y_true], [r[3][j] for r in test]),
            abs=0.01)  # binned scores: within a bin of sklearn's exact curve
    assert "test_average_precision_Misc-exposition" not in logged.metrics
    # Stage params: once per run, although the evaluator ran twice.
    assert logged.params["PerLabelEvaluator.labels"] == str(LABELS)
    assert logged.params["PerLabelEvaluator.metricName"] == "focal_macro_f1"
    assert "PerLabelEvaluator.splitName" not in logged.params

    artifacts = {a.path for folder in ("reports", "plots")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    for split in ("validation", "test"):
        assert {f"reports/{split}_classification_report.json",
                f"reports/{split}_classification_report.md",
                f"plots/{split}_confusion_matrix.png", f"plots/{split}_f1_by_label.png",
                f"plots/{split}_pr_curves.png"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "", str(tmp_path / "down"))
    report = json.load(open(os.path.join(local, "reports", "test_classification_report.json")))
    assert report["per_label"]["Description"]["f1"] == pytest.approx(f1[1])
    assert sum(map(sum, report["confusion"])) == len(test)
    markdown = open(os.path.join(local, "reports", "test_classification_report.md")).read()
    assert "| **Nomenclature** |" in markdown and "Confusion matrix" in markdown
    for name in ("confusion_matrix", "f1_by_label", "pr_curves"):
        _png_ok(os.path.join(local, "plots", f"test_{name}.png"))


def test_multi_label_report_plots_per_label_confusion(spark, mlflow_store, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    rows = [("test", "Nomenclature|Description", "Nomenclature", [0.9, 0.4, 0.1]),
            ("test", "Misc-exposition", "Misc-exposition|Description", [0.1, 0.6, 0.7]),
            ("test", "Description", "Description", [0.2, 0.8, 0.3]),
            ("test", "", "", [0.1, 0.1, 0.1])]
    df = spark.createDataFrame(rows, SCHEMA)
    with mlflow.start_run() as run:
        PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, multiLabel=True,
                          logToMlflow=True).evaluate(df)
    client = MlflowClient(mlflow_store)
    metrics = client.get_run(run.info.run_id).data.metrics
    # By hand: Nomenclature tp 1 -> F1 1. Description tp 1 (row 3), fp 1 (row 2), fn 1
    # (row 1) -> P = R = F1 = 1/2. Misc tp 1 -> F1 1. Exact sets: rows 3 and 4 of 4.
    assert metrics["test_f1_Nomenclature"] == pytest.approx(1.0)
    assert metrics["test_f1_Description"] == pytest.approx(0.5)
    assert metrics["test_recall_Description"] == pytest.approx(0.5)
    assert metrics["test_f1_Misc-exposition"] == pytest.approx(1.0)
    assert metrics["test_accuracy"] == pytest.approx(2 / 4)
    assert metrics["test_focal_macro_f1"] == pytest.approx(0.75)
    local = client.download_artifacts(run.info.run_id, "plots", str(tmp_path / "down"))
    _png_ok(os.path.join(local, "test_confusion_matrix.png"))


def test_log_stage_params_once_and_refuses_changes(mlflow_store):
    import mlflow

    ev = PerLabelEvaluator(labels=LABELS, metricName="macro_f1")
    with mlflow.start_run() as run:
        first = log_stage_params([ev])
        assert first["PerLabelEvaluator.metricName"] == "macro_f1"
        assert log_stage_params([ev]) == {}  # already there: nothing sent
        with pytest.raises(ValueError, match="PerLabelEvaluator.metricName"):
            log_stage_params([ev.copy().setMetricName("micro_f1")])
        assert log_stage_params([ev.copy().setMetricName("micro_f1")], prefix="second.")
    params = mlflow.MlflowClient(mlflow_store).get_run(run.info.run_id).data.params
    assert params["PerLabelEvaluator.metricName"] == "macro_f1"
    assert params["second.PerLabelEvaluator.metricName"] == "micro_f1"


def test_tuner_logs_before_and_after(predictions, mlflow_store):
    import mlflow

    _, df = predictions
    with mlflow.start_run() as run:
        model = ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature"],
                               logToMlflow=True).fit(df)
    client = mlflow.MlflowClient(mlflow_store)
    metrics = client.get_run(run.info.run_id).data.metrics
    report = json.loads(model.getTuningReport())
    assert metrics["validation_untuned_f1_Nomenclature"] == pytest.approx(
        report["before"]["per_label"]["Nomenclature"]["f1"])
    assert metrics["validation_tuned_f1_Nomenclature"] == pytest.approx(
        report["after"]["per_label"]["Nomenclature"]["f1"])
    assert metrics["log_offset_Nomenclature"] == pytest.approx(model.getLogOffsets()[0])
    paths = [a.path for a in client.list_artifacts(run.info.run_id, "reports")]
    assert "reports/validation_thresholds.json" in paths


def test_metric_keys_are_ones_mlflow_accepts():
    assert metric_key("test", "f1", "Misc-exposition") == "test_f1_Misc-exposition"
    assert metric_key("test", "f1", "Nom:en(cl)") == "test_f1_Nom_en_cl_"
