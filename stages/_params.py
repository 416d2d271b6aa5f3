"""Params shared by several focalseq stages.

Each mixin declares one `Param` at class level with a type converter, a camelCase
getter, and nothing else; stages set defaults once in their own params mixin.
Params hold JSON values only, so every stage persists with Spark's default writer.
"""
from pyspark.ml.param import Param, Params, TypeConverters


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


class HasJsonConfig(Params):
    """A free-form JSON object param, stored as a JSON string for portable persistence."""

    @staticmethod
    def _json_param(name, doc):
        return Param(Params._dummy(), name, doc + " (JSON object)",
                     typeConverter=TypeConverters.toString)
