"""Per-line probabilities -> tuned decisions for the focal labels.

A network trained on imbalanced data tends to give a rare label probabilities that are
right in order but too low in level, so the argmax (or the 0.5 cut) rarely picks it.
`ThresholdTuner` fits, on the validation split of a predictions DataFrame, the
decision rule that `BiLSTMModel` already applies:

- single-label: per-label offsets added to log-probabilities before the argmax. Each
  focal label's offset is chosen in turn (coordinate ascent, `maxIter` rounds) to
  maximise the macro F1 over the focal labels, so raising one rare label never buys
  its F1 with another focal label's.
- multi-label: one threshold per focal label, chosen to maximise that label's F1.

Both use bounded aggregations: a histogram of a per-line statistic over `numBins`
bins (the log-odds margin the offset has to beat, or the probability), keyed by true
and runner-up label, reaches the driver; F1 at every bin edge follows by cumulative
sums. The result, `ThresholdModel`, re-decides the prediction column from the
probability column; it persists with the pipeline and records the before/after
figures, measured exactly (not from the histogram) on the fitting split, in
`tuningReport`. `ThresholdModel.apply_to(bilstm_model)` instead returns a copy of the
model with its `logOffsets` / `thresholds` set.
"""
import json
import logging

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq.stages._params import (HasDecisionRule, HasFocalLabels, HasLabels,
                                     HasLogToMlflow, HasMultiLabel, HasNumBins)
from focalseq.stages.decision import LOG_FLOOR, decision_expr

logger = logging.getLogger(__name__)



class _ThresholdParams(HasLabels, HasFocalLabels, HasMultiLabel, HasPredictionCol,
                       HasProbabilityCol):

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(labels=[], focalLabels=[], multiLabel=False,
                         probabilityCol="probability", predictionCol="prediction")


class _ThresholdTunerParams(_ThresholdParams, HasLabelCol, HasNumBins, HasLogToMlflow):
    # numBins: histogram bins, the candidate cut points.
    splitCol = Param(Params._dummy(), "splitCol", "column naming each line's split",
                     typeConverter=TypeConverters.toString)
    fitSplit = Param(Params._dummy(), "fitSplit",
                     "split to tune on (empty, or no split column: every line)",
                     typeConverter=TypeConverters.toString)
    maxOffset = Param(Params._dummy(), "maxOffset",
                      "single-label: offsets are searched in [-maxOffset, maxOffset]",
                      typeConverter=TypeConverters.toFloat)
    maxIter = Param(Params._dummy(), "maxIter",
                    "single-label: rounds of coordinate ascent over the focal labels",
                    typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(labelCol="label", splitCol="split", fitSplit="validation",
                         numBins=1000, maxOffset=10.0, maxIter=2, logToMlflow=False)

    def getFitSplit(self):
        return self.getOrDefault(self.fitSplit)

    def getMaxIter(self):
        return self.getOrDefault(self.maxIter)

    def getMaxOffset(self):
        return self.getOrDefault(self.maxOffset)

    def getSplitCol(self):
        return self.getOrDefault(self.splitCol)


class ThresholdTuner(Estimator, _ThresholdTunerParams, DefaultParamsReadable,
                     DefaultParamsWritable):
    """Fits per-label log-offsets (single-label) or thresholds (multi-label).

    Input: per-line predictions with the true label and the probability array, e.g.
    `BiLSTMModel.transform(windows)` over the validation split.

    The rare label A is ranked right but its probabilities are too low for the argmax;
    a positive offset on A's log-probability (between log 0.55/0.45 and log 0.8/0.2)
    makes every line right. Without a split column every line is used. The fitted model
    goes after the network in a PipelineModel.

    >>> predictions = spark.createDataFrame(
    ...     [("A", [0.4, 0.6]), ("A", [0.45, 0.55]), ("B", [0.1, 0.9]), ("B", [0.2, 0.8])],
    ...     "label string, probability array<double>")
    >>> tuned = ThresholdTuner(labels=["A", "B"], focalLabels=["A"]).fit(predictions)
    >>> report = json.loads(tuned.getTuningReport())
    >>> report["before"]["focal_macro_f1"], report["after"]["focal_macro_f1"]
    (0.0, 1.0)
    >>> [r.prediction for r in tuned.transform(predictions).collect()]
    ['A', 'A', 'B', 'B']
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, multiLabel=False,
                 probabilityCol="probability", predictionCol="prediction", labelCol="label",
                 splitCol="split", fitSplit="validation", numBins=1000, maxOffset=10.0,
                 maxIter=2, logToMlflow=False):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, focalLabels=None, multiLabel=False,
                  probabilityCol="probability", predictionCol="prediction", labelCol="label",
                  splitCol="split", fitSplit="validation", numBins=1000, maxOffset=10.0,
                  maxIter=2, logToMlflow=False):
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        return self

    def setFitSplit(self, value):
        return self._set(fitSplit=value)

    def _validate(self, dataset):
        labels = self.getLabels()
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels: expected distinct label names, got {labels}")
        bad = [f for f in self.getFocalLabels() if f not in labels]
        if bad:
            raise ValueError(f"focalLabels: {bad} are not labels; valid labels: {labels}")
        if self.getOrDefault(self.numBins) < 2:
            raise ValueError(f"numBins: must be >= 2, got {self.getOrDefault(self.numBins)}")
        if self.getOrDefault(self.maxOffset) <= 0:
            raise ValueError(f"maxOffset: must be > 0, got {self.getOrDefault(self.maxOffset)}")
        if self.getOrDefault(self.maxIter) < 1:
            raise ValueError(f"maxIter: must be >= 1, got {self.getOrDefault(self.maxIter)}")
        for name in ("labelCol", "probabilityCol"):
            col = self.getOrDefault(name)
            if col not in dataset.columns:
                raise ValueError(f"ThresholdTuner: {name} {col!r} is not a column of the "
                                 f"input {dataset.columns}")

    def _fitting_rows(self, dataset: DataFrame) -> DataFrame:
        split_col, split = self.getOrDefault(self.splitCol), self.getOrDefault(self.fitSplit)
        data = dataset.filter(F.col(self.getOrDefault(self.labelCol)).isNotNull())
        if split and split_col in dataset.columns:
            data = data.filter(F.col(split_col) == split)
        return data

    def _fit(self, dataset: DataFrame) -> "ThresholdModel":
        self._validate(dataset)
        return self._decide(dataset, self._tune)

    def fit_rule(self, dataset: DataFrame, logOffsets=(), thresholds=()) -> "ThresholdModel":
        """A ThresholdModel with given values instead of searched ones (e.g. the post-hoc
        logit adjustment, `logit_adjust_offsets`), measured and kept or refused on the
        fitting split exactly as `fit`'s own are.

        >>> predictions = spark.createDataFrame(
        ...     [("A", [0.4, 0.6]), ("B", [0.2, 0.8]), ("B", [0.3, 0.7])],
        ...     "label string, probability array<double>")
        >>> tuner = ThresholdTuner(labels=["A", "B"], focalLabels=["A", "B"])
        >>> rule = tuner.fit_rule(predictions, logOffsets=[0.5, 0.0])  # log .4 + .5 > log .6
        >>> json.loads(rule.getTuningReport())["kept"], rule.getLogOffsets()
        ('tuned', [0.5, 0.0])
        >>> rule = tuner.fit_rule(predictions, logOffsets=[2.0, 0.0])  # all A: macro F1 .25 < .4
        >>> json.loads(rule.getTuningReport())["kept"], rule.getLogOffsets()
        ('untuned', [])
        """
        self._validate(dataset)
        return self._decide(dataset, lambda data: self._model(logOffsets, thresholds))

    def _decide(self, dataset: DataFrame, choose) -> "ThresholdModel":
        """`choose(fitting rows)` -> a ThresholdModel, kept only if it does not lower the
        focal macro F1 of the fitting rows; its tuningReport says which was kept."""
        data = self._fitting_rows(dataset).select(
            F.col(self.getOrDefault(self.labelCol)).alias("label"),
            F.col(self.getOrDefault(self.probabilityCol)).alias("probability")).cache()
        try:
            if data.limit(1).count() == 0:
                raise ValueError(f"ThresholdTuner: no labelled lines in split "
                                 f"{self.getOrDefault(self.fitSplit)!r} to tune on")
            model = choose(data)
            report = self._before_after(data, model)
            report["kept"] = "tuned"
            if report["after"]["focal_macro_f1"] < report["before"]["focal_macro_f1"]:
                # Coordinate ascent on binned margins can overshoot by a bin, and given
                # values may not suit the data; never ship worse than the untuned rule.
                logger.warning("tuned focal macro F1 %.4f < untuned %.4f; keeping the untuned "
                               "rule", report["after"]["focal_macro_f1"],
                               report["before"]["focal_macro_f1"])
                refused = {k: report[k] for k in ("log_offsets", "thresholds", "after")}
                model = self._model([], [])
                report = self._before_after(data, model)
                report.update(kept="untuned", refused=refused)
        finally:
            data.unpersist()
        model._set(tuningReport=json.dumps(report, sort_keys=True))
        logger.info("tuned %s: focal macro F1 %.4f -> %.4f", report["tuned"],
                    report["before"]["focal_macro_f1"], report["after"]["focal_macro_f1"])
        if self.getOrDefault(self.logToMlflow):
            _log_tuning(report)
        return model

    def _model(self, offsets, thresholds) -> "ThresholdModel":
        return ThresholdModel(labels=self.getLabels(), focalLabels=self.getFocalLabels(),
                              multiLabel=self.getMultiLabel(), logOffsets=list(offsets),
                              thresholds=list(thresholds),
                              probabilityCol=self.getOrDefault(self.probabilityCol),
                              predictionCol=self.getOrDefault(self.predictionCol))

    def _tune(self, data) -> "ThresholdModel":
        labels = self.getLabels()
        targets = self.getFocalLabels() or labels
        bins = self.getOrDefault(self.numBins)
        if self.getMultiLabel():
            counts = _probability_histogram(data, labels, targets, bins)
            th = [0.5] * len(labels)
            for lab in targets:
                th[labels.index(lab)] = best_threshold(*counts[lab], current=0.5)
            return self._model([], th)
        offsets = [0.0] * len(labels)
        focal_idx = [labels.index(lab) for lab in targets]
        bound = self.getOrDefault(self.maxOffset)
        for _ in range(self.getOrDefault(self.maxIter)):
            before = list(offsets)
            for j in focal_idx:
                hist = _margin_histogram(data, labels, offsets, j, bins, bound)
                offsets[j] = best_offset(hist, j, focal_idx, bound, current=offsets[j])
            if np.allclose(before, offsets):
                break
        return self._model(offsets, [])

    def _before_after(self, data, model) -> dict:
        from focalseq.stages.evaluation import PerLabelEvaluator

        ev = PerLabelEvaluator(labels=self.getLabels(), focalLabels=self.getFocalLabels(),
                               multiLabel=self.getMultiLabel(), numBins=0)
        untuned = self._model([], [])
        out = {"split": self.getOrDefault(self.fitSplit),
               "tuned": self.getFocalLabels() or self.getLabels(),
               "log_offsets": model.getLogOffsets(), "thresholds": model.getThresholds()}
        for name, rule in (("before", untuned), ("after", model)):
            rep = ev.report(rule.transform(data))
            out["lines"] = rep["n"]
            out[name] = {"focal_macro_f1": rep["focal_macro_f1"], "macro_f1": rep["macro_f1"],
                         "per_label": {lab: {k: rep["per_label"][lab][k]
                                             for k in ("precision", "recall", "f1", "support")}
                                       for lab in self.getLabels()}}
        return out

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setLabelCol(self, value):
        return self._set(labelCol=value)

    def setLabels(self, value):
        return self._set(labels=value)

    def setLogToMlflow(self, value):
        return self._set(logToMlflow=value)

    def setMaxIter(self, value):
        return self._set(maxIter=value)

    def setMaxOffset(self, value):
        return self._set(maxOffset=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setNumBins(self, value):
        return self._set(numBins=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)

    def setSplitCol(self, value):
        return self._set(splitCol=value)


class _ThresholdModelParams(_ThresholdParams, HasDecisionRule):
    tuningReport = Param(Params._dummy(), "tuningReport",
                         "JSON: tuned values and per-label figures before and after tuning",
                         typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(logOffsets=[], thresholds=[], tuningReport="{}")

    def getTuningReport(self):
        return self.getOrDefault(self.tuningReport)


class ThresholdModel(Model, _ThresholdModelParams, DefaultParamsReadable,
                     DefaultParamsWritable):
    """Re-decides `predictionCol` from `probabilityCol` with tuned offsets/thresholds.

    Single-label: argmax of log-probability plus offset (log 0.4 + 1 > log 0.6, but
    log 0.1 + 1 < log 0.9).

    >>> preds = spark.createDataFrame([([0.4, 0.6],), ([0.1, 0.9],)],
    ...                               "probability array<double>")
    >>> model = ThresholdModel(labels=["A", "B"], logOffsets=[1.0, 0.0])
    >>> [r.prediction for r in model.transform(preds).collect()]
    ['A', 'B']
    >>> model.save(temp_path + "/threshold_model")
    >>> loaded = ThresholdModel.load(temp_path + "/threshold_model")
    >>> loaded.uid == model.uid, loaded.getLogOffsets()
    (True, [1.0, 0.0])
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, multiLabel=False,
                 probabilityCol="probability", predictionCol="prediction", logOffsets=None,
                 thresholds=None, tuningReport=None):
        super().__init__()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def setLogOffsets(self, value):
        return self._set(logOffsets=value)

    def setThresholds(self, value):
        return self._set(thresholds=value)

    def _validate(self):
        n = len(self.getLabels())
        if not n:
            raise ValueError("labels: ThresholdModel needs the ordered list of labels, got []")
        for name in ("logOffsets", "thresholds"):
            values = self.getOrDefault(name)
            if values and len(values) != n:
                raise ValueError(f"{name}: expected {n} values (one per label "
                                 f"{self.getLabels()}), got {values}")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        prob = F.col(self.getOrDefault(self.probabilityCol))
        return dataset.withColumn(self.getOrDefault(self.predictionCol),
                                  decision_expr(prob, self.getLabels(), self.getMultiLabel(),
                                                self.getLogOffsets(), self.getThresholds()))

    def apply_to(self, model):
        """A copy of `model` (a BiLSTMModel or EnsembleModel) deciding with these values."""
        self._validate()
        if list(model.getLabels()) != list(self.getLabels()):
            raise ValueError(f"apply_to: the model's labels {model.getLabels()} differ from the "
                             f"tuned labels {self.getLabels()}")
        return model.copy()._set(logOffsets=self.getLogOffsets(), thresholds=self.getThresholds())


# Histograms (Spark) ---------------------------------------------------------------------

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setLabels(self, value):
        return self._set(labels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)

    def setTuningReport(self, value):
        return self._set(tuningReport=value)


def _probability_histogram(data, labels, targets, bins) -> dict:
    """{label: (positives per bin, lines per bin)} of each target label's probability."""
    t = F.split(F.col("label"), r"\|")
    entries = [F.struct(F.lit(lab).alias("label"),
                        F.least(F.greatest(F.floor(F.col("probability")[labels.index(lab)] * bins),
                                           F.lit(0)), F.lit(bins - 1)).cast("int").alias("bin"),
                        F.array_contains(t, lab).cast("int").alias("pos"))
               for lab in targets]
    rows = (data.select(F.explode(F.array(*entries)).alias("e")).groupBy("e.label", "e.bin")
            .agg(F.sum("e.pos").alias("pos"), F.count(F.lit(1)).alias("n")).collect())
    out = {lab: (np.zeros(bins), np.zeros(bins)) for lab in targets}
    for r in rows:
        pos, n = out[r["label"]]
        pos[r["bin"]] += r["pos"]
        n[r["bin"]] += r["n"]
    return out


def _margin_histogram(data, labels, offsets, j, bins, bound):
    """Counts[bin, true, runner_up] of d = max_{k!=j}(log p_k + o_k) - log p_j.

    Label j is predicted iff its offset o_j >= d; otherwise the runner-up is.
    """
    n = len(labels)
    prob = F.col("probability")
    score = [F.log(F.greatest(prob[k], F.lit(LOG_FLOOR))) + F.lit(float(offsets[k]))
             for k in range(n)]
    others = [k for k in range(n) if k != j]
    best = F.greatest(*[score[k] for k in others]) if len(others) > 1 else score[others[0]]
    runner_up = F.lit(others[-1])
    for k in reversed(others):
        runner_up = F.when(score[k] == best, F.lit(k)).otherwise(runner_up)
    margin = best - F.log(F.greatest(prob[j], F.lit(LOG_FLOOR)))
    width = 2 * bound / bins
    binned = F.least(F.greatest(F.floor((margin + F.lit(bound)) / F.lit(width)), F.lit(0)),
                     F.lit(bins - 1)).cast("int")
    # array_position(array(labels), label) - 1, spelled out: F.array_position takes a
    # column as the value only from Spark 4.0, and clusters run 3.5 too. First match wins;
    # -1 for a label outside the list, null for a null label, as array_position gives.
    true_idx = F.lit(-1)
    for k in reversed(range(n)):
        true_idx = F.when(F.col("label") == F.lit(labels[k]), F.lit(k)).otherwise(true_idx)
    true_idx = F.when(F.col("label").isNotNull(), true_idx).cast("int")
    rows = (data.select(binned.alias("bin"), true_idx.alias("t"), runner_up.alias("r"))
            .groupBy("bin", "t", "r").count().collect())
    hist = np.zeros((bins, n, n))
    for r in rows:
        if r["t"] >= 0:  # labels outside the label list are nobody's true positive
            hist[r["bin"], r["t"], r["r"]] += r["count"]
    return hist


# Choosing the cut (driver, numpy) -----------------------------------------------------------


def _plateau_middle(scores, candidates, current):
    """The middle of the run of best-scoring candidates nearest to `current`."""
    best = scores.max()
    good = np.flatnonzero(scores >= best - 1e-12)
    anchor = good[np.argmin(np.abs(candidates[good] - current))]
    lo = hi = anchor
    while lo - 1 in good:
        lo -= 1
    while hi + 1 in good:
        hi += 1
    return float(candidates[(lo + hi) // 2]) if hi > lo else float(candidates[anchor])


def best_threshold(pos, n, current=0.5) -> float:
    """Multi-label: the bin edge t = b/bins maximising F1 of `p >= t` (b = 1..bins-1)."""
    bins = len(pos)
    tp = np.cumsum(pos[::-1])[::-1]        # positives with bin >= b
    predicted = np.cumsum(n[::-1])[::-1]
    positives = pos.sum()
    b = np.arange(1, bins)
    denom = predicted[b] + positives
    f1 = np.where(denom > 0, 2 * tp[b] / np.maximum(denom, 1), 0.0)
    return _plateau_middle(f1, b / bins, current)


def best_offset(hist, j, focal_idx, bound, current=0.0) -> float:
    """Single-label: the offset of label j (a bin edge) maximising the focal macro F1.

    hist[bin, true, runner_up] counts lines; with offset edge_b, lines in bins < b are
    predicted j and the rest their runner-up.
    """
    bins, n, _ = hist.shape
    below = np.concatenate([np.zeros((1, n, n)), np.cumsum(hist, axis=0)])  # bins < b
    total = below[-1]
    b = np.arange(1, bins)
    as_j = below[b]                        # [cand, true, runner_up] predicted j
    as_runner = total[None] - as_j         # predicted their runner-up
    support = total.sum(axis=1)            # lines by true label
    f1s = []
    for k in focal_idx:
        if k == j:
            tp = as_j[:, j, :].sum(axis=1)
            predicted = as_j.sum(axis=(1, 2))
        else:
            tp = as_runner[:, k, k]
            predicted = as_runner[:, :, k].sum(axis=1)
        denom = predicted + support[k]
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    objective = np.mean(f1s, axis=0)
    edges = -bound + b * (2 * bound / bins)
    return _plateau_middle(objective, edges, current)


def logit_adjust_offsets(label_counts: dict, labels, tau: float = 1.0) -> list:
    """Post-hoc logit adjustment (Menon et al. 2021) as log-offsets, one per label:
    ``-tau * log(prior)`` up to a shared constant (the argmax does not see it), from
    `focalseq.losses.posthoc_logit_adjust` over the priors of `label_counts`.

    >>> [round(v, 4) for v in logit_adjust_offsets({"A": 1, "B": 9}, ["A", "B"])]
    [-0.1054, -2.3026]
    """
    from focalseq.losses import class_priors, posthoc_logit_adjust

    priors = class_priors(label_counts, list(labels))
    return posthoc_logit_adjust(np.zeros(len(priors)), priors, tau).tolist()


def format_tuning(report: dict) -> str:
    """The before/after figures of a tuningReport, for people: one line a label.

    >>> print(format_tuning({"method": "offsets", "split": "validation", "lines": 10,
    ...     "kept": "tuned", "log_offsets": [0.5, 0.0], "thresholds": [],
    ...     "before": {"focal_macro_f1": 0.5, "per_label": {"A": {"f1": 0.5}, "B": {"f1": 0.8}}},
    ...     "after": {"focal_macro_f1": 0.7, "per_label": {"A": {"f1": 0.7}, "B": {"f1": 0.9}}}}))
    offsets tuned on the validation split (10 lines): focal macro F1 0.5000 -> 0.7000
      A: F1 0.5000 -> 0.7000 (log offset +0.500)
      B: F1 0.8000 -> 0.9000 (log offset +0.000)
    """
    what = report.get("method", "decision rule")
    before, after = report["before"], report["after"]
    if report.get("kept") == "untuned":
        refused = report["refused"]
        lines = [f"{what} did not help on the {report['split']} split ({report['lines']} lines): "
                 f"focal macro F1 {before['focal_macro_f1']:.4f} untuned, "
                 f"{refused['after']['focal_macro_f1']:.4f} tuned; the untuned decision is kept"]
        after, values = refused["after"], refused
    else:
        lines = [f"{what} tuned on the {report['split']} split ({report['lines']} lines): "
                 f"focal macro F1 {before['focal_macro_f1']:.4f} -> {after['focal_macro_f1']:.4f}"]
        values = report
    labels = list(before["per_label"])
    if values.get("log_offsets"):
        notes = [f" (log offset {v:+.3f})" for v in values["log_offsets"]]
    elif values.get("thresholds"):
        notes = [f" (threshold {v:.3f})" for v in values["thresholds"]]
    else:
        notes = [""] * len(labels)
    for lab, note in zip(labels, notes):
        lines.append(f"  {lab}: F1 {before['per_label'][lab]['f1']:.4f} -> "
                     f"{after['per_label'][lab]['f1']:.4f}{note}")
    return "\n".join(lines)


def _log_tuning(report: dict) -> None:
    import mlflow

    from focalseq.tracking import metric_key

    if mlflow.active_run() is None:
        mlflow.start_run()
    split = report["split"] or "all"
    metrics = {}
    for stage in ("before", "after"):
        name = "untuned" if stage == "before" else "tuned"
        metrics[metric_key(split, name, "focal_macro_f1")] = report[stage]["focal_macro_f1"]
        for lab, m in report[stage]["per_label"].items():
            metrics[metric_key(split, name, "f1", lab)] = m["f1"]
    labels = list(report["after"]["per_label"])
    for values, kind in ((report["log_offsets"], "log_offset"), (report["thresholds"],
                                                                  "threshold")):
        for lab, v in zip(labels, values):
            metrics[metric_key(kind, lab)] = v
    mlflow.log_metrics(metrics)
    mlflow.log_dict(report, f"reports/{split}_thresholds.json")
