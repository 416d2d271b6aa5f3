"""Issue 12, labels: a label outside `labels` is a counted problem with file and line,
never an abort.

Before, with the default configuration, one well-formed span labelled `Key` (not one of
the three labels, and `keep_labels` empty) went through the parser unreported and made
the Windower fail `prepare` with an error naming no file. Expected problems, lines and
labels below are worked out by hand from the file contents.
"""
import json
import os

import pytest

from focalseq.config import load_config
from focalseq.stages.parse import YeddaParser, list_files, split_problems
from focalseq.text.yedda import count_nonempty_lines

pytestmark = pytest.mark.spark

N, D, M = "Nomenclature", "Description", "Misc-exposition"
LABELS = [N, D, M]

# Line numbers:     1                              2  3             4              5
DOC = ("[@Agaricus campestris L.#Nomenclature*]\n\n[@Key to the\nspecies 1a#Key*]\n"
       # 6                     7
       "[@Pileus white.#Description*]\n[@Typo line#Nomenclatur*]\noutside\n")


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return folder


def _parse(spark, folder, **params):
    lines, problems = split_problems(
        YeddaParser(**params).transform(list_files(spark, os.path.join(folder, "*.ann"))))
    return (sorted((os.path.basename(r["doc_id"]), r["line_no"], r["raw_label"], r["label"])
                   for r in lines.collect()),
            sorted((os.path.basename(r["doc_id"]), r["line_no"], r["problem"],
                    r["lines_dropped"]) for r in problems.collect()))


def test_unknown_labels_are_problems_with_file_and_line_and_lines_are_kept(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"d.ann": DOC})
    lines, problems = _parse(spark, folder, labels=LABELS)
    assert lines == [("d.ann", 1, N, N), ("d.ann", 3, "Key", M), ("d.ann", 4, "Key", M),
                     ("d.ann", 5, D, D), ("d.ann", 6, "Nomenclatur", M), ("d.ann", 7, None, M)]
    assert [(doc, line, reason.split(":")[0], dropped)
            for doc, line, reason, dropped in problems] == [
        ("d.ann", 3, "unknown_label", 0), ("d.ann", 6, "unknown_label", 0)]
    key, typo = problems[0][2], problems[1][2]
    assert "'Key'" in key and "2 lines, 3-4" in key and str(LABELS) in key
    assert "'Nomenclatur'" in typo and "line 6" in typo
    # Every non-empty line is a line row; nothing dropped.
    assert len(lines) == count_nonempty_lines(DOC) == 6


def test_mapped_labels_are_checked_after_the_mapping(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"d.ann": DOC})
    # label_map renames Key to Description (valid): only the typo is reported.
    lines, problems = _parse(spark, folder, labels=LABELS, labelMap={"Key": D})
    assert [ln[3] for ln in lines] == [N, D, D, D, M, M]
    assert [(p[1], p[2].split(":")[0]) for p in problems] == [(6, "unknown_label")]
    # keep_labels maps every other label to the default: nothing to report.
    lines, problems = _parse(spark, folder, labels=LABELS, keepLabels=[N, D])
    assert [ln[3] for ln in lines] == [N, M, M, D, M, M] and problems == []
    # A label mapped to something outside `labels` is reported with the mapping.
    _, problems = _parse(spark, folder, labels=LABELS, labelMap={"Key": "Keys"})
    assert "label 'Key' (mapped to 'Keys')" in problems[0][2]


def test_without_labels_every_label_is_kept(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"d.ann": DOC})
    lines, problems = _parse(spark, folder)
    assert [ln[3] for ln in lines] == [N, "Key", "Key", D, "Nomenclatur", M] and problems == []


def test_strict_fails_naming_file_and_line(spark, tmp_path):
    folder = _write(str(tmp_path / "c"), {"d.ann": DOC})
    with pytest.raises(Exception, match=r"d\.ann: line 3: unknown_label: label 'Key'"):
        _parse(spark, folder, labels=LABELS, strict=True)


def test_multi_label_sets_are_checked_label_by_label(spark, tmp_path):
    # Line numbers:                        1                                2
    folder = _write(str(tmp_path / "c"), {"m.ann": "[@a#Nomenclature|Description*]\n"
                                                   "[@b#Nomenclature|Key*]\n"
                                                   # 3                 4
                                                   "[@c#Key*]\noutside\n"})
    lines, problems = _parse(spark, folder, labels=LABELS, multiLabel=True)
    # Key is dropped from line 2's set; line 3 is left with no label: the default.
    assert [ln[2:] for ln in lines] == [(f"{N}|{D}", f"{N}|{D}"), (f"{N}|Key", N),
                                        ("Key", M), (None, M)]
    assert [(p[0], p[1], p[2].split(":")[0]) for p in problems] == [
        ("m.ann", 2, "unknown_label"), ("m.ann", 3, "unknown_label")]
    assert "label set 'Nomenclature|Key' holds ['Key']" in problems[0][2]
    # unlabelled none: text outside spans and emptied sets are the empty set "".
    lines, problems = _parse(spark, folder, labels=LABELS, multiLabel=True,
                             unlabelled="none")
    assert [ln[3] for ln in lines] == [f"{N}|{D}", N, "", ""] and len(problems) == 2
    # label_map may map one raw label to a set; sets from the file and the map merge.
    folder = _write(str(tmp_path / "s"), {"s.ann": "[@a#ND*]\n[@b#NK|Description*]\n"})
    lines, problems = _parse(spark, folder, labels=LABELS, multiLabel=True,
                             labelMap={"ND": f"{N}|{D}", "NK": f"{N}|Key"})
    assert [ln[3] for ln in lines] == [f"{N}|{D}", f"{N}|{D}"]
    assert [(p[1], p[2].split(":")[0]) for p in problems] == [(2, "unknown_label")]


def test_bad_label_inside_a_set_is_reported_with_file_and_line(spark, tmp_path):
    # Line numbers: 1                2            3                   4
    text = "[@fine#joy|anger*]\n[@x#joy|*]\n[@y#joy||anger*]\n[@z#joy|1x*]\n"
    folder = _write(str(tmp_path / "c"), {"b.ann": text})
    lines, problems = _parse(spark, folder, labels=["joy", "anger"], multiLabel=True,
                             unlabelled="none")
    assert [ln[3] for ln in lines] == ["joy|anger", "", "", ""]
    assert [(p[0], p[1], p[2].split(":")[0]) for p in problems] == [
        ("b.ann", 2, "bad_label"), ("b.ann", 3, "bad_label"), ("b.ann", 4, "bad_label")]
    assert "'#joy||anger*]'" in problems[1][2]
    with pytest.raises(Exception, match=r"b\.ann: line 2: bad_label"):
        _parse(spark, folder, labels=["joy", "anger"], multiLabel=True, strict=True)


def test_unlabelled_none_needs_multi_label():
    with pytest.raises(ValueError, match=r"unlabelled: 'none' .* needs multiLabel=True"):
        YeddaParser(unlabelled="none")
    with pytest.raises(ValueError, match=r"unlabelled: 'nothing' is not one of "
                                         r"\['default_label', 'none'\]"):
        YeddaParser(multiLabel=True, unlabelled="nothing")


def test_labels_params_round_trip(tmp_path):
    parser = YeddaParser(labels=LABELS, multiLabel=True)
    parser.save(str(tmp_path / "p"))
    loaded = YeddaParser.load(str(tmp_path / "p"))
    assert loaded.getLabels() == LABELS and loaded.getMultiLabel() is True
    assert loaded.uid == parser.uid
    parser = YeddaParser(multiLabel=True, unlabelled="none")
    parser.save(str(tmp_path / "q"))
    assert YeddaParser.load(str(tmp_path / "q")).getUnlabelled() == "none"
    assert YeddaParser().getUnlabelled() == "default_label"
    assert YeddaParser().getLabels() == [] and YeddaParser().getMultiLabel() is False


def test_prepare_with_the_default_configuration_counts_an_unknown_label(spark, tmp_path):
    from focalseq.pipelines.prepare import prepare

    folder = _write(str(tmp_path / "corpus"), {
        "d.ann": DOC,
        "e.ann": "".join(f"[@Line {i} of e.#Description*]\n" for i in range(20))})
    cfg = load_config(None, [
        "data.source=files", f"data.paths={json.dumps([os.path.join(folder, '*.ann')])}",
        "data.split.patterns=[[train, '.*']]", f"output.dir={tmp_path / 'run'}"])
    manifest = prepare(spark, cfg, str(tmp_path / "windows"))
    report = manifest["report"]
    assert report["problems_by_reason"] == {"unknown_label": 2}
    assert report["problems"] == 2 and report["lines_dropped"] == 0
    # Lines in == lines out + lines dropped: 6 + 20 lines, all kept.
    assert report["lines_out"] == count_nonempty_lines(DOC) + 20 == 26
    assert manifest["label_counts"]["train"] == {N: 1, D: 21, M: 4}
    samples = sorted((os.path.basename(s["doc_id"]), s["line_no"])
                     for s in report["problem_samples"])
    assert samples == [("d.ann", 3), ("d.ann", 6)]
