"""Spark tests of list_files + YeddaParser over real files: every bad-input case with its
problem record, strict mode, the line accounting, label mapping, plain text, paths.

Expected lines, labels and line numbers are worked out by hand from the file contents
below; the line accounting is checked against an independent line counter.
"""
import os
import re

import pytest
from pyspark.sql import functions as F

from focalseq.stages.parse import YeddaParser, list_files, split_problems

MISC = "Misc-exposition"

# name -> bytes. Comments give the expected (text, raw label) per line by hand.
FILES = {
    # Multi-line span, text outside spans, '#', '[', ']', '*' inside span text.
    "good.ann": (b"[@Agaricus campestris L.#Nomenclature*]\n"
                 b"\n"
                 b"[@Spores [5-8] um, #1 *rare*\n"
                 b"  Stipe 3 cm.#Description*]\n"
                 b"Some text outside.\n"),
    # '[@' never closed: opener at line 2; all text kept, unlabelled.
    "unterminated.ann": b"Intro line.\n[@Spores 5 um\nmore text\n",
    # The span ends with '#Nomenclature' but no '*]': fragment at line 2.
    "missing_close.ann": b"[@Agaricus campestris\nL. 1821#Nomenclature\n",
    # '#*]': no label; the closer is on line 2.
    "empty_label.ann": b"[@Some text\nmore#*]\nAfter.\n",
    # A span opened inside a span: the inner '[@' is on line 2.
    "nested.ann": b"[@Outer start\n[@Inner#Description*]\nouter end#Nomenclature*]\n",
    "empty.ann": b"",
    "blank.ann": b"  \n\t\n\n",
    # Not UTF-8 on line 2 (a Latin-1 e-acute and a lone 0xff), CRLF line ends.
    "latin1.ann": b"[@Good line#Description*]\r\nbad \xe9 here \xff\r\n",
    # A byte-order mark, then CRLF and a lone CR inside a span.
    "bom_crlf.ann": b"\xef\xbb\xbf[@A line\r\nB line\rC line#Description*]\r\nD\r\n",
    # Lines holding only markup are lines of the file: kept with text "".
    "markup_only.ann": b"[@\nPileus white.\n#Description*]\n",
}

EXPECTED_LINES = {
    "good.ann": [(1, "Agaricus campestris L.", "Nomenclature"),
                 (3, "Spores [5-8] um, #1 *rare*", "Description"),
                 (4, "  Stipe 3 cm.", "Description"),
                 (5, "Some text outside.", None)],
    "unterminated.ann": [(1, "Intro line.", None), (2, "Spores 5 um", None),
                         (3, "more text", None)],
    "missing_close.ann": [(1, "Agaricus campestris", None), (2, "L. 1821", None)],
    "empty_label.ann": [(1, "Some text", None), (2, "more", None), (3, "After.", None)],
    "nested.ann": [(1, "Outer start", None), (2, "Inner", None), (3, "outer end", None)],
    "empty.ann": [],
    "blank.ann": [],
    "latin1.ann": [(1, "Good line", "Description"), (2, "bad \ufffd here \ufffd", None)],
    "bom_crlf.ann": [(1, "A line", "Description"), (2, "B line", "Description"),
                     (3, "C line", "Description"), (4, "D", None)],
    "markup_only.ann": [(1, "", "Description"), (2, "Pileus white.", "Description"),
                        (3, "", "Description")],
}

# (file, line, code) of every problem, by hand.
EXPECTED_PROBLEMS = {
    ("unterminated.ann", 2, "unterminated_span"),
    ("missing_close.ann", 2, "missing_close"),
    ("empty_label.ann", 2, "empty_label"),
    ("nested.ann", 2, "nested_span"),
    ("empty.ann", 1, "empty_file"),
    ("blank.ann", 1, "empty_file"),
    ("latin1.ann", 2, "invalid_utf8"),
}


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
    return folder


def _count_nonempty_lines(data: bytes) -> int:
    """Independent line counter: CRLF, CR and LF end lines; a BOM is not text."""
    text = data.decode("utf-8-sig", errors="replace")
    return sum(1 for line in re.split(r"\r\n|\r|\n", text) if line.strip())


def _name(doc_id):
    return doc_id.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write(str(tmp_path_factory.mktemp("corpus")), FILES)


@pytest.fixture(scope="module")
def parsed_rows(spark, corpus):
    parsed = YeddaParser().transform(list_files(spark, os.path.join(corpus, "*.ann")))
    return [r.asDict() for r in parsed.collect()]


def _lines(rows):
    return [r for r in rows if r["problem"] is None]


def _problems(rows):
    return [r for r in rows if r["problem"] is not None]


def test_every_file_gives_its_lines_with_raw_labels(parsed_rows):
    got = {}
    for r in _lines(parsed_rows):
        got.setdefault(_name(r["doc_id"]), []).append((r["line_idx"], r["line_no"], r["text"],
                                                       r["raw_label"]))
    for name, expected in EXPECTED_LINES.items():
        rows = sorted(got.get(name, []))
        assert [(no, text, label) for _, no, text, label in rows] == expected, name
        assert [idx for idx, *_ in rows] == list(range(len(expected)))


def test_every_bad_input_gives_one_problem_record_with_file_line_and_reason(parsed_rows):
    problems = _problems(parsed_rows)
    got = {(_name(r["doc_id"]), r["line_no"], r["problem"].split(":", 1)[0])
           for r in problems}
    assert got == EXPECTED_PROBLEMS
    assert len(problems) == len(EXPECTED_PROBLEMS)
    assert all(r["lines_dropped"] == 0 and r["text"] is None for r in problems)
    latin1 = next(r["problem"] for r in problems if _name(r["doc_id"]) == "latin1.ann")
    assert "2 byte sequence(s)" in latin1  # 0xe9 and 0xff


def test_lines_in_files_equal_lines_out_plus_lines_reported(parsed_rows, corpus):
    in_files = sum(_count_nonempty_lines(data) for data in FILES.values())
    lines_out = len(_lines(parsed_rows))
    reported = sum(r["lines_dropped"] for r in _problems(parsed_rows))
    assert in_files == 24  # by hand: 4+3+2+3+3+0+0+2+4+3
    assert in_files == lines_out + reported


def test_row_fields_of_a_line(parsed_rows):
    row = next(r for r in _lines(parsed_rows)
               if _name(r["doc_id"]) == "good.ann" and r["line_no"] == 4)
    assert row["doc_id"].startswith("file:/") and row["doc_id"].endswith("/good.ann")
    assert (row["n_lines"], row["line_idx"], row["blank_before"], row["indent"]) == (4, 2,
                                                                                    False, 2)
    first_after_blank = next(r for r in _lines(parsed_rows)
                             if _name(r["doc_id"]) == "good.ann" and r["line_no"] == 3)
    assert first_after_blank["blank_before"] is True
    # Unmapped default: kept labels are all labels, text outside spans is Misc-exposition.
    labels = {r["line_no"]: r["label"] for r in _lines(parsed_rows)
              if _name(r["doc_id"]) == "good.ann"}
    assert labels == {1: "Nomenclature", 3: "Description", 4: "Description", 5: MISC}


def test_split_problems_separates_lines_and_problems(spark, parsed_rows):
    from focalseq.stages.parse import LINE_SCHEMA

    parsed = spark.createDataFrame([tuple(r[f.name] for f in LINE_SCHEMA.fields)
                                    for r in parsed_rows], LINE_SCHEMA)
    lines, problems = split_problems(parsed)
    assert "problem" not in lines.columns and "lines_dropped" not in lines.columns
    assert problems.columns == ["doc_id", "line_no", "problem", "lines_dropped"]
    assert lines.count() == 24
    assert sorted(r["line_no"] for r in problems.collect()) == [1, 1, 2, 2, 2, 2, 2]


def test_unreadable_files_are_reported_not_fatal(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"a.ann": b"[@x#Description*]\n",
                                          "gone.ann": b"[@y#Description*]\n"})
    files = list_files(spark, os.path.join(folder, "*.ann"))  # lists both
    os.remove(os.path.join(folder, "gone.ann"))  # removed after listing
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "broken.ann"))
    os.mkdir(str(tmp_path / "adir.ann"))
    extra = spark.createDataFrame([("file:" + str(tmp_path / "broken.ann"),),
                                   (str(tmp_path / "adir.ann"),)], "path string")
    rows = YeddaParser().transform(files.unionByName(extra)).collect()
    lines = [r for r in rows if r["problem"] is None]
    problems = sorted((_name(r["doc_id"]), r["line_no"], r["problem"].split(":", 2)[:2])
                      for r in rows if r["problem"] is not None)
    assert [(_name(r["doc_id"]), r["text"]) for r in lines] == [("a.ann", "x")]
    assert problems == [("adir.ann", 0, ["unreadable_file", " IsADirectoryError"]),
                        ("broken.ann", 0, ["unreadable_file", " FileNotFoundError"]),
                        ("gone.ann", 0, ["unreadable_file", " FileNotFoundError"])]


@pytest.mark.parametrize("name,line", [("missing_close.ann", 2), ("latin1.ann", 2)])
def test_strict_mode_fails_on_the_first_problem_naming_file_and_line(spark, tmp_path, name,
                                                                     line):
    folder = _write(str(tmp_path / "c"), {"good.ann": FILES["good.ann"], name: FILES[name]})
    parser = YeddaParser(strict=True)
    with pytest.raises(Exception) as info:
        parser.transform(list_files(spark, os.path.join(folder, "*.ann"))).collect()
    assert re.search(re.escape(name) + f": line {line}: ", str(info.value)), \
        str(info.value)[:3000]


def test_strict_mode_fails_on_an_unreadable_file(spark, tmp_path):
    files = spark.createDataFrame([(str(tmp_path / "missing.ann"),)], "path string")
    with pytest.raises(Exception, match=r"missing\.ann: line 0: unreadable_file"):
        YeddaParser(strict=True).transform(files).collect()


def test_strict_mode_passes_clean_files(spark, corpus):
    rows = YeddaParser(strict=True).transform(list_files(
        spark, [os.path.join(corpus, "good.ann"), os.path.join(corpus, "bom*")])).collect()
    assert len(rows) == 8 and all(r["problem"] is None for r in rows)


def test_label_mapping_keep_default_and_explicit_map(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"d.ann": (
        b"[@Agaricus L.#Nomenclature*]\n[@Pileus white.#Description*]\n"
        b"[@Latin diagnosis.#Diagnosis*]\n[@Key to species#Key*]\noutside\n")})
    files = list_files(spark, folder)
    parsers = [YeddaParser(),
               YeddaParser(keepLabels=["Nomenclature", "Description"]),
               YeddaParser(keepLabels=["Nomenclature", "Description"], defaultLabel="Other",
                           labelMap={"Diagnosis": "Description"}),
               YeddaParser(labelMap='{"Key": "Identification"}')]
    parsed = None
    for i, parser in enumerate(parsers):  # one Spark job for all four
        one = parser.transform(files).withColumn("variant", F.lit(i))
        parsed = one if parsed is None else parsed.unionByName(one)
    rows = parsed.orderBy("variant", "line_idx").collect()
    labels = [[(r["raw_label"], r["label"]) for r in rows if r["variant"] == i]
              for i in range(len(parsers))]
    raw = ["Nomenclature", "Description", "Diagnosis", "Key", None]
    assert labels[0] == list(zip(raw, ["Nomenclature", "Description", "Diagnosis", "Key",
                                       MISC]))
    assert labels[1] == list(zip(raw, ["Nomenclature", "Description", MISC, MISC, MISC]))
    assert labels[2] == list(zip(raw, ["Nomenclature", "Description", "Description",
                                       "Other", "Other"]))
    assert labels[3] == list(zip(raw, ["Nomenclature", "Description", "Diagnosis",
                                       "Identification", MISC]))


def test_plain_format_keeps_markup_as_text_without_labels(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"p.txt": b"[@not a span#X*]\n\nsecond line\n",
                                          "e.txt": b"\n"})
    rows = YeddaParser(format="plain").transform(
        list_files(spark, os.path.join(folder, "*.txt"))).collect()
    lines = sorted((r["line_no"], r["text"], r["label"], r["raw_label"], r["blank_before"])
                   for r in rows if r["problem"] is None)
    assert lines == [(1, "[@not a span#X*]", None, None, True),
                     (3, "second line", None, None, True)]
    assert [(_name(r["doc_id"]), r["problem"].split(":")[0]) for r in rows
            if r["problem"] is not None] == [("e.txt", "empty_file")]


def test_paths_as_globs_lists_and_directories(spark, tmp_path):
    for vol in ("Vol1", "Vol2"):
        _write(str(tmp_path / vol), {"a.ann": b"x\n", "b.ann": b"y\n", "c.txt": b"z\n",
                                     "_hidden.ann": b"h\n"})
    _write(str(tmp_path / "Vol2" / "sub"), {"deep.ann": b"d\n"})

    def names(paths, **kw):
        rows = list_files(spark, paths, **kw).collect()
        return sorted(r["path"].split(str(tmp_path), 1)[1] for r in rows)

    assert names(str(tmp_path / "Vol*" / "*.ann")) == ["/Vol1/a.ann", "/Vol1/b.ann",
                                                       "/Vol2/a.ann", "/Vol2/b.ann"]
    assert names([str(tmp_path / "Vol1" / "a.ann"), str(tmp_path / "Vol2" / "*.txt")]) == [
        "/Vol1/a.ann", "/Vol2/c.txt"]
    assert names(str(tmp_path / "Vol1")) == ["/Vol1/a.ann", "/Vol1/b.ann", "/Vol1/c.txt"]
    assert "/Vol2/sub/deep.ann" in names(str(tmp_path / "Vol2"), recursive=True)
    assert all(p.startswith("file:/") for p in
               (r["path"] for r in list_files(spark, str(tmp_path / "Vol1")).collect()))
    # A directory named by the user is read whatever its name (as in Spark).
    _write(str(tmp_path / "_drafts"), {"d.ann": b"d\n", ".d.ann.swp": b"s\n"})
    assert names(str(tmp_path / "_drafts")) == ["/_drafts/d.ann"]
    assert names([str(tmp_path / "Vol1" / "a.ann"), str(tmp_path / "Vol1" / "a.ann")]) == [
        "/Vol1/a.ann"]


def test_list_files_spreads_files_round_robin(spark, tmp_path):
    _write(str(tmp_path), {f"f{i:02d}.ann": b"x\n" for i in range(10)})
    files = list_files(spark, str(tmp_path / "*.ann"), num_partitions=3)
    parts = files.rdd.glom().map(lambda rows: sorted(r["path"][-7:-4] for r in rows)).collect()
    assert parts == [["f00", "f03", "f06", "f09"], ["f01", "f04", "f07"], ["f02", "f05", "f08"]]
    assert list_files(spark, str(tmp_path / "*.ann")).rdd.getNumPartitions() == min(
        10, 4 * spark.sparkContext.defaultParallelism)


def test_list_files_makes_a_task_per_bytes_per_task_of_files(spark, tmp_path):
    # 40 files of 1,000 bytes (a directory beside them, not counted): 40,000 bytes.
    _write(str(tmp_path), {f"f{i:02d}.ann": b"y" * 999 + b"\n" for i in range(40)})
    _write(str(tmp_path / "sub"), {"g.ann": b"z" * 5000})
    floor = min(40, 4 * spark.sparkContext.defaultParallelism)

    def tasks(**kw):
        return list_files(spark, str(tmp_path), **kw).rdd.getNumPartitions()

    assert tasks(bytes_per_task=3000) == max(floor, 14)      # ceil(40,000 / 3,000)
    assert tasks(bytes_per_task=1000) == 40                  # one file each
    assert tasks(bytes_per_task=999) == 40                   # never more than the files
    assert tasks(bytes_per_task=10 ** 9) == floor            # at least 4 per core
    assert tasks(bytes_per_task=3000, num_partitions=5) == 5  # an explicit count wins


def test_listing_many_files_runs_no_spark_job(spark, tmp_path):
    # Spark's reader lists a glob's matches in a job of one task per file above 32 of
    # them, and the driver keeps every task's record: memory that grows with the corpus.
    _write(str(tmp_path), {f"f{i:03d}.ann": b"x\n" for i in range(100)})
    sc = spark.sparkContext
    sc.setJobGroup("list-files-test", "listing only")
    try:
        files = list_files(spark, str(tmp_path / "*.ann"))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup("list-files-test") == []
    assert files.count() == 100


def test_a_file_name_with_spaces_and_accents_is_read(spark, tmp_path):
    _write(str(tmp_path / "a dir"), {"é x%20.ann": b"[@z#Description*]\n"})
    rows = YeddaParser().transform(list_files(spark, str(tmp_path / "a dir"))).collect()
    assert [(r["doc_id"], r["text"], r["problem"]) for r in rows] == [
        ("file:" + str(tmp_path / "a dir" / "é x%20.ann"), "z", None)]


@pytest.mark.parametrize("paths,match", [([], "at least one"),
                                         ("/no/such/dir/*.ann", "cannot list")])
def test_list_files_rejects_bad_paths(spark, paths, match):
    with pytest.raises(ValueError, match=match):
        list_files(spark, paths)


@pytest.mark.parametrize("kwargs,match", [({"format": "pdf"}, "'pdf'"),
                                          ({"labelMap": "[1]"}, "labelMap"),
                                          ({"labelMap": "{bad"}, "labelMap"),
                                          ({"defaultLabel": ""}, "defaultLabel")])
def test_bad_params_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YeddaParser(**kwargs)


def test_parser_save_load_round_trip(spark, corpus, tmp_path):
    parser = YeddaParser(keepLabels=["Nomenclature"], defaultLabel="Other",
                         labelMap={"Description": "Nomenclature"}, strict=False)
    parser.save(str(tmp_path / "parser"))
    loaded = YeddaParser.load(str(tmp_path / "parser"))
    assert loaded.getKeepLabels() == ["Nomenclature"]
    assert loaded.getLabelMap() == {"Description": "Nomenclature"}
    assert loaded.getDefaultLabel() == "Other" and loaded.getFormat() == "yedda"
    files = list_files(spark, os.path.join(corpus, "good.ann"))
    assert [r["label"] for r in loaded.transform(files).orderBy("line_no").collect()] == [
        "Nomenclature", "Nomenclature", "Nomenclature", "Other"]


def _parse_in_process(paths, **params):
    """The parser's executor function run here (no Spark): rows as dicts."""
    import pyarrow as pa

    fn = YeddaParser(**params).batch_function()
    batches = fn(iter([pa.RecordBatch.from_arrays([pa.array(paths)], names=["path"])]))
    return [row for batch in batches for row in batch.to_pylist()]


def test_files_are_read_through_fsspec_whatever_the_scheme(tmp_path):
    """fsspec's in-memory filesystem stands for hdfs:// and s3://: a scheme the parser
    reads only if every read goes through focalseq.fileio."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/fsq-parse/doc.ann", b"[@Agaricus L.#Nomenclature*]\nSpores \xff.\n")
    local = tmp_path / "local doc.ann"
    local.write_text("[@Pileus white#Description*]\n")
    rows = _parse_in_process(["memory://fsq-parse/doc.ann", "file://" + str(local),
                              "file:" + str(local), "memory://fsq-parse/missing.ann"],
                             keepLabels=["Nomenclature", "Description"])
    lines = [(r["doc_id"].split("/")[-1], r["line_no"], r["label"]) for r in rows
             if r["problem"] is None]
    assert lines == [("doc.ann", 1, "Nomenclature"), ("doc.ann", 2, "Misc-exposition"),
                     ("local doc.ann", 1, "Description"), ("local doc.ann", 1, "Description")]
    problems = [(r["doc_id"].split("/")[-1], r["line_no"], r["problem"].split(":")[0])
                for r in rows if r["problem"] is not None]
    assert problems == [("doc.ann", 2, "invalid_utf8"), ("missing.ann", 0, "unreadable_file")]
    memory.rm("/fsq-parse", recursive=True)
