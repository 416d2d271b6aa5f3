"""Saving and loading focalseq stages that carry more than params.

Spark's `DefaultParamsWriter` writes a stage's params as JSON metadata; the models
here also carry files (a network, a training summary) or other stages (an ensemble's
members). `FilesWriter` writes the metadata and then each file beside it;
`FilesReader` restores the saved uid before setting the params, as Spark's
`DefaultParamsReader.load` does, then hands the files back. `load_stage` loads
whatever stage a folder holds, by the class its metadata names, once `check_saved` has
found that every class the folder's metadata names is one focalseq wrote (Spark's own
loaders import any class a metadata file names, so a crafted model would otherwise run
code while loading).
"""
import importlib
import io
import json
import logging
import posixpath
import re
import zipfile

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


# -- what a saved model may name -----------------------------------------------------

FOCALSEQ_CLASSES = frozenset(
    f"focalseq.stages.{name}" for name in (
        "bilstm.BiLSTMEstimator", "bilstm.BiLSTMModel", "ensemble.EnsembleEstimator",
        "ensemble.EnsembleModel", "evaluation.PerLabelEvaluator", "features.LineFeaturizer",
        "parse.YeddaParser", "split.DocumentSplitter", "thresholds.ThresholdModel",
        "thresholds.ThresholdTuner", "windows.Windower"))
"""Every MLReadable stage of focalseq.stages, as its saved metadata names it."""

SPARK_CLASSES = frozenset((
    # A PipelineModel is saved by Python when a stage is Python's, else by the JVM.
    "pyspark.ml.pipeline.PipelineModel", "org.apache.spark.ml.PipelineModel",
    # The logistic baseline's stages (focalseq.pipelines.logistic), saved by the JVM.
    "org.apache.spark.ml.feature.SQLTransformer",
    "org.apache.spark.ml.feature.StringIndexerModel",
    "org.apache.spark.ml.feature.HashingTF", "org.apache.spark.ml.feature.VectorAssembler",
    "org.apache.spark.ml.classification.LogisticRegressionModel",
    "org.apache.spark.ml.feature.IndexToString"))
"""The Spark ML classes a focalseq pipeline uses, as their saved metadata names them."""

ALLOWED_CLASSES = FOCALSEQ_CLASSES | SPARK_CLASSES

# A uid names a folder (a PipelineModel's stages/<i>_<uid>): no separators, no "..".
_UID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def check_saved(path: str, source: str = None) -> dict:
    """Checks every stage's metadata in a saved folder; returns the root stage's metadata.

    The folder may only name `ALLOWED_CLASSES`: its root metadata and every nested stage's
    (a PipelineModel's ``stages/*``, an EnsembleModel's ``members/*``, at any depth), and
    every saved Keras network (``*.keras``) may only name modules of keras and focalseq.
    Nothing is imported here. Every file a Spark reader would read in a ``metadata``
    folder (all but hidden ``.*`` files and ``_SUCCESS``) must hold exactly one JSON
    record, since Spark's reader takes whichever line comes first.

    Args:
        path: the saved folder (local path or fsspec URL).
        source: how errors name the model to the user (a path, a Redis key, a model
            URI); default: `path`.

    Raises:
        ValueError: naming `source`, the offending file and class, and what is allowed.
    """
    source = source or path
    fs, root = fileio.filesystem(path)
    root = root.rstrip("/")
    try:
        files = sorted(fs.find(root)) if fs.isdir(root) else []
    except OSError as exc:
        raise ValueError(f"{source}: cannot list the saved model ({exc}); expected a folder "
                         "written by a focalseq model's save") from exc
    records = {}  # metadata folder -> [(file, record)]
    for name in files:
        rel = posixpath.relpath(name, root)
        parts = rel.split("/")
        if parts[-1].endswith(".keras"):
            _check_network(fs.cat_file(name), rel, source)
            continue
        if "metadata" not in parts[:-1] or parts[-1] == "_SUCCESS" or \
                parts[-1].startswith("."):
            continue  # not metadata, or a file Spark's readers skip (checksums, markers)
        folder = "/".join(parts[:parts.index("metadata") + 1])
        for record in _metadata_records(fs, name, rel, source):
            records.setdefault(folder, []).append((rel, record))
    if "metadata" not in records:
        raise ValueError(f"{source}: not a saved Spark ML stage (no metadata/part-* file); "
                         "expected a folder written by a focalseq model's save")
    for folder, found in sorted(records.items()):
        if len(found) != 1:
            raise ValueError(f"{source}: {folder} holds {len(found)} metadata records "
                             f"({sorted({rel for rel, _ in found})}); a saved stage has one")
        rel, record = found[0]
        _check_record(record, rel, source)
    return records["metadata"][0][1]


def _metadata_records(fs, name, rel, source) -> list:
    try:
        text = fs.cat_file(name).decode("utf-8")
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{source}: {rel} is not JSON metadata ({exc}); expected the "
                         "metadata Spark ML writes") from exc
    return records


def _check_network(data: bytes, rel, source) -> None:
    """Keras 2.15 imports whatever module a saved network's config names: allow only ours.

    A file that is not a zip archive never reaches that code: Keras then tries its legacy
    formats, and loads an HDF5 network without its safe mode (a Lambda layer's saved
    bytecode would run), so HDF5 is refused; anything else fails to load, harmlessly.
    """
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if _is_hdf5(data):
            raise ValueError(f"{source}: {rel} is an HDF5 file, which Keras would load "
                             "without its safe mode; expected the .keras (zip) file a "
                             "focalseq model saves")
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{source}: {rel} is not a Keras network archive ({exc}); expected "
                         "the .keras file a focalseq model saves") from exc
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            module = node.get("module")
            if module is not None and not _allowed_network_module(module):
                raise ValueError(
                    f"{source}: {rel} names module {module!r} (class "
                    f"{node.get('class_name')!r}), which focalseq does not load; a network "
                    "may only name modules of keras and focalseq")
            stack.extend(node.values())


def _is_hdf5(data: bytes) -> bool:
    """The HDF5 signature at offset 0, 512, 1024, 2048, ... (where the format puts it)."""
    offset = 0
    while offset + 8 <= len(data):
        if data[offset:offset + 8] == b"\x89HDF\r\n\x1a\n":
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _allowed_network_module(module) -> bool:
    return isinstance(module, str) and (module in ("keras", "focalseq") or
                                        module.startswith(("keras.", "focalseq.")))


def _check_record(record, rel, source) -> None:
    cls = record.get("class") if isinstance(record, dict) else None
    if cls not in ALLOWED_CLASSES:
        raise ValueError(
            f"{source}: the saved model names class {cls!r} (in {rel}), which focalseq does "
            f"not load; allowed: focalseq's stages {sorted(FOCALSEQ_CLASSES)} and Spark's "
            f"{sorted(SPARK_CLASSES)}")
    params = record.get("paramMap") if isinstance(record.get("paramMap"), dict) else {}
    uids = [record.get("uid")] + list(params.get("stageUids") or record.get("stageUids") or [])
    bad = [uid for uid in uids if not isinstance(uid, str) or not _UID.match(uid)]
    if bad:
        raise ValueError(f"{source}: {rel} has uid(s) {bad}; expected letters, digits, '_' "
                         "and '-' (a uid names a folder inside the saved model)")


def load_stage(path: str, sc=None, source: str = None):
    """Loads the Spark ML stage saved in `path`, by the class its metadata names.

    `check_saved` runs first: a folder naming any class outside `ALLOWED_CLASSES`, at
    any depth, is refused before anything is imported.

    Args:
        path: the saved folder.
        sc: unused; Spark's readers use the active session.
        source: how errors name the model (default: `path`).

    Raises:
        ValueError: naming `source`: not a saved stage, a class not allowed, or the
            stage's own loader failed (the cause chained).
    """
    source = source or path
    metadata = check_saved(path, source)
    # Spark's JVM classes load through their pyspark twins, as DefaultParamsReader does.
    module, _, name = metadata["class"].replace("org.apache.spark", "pyspark").rpartition(".")
    stage_class = getattr(importlib.import_module(module), name)
    try:
        return stage_class.load(path)
    except Exception as exc:  # the loaders raise anything from KeyError to Py4J errors
        raise ValueError(f"{source}: could not load the saved {name} ({type(exc).__name__}: "
                         f"{exc}); expected a model saved by focalseq") from exc
