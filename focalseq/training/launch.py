"""The driver's side of a Horovod training job: start it, watch it, explain how it ended.

`run_horovod` runs `focalseq.training.remote.train_worker` on `num_proc` Spark tasks
with `horovod.spark.run` and returns rank 0's result. While it runs, a thread tails rank
0's progress file in the run store and logs one line per epoch (with the time left), and
hands each record to the listeners of `epoch_listener` (the Python API prints them). A
worker failure becomes
a `RuntimeError` holding the workers' own tracebacks (the first failure, the cause,
first); Ctrl-C or SIGTERM of the driver becomes a `KeyboardInterrupt` after Horovod has
stopped the workers, and the user's signal handlers are restored.

>>> format_epoch({"epoch": 0, "epochs": 3, "loss": 0.5, "val_loss": 0.4,
...               "val_f1_Nomenclature": 0.8, "seconds": 2.0})
'epoch 1/3 | loss 0.5000 | val_loss 0.4000 | val F1 Nomenclature 0.800 | 2.0s'
"""
import contextlib
import contextvars
import json
import logging
import os
import shutil
import signal
import threading
import time

logger = logging.getLogger(__name__)


def check_slots(spark, num_proc):
    """Local mode runs at most local[N] tasks at once; Horovod would wait for the rest."""
    sc = spark.sparkContext
    if sc.master.startswith("local") and num_proc > sc.defaultParallelism:
        raise ValueError(f"numProc: {num_proc} workers need {num_proc} concurrent Spark tasks, "
                         f"but {sc.master} runs {sc.defaultParallelism}; use numProc <= "
                         f"{sc.defaultParallelism}")


def mlflow_target(tracking_uri: str):
    """(tracking URI, run id) of the active MLflow run, or (None, None) without one."""
    try:
        import mlflow
    except ImportError:
        return None, None
    run = mlflow.active_run()
    if run is None:
        return None, None
    return tracking_uri or mlflow.get_tracking_uri(), run.info.run_id


def read_progress(store, run_id) -> list:
    """The run's per-epoch records (every attempt's, in order)."""
    path = store.progress_path(run_id)
    if not store.exists(path):
        return []
    return [json.loads(line) for line in store.read_bytes(path).decode().splitlines() if line]


def format_epoch(record: dict, labels=None, seconds_left=None) -> str:
    """One driver log line: epoch, loss, validation loss, F1 of `labels`, time (and the
    estimated time left of the run, when given).

    >>> format_epoch({"epoch": 1, "epochs": 3, "loss": 0.5, "seconds": 2.0}, seconds_left=2.2)
    'epoch 2/3 | loss 0.5000 | 2.0s, about 2s left'
    """
    parts = [f"epoch {record['epoch'] + 1}/{record.get('epochs', '?')}",
             f"loss {record['loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4f}")
        names = labels or [k[len("val_f1_"):] for k in record if k.startswith("val_f1_")]
        parts.append("val F1 " + ", ".join(f"{name} {record[f'val_f1_{name}']:.3f}"
                                           for name in names if f"val_f1_{name}" in record))
    time_part = f"{record['seconds']:.1f}s"
    if seconds_left is not None:
        time_part += f", about {seconds_left:.0f}s left"
    parts.append(time_part)
    return " | ".join(parts)


# The callables `epoch_listener` installed in this context (a tuple: never mutated). A
# context variable rather than a module list, so concurrent fits in other threads or
# tasks do not see each other's listeners.
_EPOCH_LISTENERS = contextvars.ContextVar("focalseq_epoch_listeners", default=())


@contextlib.contextmanager
def epoch_listener(listener):
    """Within the block, `listener(run_id, record)` is called on the driver once per epoch
    record of every training run this thread starts (the record as `format_epoch` takes
    it). A listener that raises is logged and dropped, never stops training."""
    token = _EPOCH_LISTENERS.set(_EPOCH_LISTENERS.get() + (listener,))
    try:
        yield listener
    finally:
        _EPOCH_LISTENERS.reset(token)


class ProgressTail:
    """Logs each new record of rank 0's progress file on the driver, once per record, and
    hands it to the `epoch_listener`s of the thread that started the run."""

    def __init__(self, store, run_id, labels, period=1.0):
        self.store, self.run_id, self.labels, self.period = store, run_id, labels, period
        self.seen = len(read_progress(store, run_id))
        # Read here, in the caller's thread: the tail's own thread has a context of its own.
        self.listeners = list(_EPOCH_LISTENERS.get())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="focalseq-progress",
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()  # the last epochs may have landed after the final tick

    def _loop(self):
        while not self._stop.wait(self.period):
            self.poll()

    def poll(self):
        try:
            records = read_progress(self.store, self.run_id)
        except (OSError, ValueError):
            return  # a file mid-rename; read it on the next tick
        for record in records[self.seen:]:
            logger.info("run %s: %s", self.run_id,
                        format_epoch(record, self.labels, seconds_left(records, record)))
            for listener in list(self.listeners):
                try:
                    listener(self.run_id, record)
                except Exception:  # a printing callback must not end a training run
                    logger.exception("epoch listener %r failed; it is dropped", listener)
                    self.listeners.remove(listener)
        self.seen = max(self.seen, len(records))


def seconds_left(records, record):
    """The run's time left after `record`: its epochs' mean duration so far times the
    epochs still to come (None without a known epoch count).

    >>> seconds_left([{"epoch": 0, "seconds": 3.0}, {"epoch": 1, "seconds": 5.0}],
    ...              {"epoch": 1, "epochs": 4, "seconds": 5.0})
    8.0
    """
    epochs = record.get("epochs")
    if not isinstance(epochs, int):
        return None
    done = [r["seconds"] for r in records if r["epoch"] <= record["epoch"] and "seconds" in r]
    if not done:
        return None
    return sum(done) / len(done) * max(0, epochs - record["epoch"] - 1)


def _controller() -> dict:
    """MPI when Horovod was built with it and mpirun exists, else Gloo."""
    from horovod.common.util import mpi_built

    if mpi_built() and shutil.which("mpirun"):
        return {"use_mpi": True}
    return {"use_gloo": True}


NICS_CONF = "spark.focalseq.horovod.nics"
NICS_ENV = "FOCALSEQ_HOROVOD_NICS"


def horovod_nics():
    """The network interfaces the ranks share, or None to let Horovod find them.

    Read from the Spark conf key `spark.focalseq.horovod.nics`, else the environment
    variable FOCALSEQ_HOROVOD_NICS: comma-separated interface names (e.g. ``eth0``).
    Horovod left to itself may pick one every host has but that does not connect them
    (``lo`` on hosts that are network namespaces of one machine, a docker bridge...).
    """
    from pyspark.sql import SparkSession

    value = None
    active = SparkSession.getActiveSession()
    if active is not None:
        value = active.conf.get(NICS_CONF, None)
    value = value or os.environ.get(NICS_ENV, "")
    nics = {name.strip() for name in value.split(",") if name.strip()}
    return nics or None


def run_horovod(spec, num_proc, store, worker=None) -> dict:
    """Runs `worker(spec)` (default: `train_worker`) on `num_proc` ranks; rank 0's result.

    Raises:
        RuntimeError: a worker failed; the message holds the workers' own tracebacks.
        KeyboardInterrupt: the driver was interrupted (SIGINT/SIGTERM); Horovod has
            stopped the workers and cancelled its Spark job group.
    """
    import horovod.spark

    if worker is None:
        from focalseq.training.remote import train_worker as worker

    run_id = spec["run_id"]
    handlers = _signal_handlers()
    started = time.time()
    with ProgressTail(store, run_id, spec["focal_labels"] or spec["dims"]["labels"]):
        try:
            results = horovod.spark.run(worker, args=(spec,), num_proc=num_proc,
                                        verbose=0, nics=horovod_nics(), **_controller())
        except Exception as exc:
            if _gloo_interrupted(handlers):
                raise KeyboardInterrupt(f"training of run {run_id} interrupted; its workers "
                                        f"were stopped. Fit with runId={run_id!r} to resume "
                                        "from the last complete epoch") from exc
            raise RuntimeError(f"distributed training of run {run_id} failed:\n"
                               f"{_worker_errors(store, run_id) or exc}") from exc
        finally:
            _restore_signal_handlers(handlers)
    logger.info("run %s: %d workers finished in %.1fs", run_id, num_proc, time.time() - started)
    return next(r for r in results if r.get("rank") == 0)


def _signal_handlers() -> dict:
    """SIGINT/SIGTERM handlers before the run (only the main thread can set them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers):
    # Horovod's Gloo launcher replaces both handlers for good with ones that only stop
    # its workers; after the run Ctrl-C must interrupt the user's program again.
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _gloo_interrupted(handlers) -> bool:
    """True when Horovod's Gloo launcher caught SIGINT/SIGTERM during the run.

    Its handler only sets a threading.Event (in the handler's closure) that aborts the
    workers; the run then fails like any worker failure, so the event tells them apart.
    """
    for sig, before in handlers.items():
        handler = signal.getsignal(sig)
        if handler is before:
            continue
        for cell in getattr(handler, "__closure__", None) or ():
            event = cell.cell_contents
            if isinstance(event, threading.Event) and event.is_set():
                return True
    return False


def _worker_errors(store, run_id) -> str:
    """The workers' own tracebacks, the first failure (the cause) first."""
    texts = []
    for path in store.glob(store.path(run_id, "errors", "*_rank_*.txt")):
        rank = path.rsplit("_rank_", 1)[-1][:-len(".txt")]
        texts.append(f"--- worker rank {rank} ---\n" +
                     store.read_bytes(path).decode(errors="replace"))
    return "\n".join(texts)
