"""Lines -> features: hashed tokens and numeric layout/shape features per line.

`LineFeaturizer` adds two fixed-length array columns: `token_ids` (hashed word, suffix
and optional character n-gram ids; 0 is padding) and `shape` (GROBID-style layout and
shape features, each in [0, 1]). Hashing is CRC-32 of UTF-8 bytes, so ids are stable
across runs, processes and machines: a model trained today featurizes tomorrow's files
the same way.

The values are those of :func:`focalseq.text.features.token_ids` and
:func:`~focalseq.text.features.shape_features`; :func:`featurize_lines` computes them for
a whole Arrow batch at once (character classes from a lookup table with numpy, regular
expressions only on the lines a cheap substring test cannot rule out, token hashes
memoised), which is several times faster than calling them line by line.
"""
import logging
from functools import lru_cache, partial
from typing import Optional, Sequence, Tuple

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from focalseq.stages._worker import lighten_task_setup

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
        self._setDefault(vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                         suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=[])

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
        from focalseq.text.features import TokenConfig

        return TokenConfig(vocab_size=self.getVocabSize(), max_tokens=self.getMaxTokens(),
                           words=self.getUseWords(), suffixes=self.getUseSuffixes(),
                           suffix_len=self.getSuffixLength(),
                           char_ngrams=self.getUseCharNgrams(), ngram_n=self.getNgramSize())

    def enabled_shape_features(self) -> Tuple[str, ...]:
        """The shape feature names in output order."""
        from focalseq.text.features import SHAPE_FEATURES

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

    @keyword_only
    def __init__(self, *, vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                 suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, vocabSize=2 ** 16, maxTokens=32, useWords=True, useSuffixes=True,
                  suffixLength=3, useCharNgrams=False, ngramSize=3, shapeFeatures=None):
        """Sets params by keyword; returns self."""
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
    hasher = _TokenHasher(cfg)
    for batch in batches:
        cols = {name: batch.column(batch.schema.get_field_index(name))
                for name in INPUT_COLUMNS}
        texts = [t if t is not None else "" for t in cols["text"].to_pylist()]
        tokens, shapes = featurize_lines(
            texts, _ints(cols["line_idx"]), _ints(cols["n_lines"], 1),
            cols["blank_before"].fill_null(False).to_numpy(zero_copy_only=False),
            _ints(cols["indent"]), cfg, enabled, hasher)
        yield pa.RecordBatch.from_arrays(list(batch.columns) + [_list_array(tokens),
                                                               _list_array(shapes)],
                                         names=list(batch.schema.names) + ["token_ids",
                                                                          "shape"])


def _list_array(matrix: np.ndarray):
    """An (n, k) array as an Arrow list column of Spark's array<... not null> type."""
    import pyarrow as pa

    n, k = matrix.shape
    values = pa.array(matrix.reshape(-1))
    kind = pa.list_(pa.field("element", values.type, nullable=False))
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32)) if k else \
        pa.array(np.zeros(n + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values, type=kind)


def _ints(column, fill=0):
    return column.fill_null(fill).to_numpy(zero_copy_only=False).astype(np.int64)


class _TokenHasher:
    """`token_ids` for many lines at once, with each distinct token hashed once.

    Words and suffixes are placed with numpy from per-token ids; character n-grams
    (off by default) go line by line. The memo of token hashes is cleared when it holds
    ``limit`` tokens, so memory stays bounded on any vocabulary.
    """

    def __init__(self, cfg, limit: int = 500_000):
        from focalseq.text.features import stable_hash

        self.cfg = cfg
        self.limit = limit
        buckets = cfg.vocab_size - 1
        n_sfx, n_gram = cfg.suffix_len, cfg.ngram_n

        def word_and_suffix(t):  # both ids packed in one int: word << 32 | suffix
            sfx = 1 + stable_hash("sfx:" + t[-n_sfx:]) % buckets \
                if len(t) > n_sfx and t.isalpha() else 0
            return (1 + stable_hash(t) % buckets) << 32 | sfx

        def ngrams(t):
            if not t.isalnum():
                return ()
            padded = "<" + t + ">"
            return tuple(1 + stable_hash("ng:" + padded[i:i + n_gram]) % buckets
                         for i in range(max(1, len(padded) - n_gram + 1)))

        self._ids = _Memo(word_and_suffix)
        self._ngrams = _Memo(ngrams)

    def matrix(self, tokens) -> np.ndarray:
        """``(n, max_tokens)`` int32 ids of n lines given as token lists."""
        cfg = self.cfg
        n, k = len(tokens), cfg.max_tokens
        out = np.zeros((n, k), dtype=np.int32)
        if cfg.char_ngrams:
            for i, line in enumerate(tokens):
                row = self._line_ids(line)
                if row:
                    out[i, :len(row)] = row
            self._trim()
            return out
        lens = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
        total = int(lens.sum())
        if total == 0 or not (cfg.words or cfg.suffixes):
            return out
        from itertools import chain

        packed = np.fromiter(map(self._ids.__getitem__, chain.from_iterable(tokens)),
                             dtype=np.int64, count=total)
        words, suffixes = packed >> 32, packed & 0xFFFFFFFF
        line = np.repeat(np.arange(n), lens)
        first = np.cumsum(lens) - lens
        pos = np.arange(total) - first[line]
        n_words = np.minimum(lens, k) if cfg.words else np.zeros(n, dtype=np.int64)
        if cfg.words:
            keep = pos < k
            out[line[keep], pos[keep]] = words[keep]
        if cfg.suffixes:
            has = suffixes > 0
            rank = np.cumsum(has)
            rank_before_line = np.concatenate([[0], rank])[first]
            slot = n_words[line] + rank - rank_before_line[line] - 1
            keep = has & (slot < k)
            out[line[keep], slot[keep]] = suffixes[keep]
        self._trim()
        return out

    def _line_ids(self, tokens):
        """One line's ids, exactly as `token_ids` orders and cuts them (unpadded)."""
        cfg = self.cfg
        limit = cfg.max_tokens
        packed = list(map(self._ids.__getitem__, tokens))
        out = [p >> 32 for p in packed[:limit]] if cfg.words else []
        if cfg.suffixes and len(out) < limit:
            out.extend(p & 0xFFFFFFFF for p in packed if p & 0xFFFFFFFF)
        if cfg.char_ngrams and len(out) < limit:
            for t in tokens:
                g = self._ngrams[t]
                if g:
                    out.extend(g)
                    if len(out) >= limit:
                        break
        return out[:limit]

    def _trim(self):
        for memo in (self._ids, self._ngrams):
            if len(memo) > self.limit:
                memo.clear()


class _Memo(dict):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, key):
        value = self[key] = self.fn(key)
        return value


# Character classes of the BMP, one bit each; index 0x10000 stands for every astral
# character (such lines are computed by the reference function instead).
_SPACE, _ALPHA, _UPPER, _DIGIT, _PUNCT, _ASTRAL = 1, 2, 4, 8, 16, 32
_SEP = "\x00\n"  # no feature pattern matches across "\x00\n": see _regex_hits
# Characters that match an ASCII letter under re.IGNORECASE without lower() giving it.
_CASE_SPECIALS = ("\u0130", "\u0131", "\u017f", "\u212a")


@lru_cache(maxsize=1)
def _char_table() -> np.ndarray:
    from focalseq.text.features import _PUNCT_CHARS

    table = np.zeros(0x10001, dtype=np.uint8)
    for cp in range(0x10000):
        ch = chr(cp)
        table[cp] = ((_SPACE if ch.isspace() else 0) | (_ALPHA if ch.isalpha() else 0)
                     | (_UPPER if ch.isupper() else 0) | (_DIGIT if ch.isdigit() else 0)
                     | (_PUNCT if ch in _PUNCT_CHARS else 0))
    table[0x10000] = _ASTRAL
    return table


def featurize_lines(texts: Sequence[str], line_idx, n_lines, blank_before, indent, cfg,
                    enabled: Sequence[str], hasher: Optional[_TokenHasher] = None
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids and shape features of many lines at once.

    Row i equals ``token_ids(texts[i], cfg)`` and ``shape_features(Line(.., texts[i],
    .., blank_before[i], indent[i]), line_idx[i], n_lines[i], enabled)`` of
    :mod:`focalseq.text.features`, as int32 and float32.

    Args:
        texts: line texts.
        line_idx, n_lines, blank_before, indent: per-line sequences of the same length.
        cfg: a :class:`focalseq.text.features.TokenConfig`.
        enabled: shape feature names, in output order.
        hasher: a token-hash memo to reuse across calls (one is made if None).

    Returns:
        ``(tokens, shapes)`` of shapes ``(n, cfg.max_tokens)`` and ``(n, len(enabled))``.
    """
    from focalseq.text.features import tokenize

    hasher = hasher or _TokenHasher(cfg)
    tokens = hasher.matrix([tokenize(t) for t in texts])
    return tokens, _shape_matrix(texts, line_idx, n_lines, blank_before, indent, enabled)


def _shape_matrix(texts, line_idx, n_lines, blank_before, indent, enabled) -> np.ndarray:
    from focalseq.text.features import shape_features
    from focalseq.text.yedda import Line

    n = len(texts)
    out = np.zeros((n, len(enabled)), dtype=np.float32)
    if n == 0 or not enabled:
        return out
    bodies = [t.strip() for t in texts]
    lengths = np.fromiter(map(len, bodies), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1] + len(_SEP), out=starts[1:])
    ends = starts + lengths
    joined = _SEP.join(bodies)
    # A trailing separator keeps first/last-character lookups in range for empty lines.
    codes = np.frombuffer((joined + _SEP).encode("utf-32-le"), dtype=np.uint32)
    flags = _char_table()[np.minimum(codes, 0x10000)]

    def count(mask):
        c = np.zeros(len(mask) + 1, dtype=np.int64)
        np.cumsum(mask, out=c[1:])
        return c[ends] - c[starts]

    compact = count((flags & _SPACE) == 0)
    letters = count((flags & _ALPHA) != 0)
    upper = count((flags & (_ALPHA | _UPPER)) == (_ALPHA | _UPPER))
    digits = count((flags & _DIGIT) != 0)
    nonempty = lengths > 0
    first = np.where(nonempty, flags[starts], 0)
    last_code = np.where(nonempty, codes[np.maximum(ends - 1, 0)], 0)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros(n), where=b > 0)

    line_idx = np.asarray(line_idx, dtype=np.float64)
    n_lines = np.asarray(n_lines, dtype=np.float64)
    position = np.zeros(n)
    many = n_lines > 1
    position[many] = np.clip(line_idx[many] / (n_lines[many] - 1), 0.0, 1.0)
    cheap = {
        "length": lambda: np.minimum(compact / 100.0, 1.0),
        "capital_ratio": lambda: ratio(upper, letters),
        "digit_ratio": lambda: ratio(digits, compact),
        "punct_ratio": lambda: ratio(count((flags & _PUNCT) != 0), compact),
        "leading_capital": lambda: (first & _UPPER) != 0,
        "all_caps": lambda: (letters >= 2) & (upper == letters),
        "number_start": lambda: (first & _DIGIT) != 0,
        "trailing_period": lambda: last_code == ord("."),
        "trailing_colon_comma": lambda: np.isin(last_code, [ord(":"), ord(","), ord(";")]),
        "indent": lambda: np.minimum(np.asarray(indent, dtype=np.float64) / 8.0, 1.0),
        "position": lambda: position,
        "blank_before": lambda: np.asarray(blank_before, dtype=bool),
        "page_break": lambda: np.fromiter(("\f" in t for t in texts), dtype=bool, count=n),
    }
    lowered = None
    for j, name in enumerate(enabled):
        if name in cheap:
            out[:, j] = cheap[name]()
            continue
        if lowered is None:
            lowered = _Lowered(bodies, joined, starts)
        out[:, j] = _regex_feature(name, bodies, lowered, digits, first)
    astral = np.flatnonzero(count((flags & _ASTRAL) != 0))
    for i in astral:  # rare: characters beyond the lookup table
        line = Line(0, texts[i], None, bool(blank_before[i]), int(indent[i]))
        out[i] = shape_features(line, int(line_idx[i]), int(n_lines[i]), enabled)
    return out


class _Lowered:
    """Lower-cased bodies for substring pre-tests of the case-insensitive patterns."""

    def __init__(self, bodies, joined, starts):
        import re

        self.bodies = bodies
        self.starts = starts
        # U+0130 is the one character whose lower() is longer; it matches 'i' under
        # re.IGNORECASE, so it becomes 'i' and positions line up with `joined`.
        low = joined.replace("\u0130", "i").lower()
        self.joined = low if len(low) == len(joined) else None
        self.specials = self._lines_with(re.compile("[" + "".join(_CASE_SPECIALS) + "]"),
                                         joined)

    def _lines_with(self, pattern, text) -> np.ndarray:
        hit = np.zeros(len(self.bodies), dtype=bool)
        pos = [m.start() for m in pattern.finditer(text)]
        if pos:
            hit[np.searchsorted(self.starts, pos, side="right") - 1] = True
        return hit

    def containing(self, needles) -> np.ndarray:
        """Lines whose lower-cased body contains any needle, or a case special."""
        import re

        if self.joined is None:  # not expected; kept exact all the same
            hit = np.fromiter((any(s in b.lower() for s in needles) for b in self.bodies),
                              dtype=bool, count=len(self.bodies))
        else:
            hit = self._lines_with(re.compile("|".join(map(re.escape, needles))), self.joined)
        return hit | self.specials


def _regex_feature(name, bodies, lowered, digits, first) -> np.ndarray:
    """One regex feature for every line; the pattern runs only on candidate lines.

    Each candidate test is a necessary condition of a match: a literal every match
    contains (compared lower-cased, with the few characters that match an ASCII letter
    under re.IGNORECASE without lowering to it always kept), or a digit count.
    """
    from focalseq.text import features as f

    if name == "year":
        return _regex_hits(f._YEAR_RE, bodies, digits >= 4)
    if name == "measurement":
        return _regex_hits(f._MEASURE_RE, bodies, digits >= 1)
    if name == "binomial":
        return _regex_hits(f._BINOMIAL_RE, bodies, None, accept=_binomial_match)
    if name == "author_citation":
        return _regex_hits(f._AUTHOR_RE, bodies, lowered.containing(("(",)))
    if name == "type_marker":
        return _regex_hits(f._TYPE_RE, bodies, lowered.containing(("typ",)))
    if name == "nomenclature_marker":
        return _regex_hits(f._NOMEN_RE, bodies, lowered.containing(
            ("nov", "nom.", "var.", "sp.", "forma", "emend.")))
    if name == "mycobank":
        cand = lowered.containing(("mycobank",)) | (
            (digits >= 4) & lowered.containing(("mb", "if")))
        return _regex_hits(f._MYCOBANK_RE, bodies, cand)
    if name == "figure_start":
        cand = np.fromiter((b[:1] in "fFpPtT" and b != "" for b in bodies), dtype=bool,
                           count=len(bodies))
        return np.fromiter((bool(c) and f._FIGURE_RE.match(b) is not None
                            for b, c in zip(bodies, cand)), dtype=bool, count=len(bodies))
    raise ValueError(f"shape feature {name!r} has no batch implementation")


def _binomial_match(m) -> bool:
    from focalseq.text import features as f

    return m.group(1).strip().lower() not in f._GENUS_STOP and \
        m.group(2) not in f._EPITHET_STOP


def _regex_hits(pattern, bodies, candidates, accept=None) -> np.ndarray:
    """Lines where `pattern` has a match (accepted by `accept`), searching once.

    The candidate bodies are joined with "\\x00\\n": every feature pattern consumes
    only ``\\s`` (never NUL) or ``[^()\\n]`` (never LF) between its literal parts, and
    NUL and LF are neither word characters nor '.' for its boundaries, so no match
    spans two lines and each line's matches are exactly those of a search of it alone.
    """
    n = len(bodies)
    hit = np.zeros(n, dtype=bool)
    index = np.arange(n) if candidates is None else np.flatnonzero(candidates)
    if len(index) == 0:
        return hit
    chosen = [bodies[i] for i in index]
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    starts = np.zeros(len(chosen), dtype=np.int64)
    np.cumsum(lengths[:-1] + len(_SEP), out=starts[1:])
    found = [m.start() for m in pattern.finditer(_SEP.join(chosen))
             if accept is None or accept(m)]
    if found:
        hit[index[np.searchsorted(starts, found, side="right") - 1]] = True
    return hit
