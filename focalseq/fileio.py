"""Files the Python side reads and writes, on any filesystem fsspec knows.

Spark reads and writes the DataFrames; everything else (the run store, saved networks,
model archives, corpus files read by the parser) goes through these few functions, so a
path may be a local path, a ``file://`` URL, or ``hdfs://``, ``s3://``, ``gs://``,
``abfss://`` or ``dbfs:/`` alike. ``dbfs:/x`` is read through the ``/dbfs/x`` FUSE mount
where one exists (Databricks), as Databricks' own Python does.

Writes are atomic: the bytes go to a temporary sibling that is then renamed, so a
reader never sees half a file.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> write_bytes(os.path.join(folder, "a", "b.txt"), b"hello")
>>> read_bytes("file://" + os.path.join(folder, "a", "b.txt"))
b'hello'
>>> exists(os.path.join(folder, "a", "missing"))
False
"""
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
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return "file://" + path  # fsspec's local paths are absolute already
    return fs.unstrip_protocol(path)
