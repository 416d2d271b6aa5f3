"""Issue 12, "nothing lost": predict never destroys data.

Each test reproduces a defect of the old predict (Spark's overwrite mode deleted whatever
the output folder held; YEDDA files named by basename collided; text holding `[@` made
the writer raise halfway) and checks the rule that replaced it: a non-empty output
folder is refused unless --overwrite, and even then only an earlier focalseq output
(with its marker) is replaced; the output is written to a temporary sibling and swapped
in, so a failed write leaves the folder as it was.
"""
import hashlib
import json
import os

import pytest

from focalseq import fileio
from focalseq.cli import main
from focalseq.fileio import MARKER, OutputExistsError
from focalseq.text.yedda import count_nonempty_lines, decode_bytes, parse_plain, parse_yedda

LABELS = ("Nomenclature", "Description", "Misc-exposition")


def _tree(folder) -> dict:
    """{relative path: sha256} of every file under `folder` (hidden ones included)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _siblings(folder) -> list:
    """Temporary or old siblings focalseq may have left beside `folder`."""
    parent, name = os.path.split(os.path.abspath(folder))
    return [n for n in os.listdir(parent) if n.startswith(name + ".focalseq-")]


def _user_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_bytes(b"my notes\n")
    (folder / "sub" / "input.txt").write_bytes(b"\x00\x01 input data")
    (folder / ".hidden").write_bytes(b"h")
    return str(folder)


# -- the rule, on the filesystem (no Spark) ----------------------------------------------

def test_missing_and_empty_folders_may_be_written(tmp_path):
    fileio.check_output_target(str(tmp_path / "new"))
    (tmp_path / "empty").mkdir()
    fileio.check_output_target(str(tmp_path / "empty"))
    assert fileio.is_empty_or_missing(str(tmp_path / "empty"))
    assert fileio.is_empty_or_missing(str(tmp_path / "new"))


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_focalseq_did_not_write_is_refused(tmp_path, overwrite):
    folder = _user_folder(tmp_path)
    with pytest.raises(OutputExistsError, match="not written by focalseq") as err:
        fileio.check_output_target(folder, overwrite)
    assert folder in str(err.value)


def test_an_earlier_output_needs_overwrite(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "part-0").write_bytes(b"x")
    fileio.mark_output(str(folder), {"command": "test"})
    with pytest.raises(OutputExistsError, match="--overwrite.*output.mode: overwrite"):
        fileio.check_output_target(str(folder))
    fileio.check_output_target(str(folder), overwrite=True)
    assert json.loads((folder / MARKER).read_text())["written_by"] == "focalseq"


def test_a_file_is_never_replaced(tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    with pytest.raises(OutputExistsError, match="existing file"):
        fileio.check_output_target(str(tmp_path / "f"), overwrite=True)


def test_a_failed_write_leaves_the_folder_and_no_sibling(tmp_path):
    folder = tmp_path / "out"
    with fileio.output_directory(str(folder)) as tmp:
        fileio.write_bytes(tmp + "/old.txt", b"old")
    before = _tree(folder)
    with pytest.raises(RuntimeError, match="midway"):
        with fileio.output_directory(str(folder), overwrite=True) as tmp:
            fileio.write_bytes(tmp + "/new.txt", b"new")
            raise RuntimeError("failed midway")
    assert _tree(folder) == before and _siblings(folder) == []


def test_overwrite_swaps_the_new_output_in(tmp_path):
    folder = tmp_path / "out"
    with fileio.output_directory(str(folder)) as tmp:
        fileio.write_bytes(tmp + "/old.txt", b"old")
    with fileio.output_directory(str(folder), overwrite=True,
                                 written_by={"command": "second"}) as tmp:
        fileio.write_bytes(tmp + "/new.txt", b"new")
    assert sorted(_tree(folder)) == [MARKER, "new.txt"]
    assert json.loads((folder / MARKER).read_text())["command"] == "second"
    assert _siblings(folder) == []


def test_any_fsspec_filesystem():
    # The in-memory filesystem: no os.path, no open(); the same rule and the swap.
    import fsspec

    fs = fsspec.filesystem("memory")
    url = "memory://focalseq-test/out"
    fs.pipe("/focalseq-test/mine/keep.txt", b"keep")
    with pytest.raises(OutputExistsError, match="not written by focalseq"):
        fileio.check_output_target("memory://focalseq-test/mine", overwrite=True)
    for text in (b"one", b"two"):
        with fileio.output_directory(url, overwrite=True) as tmp:
            fileio.write_bytes(tmp + "/a/b.txt", text)
    assert fileio.read_bytes(url + "/a/b.txt") == b"two"
    assert fileio.is_focalseq_output(url)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/focalseq-test", detail=False)) == [
        "mine", "out"]
    assert fs.cat("/focalseq-test/mine/keep.txt") == b"keep"
    fs.rm("/focalseq-test", recursive=True)


# -- the CLI: refused before Spark starts, exit code 2 ------------------------------------

def _cli(tmp_path, output, *extra):
    return main(["predict", "-q", "--set", f"output.dir={tmp_path / 'run'}", "--input",
                 str(tmp_path / "no-such-input.txt"), "--output", output, *extra])


def test_cli_refuses_a_non_empty_folder_and_deletes_nothing(tmp_path, capsys):
    folder = _user_folder(tmp_path)
    before = _tree(folder)
    assert _cli(tmp_path, folder) == 2
    err = capsys.readouterr().err
    assert folder in err and "is not empty" in err
    assert "--overwrite" in err and "output.mode: overwrite" in err
    assert _tree(folder) == before


@pytest.mark.parametrize("extra", [["--overwrite"], ["--set", "output.mode=overwrite"]])
def test_cli_overwrite_still_refuses_a_folder_focalseq_did_not_write(tmp_path, capsys, extra):
    folder = _user_folder(tmp_path)
    before = _tree(folder)
    assert _cli(tmp_path, folder, *extra) == 2
    err = capsys.readouterr().err
    assert folder in err and "not written by focalseq" in err
    assert _tree(folder) == before and _siblings(folder) == []


def test_cli_output_mode_is_validated(tmp_path, capsys):
    assert _cli(tmp_path, str(tmp_path / "out"), "--set", "output.mode=replace") == 2
    assert "output.mode: 'replace' is not one of ['error', 'overwrite']" in \
        capsys.readouterr().err


# -- predict with a real model --------------------------------------------------------

def _plain_corpus(tmp_path):
    """a/doc.txt and b/doc.txt (one basename), text holding YEDDA markup, blank lines."""
    files = {"a/doc.txt": "Agaricus campestris L. 1753\n\nPileus [@white#Description*] 5 cm.\n"
                          "  Stipe *] and [\\@ and #Nomenclature*]\n",
             "b/doc.txt": "\n\nAnother [@ document\nwith two lines [@ #X*]\n",
             "b/c/deep.txt": "deep *]\n"}
    for name, text in files.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return files


def _predict(spark, trained, tmp_path, output, fmt, **kwargs):
    from focalseq.pipelines.predict import predict

    return predict(spark, trained["cfg"], [str(tmp_path / "in" / "*" / "*.txt"),
                                           str(tmp_path / "in" / "*" / "*" / "*.txt")],
                   str(output), fmt=fmt, plain=True, model=trained["model"], **kwargs)


@pytest.mark.spark
def test_predict_refuses_a_user_folder_and_leaves_it_as_it_was(spark, trained, tmp_path):
    _plain_corpus(tmp_path)
    folder = _user_folder(tmp_path)
    before = _tree(folder)
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError):
            _predict(spark, trained, tmp_path, folder, "parquet", overwrite=overwrite)
    assert _tree(folder) == before and _siblings(folder) == []


@pytest.mark.spark
def test_yedda_output_keeps_paths_and_text_exactly(spark, trained, tmp_path):
    files = _plain_corpus(tmp_path)
    out = tmp_path / "out"
    n = _predict(spark, trained, tmp_path, out, "yedda")
    assert n == sum(count_nonempty_lines(t) for t in files.values())
    assert sorted(_tree(out)) == sorted([MARKER, *files])
    for name, original in files.items():
        text, _ = decode_bytes((out / name).read_bytes())
        lines, problems = parse_yedda(text, name)
        expected = parse_plain(original)
        assert problems == []
        # Same text, same line numbers (blank lines restored), a label on every line.
        assert [(x.line_no, x.text) for x in lines] == [(x.line_no, x.text) for x in expected]
        assert all(x.label in LABELS for x in lines)
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "focalseq" and marker["format"] == "yedda"


@pytest.mark.spark
def test_overwrite_replaces_an_earlier_output_and_only_with_overwrite(spark, trained,
                                                                     tmp_path):
    _plain_corpus(tmp_path)
    out = tmp_path / "out"
    _predict(spark, trained, tmp_path, out, "jsonl")
    first = _tree(out)
    assert any(name.startswith("part-") and name.endswith(".json") for name in first)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _predict(spark, trained, tmp_path, out, "parquet")
    assert _tree(out) == first
    n = _predict(spark, trained, tmp_path, out, "parquet", overwrite=True)
    names = sorted(_tree(out))
    assert not any(name.startswith("part-") and name.endswith(".json") for name in names)
    assert any(name.endswith(".parquet") for name in names) and MARKER in names
    assert spark.read.parquet(str(out)).count() == n
    assert _siblings(out) == []


@pytest.mark.spark
def test_a_write_failing_midway_leaves_the_output_as_it_was(spark, trained, tmp_path,
                                                           monkeypatch):
    from focalseq.pipelines import predict as predict_module

    _plain_corpus(tmp_path)
    out = tmp_path / "out"
    with fileio.output_directory(str(out), written_by={"command": "earlier"}) as tmp:
        fileio.write_bytes(tmp + "/a/doc.txt", b"[@earlier#Description*]\n")
    before = _tree(out)
    real = predict_module._write_yedda

    def failing_write_yedda(lines, out_url, depth, write_file=None):
        def write(url, data):  # a closure: cloudpickled by value to the executors
            from focalseq import fileio as executor_fileio

            if url.endswith("b/doc.txt"):
                raise OSError(f"injected failure writing {url}")
            executor_fileio.write_bytes(url, data)
        return real(lines, out_url, depth, write_file=write)

    monkeypatch.setattr(predict_module, "_write_yedda", failing_write_yedda)
    with pytest.raises(Exception, match="injected failure"):
        _predict(spark, trained, tmp_path, out, "yedda", overwrite=True)
    assert _tree(out) == before and _siblings(out) == []


def test_two_inputs_with_one_output_name_are_refused_before_writing():
    from focalseq.pipelines.predict import yedda_names

    names, depth = yedda_names(["file:/d/in/a/doc.txt", "file:/d/in/b/doc.txt",
                                "file:/d/in/b/c/x.txt"])
    assert names == {"file:/d/in/a/doc.txt": "a/doc.txt", "file:/d/in/b/doc.txt": "b/doc.txt",
                     "file:/d/in/b/c/x.txt": "b/c/x.txt"} and depth == 3
    assert yedda_names(["file:/d/one.txt"])[0] == {"file:/d/one.txt": "one.txt"}
    # Paths that differ only by an empty part ('//') would share a name.
    with pytest.raises(ValueError, match="'hdfs://n/a/x' and 'hdfs://n//a/x'"):
        yedda_names(["hdfs://n/a/x", "hdfs://n//a/x"])


@pytest.mark.spark
def test_prepare_refuses_a_windows_folder_focalseq_did_not_write(spark, tmp_path):
    from focalseq.config import load_config
    from focalseq.pipelines.prepare import prepare

    folder = _user_folder(tmp_path)
    before = _tree(folder)
    cfg = load_config(None, [f"output.dir={tmp_path / 'run'}"])
    with pytest.raises(OutputExistsError, match="not written by focalseq"):
        prepare(spark, cfg, folder)
    assert _tree(folder) == before


@pytest.mark.spark
def test_parquet_predictions_are_written_in_row_groups_of_the_configured_size(
        spark, trained, tmp_path):
    """A Parquet writer holds its open row group in the executor's heap:
    output.row_group_bytes bounds it (Parquet's own default would be 128 MB)."""
    import pyarrow.parquet as pq

    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    words = "Pileus convex brown spores ellipsoid smooth hyaline".split()
    (folder / "doc.txt").write_text(
        "".join(f"{words[i % 7]} {i} {words[(i * 3) % 7]} 5-8 um.\n" for i in range(3000)),
        encoding="utf-8")
    cfg = trained["cfg"]
    small = cfg.model_copy(update={"output": cfg.output.model_copy(
        update={"row_group_bytes": 16 * 1024})})

    def groups(config, out):
        from focalseq.pipelines.predict import predict

        n = predict(spark, config, [str(folder / "*.txt")], str(out), fmt="parquet",
                    plain=True, model=trained["model"])
        assert n == 3000 and spark.read.parquet(str(out)).count() == 3000
        metas = [pq.ParquetFile(p).metadata for p in out.glob("*.parquet")]
        return [[m.row_group(i).total_byte_size for i in range(m.num_row_groups)]
                for m in metas if m.num_rows]

    # 3,000 lines are well under the default 4 MB: one row group per file.
    default_files = groups(cfg, tmp_path / "default")
    assert all(len(sizes) == 1 for sizes in default_files)
    small_files = groups(small, tmp_path / "small")
    assert sum(map(len, small_files)) > 2 * len(small_files)
    assert max(map(max, small_files)) < max(map(max, default_files)) / 2
