"""Tests for hashed token ids and shape features."""
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalseq.text.features import (SHAPE_FEATURES, TokenConfig, n_shape_features,
                                    shape_features, stable_hash, token_ids, tokenize)
from focalseq.text.yedda import Line


def _line(text, blank_before=False, indent=None):
    if indent is None:
        indent = len(text) - len(text.lstrip(" "))
    return Line(1, text, None, blank_before, indent)


def _features(text, *names, line_idx=0, n_lines=10, **kw):
    return dict(zip(names, shape_features(_line(text, **kw), line_idx, n_lines, names)))


# -- hashing and tokens ----------------------------------------------------------------

def test_stable_hash_is_crc32_of_utf8():
    for s in ("", "agaricus", "sfx:cus", "µm", "Ünïcode ×"):
        assert stable_hash(s) == zlib.crc32(s.encode("utf-8"))
    # Fixed values, independent of the process: hash randomisation must not matter.
    assert stable_hash("a") == 0xE8B7BE43


def test_tokenize_lowercases_and_splits_words_numbers_punctuation():
    assert tokenize("Spores 5–8 × 3.5 µm, (Fr.) Kummer") == [
        "spores", "5", "–", "8", "×", "3", ".", "5", "µm", ",", "(", "fr", ".", ")", "kummer"]
    assert tokenize("MB512345 sp.nov.") == ["mb", "512345", "sp", ".", "nov", "."]
    assert tokenize("   ") == []


def _expected_id(key, vocab):
    return 1 + zlib.crc32(key.encode("utf-8")) % (vocab - 1)


def test_token_ids_words_then_suffixes_then_padding():
    cfg = TokenConfig(vocab_size=1000, max_tokens=8)
    ids = token_ids("Agaricus campestris L.", cfg)
    words = ["agaricus", "campestris", "l", "."]
    expected = [_expected_id(w, 1000) for w in words]
    expected += [_expected_id("sfx:cus", 1000), _expected_id("sfx:ris", 1000)]
    assert ids == expected + [0, 0]


def test_token_ids_truncate_words_first():
    cfg = TokenConfig(vocab_size=50, max_tokens=3)
    assert token_ids("one two three four", cfg) == [
        _expected_id(w, 50) for w in ("one", "two", "three")]


def test_token_ids_char_ngrams_and_switches():
    cfg = TokenConfig(vocab_size=500, max_tokens=6, words=False, suffixes=False,
                      char_ngrams=True, ngram_n=3)
    assert token_ids("Ab", cfg) == [_expected_id("ng:<ab", 500), _expected_id("ng:ab>", 500),
                                    0, 0, 0, 0]
    nothing = TokenConfig(words=False, suffixes=False, max_tokens=4)
    assert token_ids("anything at all", nothing) == [0, 0, 0, 0]


def test_suffixes_only_of_long_alphabetic_tokens_and_ngrams_of_short_tokens():
    suffixes = TokenConfig(vocab_size=500, max_tokens=3, words=False, suffix_len=3)
    # 'abc' is not longer than 3, '12345' is not alphabetic.
    assert token_ids("abc 12345 abcd", suffixes) == [_expected_id("sfx:bcd", 500), 0, 0]
    ngrams = TokenConfig(vocab_size=500, max_tokens=3, words=False, suffixes=False,
                         char_ngrams=True, ngram_n=5)
    # '<a>' is shorter than one 5-gram: it is its own n-gram; '.' has none.
    assert token_ids("a .", ngrams) == [_expected_id("ng:<a>", 500), 0, 0]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.integers(2, 70000), st.integers(1, 40), st.booleans(),
       st.booleans(), st.booleans())
def test_token_ids_length_range_and_determinism(text, vocab, max_tokens, words, suffixes,
                                                ngrams):
    cfg = TokenConfig(vocab_size=vocab, max_tokens=max_tokens, words=words,
                      suffixes=suffixes, char_ngrams=ngrams)
    ids = token_ids(text, cfg)
    assert len(ids) == max_tokens
    assert all(i == 0 or 1 <= i < vocab for i in ids)
    assert ids == token_ids(text, cfg)
    first_pad = ids.index(0) if 0 in ids else len(ids)
    assert all(i == 0 for i in ids[first_pad:])


@pytest.mark.parametrize("kwargs", [{"vocab_size": 1}, {"max_tokens": 0}, {"suffix_len": 0},
                                    {"ngram_n": 0}, {"max_tokens": 2.5}])
def test_token_config_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TokenConfig(**kwargs)


# -- shape features --------------------------------------------------------------------

def test_nomenclature_line():
    f = _features("Agaricus campestris L., sp. nov.", *SHAPE_FEATURES)
    assert f["binomial"] == 1.0
    assert f["nomenclature_marker"] == 1.0
    assert f["leading_capital"] == 1.0
    assert f["trailing_period"] == 1.0
    assert f["measurement"] == 0.0 and f["year"] == 0.0


@pytest.mark.parametrize("text", ["A. campestris (Fr.) Kummer", "Boletus edulis Bull.",
                                  "Phoma glaucii Brunaud, Annls Soc. Sci.",
                                  "see also Dendrothele latenavicularis here"])
def test_binomial_detected(text):
    assert _features(text, "binomial")["binomial"] == 1.0


@pytest.mark.parametrize("text", ["The spores are white.", "Basidia clavate, 4-spored.",
                                  "Agaricus", "In the forest", "Conidia solitaria, pale"])
def test_binomial_not_detected(text):
    assert _features(text, "binomial")["binomial"] == 0.0


@pytest.mark.parametrize("text,name", [
    ("Russula sp. nov.", "nomenclature_marker"),
    ("Lecanora rimosa var. subcarnea", "nomenclature_marker"),
    ("Fusarium oxysporum f. sp. lycopersici", "nomenclature_marker"),
    ("Boletus edulis comb. nov.", "nomenclature_marker"),
    ("Pholiota alnicola nom. nov.", "nomenclature_marker"),
    ("Amanita stat. nov.", "nomenclature_marker"),
    ("Hebeloma gen. nov.", "nomenclature_marker"),
    ("— *galeopsidis Rupprecht nov. sp.", "nomenclature_marker"),
    ("Agaricus campestris (Fr.) Kummer", "author_citation"),
    ("Pseudocercospora purpurea (Cooke)Deighton", "author_citation"),
    ("MycoBank MB 512345", "mycobank"),
    ("MB 805123", "mycobank"),
    ("Fig. 3. Basidiospores.", "figure_start"),
    ("Plate 2, p. 104", "figure_start"),
    ("Holotype: CHINA, Yunnan", "type_marker"),
    ("Typus: PC 0012345", "type_marker"),
    ("Type: Sweden, Uppland", "type_marker"),
    ("Spores 5–8 × 3–4 µm, ellipsoid", "measurement"),
    ("Hyphae 2-3 µm wide", "measurement"),
    ("Basidia 20 x 6", "measurement"),
    ("Mycotaxon 117: 1–519 (2011)", "year"),
    ("\f123 MYCOTAXON", "page_break"),
    ("12. Telia amphigenous", "number_start"),
])
def test_content_cues_fire(text, name):
    assert _features(text, name)[name] == 1.0


@pytest.mark.parametrize("text,name", [
    ("the year 1492 and 2150", "year"),
    ("Type of spores varies", "type_marker"),
    ("The figure shows", "figure_start"),
    ("varies widely", "nomenclature_marker"),
    ("5 apples", "measurement"),
])
def test_content_cues_stay_quiet(text, name):
    assert _features(text, name)[name] == 0.0


def test_ratios_and_layout():
    f = _features("  AB12.", "length", "capital_ratio", "digit_ratio", "punct_ratio",
                  "all_caps", "indent", "trailing_period", "trailing_colon_comma",
                  "blank_before", blank_before=True)
    assert f == {"length": 0.05, "capital_ratio": 1.0, "digit_ratio": 0.4, "punct_ratio": 0.2,
                 "all_caps": 1.0, "indent": 0.25, "trailing_period": 1.0,
                 "trailing_colon_comma": 0.0, "blank_before": 1.0}
    assert _features("x" * 300, "length")["length"] == 1.0
    assert _features("Specimens examined:", "trailing_colon_comma")["trailing_colon_comma"] == 1


def test_position_is_relative_and_safe_for_one_line():
    assert _features("a", "position", line_idx=0, n_lines=1)["position"] == 0.0
    assert _features("a", "position", line_idx=3, n_lines=7)["position"] == 0.5
    assert _features("a", "position", line_idx=6, n_lines=7)["position"] == 1.0


def test_empty_text_gives_zeros_except_layout():
    v = shape_features(Line(1, "", "Table", True, 0), 0, 1)
    named = dict(zip(SHAPE_FEATURES, v))
    assert named.pop("blank_before") == 1.0
    assert set(named.values()) == {0.0}


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120), st.integers(0, 50), st.integers(1, 50), st.booleans(),
       st.integers(0, 40))
def test_all_features_in_unit_interval(text, idx, n, blank, indent):
    v = shape_features(Line(1, text, None, blank, indent), min(idx, n - 1), n)
    assert len(v) == len(SHAPE_FEATURES) == n_shape_features(None)
    assert all(0.0 <= x <= 1.0 for x in v)


def test_enabled_subset_follows_given_order():
    line = _line("Agaricus campestris L., sp. nov.")
    full = dict(zip(SHAPE_FEATURES, shape_features(line, 2, 5)))
    names = ("year", "binomial", "length")
    assert shape_features(line, 2, 5, names) == [full[n] for n in names]
    assert n_shape_features(names) == 3


def test_unknown_feature_name_lists_valid_ones():
    with pytest.raises(ValueError, match="bogus") as info:
        shape_features(_line("x"), 0, 1, ("length", "bogus"))
    assert "binomial" in str(info.value)
    with pytest.raises(ValueError):
        n_shape_features(("bogus",))
    with pytest.raises(ValueError, match="string"):
        n_shape_features("length")
