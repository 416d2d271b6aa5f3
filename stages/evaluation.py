"""Predictions -> per-label metrics (and MLflow).

`PerLabelEvaluator` computes line-level precision, recall, F1 and support per label,
micro and macro averages, the macro average over the focal labels and the confusion
matrix with one Spark aggregation (a labels x labels table reaches the driver, never
rows). `evaluate` returns the single number named by `metricName`, so Spark's tuning
tools can use it; the whole report is kept on `last_report` and, when `logToMlflow` is
set, logged to the active MLflow run (see focalseq.tracking).
"""
import logging

from pyspark import keyword_only
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import functions as F

from focalseq.stages._params import HasFocalLabels, HasLabels

logger = logging.getLogger(__name__)


class _PerLabelEvaluatorParams(HasLabels, HasFocalLabels):
    labelCol = Param(Params._dummy(), "labelCol", "true label column",
                     typeConverter=TypeConverters.toString)
    predictionCol = Param(Params._dummy(), "predictionCol", "predicted label column",
                          typeConverter=TypeConverters.toString)
    metricName = Param(Params._dummy(), "metricName",
                       "returned metric: focal_macro_f1, macro_f1, micro_f1, accuracy, or "
                       "f1:<label>, precision:<label>, recall:<label>",
                       typeConverter=TypeConverters.toString)
    multiLabel = Param(Params._dummy(), "multiLabel", "'|'-separated label sets",
                       typeConverter=TypeConverters.toBoolean)
    logToMlflow = Param(Params._dummy(), "logToMlflow", "log the report to the active MLflow run",
                        typeConverter=TypeConverters.toBoolean)
    splitName = Param(Params._dummy(), "splitName", "prefix of MLflow metric names, e.g. test",
                      typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(labelCol="label", predictionCol="prediction",
                         metricName="focal_macro_f1", multiLabel=False, logToMlflow=False,
                         splitName="test", labels=[], focalLabels=[])

    def getMetricName(self):
        return self.getOrDefault(self.metricName)


class PerLabelEvaluator(Evaluator, _PerLabelEvaluatorParams, DefaultParamsReadable,
                        DefaultParamsWritable):
    """Line-level per-label evaluation.

    >>> ev = PerLabelEvaluator(labels=["A", "B"], focalLabels=["A"], metricName="f1:A")
    >>> ev.evaluate(predictions)  # doctest: +SKIP
    0.8
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, labelCol="label",
                 predictionCol="prediction", metricName="focal_macro_f1", multiLabel=False,
                 logToMlflow=False, splitName="test"):
        super().__init__()
        self.last_report = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, focalLabels=None, labelCol="label",
                  predictionCol="prediction", metricName="focal_macro_f1", multiLabel=False,
                  logToMlflow=False, splitName="test"):
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        return self

    def setMetricName(self, value):
        return self._set(metricName=value)

    def isLargerBetter(self):
        return True

    def _validate(self):
        labels = self.getLabels()
        if not labels:
            raise ValueError("labels: PerLabelEvaluator needs the list of labels, got []")
        bad = [f for f in self.getFocalLabels() if f not in labels]
        if bad:
            raise ValueError(f"focalLabels: {bad} are not labels; valid labels: {labels}")
        name = self.getMetricName()
        base, _, label = name.partition(":")
        if label:
            if base not in ("f1", "precision", "recall") or label not in labels:
                raise ValueError(f"metricName: {name!r} is not valid; per-label metrics are "
                                 f"f1:/precision:/recall: followed by one of {labels}")
        elif name not in ("focal_macro_f1", "macro_f1", "micro_f1", "accuracy"):
            raise ValueError(f"metricName: {name!r} is not one of focal_macro_f1, macro_f1, "
                             "micro_f1, accuracy, f1:<label>, precision:<label>, recall:<label>")

    def _evaluate(self, dataset):
        self._validate()
        report = self.report(dataset)
        if self.getOrDefault(self.logToMlflow):
            from focalseq.tracking import log_report

            log_report(report, self.getOrDefault(self.splitName))
        return metric_from_report(report, self.getMetricName())

    def report(self, dataset) -> dict:
        """The full per-label report of a predictions DataFrame."""
        labels, focal = self.getLabels(), self.getFocalLabels() or self.getLabels()
        true_col = F.col(self.getOrDefault(self.labelCol))
        pred_col = F.col(self.getOrDefault(self.predictionCol))
        data = dataset.filter(true_col.isNotNull())
        if self.getOrDefault(self.multiLabel):
            report = _multilabel_report(data, true_col, pred_col, labels)
        else:
            rows = data.groupBy(true_col.alias("t"), pred_col.alias("p")).count().collect()
            report = report_from_confusion(
                {(r["t"], r["p"]): int(r["count"]) for r in rows}, labels)
        report["focal_labels"] = list(focal)
        report["focal_macro_f1"] = sum(report["per_label"][lab]["f1"] for lab in focal) / len(focal)
        self.last_report = report
        return report


def report_from_confusion(counts: dict, labels) -> dict:
    """Per-label precision/recall/F1/support from {(true, predicted): count}."""
    unknown = sorted({t for t, _ in counts if t not in labels})
    if unknown:
        raise ValueError(f"label column holds {unknown}, which are not labels {labels}")
    matrix = [[counts.get((t, p), 0) for p in labels] for t in labels]
    per_label = {}
    for i, lab in enumerate(labels):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(counts.get((t, lab), 0) for t in labels)
        per_label[lab] = _prf(tp, predicted - tp, support - tp, support)
    total = sum(sum(r) for r in matrix)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return {"labels": list(labels), "per_label": per_label, "confusion": matrix,
            "n": total, "accuracy": correct / total if total else 0.0,
            "micro_f1": correct / total if total else 0.0,
            "macro_f1": sum(v["f1"] for v in per_label.values()) / len(labels)}


def _prf(tp, fp, fn, support):
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(support),
            "tp": int(tp), "fp": int(fp), "fn": int(fn)}


def _multilabel_report(data, true_col, pred_col, labels):
    t = F.split(true_col, r"\|")
    p = F.split(F.coalesce(pred_col, F.lit("")), r"\|")
    aggs = []
    for j, lab in enumerate(labels):
        has_t = F.array_contains(t, lab).cast("int")
        has_p = F.array_contains(p, lab).cast("int")
        aggs += [F.sum(has_t * has_p).alias(f"tp{j}"), F.sum((1 - has_t) * has_p).alias(f"fp{j}"),
                 F.sum(has_t * (1 - has_p)).alias(f"fn{j}")]
    row = data.agg(F.count(F.lit(1)).alias("n"), *aggs).first()
    per_label = {}
    for j, lab in enumerate(labels):
        tp, fp, fn = (int(row[f"{k}{j}"] or 0) for k in ("tp", "fp", "fn"))
        per_label[lab] = _prf(tp, fp, fn, tp + fn)
    tp, fp, fn = (sum(v[k] for v in per_label.values()) for k in ("tp", "fp", "fn"))
    micro = _prf(tp, fp, fn, tp + fn)["f1"]
    return {"labels": list(labels), "per_label": per_label, "confusion": None,
            "n": int(row["n"]), "accuracy": None, "micro_f1": micro,
            "macro_f1": sum(v["f1"] for v in per_label.values()) / len(labels)}


def metric_from_report(report: dict, name: str) -> float:
    base, _, label = name.partition(":")
    if label:
        return float(report["per_label"][label][base])
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
    lines.append(f"{'macro F1':<{width}}{'':>20}{report['macro_f1']:>10.3f}")
    lines.append(f"{'focal macro F1':<{width}}{'':>20}{report['focal_macro_f1']:>10.3f}"
                 "  (* focal labels)")
    return "\n".join(lines)
