"""Files the Python side reads and writes, on any filesystem fsspec knows.

Spark reads and writes the DataFrames; everything else (the run store, saved networks,
model archives, corpus files read by the parser) goes through these few functions, so a
path may be a local path, a ``file://`` URL, or ``hdfs://``, ``s3://``, ``gs://``,
``abfss://`` or ``dbfs:/`` alike. ``dbfs:/x`` is read through the ``/dbfs/x`` FUSE mount
where one exists (Databricks), as Databricks' own Python does.

Writes are atomic: the bytes go to a temporary sibling that is then renamed, so a
reader never sees half a file.

Output directories are never destroyed: `output_directory` writes a whole output into a
temporary sibling, marks it with `MARKER`, and swaps it in; a non-empty directory is
replaced only with `overwrite` and only if it carries the marker (docs/safety.md).

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> write_bytes(os.path.join(folder, "a", "b.txt"), b"hello")
>>> read_bytes("file://" + os.path.join(folder, "a", "b.txt"))
b'hello'
>>> exists(os.path.join(folder, "a", "missing"))
False
"""
import contextlib
import os
import posixpath
import uuid


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a local path or URL."""
    import fsspec

    if url.startswith("dbfs:/") and os.path.isdir("/dbfs"):
        url = "/dbfs/" + url[len("dbfs:/"):].lstrip("/")
    return fsspec.core.url_to_fs(url)


def read_bytes(url: str) -> bytes:
    """The whole file."""
    fs, path = filesystem(url)
    with fs.open(path, "rb") as fh:
        return fh.read()


def write_bytes(url: str, data: bytes) -> None:
    """Writes the whole file atomically (temporary sibling, then rename)."""
    fs, path = filesystem(url)
    write_atomically(fs, path, data)


def write_atomically(fs, path: str, data: bytes) -> None:
    """`write_bytes` on an open filesystem."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def spark_url(fs, path: str) -> str:
    """A URL that readers outside fsspec (Spark, petastorm, pyarrow) understand."""
    if _protocol(fs) in ("file", "local"):
        return "file://" + path  # fsspec's local paths are absolute already
    return fs.unstrip_protocol(path)


def _protocol(fs) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


# -- output directories: nothing deleted that focalseq did not write -------------------

MARKER = "_FOCALSEQ_OUTPUT.json"
"""The file that marks a directory as written by focalseq (Spark's readers skip `_` names)."""


class OutputExistsError(ValueError):
    """An output location focalseq may not write into; the message names it."""


def is_empty_or_missing(url: str) -> bool:
    """True if nothing is at `url`, or an empty directory; False for a file or a non-empty one."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        return True
    return fs.isdir(path) and not fs.ls(path, detail=False)


def is_focalseq_output(url: str) -> bool:
    """True if `url` is a directory holding focalseq's marker file."""
    fs, path = filesystem(url)
    return fs.isfile(posixpath.join(path, MARKER))


def check_output_target(url: str, overwrite: bool = False) -> None:
    """Raises unless an output may be written at `url`.

    It may if nothing is there, or an empty directory, or (with `overwrite`) a directory
    an earlier focalseq output left, recognised by its marker file.

    Raises:
        OutputExistsError: `url` is a file, a non-empty directory without `overwrite`, or a
            non-empty directory that focalseq did not write (never replaced).
    """
    fs, path = filesystem(url)
    if not fs.exists(path):
        return
    if not fs.isdir(path):
        raise OutputExistsError(f"output {url!r} is an existing file; focalseq writes a "
                                "directory there and never replaces a file: name a new "
                                "directory")
    if not fs.ls(path, detail=False):
        return
    if not fs.isfile(posixpath.join(path, MARKER)):
        raise OutputExistsError(
            f"output directory {url!r} is not empty and was not written by focalseq (it has "
            f"no {MARKER}); focalseq never deletes files it did not write, so neither "
            "--overwrite nor output.mode: overwrite replaces it: name a new directory, or "
            "empty or remove this one yourself")
    if not overwrite:
        raise OutputExistsError(
            f"output directory {url!r} is not empty (an earlier focalseq output); pass "
            "--overwrite (or set output.mode: overwrite) to replace it, or name a new "
            "directory")


def check_own_folder(url: str, legacy=()) -> None:
    """Raises unless `url` is missing, empty, or a folder focalseq wrote.

    For the run's own folders (under ``output.dir``), which a run replaces without
    being asked: a folder holding focalseq's marker, or one of the `legacy` files an
    older focalseq left there (e.g. ``_manifest.json``), is the run's.

    Raises:
        OutputExistsError: `url` is a file, or a non-empty folder focalseq did not write.
    """
    fs, path = filesystem(url)
    if not fs.exists(path):
        return
    if not fs.isdir(path):
        raise OutputExistsError(f"{url!r} is an existing file; focalseq writes a folder "
                                "there and never replaces a file: move it or change "
                                "output.dir")
    if not fs.ls(path, detail=False) or any(
            fs.isfile(posixpath.join(path, name)) for name in (MARKER, *legacy)):
        return
    raise OutputExistsError(f"folder {url!r} is not empty and was not written by focalseq "
                            f"(it has no {MARKER}); focalseq never deletes files it did not "
                            "write: move them, or change output.dir")


def mark_output(url: str, written_by: dict) -> None:
    """Writes the marker file into directory `url`: JSON of `written_by` plus the version."""
    import datetime
    import json

    from focalseq import __version__

    record = {"written_by": "focalseq", "version": __version__,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds"), **written_by}
    write_bytes(posixpath.join(url, MARKER),
                json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


def sibling(url: str, kind: str) -> str:
    """A new name beside `url`: `<url>.focalseq-<kind>-<random>` (a URL, as `url` is)."""
    return f"{url.rstrip('/')}.focalseq-{kind}-{uuid.uuid4().hex[:12]}"


def replace_directory(tmp: str, final: str, overwrite: bool = False) -> None:
    """Moves the finished directory `tmp` to `final`, replacing only what focalseq wrote.

    `final` is checked again (`check_output_target`), since it may have changed while
    `tmp` was written. A previous output is first moved aside (to a sibling), then `tmp`
    is moved in, then the old one is deleted; if the move in fails the old output is
    put back. On filesystems with a real rename (local, HDFS) each move is one rename.

    Raises:
        OutputExistsError: see `check_output_target`; `tmp` is left as it is.
    """
    check_output_target(final, overwrite)
    fs, final_path = filesystem(final)
    _, tmp_path = filesystem(tmp)
    old = None
    if fs.exists(final_path):
        if fs.ls(final_path, detail=False):
            old = sibling(final_path, "old")
            fs.mv(final_path, old, recursive=True)
        elif _protocol(fs) in ("file", "local", "hdfs", "viewfs"):
            # An empty directory is in the way of a rename there; object stores have
            # no empty directories to remove (and rmdir of a bucket deletes it).
            fs.rmdir(final_path)
    try:
        fs.mv(tmp_path, final_path, recursive=True)
    except BaseException:
        if old is not None and not fs.exists(final_path):
            fs.mv(old, final_path, recursive=True)
        raise
    if old is not None:
        fs.rm(old, recursive=True)


@contextlib.contextmanager
def output_directory(url: str, overwrite: bool = False, written_by: dict = None):
    """Context for writing a whole output directory: nothing partial, nothing lost.

    Checks `url` first (`check_output_target`), then yields a URL of a temporary sibling
    (not yet created, so a Spark writer in its default error mode can create it) that
    Spark, pyarrow and fsspec all understand. When the block ends normally the sibling
    gets focalseq's marker and replaces `url` (`replace_directory`); when it raises, the
    sibling is deleted and `url` is left as it was.

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "out")
    >>> with output_directory(out, written_by={"command": "doctest"}) as tmp:
    ...     write_bytes(tmp + "/a.txt", b"a")
    >>> sorted(os.listdir(out))
    ['_FOCALSEQ_OUTPUT.json', 'a.txt']
    """
    check_output_target(url, overwrite)
    fs, path = filesystem(url)
    tmp_path = sibling(path, "tmp")
    try:
        yield spark_url(fs, tmp_path)
        mark_output(spark_url(fs, tmp_path), dict(written_by or {}))
        replace_directory(spark_url(fs, tmp_path), url, overwrite)
    finally:
        if fs.exists(tmp_path):
            fs.rm(tmp_path, recursive=True)
