"""Windower and DocumentSplitter: windows by hand, never across documents, input order,
document-level splits, and the round trip files -> lines -> windows -> lines."""
import os
import random

import numpy as np
import pytest
from pyspark.sql import functions as F

from focalseq.stages.features import LineFeaturizer
from focalseq.stages.parse import YeddaParser, list_files
from focalseq.stages.split import DocumentSplitter
from focalseq.stages.windows import Windower, read_window_metadata
from focalseq.synthetic import generate_document
from focalseq.text.yedda import format_yedda

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
N, D, M = LABELS
SCHEMA = ("doc_id string, line_idx int, n_lines int, label string, "
          "token_ids array<int>, shape array<float>")


def _line(doc, idx, n, label):
    """A featurized line whose token ids and shape encode where it comes from."""
    code = 100 * (ord(doc[-1]) - ord("a") + 1) + idx
    return (doc, idx, n, label, [code, code + 1], [float(idx)])


# Document a: 5 lines, document b: 2 lines, document c: 1 line.
LINES = ([_line("doc_a", i, 5, lab) for i, lab in enumerate([N, D, D, M, M])]
         + [_line("doc_b", i, 2, lab) for i, lab in enumerate([M, N])]
         + [_line("doc_c", 0, 1, D)])


def _windows(rows):
    return {(r["doc_id"], r["start"]): r for r in rows}


def test_windows_by_hand(spark):
    lines = spark.createDataFrame(LINES, SCHEMA).coalesce(1)
    out = Windower(labels=LABELS, windowSize=3, stride=2).transform(lines)
    w = _windows(out.collect())
    # window_starts(5, 3, 2) = [0, 2]; documents b and c fit in one window each.
    assert sorted(w) == [("doc_a", 0), ("doc_a", 2), ("doc_b", 0), ("doc_c", 0)]
    a2 = w[("doc_a", 2)]
    assert a2["n_valid"] == 3 and a2["mask"] == [1.0, 1.0, 1.0]
    assert a2["token_ids"] == [102, 103, 103, 104, 104, 105]
    assert a2["shape"] == [2.0, 3.0, 4.0]
    assert a2["y"] == [0, 1, 0, 0, 0, 1, 0, 0, 1]  # D, M, M
    b = w[("doc_b", 0)]
    assert b["n_valid"] == 2 and b["mask"] == [1.0, 1.0, 0.0]
    assert b["token_ids"] == [200, 201, 201, 202, 0, 0]
    assert b["y"] == [0, 0, 1, 1, 0, 0, 0, 0, 0]  # M, N, padding
    c = w[("doc_c", 0)]
    assert (c["n_valid"], c["mask"], c["y"][:3]) == (1, [1.0, 0.0, 0.0], [0, 1, 0])
    assert read_window_metadata(out) == {"labels": LABELS, "window": 3, "stride": 2,
                                         "max_tokens": 2, "n_shape": 1,
                                         "multi_label": False}


def _check_windows_never_cross_documents(rows, lines_by_doc, window):
    for r in rows:
        codes = r["token_ids"][0::2]
        n_valid = r["n_valid"]
        doc_code = 100 * (ord(r["doc_id"][-1]) - ord("a") + 1)
        assert codes[:n_valid] == [doc_code + r["start"] + i for i in range(n_valid)]
        assert codes[n_valid:] == [0] * (window - n_valid)
        assert r["start"] + n_valid <= lines_by_doc[r["doc_id"]]


def test_documents_spanning_arrow_batches_and_any_order(spark):
    """Small Arrow batches split documents between batches; 'any' order shuffles."""
    rows = [_line(f"doc_{d}", i, n, M) for d, n in zip("abcdef", (7, 1, 12, 3, 9, 5))
            for i in range(n)]
    lines = spark.createDataFrame(rows, SCHEMA).coalesce(1)
    old = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")
    try:
        grouped = Windower(labels=LABELS, windowSize=4, stride=3).transform(lines).collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old)
    shuffled = spark.createDataFrame(random.Random(0).sample(rows, len(rows)), SCHEMA) \
        .repartition(3)
    anyorder = Windower(labels=LABELS, windowSize=4, stride=3, inputOrder="any") \
        .transform(shuffled).collect()
    n_by_doc = dict(zip((f"doc_{d}" for d in "abcdef"), (7, 1, 12, 3, 9, 5)))
    # window_starts(n, 4, 3): 7 -> [0, 3], 1 -> [0], 12 -> [0, 3, 6, 8], 3 -> [0],
    # 9 -> [0, 3, 5], 5 -> [0, 1]
    expected = {("doc_a", 0), ("doc_a", 3), ("doc_b", 0), ("doc_c", 0), ("doc_c", 3),
                ("doc_c", 6), ("doc_c", 8), ("doc_d", 0), ("doc_e", 0), ("doc_e", 3),
                ("doc_e", 5), ("doc_f", 0), ("doc_f", 1)}
    for result in (grouped, anyorder):
        assert len(result) == len(expected)
        assert set(_windows(result)) == expected
        _check_windows_never_cross_documents(result, n_by_doc, 4)
    assert sorted(map(tuple, (r.asDict().values() for r in grouped))) == \
        sorted(map(tuple, (r.asDict().values() for r in anyorder)))


def test_grouped_order_rejects_a_document_split_across_partitions(spark):
    rows = [_line("doc_a", i, 6, M) for i in range(6)]
    split = spark.createDataFrame(rows, SCHEMA).repartition(2)  # round robin: lines split
    with pytest.raises(Exception, match="doc_a.*not all together and in order"):
        Windower(labels=LABELS, windowSize=2, stride=2).transform(split).collect()


def test_problem_rows_are_ignored_and_unknown_labels_rejected(spark):
    schema = SCHEMA + ", problem string"
    rows = [r + (None,) for r in LINES[5:7]] + [("doc_b", None, None, None, [0, 0], [0.0],
                                                  "empty_file: x")]
    out = Windower(labels=LABELS, windowSize=2, stride=1).transform(
        spark.createDataFrame(rows, schema).coalesce(1)).collect()
    assert [(r["doc_id"], r["start"], r["n_valid"]) for r in out] == [("doc_b", 0, 2)]
    with pytest.raises(Exception, match="'Key' is not one of the labels"):
        Windower(labels=LABELS, windowSize=2, stride=1).transform(spark.createDataFrame(
            [_line("doc_a", 0, 1, "Key")], SCHEMA)).collect()


def test_multi_label_targets_are_multi_hot(spark):
    rows = [_line("doc_a", 0, 2, "Nomenclature|Description"), _line("doc_a", 1, 2, None)]
    out = Windower(labels=LABELS, windowSize=2, stride=1, multiLabel=True).transform(
        spark.createDataFrame(rows, SCHEMA).coalesce(1)).first()
    assert out["y"] == [1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("kwargs,match", [({"labels": []}, "labels"),
                                          ({"labels": [N, N]}, "duplicates"),
                                          ({"labels": LABELS, "stride": 4}, "stride"),
                                          ({"labels": LABELS, "windowSize": 0}, "window")])
def test_bad_windower_params(spark, kwargs, match):
    df = spark.createDataFrame(LINES, SCHEMA)
    with pytest.raises(ValueError, match=match):
        Windower(**dict({"windowSize": 3}, **kwargs)).transform(df)
    with pytest.raises(ValueError, match="inputOrder"):
        Windower(labels=LABELS, inputOrder="sorted")


def test_windower_and_splitter_save_load(spark, tmp_path):
    w = Windower(labels=LABELS, windowSize=4, stride=2, multiLabel=True, inputOrder="any")
    w.save(str(tmp_path / "w"))
    loaded = Windower.load(str(tmp_path / "w"))
    assert (loaded.getLabels(), loaded.getWindowSize(), loaded.getStride(),
            loaded.getMultiLabel(), loaded.getInputOrder()) == (LABELS, 4, 2, True, "any")
    s = DocumentSplitter(fractions={"train": 0.5, "test": 0.5}, seed=7)
    s.save(str(tmp_path / "s"))
    s2 = DocumentSplitter.load(str(tmp_path / "s"))
    assert (s2.getFractions(), s2.getSeed()) == ({"train": 0.5, "test": 0.5}, 7)
    df = spark.createDataFrame([(f"d{i}",) for i in range(40)], "doc_id string")
    assert s.transform(df).collect() == s2.transform(df).collect()


# -- DocumentSplitter --------------------------------------------------------------------

def test_split_by_fraction_is_per_document_seeded_and_near_the_fractions(spark):
    docs = spark.range(2000).select(F.format_string("file:/c/doc_%05d.ann", "id")
                                    .alias("doc_id"))
    lines = docs.crossJoin(spark.range(3).withColumnRenamed("id", "line_idx"))
    fractions = {"train": 0.7, "validation": 0.1, "test": 0.2}

    def assign(seed):
        out = DocumentSplitter(fractions=fractions, seed=seed).transform(lines)
        per_doc = out.groupBy("doc_id").agg(F.collect_set("split").alias("s")).collect()
        return {r["doc_id"]: r["s"] for r in per_doc}

    a, a_again, b = assign(1), assign(1), assign(2)
    assert len(a) == 2000 and all(len(s) == 1 for s in a.values())  # one split per doc
    assert a == a_again and a != b
    share = {s: sum(v == [s] for v in a.values()) / 2000 for s in fractions}
    for s, f in fractions.items():  # binomial sd <= 0.011 at n=2000
        assert abs(share[s] - f) < 0.04, share


def test_split_by_path_pattern_first_match_wins_and_unmatched_dropped(spark):
    ids = ["file:/c/Vol117/s1.ann", "file:/c/Vol117/s2.ann", "file:/c/Vol054/n1.ann",
           "file:/c/Persoonia/n1.ann", "file:/c/other/x.ann"]
    df = spark.createDataFrame([(d, i) for d in ids for i in range(2)], "doc_id string, i int")
    out = DocumentSplitter(patterns=[["test", "/Vol117/"], ["validation", "/Persoonia/"],
                                     ["train", "/Vol0"]]).transform(df)
    got = {(r["doc_id"], r["split"]) for r in out.collect()}
    assert got == {(ids[0], "test"), (ids[1], "test"), (ids[2], "train"),
                   (ids[3], "validation")}
    catch_all = DocumentSplitter(patterns=[["test", "Vol117"], ["train", ".*"]]).transform(df)
    assert catch_all.filter(F.col("split") == "train").count() == 6


@pytest.mark.parametrize("kwargs,match", [
    ({"fractions": {"train": 0.5}}, "sum to 1"), ({"fractions": {"dev": 1.0}}, "dev"),
    ({"fractions": {"train": 1.2, "test": -0.2}}, ">= 0"),
    ({"patterns": [["holdout", ".*"]]}, "holdout"), ({"patterns": [["test", "("]]}, "regex")])
def test_bad_splitter_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DocumentSplitter(**kwargs)


# -- the round trip ----------------------------------------------------------------------

def _write_corpus(folder):
    """Synthetic articles plus hand-made files; returns {file name: [(text, label)]}."""
    os.makedirs(folder)
    truth = {}
    for i in range(8):
        pairs = generate_document(random.Random(i), 25 + 9 * i, ratio=(1, 3, 6),
                                  blank_lines=True)
        truth[f"doc_{i}.ann"] = pairs
    truth["tiny.ann"] = [("Agaricus alba L., sp. nov.", N)]
    truth["outside.ann"] = [("front matter", None), ("Pileus white.", D), ("", None),
                            ("end", None)]
    for name, pairs in truth.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
            fh.write(format_yedda(pairs))
    # Keep only the non-blank lines, unlabelled text mapped to Misc-exposition.
    return {name: [(t.rstrip(), lab or M) for t, lab in pairs if t.strip()]
            for name, pairs in truth.items()}


def test_round_trip_files_to_windows_to_lines_restores_every_line_and_label(spark, tmp_path):
    truth = _write_corpus(str(tmp_path / "corpus"))
    window, stride = 8, 5
    lines = YeddaParser(keepLabels=[N, D]).transform(
        list_files(spark, str(tmp_path / "corpus"), num_partitions=3))
    lines = lines.filter(F.col("problem").isNull())
    feats = LineFeaturizer(vocabSize=1 << 20, maxTokens=6, shapeFeatures=["length"])
    split = DocumentSplitter(fractions={"train": 0.5, "test": 0.5}, seed=3)
    featurized_df = feats.transform(lines).cache()
    windows = Windower(labels=LABELS, windowSize=window, stride=stride).transform(
        split.transform(featurized_df))
    featurized = {(r["doc_id"], r["line_idx"]): r for r in featurized_df.collect()}

    restored = {}
    for r in windows.collect():
        y = np.array(r["y"]).reshape(window, len(LABELS))
        tokens = np.array(r["token_ids"]).reshape(window, 6)
        mask = np.array(r["mask"])
        assert mask.sum() == r["n_valid"] and (mask[:r["n_valid"]] == 1).all()
        for i in range(r["n_valid"]):
            key = (r["doc_id"], r["start"] + i)
            label = LABELS[int(y[i].argmax())]
            assert y[i].sum() == 1
            assert tokens[i].tolist() == featurized[key]["token_ids"]
            assert restored.setdefault(key, (label, r["split"])) == (label, r["split"])
        assert not y[r["n_valid"]:].any() and not tokens[r["n_valid"]:].any()

    got = {}
    for (doc_id, idx), (label, _) in sorted(restored.items()):
        got.setdefault(os.path.basename(doc_id), []).append(
            (featurized[(doc_id, idx)]["text"], label))
    assert got == truth
    assert len({s for _, s in restored.values()}) == 2  # both splits, per document
    per_doc = {}
    for (doc_id, _), (_, s) in restored.items():
        per_doc.setdefault(doc_id, set()).add(s)
    assert all(len(s) == 1 for s in per_doc.values())
    featurized_df.unpersist()
