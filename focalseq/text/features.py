"""Per-line features: hashed token ids and layout/shape cues.

Token ids hash words, word suffixes and character n-grams into one id space, so a
vocabulary never has to be built or shipped to executors. Shape features follow the
spirit of GROBID's segmentation features (case, digits, punctuation, indentation,
position in the document) plus cues specific to taxonomic text (binomials,
nomenclatural acts, type citations, measurements). Every shape feature lies in [0, 1].

This is the reference, line by line; :mod:`focalseq.text.batch_features` computes the
same values for many lines at once from the patterns and hashes defined here.
"""
import logging
import re
import zlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from focalseq.text.yedda import Line

logger = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")


def stable_hash(s: str) -> int:
    """CRC-32 of the UTF-8 bytes: identical across runs, machines and processes."""
    return zlib.crc32(s.encode("utf-8")) & 0xFFFFFFFF


def tokenize(text: str) -> List[str]:
    """Splits lowercased text into letter runs, digit runs and single punctuation marks.

    >>> tokenize("Spores 5–8 × 3 µm, (Fr.) Kummer")
    ['spores', '5', '–', '8', '×', '3', 'µm', ',', '(', 'fr', '.', ')', 'kummer']
    """
    return _TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class TokenConfig:
    """How a line becomes token ids.

    Attributes:
        vocab_size: ids lie in ``[1, vocab_size)``; 0 is padding.
        max_tokens: length of every id list.
        words: include one id per token.
        suffixes: include ``"sfx:" + last suffix_len letters`` for words longer than that.
        suffix_len: suffix length.
        char_ngrams: include ``"ng:" + n-gram`` of each ``<word>`` (with boundary marks).
        ngram_n: n-gram size.
    """

    vocab_size: int = 2 ** 16
    max_tokens: int = 32
    words: bool = True
    suffixes: bool = True
    suffix_len: int = 3
    char_ngrams: bool = False
    ngram_n: int = 3

    def __post_init__(self):
        for name, low in (("vocab_size", 2), ("max_tokens", 1), ("suffix_len", 1),
                          ("ngram_n", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"TokenConfig.{name}: must be an int >= {low}, got {value!r}")


class TokenHashes:
    """The ids one token contributes under a :class:`TokenConfig`.

    Each id is ``1 + stable_hash(key) % (vocab_size - 1)``, so it lies in
    ``[1, vocab_size)`` and 0 stays free for padding (and for "no suffix").
    """

    def __init__(self, cfg: TokenConfig):
        self.cfg = cfg
        self._buckets = cfg.vocab_size - 1

    def _id(self, key: str) -> int:
        return 1 + stable_hash(key) % self._buckets

    def word(self, token: str) -> int:
        """The id of the token itself."""
        return self._id(token)

    def suffix(self, token: str) -> int:
        """The id of ``"sfx:" + last suffix_len letters``, or 0 if the token has none.

        Only alphabetic tokens longer than ``suffix_len`` have a suffix.
        """
        n = self.cfg.suffix_len
        return self._id("sfx:" + token[-n:]) if len(token) > n and token.isalpha() else 0

    def ngrams(self, token: str) -> Tuple[int, ...]:
        """The ids of ``"ng:" + n-gram`` of ``<token>``; none for a non-alphanumeric token.

        A token too short for one n-gram still gives one, the whole ``<token>``.
        """
        if not token.isalnum():
            return ()
        n = self.cfg.ngram_n
        padded = "<" + token + ">"
        return tuple(self._id("ng:" + padded[i:i + n])
                     for i in range(max(1, len(padded) - n + 1)))


def select_token_ids(tokens: Sequence[str], cfg: TokenConfig,
                     word: Callable[[str], int], suffix: Callable[[str], int],
                     ngrams: Callable[[str], Sequence[int]]) -> List[int]:
    """A line's ids in priority order, cut at ``cfg.max_tokens`` (not padded).

    The order is: all word ids (in line order), then suffix ids, then character n-gram
    ids. The three lookups are those of :class:`TokenHashes`, passed as functions so
    that a caller may memoise them.

    Args:
        tokens: the line's tokens (:func:`tokenize`).
        cfg: token settings; ``words``, ``suffixes``, ``char_ngrams`` and
            ``max_tokens`` are read here.
        word: token -> its id.
        suffix: token -> its suffix id, 0 for none.
        ngrams: token -> its n-gram ids.

    Returns:
        At most ``cfg.max_tokens`` ids, none of them 0.
    """
    limit = cfg.max_tokens
    ids = [word(t) for t in tokens[:limit]] if cfg.words else []
    if cfg.suffixes and len(ids) < limit:
        ids.extend(i for i in map(suffix, tokens) if i)
    if cfg.char_ngrams and len(ids) < limit:
        for t in tokens:
            grams = ngrams(t)
            if grams:
                ids.extend(grams)
                if len(ids) >= limit:
                    break
    return ids[:limit]


def token_ids(text: str, cfg: TokenConfig) -> List[int]:
    """Hashes a line into exactly ``cfg.max_tokens`` ids.

    Truncation keeps groups in priority order: all word ids (in line order), then suffix
    ids, then character n-gram ids, cut at ``max_tokens``; the rest is 0-padding.

    Args:
        text: the line's text.
        cfg: token settings.

    Returns:
        A list of ``cfg.max_tokens`` ints, each 0 (padding) or in ``[1, vocab_size)``.
    """
    hashes = TokenHashes(cfg)
    ids = select_token_ids(tokenize(text), cfg, hashes.word, hashes.suffix, hashes.ngrams)
    ids.extend([0] * (cfg.max_tokens - len(ids)))
    return ids


# -- shape features ------------------------------------------------------------------

SHAPE_FEATURES: Tuple[str, ...] = (
    "length",            # min(non-space length / 100, 1)
    "capital_ratio",     # uppercase letters / letters
    "digit_ratio",       # digits / non-space characters
    "punct_ratio",       # punctuation / non-space characters
    "leading_capital",   # first non-space character is uppercase
    "all_caps",          # at least two letters, none lowercase
    "number_start",      # starts with a digit (page numbers, numbered keys, references)
    "trailing_period",
    "trailing_colon_comma",  # ends with ':', ',' or ';'
    "indent",            # min(indent / 8, 1)
    "position",          # line_idx / (n_lines - 1)
    "blank_before",
    "page_break",        # the line carries a form feed (pdftotext page break)
    "year",              # a token 1500-2099
    "binomial",          # Latin binomial: "Agaricus campestris", "A. campestris"
    "nomenclature_marker",  # sp. nov., comb. nov., gen. nov., var., f. sp., nom. nov. ...
    "author_citation",   # parenthetical author before an author: "(Fr.) Kummer"
    "mycobank",          # MycoBank / MB 123456 / Index Fungorum IF 123456
    "figure_start",      # starts with Fig./Figs./Figure/Plate/Pl./Table
    "type_marker",       # Holotype, Typus, Type:, isotype, lectotype ...
    "measurement",       # "5–8 × 3–4 µm", "12 µm"
)

# The patterns and PUNCT_CHARS are public: focalseq.text.batch_features runs the same ones
# over whole batches, so the two implementations cannot drift apart.
YEAR_RE = re.compile(r"(?<!\d)(?:1[5-9]\d\d|20\d\d)(?!\d)")
# Capitalised words that look Latin but start descriptions or sentences, not binomials.
_GENUS_STOP = frozenset("""
the this that these those there their its in on of for from with by at as to and or but
not no if when while where which who all some most many each both other such one two after
before during between within without under over upon into than then thus also however
although because since is are was were has have had may can could should would will table
figure plate page key note notes type types see area data
conidia conidium basidia basidium spores spora sporae asci ascus ascomata ascoma hyphae
hypha cellulae lamellae lamella maculae macula coloniae colonia colonies mycelium
excipulum basidiocarpum basidiomata basidioma conidiomata conidioma thallus pileus stipes
stipe cystidia pleurocystidia cheilocystidia caulocystidia gloeocystidia paraphyses
periphyses setae seta sclerotia sclerotium stroma stromata perithecia perithecium apothecia
apothecium pycnidia pycnidium rhizoids trama subhymenium hymenium pileipellis stipitipellis
cortex medulla epithecium hypothecium hamathecium caespituli glomeruli cicatrices systema
teleomorphosis anamorphosis caro contextus annulus volva velum latex odor sapor
""".split())
_EPITHET_STOP = frozenset("""
are was were has have had the this that these those their there then than and for from with
into onto upon area idea data ones times types species genus genera spores sometimes
various previous numerous famous always perhaps thus plus minus virus corpus status bonus
campus census focus versus basis analysis thesis synthesis axis axes series nulla nullus
""".split())
_GENUS_END = r"(?:us|um|a|es|is|on|ix|ax|ex|yx|ox|e|ops|as|os|ys)"
_LATIN_END = r"(?:us|um|a|ae|is|ii|i|es|ensis|oides|ans|ens|ex|ix|ata|ica|ina|osa|ea|ia)"
BINOMIAL_RE = re.compile(
    r"(?<![\w.])([A-Z][a-z]+" + _GENUS_END + r"\s|[A-Z]\.\s?)([a-z][a-z-]{2,}" + _LATIN_END
    + r")(?![\w-])")
NOMEN_RE = re.compile(
    r"\b(?:(?:sp|spec|comb|gen|nom|stat|subsp|var|fam|ord|ser|sect|subgen|f)\.?\s*nov\b"
    r"|nov\.\s*(?:sp|spec|comb|gen|var|subsp)\b"
    r"|nom\.\s*(?:nud|illeg|inval|cons|rej|superfl)\b"
    r"|var\.\s|subsp\.\s|f\.\s*sp\.|forma\s+specialis|emend\.)",
    re.IGNORECASE)
AUTHOR_RE = re.compile(r"\(\s*[A-Z][^()\n]{0,80}\)\s?[A-Z][a-z]")
MYCOBANK_RE = re.compile(r"mycobank|\bMB\s*#?\s*:?\s*\d{4,}|\bIF\s*:?\s*\d{5,}", re.IGNORECASE)
FIGURE_RE = re.compile(r"(?:Figs?|Figures?|Plates?|Pls?|Tab|Tables?)\b", re.IGNORECASE)
TYPE_RE = re.compile(
    r"\b(?:holo|iso|lecto|neo|epi|para|syn|ex-)?typ(?:us|i)\b"
    r"|\b(?:holo|iso|lecto|neo|epi|para|syn)type\b"
    r"|\bType\s*(?:species|specimen)?\s*:|(?-i:\bTYPE\b)",
    re.IGNORECASE)
_NUM = r"\d+(?:[.,]\d+)?"
MEASURE_RE = re.compile(
    _NUM + r"\s*(?:\(\s*" + _NUM + r"\s*\))?\s*(?:[-–—]\s*" + _NUM + r"\s*)?"
    r"(?:[×xX*]\s*" + _NUM + r"|(?:µm|μm|um|mm|cm|nm)\b)")
PUNCT_CHARS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~–—‘’“”•·×§¶…")


class _View:
    """The pieces of a line that several features share, computed once."""

    __slots__ = ("line", "body", "compact", "n_letters", "n_upper", "idx", "n")

    def __init__(self, line: Line, line_idx: int, n_lines: int):
        self.line = line
        self.body = line.text.strip()
        self.compact = "".join(self.body.split())
        letters = [c for c in self.compact if c.isalpha()]
        self.n_letters = len(letters)
        self.n_upper = sum(1 for c in letters if c.isupper())
        self.idx = line_idx
        self.n = n_lines


def _ratio(count: int, total: int) -> float:
    return count / total if total else 0.0


def is_binomial(match: re.Match) -> bool:
    """Whether a match of :data:`BINOMIAL_RE` is a binomial, not a common word pair."""
    return match.group(1).strip().lower() not in _GENUS_STOP and \
        match.group(2) not in _EPITHET_STOP


def _has_binomial(text: str) -> bool:
    return any(map(is_binomial, BINOMIAL_RE.finditer(text)))


def _position(v: _View) -> float:
    if v.n <= 1:
        return 0.0
    return min(max(v.idx / (v.n - 1), 0.0), 1.0)


_COMPUTE = {
    "length": lambda v: min(len(v.compact) / 100.0, 1.0),
    "capital_ratio": lambda v: _ratio(v.n_upper, v.n_letters),
    "digit_ratio": lambda v: _ratio(sum(c.isdigit() for c in v.compact), len(v.compact)),
    "punct_ratio": lambda v: _ratio(sum(c in PUNCT_CHARS for c in v.compact),
                                    len(v.compact)),
    "leading_capital": lambda v: float(v.body[:1].isupper()),
    "all_caps": lambda v: float(v.n_letters >= 2 and v.n_upper == v.n_letters),
    "number_start": lambda v: float(v.body[:1].isdigit()),
    "trailing_period": lambda v: float(v.body.endswith(".")),
    "trailing_colon_comma": lambda v: float(v.body[-1:] in (":", ",", ";")),
    "indent": lambda v: min(v.line.indent / 8.0, 1.0),
    "position": _position,
    "blank_before": lambda v: float(v.line.blank_before),
    "page_break": lambda v: float("\f" in v.line.text),
    "year": lambda v: float(YEAR_RE.search(v.body) is not None),
    "binomial": lambda v: float(_has_binomial(v.body)),
    "nomenclature_marker": lambda v: float(NOMEN_RE.search(v.body) is not None),
    "author_citation": lambda v: float(AUTHOR_RE.search(v.body) is not None),
    "mycobank": lambda v: float(MYCOBANK_RE.search(v.body) is not None),
    "figure_start": lambda v: float(FIGURE_RE.match(v.body) is not None),
    "type_marker": lambda v: float(TYPE_RE.search(v.body) is not None),
    "measurement": lambda v: float(MEASURE_RE.search(v.body) is not None),
}
assert tuple(_COMPUTE) == SHAPE_FEATURES


def _resolve(enabled: Optional[Sequence[str]]) -> Tuple[str, ...]:
    if enabled is None:
        return SHAPE_FEATURES
    if isinstance(enabled, str):
        raise ValueError(f"enabled: expected a sequence of feature names, got the string "
                         f"{enabled!r}; valid names are {list(SHAPE_FEATURES)}")
    names = tuple(enabled)
    unknown = [n for n in names if n not in _COMPUTE]
    if unknown:
        raise ValueError(f"enabled: unknown shape feature(s) {unknown}; valid names are "
                         f"{list(SHAPE_FEATURES)}")
    return names


def n_shape_features(enabled: Optional[Sequence[str]] = None) -> int:
    """Length of the :func:`shape_features` vector for ``enabled``."""
    return len(_resolve(enabled))


def shape_features(line: Line, line_idx: int, n_lines: int,
                   enabled: Optional[Sequence[str]] = None) -> List[float]:
    """Computes layout and content cues of one line, each in [0, 1].

    Args:
        line: the line (``text``, ``indent`` and ``blank_before`` are used).
        line_idx: 0-based index of the line among the document's lines.
        n_lines: number of lines in the document.
        enabled: feature names in the order wanted; None for all of
            :data:`SHAPE_FEATURES`.

    Returns:
        One float per enabled name, in the order of ``enabled``.

    Raises:
        ValueError: an unknown feature name (the message lists the valid ones).

    >>> line = Line(1, "Agaricus campestris L., sp. nov.", None, True, 0)
    >>> dict(zip(("binomial", "nomenclature_marker"),
    ...          shape_features(line, 0, 10, ("binomial", "nomenclature_marker"))))
    {'binomial': 1.0, 'nomenclature_marker': 1.0}
    """
    names = _resolve(enabled)
    view = _View(line, line_idx, n_lines)
    return [_COMPUTE[name](view) for name in names]
