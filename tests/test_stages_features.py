"""LineFeaturizer: the batch implementation equals focalseq.text.features line by line,
features switch with params, ids are stable across processes, persistence."""
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalseq.stages.features import LineFeaturizer, featurize_lines, read_feature_metadata
from focalseq.text.features import SHAPE_FEATURES, TokenConfig, shape_features, token_ids
from focalseq.text.yedda import Line

# Text that exercises every feature and the corner cases of the batch implementation:
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


def _reference(texts, idx, n, blank, indent, cfg, enabled):
    tokens = np.array([token_ids(t, cfg) for t in texts], dtype=np.int32)
    shapes = np.array([shape_features(Line(1, t, None, b, k), i, m, enabled)
                       for t, i, m, b, k in zip(texts, idx, n, blank, indent)],
                      dtype=np.float32).reshape(len(texts), len(enabled))
    return tokens.reshape(len(texts), cfg.max_tokens), shapes


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(_TEXTS, st.integers(0, 30), st.integers(1, 30), st.booleans(),
                          st.integers(0, 20)), min_size=1, max_size=12),
       st.sampled_from([TokenConfig(vocab_size=32768, max_tokens=24),
                        TokenConfig(vocab_size=5, max_tokens=3),
                        TokenConfig(words=False, max_tokens=6),
                        TokenConfig(suffixes=False, max_tokens=40),
                        TokenConfig(char_ngrams=True, max_tokens=30, ngram_n=2),
                        TokenConfig(words=False, suffixes=False, char_ngrams=False)]))
def test_batch_features_equal_the_line_by_line_reference(rows, cfg):
    texts = [r[0] for r in rows]
    n = [r[2] for r in rows]
    idx = [min(r[1], m - 1) for r, m in zip(rows, n)]
    blank = [r[3] for r in rows]
    indent = [r[4] for r in rows]
    tokens, shapes = featurize_lines(texts, idx, n, blank, indent, cfg, SHAPE_FEATURES)
    ref_tokens, ref_shapes = _reference(texts, idx, n, blank, indent, cfg, SHAPE_FEATURES)
    np.testing.assert_array_equal(tokens, ref_tokens)
    np.testing.assert_array_equal(shapes, ref_shapes)


def test_batch_features_on_the_real_corpus_equal_the_reference():
    from focalseq.text.yedda import decode_bytes, parse_yedda

    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "skol",
                        "Mycotaxon", "Vol117")
    if not os.path.isdir(root):
        pytest.skip(f"real corpus not found at {root}")
    texts, idx, n, blank, indent = [], [], [], [], []
    for name in sorted(os.listdir(root))[:12]:
        with open(os.path.join(root, name), "rb") as fh:
            lines, _ = parse_yedda(decode_bytes(fh.read())[0])
        texts += [x.text for x in lines]
        idx += range(len(lines))
        n += [len(lines)] * len(lines)
        blank += [x.blank_before for x in lines]
        indent += [x.indent for x in lines]
    cfg = TokenConfig(vocab_size=32768, max_tokens=24)
    got = featurize_lines(texts, idx, n, blank, indent, cfg, SHAPE_FEATURES)
    ref = _reference(texts, idx, n, blank, indent, cfg, SHAPE_FEATURES)
    assert len(texts) > 2000
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


# -- Spark -------------------------------------------------------------------------------

LINES = [
    # doc_id, line_no, line_idx, n_lines, text, label, raw_label, blank_before, indent
    ("d1", 1, 0, 3, "Agaricus campestris L., sp. nov.", "Nomenclature", "Nomenclature", True, 0),
    ("d1", 2, 1, 3, "  Spores 5–8 × 3 µm, ellipsoid", "Description", "Description", False, 2),
    ("d1", 3, 2, 3, "MycoBank MB 512345 (1821)", "Misc-exposition", None, False, 0),
    ("d2", 1, 0, 1, "", "Description", "Description", True, 0),
]
SCHEMA = ("doc_id string, line_no int, line_idx int, n_lines int, text string, label string, "
          "raw_label string, blank_before boolean, indent int")


@pytest.fixture(scope="module")
def lines(spark):
    return spark.createDataFrame(LINES, SCHEMA).coalesce(1)


def _expected_id(key, vocab):
    return 1 + zlib.crc32(key.encode("utf-8")) % (vocab - 1)


def test_featurizer_output_equals_focalseq_text_features(spark, lines):
    cfg = TokenConfig(vocab_size=4096, max_tokens=12)
    rows = LineFeaturizer(vocabSize=4096, maxTokens=12).transform(lines).collect()
    assert len(rows) == len(LINES)
    labels = {(x[0], x[2]): x[5] for x in LINES}
    for r in rows:
        line = Line(r["line_no"], r["text"], None, r["blank_before"], r["indent"])
        assert r["token_ids"] == token_ids(r["text"], cfg)
        assert r["shape"] == pytest.approx(shape_features(line, r["line_idx"], r["n_lines"]),
                                           abs=1e-7)
        assert r["label"] == labels[(r["doc_id"], r["line_idx"])]


def test_token_ids_by_hand(spark):
    df = spark.createDataFrame([("d", 1, 0, 1, "Agaricus campestris L.", None, None, True, 0)],
                               SCHEMA)
    row = LineFeaturizer(vocabSize=1000, maxTokens=8, shapeFeatures=["length"]) \
        .transform(df).first()
    expected = [_expected_id(k, 1000) for k in ("agaricus", "campestris", "l", ".",
                                                 "sfx:cus", "sfx:ris")]
    assert row["token_ids"] == expected + [0, 0]
    assert row["shape"] == pytest.approx([20 / 100])  # 20 non-space characters


def test_features_switch_with_params(spark, lines):
    variants = {
        "subset": LineFeaturizer(vocabSize=64, maxTokens=6,
                                 shapeFeatures=["year", "binomial", "indent", "length"]),
        "suffixes_only": LineFeaturizer(vocabSize=64, maxTokens=6, useWords=False,
                                        suffixLength=5),
        "words_ngrams": LineFeaturizer(vocabSize=64, maxTokens=40, useSuffixes=False,
                                       useCharNgrams=True, ngramSize=4),
    }
    by_variant = {}
    for name, feats in variants.items():
        by_variant[name] = {(r["doc_id"], r["line_idx"]): r for r in
                            feats.transform(lines).collect()}
    rows = []
    for key, r in by_variant["subset"].items():
        row = r.asDict()
        for name in variants:
            row[f"t_{name}"] = by_variant[name][key]["token_ids"]
            row[f"s_{name}"] = by_variant[name][key]["shape"]
        rows.append(row)
    assert len(rows) == len(LINES)
    for name, feats in variants.items():
        cfg = feats.token_config()
        enabled = feats.enabled_shape_features()
        for r in rows:
            line = Line(1, r["text"], None, r["blank_before"], r["indent"])
            assert r[f"t_{name}"] == token_ids(r["text"], cfg), name
            assert r[f"s_{name}"] == pytest.approx(
                shape_features(line, r["line_idx"], r["n_lines"], enabled), abs=1e-7), name
            assert len(r[f"t_{name}"]) == cfg.max_tokens
            assert len(r[f"s_{name}"]) == len(enabled)
    first = next(r for r in rows if r["doc_id"] == "d1" and r["line_idx"] == 0)
    # by hand: 'Agaricus campestris L., sp. nov.' has no year, a binomial, indent 0,
    # 28 non-space characters.
    assert first["s_subset"] == pytest.approx([0.0, 1.0, 0.0, 0.28])
    assert first["t_suffixes_only"] == [_expected_id("sfx:ricus", 64),
                                        _expected_id("sfx:stris", 64), 0, 0, 0, 0]
    # 9 word tokens (agaricus campestris l . , sp . nov .), no suffixes, then the 4-grams
    # of 'agaricus' ('<agaricus>' has 7).
    words = ["agaricus", "campestris", "l", ".", ",", "sp", ".", "nov", "."]
    assert first["t_words_ngrams"][:12] == [_expected_id(k, 64) for k in words] + [
        _expected_id(k, 64) for k in ("ng:<aga", "ng:agar", "ng:gari")]


def test_ids_are_stable_across_processes(spark, lines):
    """Spark's Python workers and a fresh interpreter with another hash seed agree."""
    rows = LineFeaturizer(vocabSize=32768, maxTokens=16).transform(lines) \
        .orderBy("doc_id", "line_idx").collect()
    script = ("import json, sys\n"
              "from focalseq.text.features import TokenConfig, token_ids\n"
              "cfg = TokenConfig(vocab_size=32768, max_tokens=16)\n"
              "print(json.dumps([token_ids(t, cfg) for t in json.load(sys.stdin)]))\n")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(
        [r["text"] for r in rows]), capture_output=True, text=True, env=env, check=True)
    assert [r["token_ids"] for r in rows] == json.loads(out.stdout)


def test_null_text_of_problem_rows_gets_empty_line_features(spark):
    df = spark.createDataFrame([("d", 0, None, None, None, None, None, None, None)], SCHEMA)
    row = LineFeaturizer(maxTokens=4).transform(df).first()
    assert row["token_ids"] == [0, 0, 0, 0]
    assert row["shape"] == [0.0] * len(SHAPE_FEATURES)


def test_columns_carry_dimensions_and_other_columns_pass_through(spark, lines):
    feats = LineFeaturizer(vocabSize=100, maxTokens=5, shapeFeatures=["year", "length"])
    out = feats.transform(lines)
    assert out.columns == lines.columns + ["token_ids", "shape"]
    assert read_feature_metadata(out) == {"vocab_size": 100, "max_tokens": 5, "n_shape": 2,
                                          "shape_features": ["year", "length"]}
    assert out.schema["shape"].metadata["focalseq"]["n_shape"] == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"vocabSize": 1}, "vocab_size"), ({"maxTokens": 0}, "max_tokens"),
    ({"shapeFeatures": ["length", "bogus"]}, "bogus"),
    ({"shapeFeatures": ["year", "year"]}, "duplicate"), ({"suffixLength": 0}, "suffix_len")])
def test_bad_params_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LineFeaturizer(**kwargs)


def test_missing_input_columns_are_named(spark):
    with pytest.raises(ValueError, match="n_lines"):
        LineFeaturizer().transform(spark.createDataFrame([("x", 0)], "text string, line_idx int"))


def test_featurizer_save_load_round_trip(spark, lines, tmp_path):
    feats = LineFeaturizer(vocabSize=999, maxTokens=7, useSuffixes=False, useCharNgrams=True,
                           ngramSize=2, shapeFeatures=["binomial", "position"])
    feats.save(str(tmp_path / "f"))
    loaded = LineFeaturizer.load(str(tmp_path / "f"))
    assert loaded.token_config() == feats.token_config()
    assert loaded.enabled_shape_features() == ("binomial", "position")
    cfg = feats.token_config()
    for r in loaded.transform(lines).collect():
        line = Line(1, r["text"], None, r["blank_before"], r["indent"])
        assert r["token_ids"] == token_ids(r["text"], cfg)
        assert r["shape"] == pytest.approx(shape_features(
            line, r["line_idx"], r["n_lines"], ("binomial", "position")), abs=1e-7)
