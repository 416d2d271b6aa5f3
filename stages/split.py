"""Document-level splits: every line of a document lands in exactly one split.

`DocumentSplitter` adds a `split` column either by fraction (a seeded hash of the
document id, so the assignment is stable and needs no shuffle) or by path pattern
(for example a volume folder for the test split), first matching pattern wins.
"""
import json

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq.config import DEFAULTS, SPLITS, fractions_problem, patterns_problem


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
        split = DEFAULTS.data.split
        self._setDefault(fractions=json.dumps(split.fractions),
                         patterns=json.dumps(split.patterns), seed=split.seed)

    def getFractions(self):
        return json.loads(self.getOrDefault(self.fractions))

    def getPatterns(self):
        return json.loads(self.getOrDefault(self.patterns))

    def getSeed(self):
        return self.getOrDefault(self.seed)


class DocumentSplitter(Transformer, _DocumentSplitterParams, DefaultParamsReadable,
                       DefaultParamsWritable):
    """Assigns each document (by `doc_id`) to train, validation or test.

    Arguments left None take their defaults from `focalseq.config.DEFAULTS`
    (`data.split`).

    >>> docs = spark.createDataFrame([("file:/c/Vol117/a.ann",), ("file:/c/Vol118/b.ann",)],
    ...                              "doc_id string")
    >>> splitter = DocumentSplitter(patterns=[["test", "/Vol117/"], ["train", ".*"]])
    >>> [(r.doc_id, r.split) for r in splitter.transform(docs).collect()]
    [('file:/c/Vol117/a.ann', 'test'), ('file:/c/Vol118/b.ann', 'train')]
    >>> splitter.save(temp_path + "/splitter")
    >>> loaded = DocumentSplitter.load(temp_path + "/splitter")
    >>> loaded.uid == splitter.uid, loaded.getPatterns()
    (True, [['test', '/Vol117/'], ['train', '.*']])
    """

    @keyword_only
    def __init__(self, *, fractions=None, patterns=None, seed=None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, fractions=None, patterns=None, seed=None):
        kwargs = dict(self._input_kwargs)
        for key in ("fractions", "patterns"):
            if kwargs.get(key) is not None and not isinstance(kwargs[key], str):
                kwargs[key] = json.dumps(kwargs[key])
        self._set(**{k: v for k, v in kwargs.items() if v is not None})
        self._validate()
        return self

    def _validate(self):
        # The same checks as the configuration's data.split (one place for both).
        for name, problem in (("fractions", fractions_problem(self.getFractions())),
                              ("patterns", patterns_problem(self.getPatterns()))):
            if problem:
                raise ValueError(f"{name}: {problem}")

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

    def setFractions(self, value):
        return self._set(fractions=value)

    def setPatterns(self, value):
        return self._set(patterns=value)

    def setSeed(self, value):
        return self._set(seed=value)
