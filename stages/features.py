"""Lines -> features: hashed tokens and numeric layout/shape features per line.

`LineFeaturizer` adds two fixed-length array columns: `token_ids` (hashed word, suffix
and optional character n-gram ids; 0 is padding) and `shape` (GROBID-style layout and
shape features, each roughly in [0, 1]). Hashing is stable across runs and machines, so
a model trained today featurizes tomorrow's files the same way.
"""
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T


class _LineFeaturizerParams(Params):
    vocabSize = Param(Params._dummy(), "vocabSize", "size of the hashed token space",
                      typeConverter=TypeConverters.toInt)
    maxTokens = Param(Params._dummy(), "maxTokens", "token ids per line (padded/truncated)",
                      typeConverter=TypeConverters.toInt)
    useWords = Param(Params._dummy(), "useWords", "hash lower-cased word tokens",
                     typeConverter=TypeConverters.toBoolean)
    useSuffixes = Param(Params._dummy(), "useSuffixes", "hash word suffixes",
                        typeConverter=TypeConverters.toBoolean)
    suffixLength = Param(Params._dummy(), "suffixLength", "suffix length in characters",
                         typeConverter=TypeConverters.toInt)
    useCharNgrams = Param(Params._dummy(), "useCharNgrams", "hash character n-grams",
                          typeConverter=TypeConverters.toBoolean)
    ngramSize = Param(Params._dummy(), "ngramSize", "character n-gram size",
                      typeConverter=TypeConverters.toInt)
    shapeFeatures = Param(Params._dummy(), "shapeFeatures",
                          "names of the shape features to compute (empty list: all)",
                          typeConverter=TypeConverters.toListString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                         suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=[])

    def getVocabSize(self):
        return self.getOrDefault(self.vocabSize)

    def getMaxTokens(self):
        return self.getOrDefault(self.maxTokens)

    def getShapeFeatures(self):
        return self.getOrDefault(self.shapeFeatures)

    def token_config(self):
        from focalseq.text.features import TokenConfig

        return TokenConfig(vocab_size=self.getVocabSize(), max_tokens=self.getMaxTokens(),
                           words=self.getOrDefault(self.useWords),
                           suffixes=self.getOrDefault(self.useSuffixes),
                           suffix_len=self.getOrDefault(self.suffixLength),
                           char_ngrams=self.getOrDefault(self.useCharNgrams),
                           ngram_n=self.getOrDefault(self.ngramSize))

    def enabled_shape_features(self):
        from focalseq.text.features import SHAPE_FEATURES

        names = tuple(self.getShapeFeatures()) or SHAPE_FEATURES
        unknown = [n for n in names if n not in SHAPE_FEATURES]
        if unknown:
            raise ValueError(f"shapeFeatures: unknown feature(s) {unknown}; "
                             f"valid names are {list(SHAPE_FEATURES)}")
        return names


class LineFeaturizer(Transformer, _LineFeaturizerParams, DefaultParamsReadable,
                     DefaultParamsWritable):
    """Adds `token_ids` (array<int>, maxTokens) and `shape` (array<float>) to line rows.

    >>> feats = LineFeaturizer(vocabSize=4096, maxTokens=16)
    >>> feats.transform(lines).select("token_ids", "shape")  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                 suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                  suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=None):
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)
        self._validate()
        return self

    def _validate(self):
        if self.getVocabSize() < 2:
            raise ValueError(f"vocabSize: must be >= 2, got {self.getVocabSize()}")
        if self.getMaxTokens() < 1:
            raise ValueError(f"maxTokens: must be >= 1, got {self.getMaxTokens()}")
        self.enabled_shape_features()

    def n_shape(self) -> int:
        return len(self.enabled_shape_features())

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        cfg = self.token_config()
        enabled = self.enabled_shape_features()
        schema = T.StructType(dataset.schema.fields + [
            T.StructField("token_ids", T.ArrayType(T.IntegerType(), False), False),
            T.StructField("shape", T.ArrayType(T.FloatType(), False), False),
        ])
        return dataset.mapInPandas(lambda frames: _featurize(frames, cfg, enabled), schema=schema)


def _featurize(frames, cfg, enabled):
    from focalseq.text.features import shape_features, token_ids
    from focalseq.text.yedda import Line

    for frame in frames:
        tokens, shapes = [], []
        for text, line_no, idx, n, blank, indent in zip(
                frame["text"], frame["line_no"], frame["line_idx"], frame["n_lines"],
                frame["blank_before"], frame["indent"]):
            line = Line(line_no=int(line_no), text=text, label=None,
                        blank_before=bool(blank), indent=int(indent))
            tokens.append(token_ids(text, cfg))
            shapes.append(shape_features(line, int(idx), int(n), enabled))
        frame = frame.copy()
        frame["token_ids"] = tokens
        frame["shape"] = shapes
        yield frame
