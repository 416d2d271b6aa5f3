"""Where a fitted model lives: a disk path, MLflow, or a key in Redis.

Any Spark ML stage that is MLWritable and MLReadable (the inference PipelineModel,
a BiLSTMModel, an EnsembleModel, a ThresholdModel) can be stored and loaded back:

    from focalseq import storage
    storage.save_model(pipeline, "disk", path="models/rnn")
    storage.save_model(pipeline, "redis", redis_client=redis.Redis(), redis_key="rnn_focal_f1")
    uri = storage.save_model(pipeline, "mlflow", registered_model_name="focalseq", alias="prod")
    model = storage.load_model("redis", redis_client=redis.Redis(), redis_key="rnn_focal_f1")

- disk: Spark ML persistence into `path` (any URL Spark writes: local, HDFS, S3, DBFS).
- mlflow: the MLflow Spark flavor (see focalseq.tracking.log_pipeline_model), logged to
  the active run or to a new run; loaded by model URI (`runs:/...`, `models:/name@alias`),
  by default from the newest run of the current experiment that holds one. Loads as a
  PipelineModel.
- redis: the saved directory as one gzip'd tar under `redis_key` (Redis strings hold up
  to 512 MB); loading unpacks it into a temporary directory and loads from there.

Loading trusts nothing it did not write: before anything is imported, every class the
saved metadata names (the root stage's and every nested stage's) must be a focalseq
stage or one of the few Spark ML classes a focalseq pipeline uses
(`focalseq.stages.persistence.check_saved`); an archive from Redis may only hold plain
files under `model/`. Every load error names where the model came from (the path, the
Redis key, the model URI) and what was expected.

Saving and loading through a temporary directory happen on the driver; on a cluster
whose executors cannot see the driver's disk, give `tmp_dir` a shared URL (e.g. an
hdfs:// or dbfs:/ directory).
"""
import gzip
import io
import logging
import posixpath
import tarfile
import tempfile
import uuid
import zlib

from focalseq import fileio
from focalseq.stages.persistence import load_stage

logger = logging.getLogger(__name__)

STORAGES = ("disk", "mlflow", "redis")
REDIS_MAX_BYTES = 512 * 1024 * 1024
_ARCHIVE_ROOT = "model"


def save_model(model, storage: str = "disk", *, path: str = None, redis_client=None,
               redis_key: str = None, artifact_path: str = "model",
               registered_model_name: str = None, alias: str = None, input_example=None,
               overwrite: bool = True, tmp_dir: str = None) -> str:
    """Stores a fitted model; returns where it went (a path, a model URI, or the key).

    Args:
        model: a fitted, MLWritable Spark ML stage (usually a PipelineModel).
        storage: one of "disk", "mlflow", "redis".
        path: disk: the directory to write.
        redis_client: redis: a `redis.Redis` client.
        redis_key: redis: the key to store the model under.
        artifact_path, registered_model_name, alias, input_example: mlflow: see
            focalseq.tracking.log_pipeline_model.
        overwrite: disk and redis: replace what is there (else it is an error).
        tmp_dir: redis: where the model is written before packing (default: local temp).
    """
    _check_storage(storage)
    if storage == "disk":
        if not path:
            raise ValueError("save_model(storage='disk') needs path, the directory to write")
        writer = model.write()
        (writer.overwrite() if overwrite else writer).save(path)
        logger.info("saved %s to %s", type(model).__name__, path)
        return path
    if storage == "redis":
        _check_redis(redis_client, redis_key)
        data = model_to_bytes(model, tmp_dir)
        if len(data) > REDIS_MAX_BYTES:
            raise ValueError(f"save_model: the packed model is {len(data)} bytes; a Redis value "
                             f"holds at most {REDIS_MAX_BYTES}; store it on disk or in MLflow")
        if not redis_client.set(redis_key, data, nx=not overwrite):
            raise ValueError(f"save_model: redis key {redis_key!r} exists and overwrite=False")
        logger.info("saved %s to redis key %r (%d bytes)", type(model).__name__, redis_key,
                    len(data))
        return redis_key
    return _save_mlflow(model, artifact_path, registered_model_name, alias, input_example)


def load_model(storage: str = "disk", *, path: str = None, redis_client=None,
               redis_key: str = None, model_uri: str = None, artifact_path: str = "model",
               tmp_dir: str = None):
    """Loads a model stored by `save_model`.

    Args:
        storage: one of "disk", "mlflow", "redis".
        path: disk: the directory. mlflow: a model URI (same as model_uri).
        redis_client, redis_key: redis: where the model is.
        model_uri: mlflow: e.g. `runs:/<run>/model` or `models:/<name>@<alias>`; default:
            the newest run of the current experiment with a model at `artifact_path`.
        tmp_dir: redis and mlflow: where the model is unpacked or copied before loading
            (default: local temp).

    Raises:
        ValueError: naming the path, key or model URI: nothing there, not a focalseq
            model, or a class that focalseq does not load.
    """
    _check_storage(storage)
    if storage == "disk":
        if not path:
            raise ValueError("load_model(storage='disk') needs path, the saved directory")
        return load_stage(path, source=f"path {path!r}")
    if storage == "redis":
        _check_redis(redis_client, redis_key)
        data = redis_client.get(redis_key)
        if data is None:
            raise ValueError(f"load_model: redis key {redis_key!r} does not exist")
        return model_from_bytes(data, tmp_dir, source=f"redis key {redis_key!r}")
    return _load_mlflow(model_uri or path or _latest_model_uri(artifact_path), tmp_dir)


def _load_mlflow(model_uri: str, tmp_dir: str = None):
    """Loads a Spark-flavor MLflow model as `mlflow.spark.load_model` would, checked first.

    MLflow's loader would add the flavor's code paths to sys.path and import the class the
    metadata names; here the artifacts are downloaded, checked, and loaded by
    `load_stage`, and the flavor's code paths are never used.
    """
    import mlflow
    import yaml

    source = f"MLflow model {model_uri!r}"
    with _scratch(None) as local:
        try:
            folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=local)
        except Exception as exc:  # MlflowException, OSError, ... all mean "nothing there"
            raise ValueError(f"{source}: cannot download it ({exc}); expected a model URI "
                             "such as 'runs:/<run>/model' or 'models:/<name>@<alias>'") from exc
        try:
            with open(posixpath.join(folder, "MLmodel"), encoding="utf-8") as fh:
                flavor = (yaml.safe_load(fh) or {}).get("flavors", {}).get("spark") or {}
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            raise ValueError(f"{source}: no readable MLmodel file ({exc}); expected a model "
                             "logged with the MLflow Spark flavor") from exc
        data = flavor.get("model_data")
        if not isinstance(data, str) or not data or "/" in data or data.startswith("."):
            raise ValueError(f"{source}: its MLmodel has no Spark flavor with a model_data "
                             f"folder (got {data!r}); expected a model logged by "
                             "focalseq.tracking.log_pipeline_model")
        saved = posixpath.join(folder, data)
        if not tmp_dir:
            return load_stage(saved, source=source)
        # Executors may not see the driver's disk: load from the shared tmp_dir.
        with _scratch(tmp_dir) as shared:
            fs, root = fileio.filesystem(shared)
            fs.put(saved, root, recursive=True)
            return load_stage(shared, source=source)


def _latest_model_uri(artifact_path: str) -> str:
    """runs:/<run>/<artifact_path> of the newest run of the current experiment holding one."""
    import mlflow

    client = mlflow.MlflowClient()
    for run in mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=100,
                                  output_format="list"):
        names = {a.path for a in client.list_artifacts(run.info.run_id, artifact_path)}
        if f"{artifact_path}/MLmodel" in names:
            return f"runs:/{run.info.run_id}/{artifact_path}"
    raise ValueError(f"load_model(storage='mlflow'): no run of the current experiment has a "
                     f"model at {artifact_path!r}; pass model_uri (e.g. 'runs:/<run>/model' "
                     "or 'models:/<name>@<alias>')")


def _check_storage(storage):
    if storage not in STORAGES:
        raise ValueError(f"storage: {storage!r} is not one of {list(STORAGES)}")


def _check_redis(client, key):
    if client is None or not key:
        raise ValueError(f"storage='redis' needs redis_client and redis_key; got client "
                         f"{type(client).__name__}, key {key!r}")


def _save_mlflow(model, artifact_path, registered_model_name, alias, input_example) -> str:
    import mlflow

    from focalseq.tracking import log_pipeline_model

    started = mlflow.active_run() is None
    if started:
        mlflow.start_run()
    try:
        info = log_pipeline_model(model, input_example, artifact_path=artifact_path,
                                  registered_model_name=registered_model_name, alias=alias)
    finally:
        if started:
            mlflow.end_run()
    return f"models:/{registered_model_name}@{alias}" if alias else info.model_uri


# Packing --------------------------------------------------------------------------------


def model_to_bytes(model, tmp_dir: str = None) -> bytes:
    """The model's Spark ML save directory as gzip'd tar bytes."""
    with _scratch(tmp_dir) as folder:
        target = posixpath.join(folder, _ARCHIVE_ROOT)
        model.write().save(target)
        fs, root = fileio.filesystem(target)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name in sorted(fs.find(root)):
                data = fs.cat_file(name)
                info = tarfile.TarInfo(posixpath.join(_ARCHIVE_ROOT,
                                                      posixpath.relpath(name, root)))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def model_from_bytes(data: bytes, tmp_dir: str = None, source: str = "model archive"):
    """Loads a model packed by `model_to_bytes`.

    Args:
        data: the archive's bytes.
        tmp_dir: where it is unpacked (default: local temp).
        source: how errors name the archive (e.g. "redis key 'rnn'").

    Raises:
        ValueError: naming `source`: not a gzip'd tar (garbage, truncated), an entry that
            is not a plain file under model/, or a saved model focalseq does not load.
    """
    with _scratch(tmp_dir) as folder:
        fs, root = fileio.filesystem(folder)
        try:
            _unpack(data, fs, root, source)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise ValueError(f"{source}: not a focalseq model archive ({type(exc).__name__}: "
                             f"{exc or 'no detail'}); expected the gzip'd tar that "
                             "save_model(storage='redis') writes") from exc
        # Every focalseq stage reads its files while loading, so the folder can go.
        return load_stage(posixpath.join(folder, _ARCHIVE_ROOT), source=source)


def _unpack(data, fs, root, source) -> None:
    # The whole gzip stream first: its end marker and CRC catch a truncated value, which
    # tarfile alone may read without complaint.
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not member.isfile() or parts[0] != _ARCHIVE_ROOT or ".." in parts:
                raise ValueError(f"{source}: unexpected archive entry {member.name!r}; "
                                 "expected plain files under model/")
            target = posixpath.join(root, member.name)
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            fs.pipe_file(target, tar.extractfile(member).read())


class _scratch:
    """A temporary folder (local, or under `base` on any fsspec filesystem), removed on exit."""

    def __init__(self, base=None):
        self.base = base
        self._local = None
        self.path = None

    def __enter__(self) -> str:
        if self.base:
            self.path = posixpath.join(self.base.rstrip("/"), f"focalseq-{uuid.uuid4().hex[:12]}")
        else:
            self._local = tempfile.TemporaryDirectory(prefix="focalseq-model-")
            self.path = self._local.name
        return self.path

    def __exit__(self, *exc):
        if self._local is not None:
            self._local.cleanup()
            return
        fs, root = fileio.filesystem(self.path)
        if fs.exists(root):
            fs.rm(root, recursive=True)
