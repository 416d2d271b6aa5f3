"""A run's storage: data, checkpoints, progress log and final model under one prefix.

The prefix is any fsspec URL (a local path, hdfs://, s3://, dbfs:/...). The store holds
only the URL, so it pickles into Horovod workers; the filesystem is opened lazily in each
process. Files are written atomically (a temporary name, then a rename), so a reader
never sees half a checkpoint.

Layout under `<prefix>/<run_id>/`:
    data/train, data/validation   windowed Parquet read by the workers through petastorm
    checkpoints/epoch_NNNN.weights.h5, epoch_NNNN.optimizer.npz (the last two epochs),
        best.weights.h5 and state.json (the last complete epoch, written last)
    progress.jsonl                one JSON line per finished epoch (rank 0)
    errors/                       tracebacks of failed workers, read by the driver
    model/network.keras           the trained network
    settings.json                 what the run id stands for: the settings of its first fit
    lock.json                     while a fit runs: its owner and heartbeat
                                  (focalseq.training.run_lock)

The training data is removed when a fit succeeds; checkpoints, progress and the model
stay, so fitting again with the same run id and the same settings returns the finished
model without training. A run id means one training: `check_settings` refuses a fit whose
settings differ from the recorded ones, listing each difference.
"""
import json
import logging
import posixpath

from focalseq import fileio

logger = logging.getLogger(__name__)


class RunStore:
    """Paths and atomic I/O of training runs under one fsspec prefix."""

    def __init__(self, prefix: str):
        if not prefix:
            raise ValueError("storePath: expected a directory or URL, got an empty string")
        self.prefix = prefix.rstrip("/")
        self._fs = None

    def __getstate__(self):
        return {"prefix": self.prefix, "_fs": None}

    @property
    def fs(self):
        if self._fs is None:
            self._fs, self._root = fileio.filesystem(self.prefix)
        return self._fs

    @property
    def root(self) -> str:
        self.fs  # noqa: B018  (opens the filesystem and sets _root)
        return self._root

    def path(self, run_id: str, *parts: str) -> str:
        return posixpath.join(self.root, run_id, *parts)

    def url(self, run_id: str, *parts: str) -> str:
        """A URL readers outside fsspec (Spark, petastorm) understand."""
        return fileio.spark_url(self.fs, self.path(run_id, *parts))

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        fileio.write_atomically(self.fs, path, data)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as fh:
            return fh.read()

    def write_json(self, path: str, obj) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    def read_json(self, path: str):
        return json.loads(self.read_bytes(path))

    def append_line(self, path: str, line: str) -> None:
        """Appends by rewriting: object stores have no append; progress files stay small."""
        old = self.read_bytes(path) if self.exists(path) else b""
        self.write_bytes(path, old + line.encode() + b"\n")

    def remove(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def glob(self, pattern: str) -> list:
        """Matching paths, sorted."""
        return sorted(self.fs.glob(pattern))

    # Checkpoints -------------------------------------------------------------------------

    def checkpoint_state(self, run_id: str):
        """The last complete epoch's state dict, or None when the run has not checkpointed."""
        path = self.path(run_id, "checkpoints", "state.json")
        return self.read_json(path) if self.exists(path) else None

    def checkpoint_weights_path(self, run_id: str, epoch: int) -> str:
        return self.path(run_id, "checkpoints", f"epoch_{epoch:04d}.weights.h5")

    def checkpoint_optimizer_path(self, run_id: str, epoch: int) -> str:
        return self.path(run_id, "checkpoints", f"epoch_{epoch:04d}.optimizer.npz")

    def model_path(self, run_id: str) -> str:
        return self.path(run_id, "model", "network.keras")

    def progress_path(self, run_id: str) -> str:
        return self.path(run_id, "progress.jsonl")

    # What a run id stands for ---------------------------------------------------------------

    def settings_path(self, run_id: str) -> str:
        return self.path(run_id, "settings.json")

    def check_settings(self, run_id: str, settings: dict) -> None:
        """Records `settings` at a run's first fit; later fits must bring the same ones.

        Args:
            run_id: the run.
            settings: JSON values of everything that changes the trained model.

        Raises:
            ValueError: the run was first fitted with other settings; the message lists
                each difference (``epochs: 5 -> 8``) and says to use a new run id.
        """
        settings = json.loads(json.dumps(settings, sort_keys=True))  # as it will be read
        path = self.settings_path(run_id)
        if not self.exists(path):
            if self.exists(self.path(run_id, "checkpoints")):
                logger.warning("run %s has checkpoints but no recorded settings (trained by "
                               "an older focalseq); recording this fit's settings", run_id)
            self.write_json(path, settings)
            return
        differences = settings_differences(self.read_json(path), settings)
        if differences:
            raise ValueError(
                f"runId: run {run_id!r} was trained with other settings ({path}); this fit "
                f"differs in {len(differences)}: " + "; ".join(differences) + ". A run id "
                "means one training: use a new runId (train.run_id), or fit with the "
                "recorded settings to resume or reuse it")


def settings_differences(old: dict, new: dict, prefix: str = "") -> list:
    """``key: old -> new`` for every value that differs, nested keys dotted, sorted.

    >>> settings_differences({"epochs": 5, "network": {"hidden_size": 8}},
    ...                      {"epochs": 8, "network": {"hidden_size": 8}, "seed": 1})
    ['epochs: 5 -> 8', 'seed: (absent) -> 1']
    """
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(settings_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {_show(a)} -> {_show(b)}")
    return out


_ABSENT = object()


def _show(value) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)
