"""PerLabelEvaluator against scikit-learn on the same predictions."""
import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             multilabel_confusion_matrix, precision_recall_curve,
                             precision_recall_fscore_support)
from sklearn.preprocessing import MultiLabelBinarizer

from focalseq.stages.evaluation import PerLabelEvaluator, format_report

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
FOCAL = ["Nomenclature", "Description"]
SCHEMA = "label string, prediction string, probability array<double>"


def _single_label_rows(n=400, seed=0):
    """Imbalanced labels, noisy predictions (some null or outside the label list) and
    probabilities on distinct 1/1000 bins (k + 0.5) / 1000."""
    rng = np.random.default_rng(seed)
    true = rng.choice(LABELS, size=n, p=[0.1, 0.3, 0.6])
    pred = np.where(rng.random(n) < 0.7, true, rng.choice(LABELS, size=n))
    pred = pred.astype(object)
    pred[rng.random(n) < 0.03] = None
    pred[rng.random(n) < 0.03] = "Unknown"
    probs = (rng.integers(0, 1000, size=(n, 3)) + 0.5) / 1000
    return [(str(t), None if p is None else str(p), [float(x) for x in row])
            for t, p, row in zip(true, pred, probs)]


def _sk(values):
    return ["<null>" if v is None else v for v in values]


@pytest.fixture(scope="module")
def single(spark):
    rows = _single_label_rows()
    df = spark.createDataFrame(rows, SCHEMA).cache()
    yield rows, df
    df.unpersist()


def test_single_label_equals_sklearn(single):
    rows, df = single
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, numBins=0)
    report = ev.report(df)
    y_true, y_pred = [r[0] for r in rows], _sk([r[1] for r in rows])

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    for i, lab in enumerate(LABELS):
        m = report["per_label"][lab]
        assert m["precision"] == pytest.approx(p[i])
        assert m["recall"] == pytest.approx(r[i])
        assert m["f1"] == pytest.approx(f[i])
        assert m["support"] == s[i]
    assert report["confusion"] == confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    for avg in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=LABELS,
                                                     average=avg, zero_division=0)
        assert report[f"{avg}_precision"] == pytest.approx(p)
        assert report[f"{avg}_recall"] == pytest.approx(r)
        assert report[f"{avg}_f1"] == pytest.approx(f)
    _, _, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=LABELS,
                                                 average="weighted", zero_division=0)
    assert report["weighted_f1"] == pytest.approx(f)
    _, _, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=FOCAL,
                                                 average="macro", zero_division=0)
    assert report["focal_macro_f1"] == pytest.approx(f)
    assert report["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    mcm = multilabel_confusion_matrix(y_true, y_pred, labels=LABELS)
    for i, lab in enumerate(LABELS):
        assert report["label_confusion"][lab] == mcm[i].tolist()
    assert report["n"] == len(rows)
    # Nulls and unknown predictions are misses: the matrix rows sum to less than support.
    assert sum(map(sum, report["confusion"])) < len(rows)


def test_metric_name_picks_the_number(single):
    rows, df = single
    y_true, y_pred = [r[0] for r in rows], _sk([r[1] for r in rows])
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, numBins=0)
    assert ev.evaluate(df) == pytest.approx((f[0] + f[1]) / 2)
    assert ev.isLargerBetter()
    assert ev.setMetricName("f1:Description").evaluate(df) == pytest.approx(f[1])
    assert ev.setMetricName("recall:Nomenclature").evaluate(df) == pytest.approx(r[0])
    assert ev.setMetricName("precision:Misc-exposition").evaluate(df) == pytest.approx(p[2])
    assert ev.setMetricName("macro_f1").evaluate(df) == pytest.approx(f.mean())
    # Overriding through the param map, as CrossValidator does.
    assert ev.evaluate(df, {ev.metricName: "f1:Nomenclature"}) == pytest.approx(f[0])


def test_precision_recall_curves_equal_sklearn(single):
    rows, df = single
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL)
    report = ev.report(df)
    assert sorted(report["pr_curves"]) == sorted(FOCAL)
    for lab in FOCAL:
        j = LABELS.index(lab)
        y = np.array([r[0] == lab for r in rows])
        scores = np.array([r[2][j] for r in rows])
        precision, recall, thresholds = precision_recall_curve(y, scores)
        curve = report["pr_curves"][lab]
        # sklearn: increasing thresholds plus a final (precision 1, recall 0) point.
        np.testing.assert_allclose(curve["precision"], precision[:-1][::-1])
        np.testing.assert_allclose(curve["recall"], recall[:-1][::-1])
        np.testing.assert_allclose(curve["thresholds"], thresholds[::-1] - 0.0005, atol=1e-9)
        assert curve["average_precision"] == pytest.approx(average_precision_score(y, scores))
        assert curve["positives"] == int(y.sum())
        ev.setMetricName(f"average_precision:{lab}")
        assert ev.evaluate(df) == pytest.approx(average_precision_score(y, scores))


def test_spark_ml_probability_vectors_are_read_like_arrays(spark, single):
    """A Spark ML classifier's `probability` is a Vector; curves come out the same."""
    from pyspark.ml.functions import array_to_vector

    rows, df = single
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL)
    as_vector = df.withColumn("probability", array_to_vector("probability"))
    expected, got = ev.report(df), ev.report(as_vector)
    for lab in FOCAL:
        assert got["pr_curves"][lab]["average_precision"] == pytest.approx(
            average_precision_score([r[0] == lab for r in rows],
                                    [r[2][LABELS.index(lab)] for r in rows]))
        assert got["pr_curves"][lab]["precision"] == expected["pr_curves"][lab]["precision"]


def test_multi_label_equals_sklearn(spark):
    rng = np.random.default_rng(1)
    n = 300
    true = rng.random((n, 3)) < [0.15, 0.4, 0.7]
    pred = np.where(rng.random((n, 3)) < 0.8, true, ~true)
    probs = (rng.integers(0, 1000, size=(n, 3)) + 0.5) / 1000

    def as_text(mask):
        return "|".join(lab for lab, on in zip(LABELS, mask) if on)

    rows = [(as_text(t), as_text(p), [float(x) for x in q]) for t, p, q in zip(true, pred, probs)]
    rows[0] = (rows[0][0], None, rows[0][2])  # a null prediction is the empty set
    pred[0] = False
    df = spark.createDataFrame(rows, SCHEMA)
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=["Nomenclature"], multiLabel=True)
    report = ev.report(df)

    mlb = MultiLabelBinarizer(classes=LABELS)
    y_true = mlb.fit_transform([r[0].split("|") if r[0] else [] for r in rows])
    np.testing.assert_array_equal(y_true, true.astype(int))
    p, r, f, s = precision_recall_fscore_support(true, pred, zero_division=0)
    for i, lab in enumerate(LABELS):
        m = report["per_label"][lab]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]))
        assert report["label_confusion"][lab] == multilabel_confusion_matrix(true, pred)[i].tolist()
    for avg in ("micro", "macro", "weighted"):
        _, _, f_avg, _ = precision_recall_fscore_support(true, pred, average=avg, zero_division=0)
        assert report[f"{avg}_f1"] == pytest.approx(f_avg)
    assert report["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert report["confusion"] is None
    # Lines with an empty true set count; examples-based F1 gives a line whose two sets
    # are both empty 1 (scikit-learn's zero_division=1 for average="samples").
    assert not true.any(axis=1).all() and not pred.any(axis=1).all()
    assert report["n"] == n
    assert report["n_empty_true"] == int((~true.any(axis=1)).sum())
    assert report["n_empty_predicted"] == int((~pred.any(axis=1)).sum())
    assert report["examples_f1"] == pytest.approx(
        f1_score(true, pred, average="samples", zero_division=1))
    by_hand = [1.0 if t.sum() + q.sum() == 0 else 2 * (t & q).sum() / (t.sum() + q.sum())
               for t, q in zip(true, pred)]
    assert report["examples_f1"] == pytest.approx(sum(by_hand) / n)
    assert report["focal_macro_f1"] == pytest.approx(f[0])
    curve = report["pr_curves"]["Nomenclature"]
    assert curve["average_precision"] == pytest.approx(
        average_precision_score(true[:, 0], probs[:, 0]))


def test_evaluator_round_trip(tmp_path, single):
    _, df = single
    ev = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, metricName="f1:Nomenclature",
                           numBins=0, splitName="validation")
    ev.save(str(tmp_path / "ev"))
    loaded = PerLabelEvaluator.load(str(tmp_path / "ev"))
    assert loaded.uid == ev.uid
    for name in ("labels", "focalLabels", "metricName", "numBins", "splitName"):
        assert loaded.getOrDefault(name) == ev.getOrDefault(name)
    assert loaded.evaluate(df) == ev.evaluate(df)
    assert PerLabelEvaluator().getMetricName() == "focal_macro_f1"


def test_invalid_settings_are_reported(single):
    _, df = single
    with pytest.raises(ValueError, match="'f2:Nomenclature'"):
        PerLabelEvaluator(labels=LABELS, metricName="f2:Nomenclature").evaluate(df)
    with pytest.raises(ValueError, match="'best'"):
        PerLabelEvaluator(labels=LABELS, metricName="best").evaluate(df)
    with pytest.raises(ValueError, match=r"\['Genus'\]"):
        PerLabelEvaluator(labels=LABELS, focalLabels=["Genus"]).evaluate(df)
    with pytest.raises(ValueError, match=r"labels"):
        PerLabelEvaluator().evaluate(df)
    with pytest.raises(ValueError, match=r"\['Misc-exposition'\].*not labels"):
        PerLabelEvaluator(labels=LABELS[:2]).evaluate(df)
    with pytest.raises(ValueError, match="'pred'"):
        PerLabelEvaluator(labels=LABELS, predictionCol="pred").evaluate(df)


def test_format_report_lists_every_label(single):
    _, df = single
    text = format_report(PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, numBins=0).report(df))
    for lab in LABELS:
        assert lab in text
    assert "focal macro" in text
