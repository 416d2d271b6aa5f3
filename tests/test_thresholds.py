"""Threshold tuning on probabilities built to need it, checked with numpy and sklearn."""
import json

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from sklearn.metrics import f1_score

from focalseq.stages.bilstm import BiLSTMModel
from focalseq.stages.thresholds import ThresholdModel, ThresholdTuner

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
SCHEMA = "split string, label string, probability array<double>"


def _single_label(n, seed):
    """The rare Nomenclature's probability is systematically low: right in order (higher
    on its own lines) but never the argmax. A few of its lines are hopeless (p = 0.01)."""
    rng = np.random.default_rng(seed)
    true = rng.choice(3, size=n, p=[0.1, 0.3, 0.6])
    p = np.zeros((n, 3))
    nom, desc, misc = (true == 0), (true == 1), (true == 2)
    p[nom, 0] = rng.uniform(0.2, 0.35, nom.sum())
    p[nom, 1] = rng.uniform(0.0, 0.1, nom.sum())
    p[nom & (rng.random(n) < 0.1), 0] = 0.01
    p[desc, 0] = rng.uniform(0.0, 0.08, desc.sum())
    p[desc, 1] = rng.uniform(0.5, 0.8, desc.sum())
    p[misc, 0] = rng.uniform(0.0, 0.08, misc.sum())
    p[misc, 1] = rng.uniform(0.0, 0.2, misc.sum())
    p[:, 2] = 1 - p[:, 0] - p[:, 1]
    return true, p


def _rows(split, true, p, labels=LABELS):
    return [(split, labels[t] if isinstance(t, (int, np.integer)) else t,
             [float(x) for x in row]) for t, row in zip(true, p)]


def _argmax_with(p, offsets):
    return np.argmax(np.log(np.maximum(p, 1e-12)) + np.asarray(offsets), axis=1)


@pytest.fixture(scope="module")
def single(spark):
    val_true, val_p = _single_label(400, seed=0)
    test_true, test_p = _single_label(400, seed=1)
    df = spark.createDataFrame(_rows("validation", val_true, val_p) +
                               _rows("test", test_true, test_p), SCHEMA).cache()
    yield {"validation": (val_true, val_p), "test": (test_true, test_p), "df": df}
    df.unpersist()


def test_single_label_offsets_raise_rare_label_f1(single):
    val_true, val_p = single["validation"]
    model = ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature", "Description"]).fit(
        single["df"])
    offsets = model.getLogOffsets()
    assert len(offsets) == 3 and offsets[2] == 0.0 and offsets[0] > 0

    before = f1_score(val_true, _argmax_with(val_p, [0, 0, 0]), labels=[0, 1, 2], average=None)
    after = f1_score(val_true, _argmax_with(val_p, offsets), labels=[0, 1, 2], average=None)
    assert before[0] == 0.0  # never the argmax untuned
    assert after[0] > 0.85 and after[0] > before[0]
    assert after[1] >= before[1]
    report = json.loads(model.getTuningReport())
    assert report["split"] == "validation" and report["lines"] == len(val_true)
    for i, lab in enumerate(LABELS):
        assert report["before"]["per_label"][lab]["f1"] == pytest.approx(before[i])
        assert report["after"]["per_label"][lab]["f1"] == pytest.approx(after[i])
    assert report["after"]["focal_macro_f1"] == pytest.approx(after[:2].mean())

    # The tuned rule carries over to held-out lines, and Spark decides as numpy does.
    test_true, test_p = single["test"]
    rows = model.transform(single["df"].filter("split = 'test'")).collect()
    spark_pred = [LABELS.index(r["prediction"]) for r in rows]
    np.testing.assert_array_equal(spark_pred, _argmax_with(test_p, offsets))
    assert f1_score(test_true, spark_pred, labels=[0], average=None)[0] > 0.85


@pytest.fixture(scope="module")
def nomenclature_model(single):
    return ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature"]).fit(single["df"])


def test_single_focal_label_reaches_the_exhaustive_optimum(single, nomenclature_model):
    val_true, val_p = single["validation"]
    model = nomenclature_model
    tuned = f1_score(val_true == 0, _argmax_with(val_p, model.getLogOffsets()) == 0)
    # Every distinct cut: Nomenclature wins a line iff its offset beats the margin.
    margins = np.log(np.maximum(val_p[:, 1:], 1e-12)).max(axis=1) - np.log(val_p[:, 0])
    best = max(f1_score(val_true == 0, margins <= cut) for cut in np.unique(margins))
    assert tuned == pytest.approx(best)
    assert model.getLogOffsets()[1:] == [0.0, 0.0]


def test_multi_label_thresholds_per_focal_label(spark):
    rng = np.random.default_rng(2)
    n = 400
    true = rng.random((n, 3)) < [0.1, 0.4, 0.5]
    p = rng.uniform(0.0, 0.15, (n, 3))
    p[:, 0] = np.where(true[:, 0], rng.uniform(0.2, 0.45, n), rng.uniform(0.0, 0.15, n))
    p[:, 1] = np.where(true[:, 1], rng.uniform(0.55, 0.95, n), rng.uniform(0.3, 0.62, n))
    p[:, 2] = np.where(true[:, 2], rng.uniform(0.4, 0.9, n), rng.uniform(0.1, 0.6, n))
    text = ["|".join(lab for lab, on in zip(LABELS, row) if on) for row in true]
    df = spark.createDataFrame(_rows("validation", text, p), SCHEMA)
    model = ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature", "Description"],
                           multiLabel=True).fit(df)
    th = model.getThresholds()
    assert th[2] == 0.5  # not a focal label: untouched
    for j in (0, 1):
        untuned = f1_score(true[:, j], p[:, j] >= 0.5)
        tuned = f1_score(true[:, j], p[:, j] >= th[j])
        best = max(f1_score(true[:, j], p[:, j] >= cut) for cut in np.unique(p[:, j]))
        assert tuned > untuned
        assert tuned == pytest.approx(best)
    assert f1_score(true[:, 0], p[:, 0] >= 0.5) == 0.0
    rows = model.transform(df).collect()
    got = np.array([[lab in (r["prediction"] or "").split("|") for lab in LABELS] for r in rows])
    np.testing.assert_array_equal(got, p >= np.asarray(th))


def test_round_trips(single, nomenclature_model, tmp_path):
    tuner = ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature"], numBins=200,
                           fitSplit="validation")
    tuner.save(str(tmp_path / "tuner"))
    loaded_tuner = ThresholdTuner.load(str(tmp_path / "tuner"))
    assert loaded_tuner.uid == tuner.uid
    assert loaded_tuner.getOrDefault("numBins") == 200
    assert loaded_tuner.getFocalLabels() == ["Nomenclature"]

    model = nomenclature_model
    PipelineModel([model]).save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline")).stages[0]
    assert isinstance(loaded, ThresholdModel)
    assert loaded.getLogOffsets() == model.getLogOffsets()
    assert json.loads(loaded.getTuningReport()) == json.loads(model.getTuningReport())
    df = single["df"].filter("split = 'test'")
    assert [r["prediction"] for r in loaded.transform(df).collect()] == \
        [r["prediction"] for r in model.transform(df).collect()]


def test_apply_to_sets_the_model_params():
    tuned = ThresholdModel(labels=LABELS, logOffsets=[1.5, 0.2, 0.0])
    model = BiLSTMModel(labels=LABELS, runId="r")
    out = tuned.apply_to(model)
    assert out.getOrDefault("logOffsets") == [1.5, 0.2, 0.0]
    assert model.getOrDefault("logOffsets") == []  # the original is unchanged
    assert out.getOrDefault("runId") == "r"
    with pytest.raises(ValueError, match="labels"):
        tuned.apply_to(BiLSTMModel(labels=LABELS[::-1]))


def test_invalid_settings_are_reported(single):
    df = single["df"]
    with pytest.raises(ValueError, match="'train'"):
        ThresholdTuner(labels=LABELS, fitSplit="train").fit(df)
    with pytest.raises(ValueError, match=r"\['Genus'\]"):
        ThresholdTuner(labels=LABELS, focalLabels=["Genus"]).fit(df)
    with pytest.raises(ValueError, match="numBins"):
        ThresholdTuner(labels=LABELS, numBins=1).fit(df)
    with pytest.raises(ValueError, match=r"logOffsets: expected 3"):
        ThresholdModel(labels=LABELS, logOffsets=[1.0]).transform(df)


@pytest.mark.slow
@pytest.mark.horovod
def test_tuned_bilstm_model_decides_like_the_threshold_model(trained):
    model, windows, preds = trained["model"], trained["windows"], trained["predictions"]
    tuned = ThresholdTuner(labels=LABELS, focalLabels=["Nomenclature", "Description"],
                           maxIter=1).fit(preds)
    report = json.loads(tuned.getTuningReport())
    assert report["after"]["focal_macro_f1"] >= report["before"]["focal_macro_f1"]
    assert any(o != 0.0 for o in tuned.getLogOffsets())

    rethresholded = {(r["doc_id"], r["line_idx"]): r["prediction"]
                     for r in tuned.transform(preds).collect()}
    tuned_model = tuned.apply_to(model)
    held_out = windows.filter(windows.split.isin("validation", "test"))
    direct = {(r["doc_id"], r["line_idx"]): r["prediction"]
              for r in tuned_model.transform(held_out).collect()}
    rethresholded = {k: v for k, v in rethresholded.items() if k in direct}
    assert len(rethresholded) == len(direct) > 0
    assert direct == rethresholded
