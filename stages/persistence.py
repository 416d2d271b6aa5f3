"""Saving and loading focalseq stages that carry more than params.

Spark's `DefaultParamsWriter` writes a stage's params as JSON metadata; the models
here also carry files (a network, a training summary) or other stages (an ensemble's
members). `FilesWriter` writes the metadata and then each file beside it;
`FilesReader` restores the saved uid before setting the params, as Spark's
`DefaultParamsReader.load` does, then hands the files back. `load_stage` loads
whatever stage a folder holds, by the class its metadata names.
"""
import json
import logging
import posixpath

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from focalseq import fileio

logger = logging.getLogger(__name__)


class FilesWriter(MLWriter):
    """Writes the stage's params, then the files `instance._files_to_save()` returns.

    The instance returns ``{name: bytes}`` (None values are skipped) and may define
    ``_extra_metadata()`` for values the reader needs before the files.
    """

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        extra = getattr(self.instance, "_extra_metadata", lambda: None)()
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc, extraMetadata=extra)
        for name, data in self.instance._files_to_save().items():
            if data is not None:
                fileio.write_bytes(posixpath.join(path, name), data)


class FilesReader(MLReader):
    """Loads what `FilesWriter` saved: uid and params, then `cls._restore_files`."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path):
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._restore_files(path, metadata, self.sc)
        return instance


def read_file(path: str, name: str, required: bool = True):
    """The bytes of a file saved beside a stage's metadata (None if optional and absent)."""
    target = posixpath.join(path, name)
    if not required and not fileio.exists(target):
        return None
    return fileio.read_bytes(target)


def read_json(path: str, name: str, required: bool = True):
    data = read_file(path, name, required)
    return None if data is None else json.loads(data)


def load_stage(path: str, sc=None):
    """Loads the Spark ML stage saved in `path`, by the class its metadata names."""
    import importlib

    fs, root = fileio.filesystem(path)
    parts = sorted(p for p in fs.glob(posixpath.join(root, "metadata", "part-*"))
                   if not p.endswith(".crc"))
    if not parts:
        raise ValueError(f"{path}: not a saved Spark ML stage (no metadata/part-* file)")
    metadata = json.loads(fs.cat_file(parts[0]).decode().splitlines()[0])
    name = metadata["class"].replace("org.apache.spark", "pyspark")
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls).load(path)
