"""Document-level splits: every line of a document lands in exactly one split.

`DocumentSplitter` adds a `split` column either by fraction (a seeded hash of the
document id, so the assignment is stable and needs no shuffle) or by path pattern
(for example a volume folder for the test split), first matching pattern wins.
"""
import json
import re

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SPLITS = ("train", "validation", "test")


class _DocumentSplitterParams(Params):
    fractions = Param(Params._dummy(), "fractions",
                      "JSON object {split: fraction} over train/validation/test summing to 1",
                      typeConverter=TypeConverters.toString)
    patterns = Param(Params._dummy(), "patterns",
                     "JSON list of [split, regex] pairs matched against doc_id in order; "
                     "when set, replaces fractions; documents matching none are dropped "
                     "unless a pattern '.*' catches them",
                     typeConverter=TypeConverters.toString)
    seed = Param(Params._dummy(), "seed", "seed of the fraction hash",
                 typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(fractions=json.dumps({"train": 0.8, "validation": 0.1, "test": 0.1}),
                         patterns="[]", seed=0)

    def getFractions(self):
        return json.loads(self.getOrDefault(self.fractions))

    def getPatterns(self):
        return json.loads(self.getOrDefault(self.patterns))

    def getSeed(self):
        return self.getOrDefault(self.seed)


class DocumentSplitter(Transformer, _DocumentSplitterParams, DefaultParamsReadable,
                       DefaultParamsWritable):
    """Assigns each document (by `doc_id`) to train, validation or test.

    >>> DocumentSplitter(patterns=[["test", "/Vol117/"], ["train", ".*"]])  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, fractions=None, patterns=None, seed=0):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, fractions=None, patterns=None, seed=0):
        kwargs = dict(self._input_kwargs)
        for key in ("fractions", "patterns"):
            if kwargs.get(key) is not None and not isinstance(kwargs[key], str):
                kwargs[key] = json.dumps(kwargs[key])
        self._set(**{k: v for k, v in kwargs.items() if v is not None})
        self._validate()
        return self

    def _validate(self):
        fractions = self.getFractions()
        bad = [k for k in fractions if k not in SPLITS]
        if bad:
            raise ValueError(f"fractions: unknown split(s) {bad}; valid splits are {SPLITS}")
        if any((not isinstance(v, (int, float))) or v < 0 for v in fractions.values()):
            raise ValueError(f"fractions: every fraction must be a number >= 0, got {fractions}")
        if abs(sum(fractions.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions: must sum to 1, got {fractions} "
                             f"(sum {sum(fractions.values()):.4f})")
        for item in self.getPatterns():
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and item[0] in SPLITS):
                raise ValueError(f"patterns: each entry must be [split, regex] with split in "
                                 f"{SPLITS}, got {item!r}")
            try:
                re.compile(item[1])
            except re.error as exc:
                raise ValueError(f"patterns: invalid regex {item[1]!r}: {exc}") from exc

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        patterns = self.getPatterns()
        if patterns:
            expr = None
            for split, regex in reversed(patterns):
                cond = F.col("doc_id").rlike(regex)
                expr = F.when(cond, F.lit(split)) if expr is None else \
                    F.when(cond, F.lit(split)).otherwise(expr)
            return dataset.withColumn("split", expr).filter(F.col("split").isNotNull())
        # A uniform number in [0, 1) from a seeded 64-bit hash of the document id.
        # abs after %, not before: abs(Long.MinValue) overflows (an error under ANSI).
        u = F.abs(F.xxhash64(F.col("doc_id"), F.lit(self.getSeed())) % F.lit(1_000_000)) \
            / F.lit(1_000_000.0)
        fractions = self.getFractions()
        expr, edge = None, 0.0
        names = [s for s in SPLITS if fractions.get(s, 0) > 0]
        for i, split in enumerate(names):
            edge += fractions[split]
            cond = F.lit(True) if i == len(names) - 1 else (u < F.lit(edge))
            expr = F.when(cond, F.lit(split)) if expr is None else expr.when(cond, F.lit(split))
        return dataset.withColumn("split", expr)
