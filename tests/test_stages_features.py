"""LineFeaturizer: Spark's output equals focalseq.text.features line by line, features
switch with params, defaults come from the config, ids are stable across processes,
persistence. The batch featurizer itself is tested in test_text_batch_features.py."""
import json
import os
import subprocess
import sys
import zlib

import pytest

from focalseq.config import DEFAULTS
from focalseq.stages.features import LineFeaturizer, read_feature_metadata
from focalseq.text.features import SHAPE_FEATURES, TokenConfig, shape_features, token_ids
from focalseq.text.yedda import Line

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


def test_defaults_are_the_configs():
    f = DEFAULTS.features
    feats = LineFeaturizer()
    assert feats.token_config() == TokenConfig(
        vocab_size=f.vocab_size, max_tokens=f.max_tokens, words=f.words, suffixes=f.suffixes,
        suffix_len=f.suffix_len, char_ngrams=f.char_ngrams, ngram_n=f.ngram_n)
    assert feats.enabled_shape_features() == (tuple(f.shape_features) or SHAPE_FEATURES)


def test_none_means_the_default_and_set_params_keeps_what_it_is_not_given():
    feats = LineFeaturizer(maxTokens=None, useWords=None, vocabSize=77)
    assert feats.getMaxTokens() == DEFAULTS.features.max_tokens
    assert feats.getUseWords() == DEFAULTS.features.words
    assert feats.setParams(maxTokens=5) is feats
    assert (feats.getVocabSize(), feats.getMaxTokens()) == (77, 5)


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
