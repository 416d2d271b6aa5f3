"""Lines -> features: hashed tokens and numeric layout/shape features per line.

`LineFeaturizer` adds two fixed-length array columns: `token_ids` (hashed word, suffix
and optional character n-gram ids; 0 is padding) and `shape` (GROBID-style layout and
shape features, each in [0, 1]). Hashing is CRC-32 of UTF-8 bytes, so ids are stable
across runs, processes and machines: a model trained today featurizes tomorrow's files
the same way.

The values are those of :func:`focalseq.text.features.token_ids` and
:func:`~focalseq.text.features.shape_features`; the executors compute them for a whole
Arrow batch at once with :func:`focalseq.text.batch_features.featurize_lines` (character
classes from a lookup table with numpy, regular expressions only on the lines a cheap
substring test cannot rule out, token hashes memoised), which is several times faster
than calling them line by line.

Param defaults are those of ``focalseq.config.DEFAULTS.features``.
"""
import logging
from functools import partial
from typing import Optional, Tuple

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from focalseq.arrow_columns import list_array
from focalseq.config import DEFAULTS
from focalseq.stages._task_setup import lighten_task_setup
from focalseq.text.batch_features import TokenHasher, featurize_lines
from focalseq.text.features import SHAPE_FEATURES, TokenConfig

logger = logging.getLogger(__name__)

META_KEY = "focalseq"
INPUT_COLUMNS = ("text", "line_idx", "n_lines", "blank_before", "indent")


class _LineFeaturizerParams(Params):
    vocabSize = Param(Params._dummy(), "vocabSize",
                      "size of the hashed token space; ids lie in [1, vocabSize), 0 pads",
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
                          "names of the shape features to compute, in this order (empty "
                          "list: all of focalseq.text.features.SHAPE_FEATURES)",
                          typeConverter=TypeConverters.toListString)

    def __init__(self, *args):
        super().__init__(*args)
        f = DEFAULTS.features
        self._setDefault(vocabSize=f.vocab_size, maxTokens=f.max_tokens, useWords=f.words,
                         useSuffixes=f.suffixes, suffixLength=f.suffix_len,
                         useCharNgrams=f.char_ngrams, ngramSize=f.ngram_n,
                         shapeFeatures=list(f.shape_features))

    def getVocabSize(self):
        return self.getOrDefault(self.vocabSize)

    def getMaxTokens(self):
        return self.getOrDefault(self.maxTokens)

    def getUseWords(self):
        return self.getOrDefault(self.useWords)

    def getUseSuffixes(self):
        return self.getOrDefault(self.useSuffixes)

    def getSuffixLength(self):
        return self.getOrDefault(self.suffixLength)

    def getUseCharNgrams(self):
        return self.getOrDefault(self.useCharNgrams)

    def getNgramSize(self):
        return self.getOrDefault(self.ngramSize)

    def getShapeFeatures(self):
        return self.getOrDefault(self.shapeFeatures)

    def token_config(self):
        """The params as a :class:`focalseq.text.features.TokenConfig` (validates them)."""
        return TokenConfig(vocab_size=self.getVocabSize(), max_tokens=self.getMaxTokens(),
                           words=self.getUseWords(), suffixes=self.getUseSuffixes(),
                           suffix_len=self.getSuffixLength(),
                           char_ngrams=self.getUseCharNgrams(), ngram_n=self.getNgramSize())

    def enabled_shape_features(self) -> Tuple[str, ...]:
        """The shape feature names in output order."""
        names = tuple(self.getShapeFeatures()) or SHAPE_FEATURES
        unknown = [n for n in names if n not in SHAPE_FEATURES]
        if unknown:
            raise ValueError(f"shapeFeatures: unknown feature(s) {unknown}; "
                             f"valid names are {list(SHAPE_FEATURES)}")
        if len(set(names)) != len(names):
            raise ValueError(f"shapeFeatures: duplicate names in {list(names)}")
        return names


class LineFeaturizer(Transformer, _LineFeaturizerParams, DefaultParamsReadable,
                     DefaultParamsWritable):
    """Adds `token_ids` (array<int>, maxTokens) and `shape` (array<float>) to line rows.

    Needs the columns `text`, `line_idx`, `n_lines`, `blank_before` and `indent` of
    `YeddaParser`; every other column passes through unchanged. A null `text` (a problem
    row of the parser) gets the features of an empty line. Both new columns carry their
    dimensions as metadata (key "focalseq"), which `Windower` reads.

    >>> feats = LineFeaturizer(vocabSize=4096, maxTokens=16, shapeFeatures=["binomial"])
    >>> feats.save(path); LineFeaturizer.load(path).getMaxTokens()  # doctest: +SKIP
    16
    >>> feats.transform(lines).select("token_ids", "shape")  # doctest: +SKIP
    """

    # None means "the default" (DEFAULTS.features): only the values given are set.
    @keyword_only
    def __init__(self, *, vocabSize=None, maxTokens=None, useWords=None, useSuffixes=None,
                 suffixLength=None, useCharNgrams=None, ngramSize=None, shapeFeatures=None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, vocabSize=None, maxTokens=None, useWords=None, useSuffixes=None,
                  suffixLength=None, useCharNgrams=None, ngramSize=None, shapeFeatures=None):
        """Sets the params given (None: leave as is); returns self."""
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)
        self._validate()
        return self

    def setVocabSize(self, value):
        return self._set(vocabSize=value)

    def setMaxTokens(self, value):
        return self._set(maxTokens=value)

    def setShapeFeatures(self, value):
        return self._set(shapeFeatures=value)

    def _validate(self):
        try:
            self.token_config()
        except ValueError as exc:
            raise ValueError(f"LineFeaturizer: {exc} (params vocabSize, maxTokens, "
                             "suffixLength, ngramSize)") from None
        self.enabled_shape_features()

    def n_shape(self) -> int:
        """Length of the `shape` vector."""
        return len(self.enabled_shape_features())

    def feature_metadata(self) -> dict:
        """The dimensions attached to the output columns."""
        return {"vocab_size": self.getVocabSize(), "max_tokens": self.getMaxTokens(),
                "n_shape": self.n_shape(),
                "shape_features": list(self.enabled_shape_features())}

    def batch_function(self):
        """The executor function: line batches -> the same batches + token_ids, shape.

        A picklable callable of plain values (see YeddaParser.batch_function).
        """
        self._validate()
        return partial(_featurize_batches, cfg=self.token_config(),
                       enabled=self.enabled_shape_features())

    def _transform(self, dataset: DataFrame) -> DataFrame:
        missing = [c for c in INPUT_COLUMNS if c not in dataset.columns]
        if missing:
            raise ValueError(f"LineFeaturizer: input column(s) {missing} missing; it needs "
                             f"{list(INPUT_COLUMNS)} as YeddaParser writes them")
        for name in ("token_ids", "shape"):
            if name in dataset.columns:
                raise ValueError(f"LineFeaturizer: the input already has a {name!r} column")
        schema = T.StructType(dataset.schema.fields + [
            T.StructField("token_ids", T.ArrayType(T.IntegerType(), False), False),
            T.StructField("shape", T.ArrayType(T.FloatType(), False), False),
        ])
        out = dataset.mapInArrow(self.batch_function(), schema=schema)
        meta = {META_KEY: self.feature_metadata()}
        return out.withMetadata("token_ids", meta).withMetadata("shape", meta)

    def setNgramSize(self, value):
        return self._set(ngramSize=value)

    def setSuffixLength(self, value):
        return self._set(suffixLength=value)

    def setUseCharNgrams(self, value):
        return self._set(useCharNgrams=value)

    def setUseSuffixes(self, value):
        return self._set(useSuffixes=value)

    def setUseWords(self, value):
        return self._set(useWords=value)


def read_feature_metadata(df: DataFrame) -> Optional[dict]:
    """The dimensions `LineFeaturizer` stored on `token_ids`, or None if absent."""
    if "token_ids" not in df.columns:
        return None
    return df.schema["token_ids"].metadata.get(META_KEY)


# -- the executor side ---------------------------------------------------------------

def _featurize_batches(batches, cfg, enabled):
    """mapInArrow body: appends token_ids and shape to every batch."""
    import pyarrow as pa

    lighten_task_setup()
    hasher = TokenHasher(cfg)
    for batch in batches:
        cols = {name: batch.column(batch.schema.get_field_index(name))
                for name in INPUT_COLUMNS}
        texts = [t if t is not None else "" for t in cols["text"].to_pylist()]
        tokens, shapes = featurize_lines(
            texts, _ints(cols["line_idx"]), _ints(cols["n_lines"], 1),
            cols["blank_before"].fill_null(False).to_numpy(zero_copy_only=False),
            _ints(cols["indent"]), cfg, enabled, hasher)
        yield pa.RecordBatch.from_arrays(list(batch.columns) + [list_array(tokens),
                                                               list_array(shapes)],
                                         names=list(batch.schema.names) + ["token_ids",
                                                                          "shape"])


def _ints(column, fill=0):
    return column.fill_null(fill).to_numpy(zero_copy_only=False).astype(np.int64)
