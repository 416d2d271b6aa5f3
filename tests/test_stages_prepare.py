"""pipelines.prepare end to end on real files: windowed Parquet per split, the manifest
(label, window and problem counts from one pass), row-group size, and petastorm reading a
split folder the way training does."""
import json
import os
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from focalseq.config import load_config
from focalseq.pipelines.prepare import MAX_PROBLEM_SAMPLES, load_manifest, prepare
from focalseq.synthetic import generate_document
from focalseq.text.windows import window_starts
from focalseq.text.yedda import format_yedda

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
N, D, M = LABELS
WINDOW, STRIDE, MAX_TOKENS = 8, 4, 8
N_EMPTY = MAX_PROBLEM_SAMPLES + 5


def _corpus(folder):
    """Writes the corpus; returns {file name: [labels of its non-empty lines]} by hand."""
    os.makedirs(folder)
    truth = {}
    for i, n in enumerate([40, 55, 70, 85, 100, 115, 130, 30, 45, 60, 75, 2000]):
        pairs = generate_document(random.Random(100 + i), n, ratio=(1, 3, 6),
                                  blank_lines=True)
        with open(os.path.join(folder, f"doc_{i:02d}.ann"), "w", encoding="utf-8") as fh:
            fh.write(format_yedda(pairs))
        truth[f"doc_{i:02d}.ann"] = [lab for text, lab in pairs if text.strip()]
    bad = {"unterminated.ann": (b"Intro line.\n[@Spores 5 um\nmore text\n", [M, M, M]),
           "latin1.ann": (b"[@Good line#Description*]\r\nbad \xe9 here\r\n", [D, M])}
    bad.update({f"empty_{i:02d}.ann": (b"\n" if i % 2 else b"", []) for i in range(N_EMPTY)})
    for name, (data, labels) in bad.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
        truth[name] = labels
    return truth


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    truth = _corpus(str(root / "corpus"))
    cfg = load_config(None, [
        "data.source=files", f"data.paths={json.dumps([str(root / 'corpus' / '*.ann')])}",
        "data.keep_labels=[Nomenclature, Description]",
        # By pattern, not by fraction: the fraction hash is of the full path, which
        # differs between runs (pytest's temporary folders), and a 12-document corpus
        # left one split empty about one run in seven.
        "data.split.patterns=[[test, 'doc_0[0-3]'], [validation, 'doc_0[4-7]|unterm'], "
        "[train, '.*']]",
        f"windows.size={WINDOW}", f"windows.stride={STRIDE}", "windows.row_group_bytes=65536",
        f"features.max_tokens={MAX_TOKENS}", "features.vocab_size=5000",
        f"output.dir={root / 'run'}"])
    manifest = prepare(spark, cfg, str(root / "windows"))
    return {"manifest": manifest, "truth": truth, "cfg": cfg, "out": str(root / "windows")}


def _doc_splits(spark, out):
    rows = spark.read.parquet(out).select("doc_id", "split").distinct().collect()
    return {os.path.basename(r["doc_id"]): r["split"] for r in rows}


def test_layout_one_folder_per_split_plus_manifest_and_problems(prepared):
    out = prepared["out"]
    manifest = prepared["manifest"]
    assert sorted(manifest["splits"]) == ["test", "train", "validation"]
    for split, path in manifest["splits"].items():
        assert path == os.path.join(out, f"split={split}")
        assert any(f.endswith(".parquet") for f in os.listdir(path))
    assert load_manifest(out) == json.loads(json.dumps(manifest))
    assert os.path.isdir(os.path.join(out, "_problems"))


def test_read_split_gives_that_split_as_a_plain_scan(spark, prepared):
    from focalseq.pipelines.prepare import read_split

    whole = spark.read.parquet(prepared["out"])
    for split in ("test", "train"):
        one = read_split(spark, prepared["manifest"], split)
        assert one.columns == whole.columns  # the split column too
        assert sorted(map(tuple, one.select("doc_id", "start", "split").collect())) == sorted(
            map(tuple, whole.filter(whole.split == split)
                .select("doc_id", "start", "split").collect()))
        plan = one._jdf.queryExecution().optimizedPlan().toString()
        assert "Filter" not in plan  # so models read its files in Python
    with pytest.raises(ValueError, match="'dev' has no windows.*'test', 'train', 'validation'"):
        read_split(spark, prepared["manifest"], "dev")


def test_label_counts_per_split_match_the_files(spark, prepared):
    splits = _doc_splits(spark, prepared["out"])
    expected = {}
    for name, labels in prepared["truth"].items():
        if labels:
            counts = expected.setdefault(splits[name], {lab: 0 for lab in LABELS})
            for lab in labels:
                counts[lab] += 1
    assert prepared["manifest"]["label_counts"] == expected
    assert len({splits[n] for n in splits}) == 3


def test_window_counts_and_dimensions(spark, prepared):
    manifest = prepared["manifest"]
    splits = _doc_splits(spark, prepared["out"])
    expected = {}
    for name, labels in prepared["truth"].items():
        if labels:
            expected[splits[name]] = expected.get(splits[name], 0) + len(
                window_starts(len(labels), WINDOW, STRIDE))
    assert manifest["window_counts"] == expected
    written = spark.read.parquet(prepared["out"]).groupBy("split").count().collect()
    assert {r["split"]: r["count"] for r in written} == expected
    assert manifest["features"] == {"vocab_size": 5000, "max_tokens": MAX_TOKENS,
                                    "n_shape": 21, "shape_features":
                                        manifest["features"]["shape_features"]}
    assert len(manifest["features"]["shape_features"]) == 21
    assert manifest["window"] == {"size": WINDOW, "stride": STRIDE, "row_group_bytes": 65536}
    assert manifest["labels"] == LABELS
    from focalseq.stages.windows import read_window_metadata

    assert read_window_metadata(spark.read.parquet(prepared["out"])) == {
        "labels": LABELS, "window": WINDOW, "stride": STRIDE, "max_tokens": MAX_TOKENS,
        "n_shape": 21, "multi_label": False}


def test_parse_report_counts_every_line_and_problem(prepared):
    report = prepared["manifest"]["report"]
    truth = prepared["truth"]
    n_lines = sum(len(v) for v in truth.values())
    assert report["files"] == len(truth) == 12 + 2 + N_EMPTY
    assert report["documents"] == 14
    assert report["lines_out"] == report["lines_in_splits"] == n_lines
    assert report["lines_dropped"] == 0
    assert report["problems"] == 2 + N_EMPTY
    assert report["problems_by_reason"] == {"unterminated_span": 1, "invalid_utf8": 1,
                                            "empty_file": N_EMPTY}
    samples = report["problem_samples"]
    assert len(samples) == MAX_PROBLEM_SAMPLES  # bounded, the full list is in _problems
    assert set(samples[0]) == {"doc_id", "line_no", "problem", "lines_dropped"}


def test_problem_records_are_all_written(spark, prepared):
    problems = spark.read.parquet(os.path.join(prepared["out"], "_problems"))
    rows = problems.collect()
    assert len(rows) == 2 + N_EMPTY
    got = {(os.path.basename(r["doc_id"]), r["line_no"], r["problem"].split(":")[0])
           for r in rows if not os.path.basename(r["doc_id"]).startswith("empty_")}
    assert got == {("unterminated.ann", 2, "unterminated_span"),
                   ("latin1.ann", 2, "invalid_utf8")}


def test_fixed_length_arrays_and_row_group_size(prepared):
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(prepared["out"]) for f in fs
             if f.endswith(".parquet") and "split=" in dp]
    groups = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        groups.append(meta.num_row_groups)
        table = pq.read_table(path, columns=["token_ids", "shape", "y", "mask"])
        for name, width in (("token_ids", WINDOW * MAX_TOKENS), ("shape", WINDOW * 21),
                            ("y", WINDOW * 3), ("mask", WINDOW)):
            lengths = table.column(name).combine_chunks().value_lengths().to_numpy()
            assert (lengths == width).all(), (path, name)
    # The 2000-line document gives ~500 windows of ~1.2 KB: 64 KB row groups split them.
    assert max(groups) >= 3


def test_petastorm_reads_a_split_folder_as_training_does(spark, prepared):
    from focalseq.training.remote import read_windows

    manifest = prepared["manifest"]
    split = max(manifest["window_counts"], key=manifest["window_counts"].get)
    dims = {"window": WINDOW, "max_tokens": MAX_TOKENS, "n_shape": 21, "labels": LABELS}
    arrays = read_windows("file://" + manifest["splits"][split], dims, 0, 1)
    n = manifest["window_counts"][split]
    assert arrays["token_ids"].shape == (n, WINDOW, MAX_TOKENS)
    assert arrays["shape"].shape == (n, WINDOW, 21)
    assert arrays["y"].shape == (n, WINDOW, 3) and arrays["mask"].shape == (n, WINDOW)
    table = pq.read_table(manifest["splits"][split])  # pyarrow as the independent reader
    for name, shape in (("token_ids", (WINDOW, MAX_TOKENS)), ("shape", (WINDOW, 21)),
                        ("y", (WINDOW, 3)), ("mask", (WINDOW,))):
        values = table.column(name).combine_chunks().flatten().to_numpy()
        want = values.reshape((n,) + shape)
        # Same multiset of windows: compare sums over windows position by position.
        assert np.allclose(arrays[name].sum(axis=0), want.sum(axis=0)), name
    assert arrays["mask"].sum() == sum(table.column("n_valid").to_pylist())
    two = [read_windows("file://" + manifest["splits"][split], dims, r, 2)["mask"].shape[0]
           for r in (0, 1)]
    assert sum(two) == n  # petastorm shards by row group; together they cover the split


def test_windows_equal_those_of_the_stages_applied_one_by_one(spark, prepared):
    from focalseq.pipelines import builders
    from focalseq.stages.parse import list_files, split_problems

    cfg = prepared["cfg"]
    lines, _ = split_problems(builders.parser(cfg).transform(
        list_files(spark, cfg.data.paths)))
    chain = builders.windower(cfg).transform(builders.featurizer(cfg).transform(
        builders.splitter(cfg).transform(lines)))
    cols = ["doc_id", "split", "start", "n_valid", "token_ids", "shape", "y", "mask"]

    def rows(df):
        return sorted(tuple(tuple(v) if isinstance(v, list) else v for v in r)
                      for r in df.select(*cols).collect())

    written = rows(spark.read.parquet(prepared["out"]))
    assert len(written) == sum(prepared["manifest"]["window_counts"].values())
    assert written == rows(chain)
