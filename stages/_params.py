"""Params shared by several focalseq stages, in the shape of `pyspark.ml.param.shared`.

Each mixin declares its `Param`s at class level with a type converter and a camelCase
getter, and nothing else; stages set defaults once in their own params mixin (from
`focalseq.config.DEFAULTS` where the configuration has the value) and carry the setters.
Spark's own shared mixins (`HasPredictionCol`, `HasProbabilityCol`, `HasSeed`, ...) are
reused, not redeclared. Params hold JSON values only, so every stage persists with
Spark's default writer.
"""
import json

from pyspark.ml.param import Param, Params, TypeConverters


def json_text(value) -> str:
    """Type converter of JSON params: a JSON string as it is, or a value serialised."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"expected a JSON string or a JSON-serialisable value, got {value!r}") \
            from exc


def json_object(stage: Params, name: str):
    """A JSON-object param as a dict (None when empty); ValueError naming the param."""
    text = stage.getOrDefault(name)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a JSON object, got {text!r}")
    return value


class HasLabels(Params):
    labels = Param(Params._dummy(), "labels",
                   "ordered label names; index i of every probability vector is labels[i]",
                   typeConverter=TypeConverters.toListString)

    def getLabels(self):
        return self.getOrDefault(self.labels)


class HasFocalLabels(Params):
    focalLabels = Param(Params._dummy(), "focalLabels",
                        "the rare labels the user cares about (soft-F1, early stopping, reports)",
                        typeConverter=TypeConverters.toListString)

    def getFocalLabels(self):
        return self.getOrDefault(self.focalLabels)


class HasWindow(Params):
    windowSize = Param(Params._dummy(), "windowSize", "lines per window",
                       typeConverter=TypeConverters.toInt)
    stride = Param(Params._dummy(), "stride", "lines between window starts",
                   typeConverter=TypeConverters.toInt)

    def getWindowSize(self):
        return self.getOrDefault(self.windowSize)

    def getStride(self):
        return self.getOrDefault(self.stride)


class HasMultiLabel(Params):
    multiLabel = Param(Params._dummy(), "multiLabel",
                       "True: labels are '|'-separated sets and the head is sigmoid",
                       typeConverter=TypeConverters.toBoolean)

    def getMultiLabel(self):
        return self.getOrDefault(self.multiLabel)


class HasDecisionRule(Params):
    """How per-label probabilities become a prediction (`focalseq.stages.decision`)."""

    logOffsets = Param(Params._dummy(), "logOffsets",
                       "single-label: per-label offsets added to log-probabilities before "
                       "the argmax (tuned thresholds / logit adjustment); empty: none",
                       typeConverter=TypeConverters.toListFloat)
    thresholds = Param(Params._dummy(), "thresholds",
                       "multi-label: per-label decision thresholds (empty: 0.5)",
                       typeConverter=TypeConverters.toListFloat)

    def getLogOffsets(self):
        return self.getOrDefault(self.logOffsets)

    def getThresholds(self):
        return self.getOrDefault(self.thresholds)


class HasWindowInput(Params):
    """How a model reads its windows (`focalseq.stages.prediction`)."""

    groupedInput = Param(Params._dummy(), "groupedInput",
                         "each document's windows arrive together, in one partition (true of "
                         "Windower output within the same job, as in the inference "
                         "pipeline): lines are averaged in the Python pass and no shuffle "
                         "merges them; a document found in two places fails the task, "
                         "naming it", typeConverter=TypeConverters.toBoolean)
    directRead = Param(Params._dummy(), "directRead",
                       "when the input is a plain scan of Parquet files (spark.read.parquet, "
                       "columns selected or dropped, filters on partition columns only), the "
                       "Python workers read the files with pyarrow instead of receiving rows "
                       "from the JVM (the same result, faster); other inputs always go "
                       "through the JVM", typeConverter=TypeConverters.toBoolean)

    def getGroupedInput(self):
        return self.getOrDefault(self.groupedInput)

    def getDirectRead(self):
        return self.getOrDefault(self.directRead)


class HasNumBins(Params):
    numBins = Param(Params._dummy(), "numBins",
                    "probability bins of the histograms behind curves and tuned cut points "
                    "(0: none)", typeConverter=TypeConverters.toInt)

    def getNumBins(self):
        return self.getOrDefault(self.numBins)


class HasLogToMlflow(Params):
    logToMlflow = Param(Params._dummy(), "logToMlflow",
                        "log the stage's figures to the active MLflow run",
                        typeConverter=TypeConverters.toBoolean)

    def getLogToMlflow(self):
        return self.getOrDefault(self.logToMlflow)
