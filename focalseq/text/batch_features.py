"""The features of :mod:`focalseq.text.features` for many lines at once.

:func:`featurize_lines` returns, for a batch of lines, exactly what
:func:`~focalseq.text.features.token_ids` and
:func:`~focalseq.text.features.shape_features` return line by line, several times
faster: character classes come from a lookup table with numpy, each regular expression
of :mod:`focalseq.text.features` runs once over the lines a cheap substring or digit
test cannot rule out, and each distinct token is hashed once.

The patterns, the punctuation set, the binomial test, the per-token hashes and the
order of ids are imported from the reference module, not restated; what is written
again here, in numpy, is only the arithmetic of the counting features and the placement
of word and suffix ids, and the tests compare both with the reference line by line.
"""
import re
from functools import lru_cache
from itertools import chain
from typing import Optional, Sequence, Tuple

import numpy as np

from focalseq.text.features import (AUTHOR_RE, BINOMIAL_RE, FIGURE_RE, MEASURE_RE,
                                    MYCOBANK_RE, NOMEN_RE, PUNCT_CHARS, TYPE_RE, YEAR_RE,
                                    TokenConfig, TokenHashes, is_binomial,
                                    select_token_ids, shape_features, tokenize)
from focalseq.text.yedda import Line

_LOW32 = 0xFFFFFFFF


def featurize_lines(texts: Sequence[str], line_idx, n_lines, blank_before, indent,
                    cfg: TokenConfig, enabled: Sequence[str],
                    hasher: Optional["TokenHasher"] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids and shape features of many lines at once.

    Row i equals ``token_ids(texts[i], cfg)`` and ``shape_features(Line(.., texts[i],
    .., blank_before[i], indent[i]), line_idx[i], n_lines[i], enabled)`` of
    :mod:`focalseq.text.features`, as int32 and float32.

    Args:
        texts: line texts.
        line_idx, n_lines, blank_before, indent: per-line sequences of the same length.
        cfg: token settings.
        enabled: shape feature names, in output order.
        hasher: a token-hash memo to reuse across calls (one is made if None).

    Returns:
        ``(tokens, shapes)`` of shapes ``(n, cfg.max_tokens)`` and ``(n, len(enabled))``.

    >>> tokens, shapes = featurize_lines(["Agaricus campestris L."], [0], [1], [True], [0],
    ...                                  TokenConfig(max_tokens=4), ["binomial", "year"])
    >>> tokens.shape, shapes.tolist()
    ((1, 4), [[1.0, 0.0]])
    """
    hasher = hasher or TokenHasher(cfg)
    tokens = hasher.matrix([tokenize(t) for t in texts])
    return tokens, _shape_matrix(texts, line_idx, n_lines, blank_before, indent, enabled)


# -- token ids -----------------------------------------------------------------------

class TokenHasher:
    """`token_ids` for many lines at once, with each distinct token hashed once.

    Words and suffixes are placed with numpy from per-token ids; character n-grams
    (off by default) go line by line. The memo of token hashes is cleared when it holds
    ``limit`` tokens, so memory stays bounded on any vocabulary.

    Args:
        cfg: token settings.
        limit: distinct tokens memoised before the memo starts afresh.
    """

    def __init__(self, cfg: TokenConfig, limit: int = 500_000):
        self.cfg = cfg
        self.limit = limit
        hashes = TokenHashes(cfg)
        # Word and suffix id packed in one int (word << 32 | suffix): one lookup per token
        # serves both groups, and ids < 2**32 always fit.
        self._ids = _Memo(lambda t: hashes.word(t) << 32 | hashes.suffix(t))
        self._ngrams = _Memo(hashes.ngrams)

    def matrix(self, tokens: Sequence[Sequence[str]]) -> np.ndarray:
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
        packed = np.fromiter(map(self._ids.__getitem__, chain.from_iterable(tokens)),
                             dtype=np.int64, count=total)
        words, suffixes = packed >> 32, packed & _LOW32
        line = np.repeat(np.arange(n), lens)
        first = np.cumsum(lens) - lens
        pos = np.arange(total) - first[line]
        n_words = np.minimum(lens, k) if cfg.words else np.zeros(n, dtype=np.int64)
        if cfg.words:
            keep = pos < k
            out[line[keep], pos[keep]] = words[keep]
        if cfg.suffixes:
            # Suffix ids follow the line's word ids, in token order, skipping tokens
            # without a suffix (id 0): slot = words placed + suffixes seen so far.
            has = suffixes > 0
            rank = np.cumsum(has)
            rank_before_line = np.concatenate([[0], rank])[first]
            slot = n_words[line] + rank - rank_before_line[line] - 1
            keep = has & (slot < k)
            out[line[keep], slot[keep]] = suffixes[keep]
        self._trim()
        return out

    def _line_ids(self, tokens: Sequence[str]):
        """One line's ids, exactly as `token_ids` orders and cuts them (unpadded)."""
        packed = self._ids
        return select_token_ids(tokens, self.cfg, lambda t: packed[t] >> 32,
                                lambda t: packed[t] & _LOW32, self._ngrams.__getitem__)

    def _trim(self):
        for memo in (self._ids, self._ngrams):
            if len(memo) > self.limit:
                memo.clear()


class _Memo(dict):
    """A dict that computes a missing value with `fn` (and keeps it)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, key):
        value = self[key] = self.fn(key)
        return value


# -- shape features ------------------------------------------------------------------

# Character classes of the BMP, one bit each; index 0x10000 stands for every astral
# character (such lines are computed by the reference function instead).
_SPACE, _ALPHA, _UPPER, _DIGIT, _PUNCT, _ASTRAL = 1, 2, 4, 8, 16, 32
_SEP = "\x00\n"  # no feature pattern matches across "\x00\n": see _regex_hits
# Characters that match an ASCII letter under re.IGNORECASE without lower() giving it.
_CASE_SPECIALS = ("\u0130", "\u0131", "\u017f", "\u212a")


@lru_cache(maxsize=1)
def _char_table() -> np.ndarray:
    table = np.zeros(0x10001, dtype=np.uint8)
    for cp in range(0x10000):
        ch = chr(cp)
        table[cp] = ((_SPACE if ch.isspace() else 0) | (_ALPHA if ch.isalpha() else 0)
                     | (_UPPER if ch.isupper() else 0) | (_DIGIT if ch.isdigit() else 0)
                     | (_PUNCT if ch in PUNCT_CHARS else 0))
    table[0x10000] = _ASTRAL
    return table


def _shape_matrix(texts, line_idx, n_lines, blank_before, indent, enabled) -> np.ndarray:
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
        out[:, j] = _regex_feature(name, bodies, lowered, digits)
    astral = np.flatnonzero(count((flags & _ASTRAL) != 0))
    for i in astral:  # rare: characters beyond the lookup table
        line = Line(0, texts[i], None, bool(blank_before[i]), int(indent[i]))
        out[i] = shape_features(line, int(line_idx[i]), int(n_lines[i]), enabled)
    return out


class _Lowered:
    """Lower-cased bodies for substring pre-tests of the case-insensitive patterns."""

    def __init__(self, bodies, joined, starts):
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
        if self.joined is None:  # not expected; kept exact all the same
            hit = np.fromiter((any(s in b.lower() for s in needles) for b in self.bodies),
                              dtype=bool, count=len(self.bodies))
        else:
            hit = self._lines_with(re.compile("|".join(map(re.escape, needles))), self.joined)
        return hit | self.specials


def _regex_feature(name, bodies, lowered, digits) -> np.ndarray:
    """One regex feature for every line; the pattern runs only on candidate lines.

    Each candidate test is a necessary condition of a match: a literal every match
    contains (compared lower-cased, with the few characters that match an ASCII letter
    under re.IGNORECASE without lowering to it always kept), or a digit count.
    """
    if name == "year":
        return _regex_hits(YEAR_RE, bodies, digits >= 4)
    if name == "measurement":
        return _regex_hits(MEASURE_RE, bodies, digits >= 1)
    if name == "binomial":
        return _regex_hits(BINOMIAL_RE, bodies, None, accept=is_binomial)
    if name == "author_citation":
        return _regex_hits(AUTHOR_RE, bodies, lowered.containing(("(",)))
    if name == "type_marker":
        return _regex_hits(TYPE_RE, bodies, lowered.containing(("typ",)))
    if name == "nomenclature_marker":
        return _regex_hits(NOMEN_RE, bodies, lowered.containing(
            ("nov", "nom.", "var.", "sp.", "forma", "emend.")))
    if name == "mycobank":
        cand = lowered.containing(("mycobank",)) | (
            (digits >= 4) & lowered.containing(("mb", "if")))
        return _regex_hits(MYCOBANK_RE, bodies, cand)
    if name == "figure_start":
        return np.fromiter((b[:1] in "fFpPtT" and b != "" and FIGURE_RE.match(b) is not None
                            for b in bodies), dtype=bool, count=len(bodies))
    raise ValueError(f"shape feature {name!r} has no batch implementation")


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
