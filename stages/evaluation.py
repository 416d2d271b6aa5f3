"""Predictions -> per-label metrics (and MLflow).

`PerLabelEvaluator` computes line-level precision, recall, F1 and support per label,
micro, macro and support-weighted averages, the macro average over the focal labels,
the confusion matrix and, when a probability column is present, precision-recall
curves of the focal labels. Everything comes from Spark aggregations whose results are
bounded by the number of labels (and of probability bins), never by the number of
rows. `evaluate` returns the single number named by `metricName`, so Spark's tuning
tools can use it; the whole report is kept on `last_report` and, when `logToMlflow` is
set, logged to the active MLflow run (see focalseq.tracking).

Report keys: labels, per_label {label: precision, recall, f1, support, tp, fp, fn},
confusion (labels x labels, rows true; None in multi-label mode), label_confusion
({label: [[tn, fp], [fn, tp]]}), n, accuracy (subset accuracy in multi-label mode),
micro_/macro_/weighted_ precision, recall and f1, focal_labels, focal_macro_ precision,
recall and f1, and pr_curves {label: {thresholds, precision, recall,
average_precision, positives}} for the focal labels.

Multi-label mode: labels and predictions are label sets joined by "|", "" the empty set.
Lines with the empty set count (as negatives of every label; null labels are left out,
as in single-label mode). The report adds examples_f1, the mean over lines of
``2 |T & P| / (|T| + |P|)`` (1 for a line whose true and predicted sets are both empty:
scikit-learn's ``f1_score(average="samples", zero_division=1)``), and n_empty_true /
n_empty_predicted, the lines with an empty true / predicted set.
"""
import logging

from pyspark import keyword_only
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import functions as F

from focalseq.stages._params import (HasFocalLabels, HasLabels, HasLogToMlflow, HasMultiLabel,
                                     HasNumBins)

logger = logging.getLogger(__name__)

AVERAGED = ("focal_macro_f1", "focal_macro_precision", "focal_macro_recall", "macro_f1",
            "macro_precision", "macro_recall", "micro_f1", "micro_precision", "micro_recall",
            "weighted_f1", "accuracy")
PER_LABEL = ("f1", "precision", "recall", "average_precision")


class _PerLabelEvaluatorParams(HasLabels, HasFocalLabels, HasMultiLabel, HasLabelCol,
                               HasPredictionCol, HasProbabilityCol, HasNumBins,
                               HasLogToMlflow):
    # probabilityCol: per-label probabilities (array in label order) for the
    # precision-recall curves (numBins of them; 0: no curves), ignored when missing.
    metricName = Param(Params._dummy(), "metricName",
                       f"returned metric: one of {list(AVERAGED)}, or <metric>:<label> with "
                       f"<metric> one of {list(PER_LABEL)}",
                       typeConverter=TypeConverters.toString)
    splitName = Param(Params._dummy(), "splitName", "prefix of MLflow metric names, e.g. test",
                      typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(labelCol="label", predictionCol="prediction",
                         probabilityCol="probability", metricName="focal_macro_f1",
                         multiLabel=False, numBins=1000, logToMlflow=False, splitName="test",
                         labels=[], focalLabels=[])

    def getMetricName(self):
        return self.getOrDefault(self.metricName)

    def getSplitName(self):
        return self.getOrDefault(self.splitName)


class PerLabelEvaluator(Evaluator, _PerLabelEvaluatorParams, DefaultParamsReadable,
                        DefaultParamsWritable):
    """Line-level per-label evaluation.

    Four lines: A is found once of twice (precision 1, recall 1/2), B is predicted three
    times, twice right (precision 2/3, recall 1).

    >>> predictions = spark.createDataFrame([("A", "A"), ("A", "B"), ("B", "B"), ("B", "B")],
    ...                                     "label string, prediction string")
    >>> ev = PerLabelEvaluator(labels=["A", "B"], focalLabels=["A"], metricName="f1:A")
    >>> round(ev.evaluate(predictions), 4)
    0.6667
    >>> b = ev.last_report["per_label"]["B"]
    >>> round(b["precision"], 4), b["recall"], round(b["f1"], 4), b["support"]
    (0.6667, 1.0, 0.8, 2)
    >>> ev.last_report["confusion"]
    [[1, 1], [0, 2]]
    >>> ev.save(temp_path + "/evaluator")
    >>> loaded = PerLabelEvaluator.load(temp_path + "/evaluator")
    >>> loaded.uid == ev.uid, loaded.getMetricName()
    (True, 'f1:A')
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, labelCol="label",
                 predictionCol="prediction", probabilityCol="probability",
                 metricName="focal_macro_f1", multiLabel=False, numBins=1000,
                 logToMlflow=False, splitName="test"):
        super().__init__()
        self.last_report = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, focalLabels=None, labelCol="label",
                  predictionCol="prediction", probabilityCol="probability",
                  metricName="focal_macro_f1", multiLabel=False, numBins=1000,
                  logToMlflow=False, splitName="test"):
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        return self

    def setMetricName(self, value):
        return self._set(metricName=value)

    def setSplitName(self, value):
        return self._set(splitName=value)

    def setLogToMlflow(self, value):
        return self._set(logToMlflow=value)

    def isLargerBetter(self):
        return True

    def _validate(self):
        labels = self.getLabels()
        if not labels:
            raise ValueError("labels: PerLabelEvaluator needs the list of labels, got []")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels: duplicates in {labels}")
        bad = [f for f in self.getFocalLabels() if f not in labels]
        if bad:
            raise ValueError(f"focalLabels: {bad} are not labels; valid labels: {labels}")
        if self.getOrDefault(self.numBins) < 0:
            raise ValueError(f"numBins: must be >= 0, got {self.getOrDefault(self.numBins)}")
        name = self.getMetricName()
        base, sep, label = name.partition(":")
        if sep:
            if base not in PER_LABEL or label not in labels:
                raise ValueError(f"metricName: {name!r} is not valid; per-label metrics are "
                                 f"one of {list(PER_LABEL)}, ':' and one of {labels}")
        elif name not in AVERAGED:
            raise ValueError(f"metricName: {name!r} is not one of {list(AVERAGED)} or "
                             f"<metric>:<label> with <metric> in {list(PER_LABEL)}")

    def _evaluate(self, dataset):
        self._validate()
        report = self.report(dataset)
        if self.getOrDefault(self.logToMlflow):
            from focalseq.tracking import log_report, log_stage_params

            log_report(report, self.getOrDefault(self.splitName))
            log_stage_params([self], skip=("splitName",))
        return metric_from_report(report, self.getMetricName())

    def report(self, dataset) -> dict:
        """The full per-label report of a predictions DataFrame."""
        self._validate()
        labels, focal = self.getLabels(), self.getFocalLabels() or self.getLabels()
        label_name = self.getOrDefault(self.labelCol)
        pred_name = self.getOrDefault(self.predictionCol)
        for col in (label_name, pred_name):
            if col not in dataset.columns:
                raise ValueError(f"PerLabelEvaluator: column {col!r} is missing; the input has "
                                 f"{dataset.columns}")
        data = dataset.filter(F.col(label_name).isNotNull())
        multi = self.getOrDefault(self.multiLabel)
        if multi:
            report = _multilabel_report(data, F.col(label_name), F.col(pred_name), labels)
        else:
            rows = data.groupBy(F.col(label_name).alias("t"),
                                F.col(pred_name).alias("p")).count().collect()
            report = report_from_confusion(
                {(r["t"], r["p"]): int(r["count"]) for r in rows}, labels)
        report["multi_label"] = multi
        report["focal_labels"] = list(focal)
        for name in ("f1", "precision", "recall"):
            report[f"focal_macro_{name}"] = \
                sum(report["per_label"][lab][name] for lab in focal) / len(focal)
        prob_name = self.getOrDefault(self.probabilityCol)
        bins = self.getOrDefault(self.numBins)
        if bins and prob_name in dataset.columns:
            prob = F.col(prob_name)
            if isinstance(dataset.schema[prob_name].dataType, VectorUDT):
                prob = vector_to_array(prob)  # Spark ML classifiers' probability vectors
            report["pr_curves"] = pr_curves(data, F.col(label_name), prob, labels,
                                            focal, multi, bins)
            for lab, curve in report["pr_curves"].items():
                report["per_label"][lab]["average_precision"] = curve["average_precision"]
        self.last_report = report
        return report

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setLabelCol(self, value):
        return self._set(labelCol=value)

    def setLabels(self, value):
        return self._set(labels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setNumBins(self, value):
        return self._set(numBins=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)


def report_from_confusion(counts: dict, labels) -> dict:
    """Per-label precision/recall/F1/support from {(true, predicted): count}.

    Predictions outside `labels` (or null) count as misses of the true label and as
    nobody's false positive, as scikit-learn does with an explicit `labels` list.
    """
    unknown = sorted({t for t, _ in counts if t not in labels})
    if unknown:
        raise ValueError(f"label column holds {unknown}, which are not labels {labels}")
    matrix = [[counts.get((t, p), 0) for p in labels] for t in labels]
    n = sum(counts.values())
    per_label = {}
    for i, lab in enumerate(labels):
        tp = matrix[i][i]
        support = sum(c for (t, _), c in counts.items() if t == lab)
        predicted = sum(matrix[k][i] for k in range(len(labels)))
        per_label[lab] = _prf(tp, predicted - tp, support - tp)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    report = {"labels": list(labels), "per_label": per_label, "confusion": matrix, "n": n,
              "accuracy": correct / n if n else 0.0}
    report.update(_averages(per_label, n))
    return report


def _prf(tp, fp, fn):
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(tp + fn),
            "tp": int(tp), "fp": int(fp), "fn": int(fn)}


def _averages(per_label: dict, n: int) -> dict:
    """Micro, macro and support-weighted averages, plus each label's 2x2 confusion."""
    values = list(per_label.values())
    tp, fp, fn = (sum(v[k] for v in values) for k in ("tp", "fp", "fn"))
    micro = _prf(tp, fp, fn)
    support = sum(v["support"] for v in values)
    out = {"label_confusion": {lab: [[n - v["tp"] - v["fp"] - v["fn"], v["fp"]],
                                     [v["fn"], v["tp"]]] for lab, v in per_label.items()}}
    for name in ("precision", "recall", "f1"):
        out[f"micro_{name}"] = micro[name]
        out[f"macro_{name}"] = sum(v[name] for v in values) / len(values)
    out["weighted_f1"] = (sum(v["f1"] * v["support"] for v in values) / support
                          if support else 0.0)
    return out


def _label_sets(true_col, pred_col):
    # "" is the empty set: split gives [""], which names no label.
    return (F.array_remove(F.split(true_col, r"\|"), ""),
            F.array_remove(F.split(F.coalesce(pred_col, F.lit("")), r"\|"), ""))


def _multilabel_report(data, true_col, pred_col, labels):
    t, p = _label_sets(true_col, pred_col)
    aggs, same = [], []
    for j, lab in enumerate(labels):
        has_t = F.array_contains(t, lab).cast("int")
        has_p = F.array_contains(p, lab).cast("int")
        same.append(has_t == has_p)
        aggs += [F.sum(has_t * has_p).alias(f"tp{j}"), F.sum((1 - has_t) * has_p).alias(f"fp{j}"),
                 F.sum(has_t * (1 - has_p)).alias(f"fn{j}")]
    exact = same[0]
    for cond in same[1:]:
        exact = exact & cond
    t_in, p_in = (F.filter(x, lambda v: v.isin(*labels)) for x in (t, p))
    sizes = F.size(F.array_distinct(t_in)) + F.size(F.array_distinct(p_in))
    line_f1 = F.when(sizes == 0, F.lit(1.0)).otherwise(
        2.0 * F.size(F.array_intersect(t_in, p_in)) / sizes)
    row = data.agg(F.count(F.lit(1)).alias("n"), F.sum(exact.cast("int")).alias("exact"),
                   F.sum(line_f1).alias("examples_f1"),
                   F.sum((F.size(t_in) == 0).cast("int")).alias("empty_t"),
                   F.sum((F.size(p_in) == 0).cast("int")).alias("empty_p"), *aggs).first()
    n = int(row["n"])
    per_label = {lab: _prf(*(int(row[f"{k}{j}"] or 0) for k in ("tp", "fp", "fn")))
                 for j, lab in enumerate(labels)}
    report = {"labels": list(labels), "per_label": per_label, "confusion": None, "n": n,
              "accuracy": int(row["exact"] or 0) / n if n else 0.0,
              "examples_f1": float(row["examples_f1"] or 0.0) / n if n else 0.0,
              "n_empty_true": int(row["empty_t"] or 0),
              "n_empty_predicted": int(row["empty_p"] or 0)}
    report.update(_averages(per_label, n))
    return report


def pr_curves(data, true_col, prob_col, labels, curve_labels, multi_label, bins=1000) -> dict:
    """Precision-recall curves from one aggregation over probability bins.

    Each label's probabilities are cut into `bins` equal bins; a (label, bin) histogram
    of positives and lines reaches the driver and is cumulated from the top bin down.
    Points are in decreasing threshold order, one per non-empty bin, at the bin's lower
    edge. When no two distinct scores share a bin, the points and the average precision
    (sum over points of recall increase times precision) equal scikit-learn's.
    """
    index = {lab: labels.index(lab) for lab in curve_labels}
    if multi_label:
        t = F.split(true_col, r"\|")
        positive = {lab: F.array_contains(t, lab) for lab in curve_labels}
    else:
        positive = {lab: true_col == F.lit(lab) for lab in curve_labels}
    entries = [F.struct(F.lit(lab).alias("label"),
                        F.least(F.greatest(F.floor(prob_col[j] * bins), F.lit(0)),
                                F.lit(bins - 1)).cast("int").alias("bin"),
                        positive[lab].cast("int").alias("pos"))
               for lab, j in index.items()]
    rows = (data.select(F.explode(F.array(*entries)).alias("e"))
            .groupBy("e.label", "e.bin")
            .agg(F.sum("e.pos").alias("pos"), F.count(F.lit(1)).alias("n")).collect())
    hist = {lab: {} for lab in curve_labels}
    for r in rows:
        hist[r["label"]][int(r["bin"])] = (int(r["pos"]), int(r["n"]))
    return {lab: _curve_from_histogram(hist[lab], bins) for lab in curve_labels}


def _curve_from_histogram(hist: dict, bins: int) -> dict:
    positives = sum(pos for pos, _ in hist.values())
    tp = predicted = 0
    thresholds, precision, recall = [], [], []
    ap, last_recall = 0.0, 0.0
    for b in sorted(hist, reverse=True):
        pos, n = hist[b]
        tp += pos
        predicted += n
        p = tp / predicted
        r = tp / positives if positives else 0.0
        thresholds.append(b / bins)
        precision.append(p)
        recall.append(r)
        ap += (r - last_recall) * p
        last_recall = r
    return {"thresholds": thresholds, "precision": precision, "recall": recall,
            "average_precision": ap, "positives": positives}


def metric_from_report(report: dict, name: str) -> float:
    """The number `name` (a PerLabelEvaluator metricName) of a report."""
    base, sep, label = name.partition(":")
    if sep:
        value = report["per_label"][label].get(base)
        if value is None:
            raise ValueError(f"metricName: {name!r} needs the probability column; the "
                             "predictions had none (or numBins is 0)")
        return float(value)
    return float(report[name])


def format_report(report: dict) -> str:
    """A fixed-width per-label table for terminals and logs."""
    width = max(12, max(len(lab) for lab in report["labels"]) + 2)
    lines = [f"{'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for lab in report["labels"]:
        m = report["per_label"][lab]
        mark = " *" if lab in report.get("focal_labels", []) else ""
        lines.append(f"{lab:<{width}}{m['precision']:>10.3f}{m['recall']:>10.3f}"
                     f"{m['f1']:>10.3f}{m['support']:>10d}{mark}")
    lines.append(f"{'micro':<{width}}{report['micro_precision']:>10.3f}"
                 f"{report['micro_recall']:>10.3f}{report['micro_f1']:>10.3f}")
    lines.append(f"{'macro':<{width}}{report['macro_precision']:>10.3f}"
                 f"{report['macro_recall']:>10.3f}{report['macro_f1']:>10.3f}")
    lines.append(f"{'focal macro':<{width}}{report['focal_macro_precision']:>10.3f}"
                 f"{report['focal_macro_recall']:>10.3f}{report['focal_macro_f1']:>10.3f}"
                 "  (* focal labels)")
    if report.get("examples_f1") is not None:
        lines.append(f"{'examples':<{width}}{'':>20}{report['examples_f1']:>10.3f}"
                     f"{report['n']:>10d}  (per-line F1 of the label sets; "
                     f"{report['n_empty_true']} lines with no label, "
                     f"{report['n_empty_predicted']} predicted with none)")
    return "\n".join(lines)
