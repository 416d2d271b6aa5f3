"""featurize_lines equals the line-by-line reference of focalseq.text.features, row by
row, on hand-picked lines, on random unicode text and on the real corpus (no Spark)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalseq.text.batch_features import TokenHasher, featurize_lines
from focalseq.text.features import SHAPE_FEATURES, TokenConfig, shape_features, token_ids
from focalseq.text.yedda import Line

CONFIGS = [TokenConfig(vocab_size=32768, max_tokens=24),
           TokenConfig(vocab_size=5, max_tokens=3),
           TokenConfig(words=False, max_tokens=6),
           TokenConfig(suffixes=False, max_tokens=40),
           TokenConfig(char_ngrams=True, max_tokens=30, ngram_n=2),
           TokenConfig(char_ngrams=True, max_tokens=8, ngram_n=5, suffix_len=1),
           TokenConfig(words=False, suffixes=False, char_ngrams=False)]

# Lines of the kinds the featurizer meets, and the corner cases of the batch code.
HAND_PICKED = [
    # nomenclature and its neighbours
    "Agaricus campestris L., sp. nov.",
    "A. campestris (Fr.) Kummer, Führ. Pilzk.: 95 (1871)",
    "Pseudocercospora purpurea (Cooke)Deighton, Mycol. Pap. 140: 166. 1976.",
    "Fusarium oxysporum f. sp. lycopersici (Sacc.) W.C. Snyder & H.N. Hansen",
    "Lecanora rimosa var. subcarnea", "Boletus edulis comb. nov.", "Hebeloma gen. nov.",
    "— *galeopsidis Rupprecht nov. sp.", "nom. nud.", "forma specialis", "emend. Kirk",
    "MycoBank MB 512345", "MB#: 805123", "Index Fungorum IF 12345", "IF: 1234",
    "Holotype: CHINA, Yunnan", "Typus: PC 0012345", "TYPE SPECIMEN", "isotypi", "epitype",
    "Fig. 3. Basidiospores.", "Figs 1–4", "Plate 2, p. 104", "Pl. 7", "Table 1", "Tab",
    "The spores are white.", "In the forest", "Conidia solitaria, pale",
    # measurements and numbers
    "Spores 5–8 × 3–4 µm, ellipsoid", "Hyphae 2-3 μm wide", "Basidia 20 x 6",
    "(4–)5–8(–9) × 3 um", "12,5 mm", "0", "1492 2150 1500 2099", "Mycotaxon 117: 1–519 (2011)",
    "12. Telia amphigenous", "١٢٣٤ ٥", "3.14159", "-7",
    # punctuation, layout, empty
    "", " ", "\t", "   \t  ", "\f", "\f123 MYCOTAXON", ".", ":", ",", ";", "...", "(", ")",
    "Specimens examined:", "  AB12.", "x" * 300, "a_b", "_", "\x00", "a\x00b\nc",
    # non-ASCII
    "Échantillon étudié: Türkiye, İstanbul", "Straße", "ǅemal", "ΣΟΦΙΑ σοφία", "東京都",
    "\u0130", "\u0131f 12345", "\u017fp. nov.", "my\u212aobank", "\U0001F344 Amanita",
    "\U0001d7d9\U0001d7da\U0001d7db\U0001d7dc", "ﬁg. 2", "Ⅻ", "Ǆ", "ß" * 5,
]


def _reference(texts, idx, n, blank, indent, cfg, enabled):
    tokens = np.array([token_ids(t, cfg) for t in texts], dtype=np.int32)
    shapes = np.array([shape_features(Line(1, t, None, b, k), i, m, enabled)
                       for t, i, m, b, k in zip(texts, idx, n, blank, indent)],
                      dtype=np.float32).reshape(len(texts), len(enabled))
    return tokens.reshape(len(texts), cfg.max_tokens), shapes


def _assert_equal_to_reference(texts, idx, n, blank, indent, cfg, enabled=SHAPE_FEATURES,
                               hasher=None):
    tokens, shapes = featurize_lines(texts, idx, n, blank, indent, cfg, enabled, hasher)
    ref_tokens, ref_shapes = _reference(texts, idx, n, blank, indent, cfg, enabled)
    assert tokens.dtype == np.int32 and shapes.dtype == np.float32
    np.testing.assert_array_equal(tokens, ref_tokens)
    np.testing.assert_array_equal(shapes, ref_shapes)


def _layout(count):
    """Varied line positions, blank-line flags and indents for `count` lines."""
    n = [1 + i % 7 for i in range(count)]
    idx = [i % m for i, m in zip(range(count), n)]
    return idx, n, [i % 3 == 0 for i in range(count)], [i % 11 for i in range(count)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_hand_picked_lines_in_one_batch(cfg):
    _assert_equal_to_reference(HAND_PICKED, *_layout(len(HAND_PICKED)), cfg)


@pytest.mark.parametrize("text", HAND_PICKED)
def test_hand_picked_lines_one_at_a_time(text):
    _assert_equal_to_reference([text], [2], [5], [True], [4], CONFIGS[4])


@pytest.mark.parametrize("enabled", [(), ("binomial",), ("measurement", "length", "year"),
                                     tuple(reversed(SHAPE_FEATURES))])
def test_subsets_of_shape_features_in_the_order_given(enabled):
    _assert_equal_to_reference(HAND_PICKED, *_layout(len(HAND_PICKED)), CONFIGS[0], enabled)


def test_an_empty_batch_has_the_right_shapes():
    tokens, shapes = featurize_lines([], [], [], [], [], CONFIGS[0], SHAPE_FEATURES)
    assert tokens.shape == (0, 24) and shapes.shape == (0, len(SHAPE_FEATURES))


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[4]])
def test_a_hasher_reused_past_its_memo_limit_gives_the_same_ids(cfg):
    hasher = TokenHasher(cfg, limit=3)
    for start in range(0, len(HAND_PICKED), 9):
        chunk = HAND_PICKED[start:start + 9]
        _assert_equal_to_reference(chunk, *_layout(len(chunk)), cfg, hasher=hasher)


# Pieces that exercise every feature and the corner cases of the batch implementation:
# characters that match ASCII letters only under re.IGNORECASE (U+0130, U+0131, U+017F,
# U+212A), astral characters, NUL and LF inside a text, form feeds, digits of other
# scripts.
_PIECES = st.sampled_from([
    "Agaricus campestris", "A. campestris", "L.", "sp. nov.", "comb. nov.", "var. ", "f. sp.",
    "nom. nud.", "forma specialis", "emend.", "MycoBank", "MB 512345", "IF 12345", "Holotype",
    "TYPE", "Type:", "typus", "Fig. 3", "Plate", "Tab", "(Fr.) Kummer", "(Cooke)Deighton",
    "5–8 × 3 µm", "12 um", "1821", "2023", "1492", "١٢٣٤", "\U0001d7d9\U0001d7da",
    "\U0001F344", "\u0130", "\u0131f 12345", "\u017fp. nov.", "my\u212aobank", "x", "  ",
    "\t", "\f", "\x00", "\n", ".", ":", ",", ";", "(", ")", "-", "É", "ß", "ǅ", "Σ", "The",
])
_TEXTS = st.one_of(st.lists(_PIECES, max_size=12).map(" ".join),
                   st.lists(_PIECES, max_size=12).map("".join), st.text(max_size=80))
_ROWS = st.lists(st.tuples(_TEXTS, st.integers(0, 30), st.integers(1, 30), st.booleans(),
                           st.integers(0, 20)), min_size=1, max_size=12)


@settings(max_examples=120, deadline=None)
@given(_ROWS, st.sampled_from(CONFIGS))
def test_random_lines_equal_the_line_by_line_reference(rows, cfg):
    texts = [r[0] for r in rows]
    n = [r[2] for r in rows]
    idx = [min(r[1], m - 1) for r, m in zip(rows, n)]
    _assert_equal_to_reference(texts, idx, n, [r[3] for r in rows], [r[4] for r in rows],
                               cfg)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=60), min_size=1,
                max_size=8),
       st.sampled_from(CONFIGS))
def test_random_unicode_lines_equal_the_line_by_line_reference(texts, cfg):
    _assert_equal_to_reference(texts, *_layout(len(texts)), cfg)


def test_a_generated_corpus_equals_the_reference(tmp_path):
    """Whole documents as the parser gives them: taxonomic articles with page headers,
    indentation and blank lines (focalseq.synthetic), not drawn characters."""
    from focalseq.synthetic import generate_corpus
    from focalseq.text.yedda import decode_bytes, parse_yedda

    texts, idx, n, blank, indent = [], [], [], [], []
    for path in generate_corpus(str(tmp_path), n_docs=12, lines_per_doc=200, seed=3):
        with open(path, "rb") as fh:
            lines, _ = parse_yedda(decode_bytes(fh.read())[0])
        texts += [x.text for x in lines]
        idx += range(len(lines))
        n += [len(lines)] * len(lines)
        blank += [x.blank_before for x in lines]
        indent += [x.indent for x in lines]
    assert len(texts) > 2000
    _assert_equal_to_reference(texts, idx, n, blank, indent,
                               TokenConfig(vocab_size=32768, max_tokens=24))
