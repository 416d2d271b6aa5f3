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
import re
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
    epochs still to come (None without a known epoch count, and after the last epoch).

    >>> seconds_left([{"epoch": 0, "seconds": 3.0}, {"epoch": 1, "seconds": 5.0}],
    ...              {"epoch": 1, "epochs": 4, "seconds": 5.0})
    8.0
    """
    epochs = record.get("epochs")
    if not isinstance(epochs, int):
        return None
    done = [r["seconds"] for r in records if r["epoch"] <= record["epoch"] and "seconds" in r]
    to_come = epochs - record["epoch"] - 1
    if not done or to_come <= 0:
        return None
    return sum(done) / len(done) * to_come


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
    lost_before = lost_executors()
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
            # A rank without an exit status lost its task service, most likely with its
            # executor: give Spark a moment to record the executor's loss.
            wait = 3.0 if "Exit code: None" in str(exc) else 0.0
            raise RuntimeError(failure_message(run_id, exc, store,
                                               _newly_lost(lost_before, wait))) from exc
        finally:
            _restore_signal_handlers(handlers)
    last = {r.get("rank"): r.get("last_epoch") for r in results}
    logger.info("run %s: %d workers finished in %.1fs; last epoch trained by rank: %s",
                run_id, num_proc, time.time() - started,
                ", ".join(f"{rank} {_epoch_name(e)}" for rank, e in sorted(last.items())))
    if len(set(last.values())) > 1:
        logger.warning("run %s: the ranks stopped at different epochs (%s)", run_id, last)
    return next(r for r in results if r.get("rank") == 0)


def _epoch_name(epoch) -> str:
    """1-based, as the epoch lines count; 'none' when a rank trained no epoch."""
    return "none" if epoch is None else str(epoch + 1)


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


# Horovod's launcher names the first worker process that exited non-zero by its index,
# which is its rank (processes are launched in rank order).
_HOROVOD_EXIT = re.compile(r"Process name:\s*(\S+)\s+Exit code:\s*(-?\d+|None)")
# Spark's words for an executor that went away under a running task.
_EXECUTOR_LOST = re.compile(r"ExecutorLostFailure \(executor (\S+) exited[^)]*\)"
                            r"(?:\s*Reason:\s*([^\n]+))?")
_COMMAND_EXIT = re.compile(r"exited with code (-?\d+)")


def lost_executors() -> dict:
    """{executor id: (host:port, reason)} of the executors the active Spark app removed.

    The reason is Spark's, e.g. "Command exited with code 137" (the worker saw the JVM
    die). Empty without a SparkContext or where Spark's status store cannot be read.
    """
    from pyspark import SparkContext
    from py4j.protocol import Py4JError

    sc = SparkContext._active_spark_context
    if sc is None:
        return {}
    try:
        executors = sc._jsc.sc().statusStore().executorList(False)
        lost = {}
        for i in range(executors.size()):
            e = executors.apply(i)
            if not e.isActive() and e.id() != "driver":
                reason = e.removeReason()
                lost[e.id()] = (e.hostPort(), reason.get() if reason.isDefined() else "")
        return lost
    except (Py4JError, AttributeError):  # a Spark whose private status API differs
        return {}


def _newly_lost(before: dict, wait: float = 3.0) -> dict:
    """Executors lost since `before`; waits briefly, as Spark records a loss asynchronously."""
    deadline = time.time() + wait
    while True:
        lost = {k: v for k, v in lost_executors().items() if k not in before}
        if lost or time.time() >= deadline:
            return lost
        time.sleep(0.5)


def failure_message(run_id, exc, store, executors=None) -> str:
    """What ended a failed run, the lost executor or rank and its exit status first.

    A process that is killed (SIGKILL by the kernel's OOM killer, a preempted node,
    kill -9) writes no traceback of its own; the tracebacks the other ranks write then
    only show the knock-on ("Horovod has been shut down"). So the first line names what
    was lost: the executors Spark removed during the run (`executors`, from
    `lost_executors`: a rank dies with its executor), else the rank Horovod saw exit
    first; the workers' tracebacks follow, first failure first.

    >>> failure_message("r1", RuntimeError("Horovod detected that one or more processes "
    ...     "exited with non-zero status, thus causing the job to be terminated. The first "
    ...     "process to do so was:\\nProcess name: 1\\nExit code: 137\\n"), None
    ...     ).splitlines()[0]
    'distributed training of run r1 failed: rank 1 exited with status 137 (killed by SIGKILL)'
    >>> first = failure_message("r1", RuntimeError("Process name: 1\\nExit code: None"),
    ...     None, {"1": ("10.0.0.3:4100", "Command exited with code 137")}).splitlines()[0]
    >>> for part in first.split(" failed: ")[1].split("; "):
    ...     print(part)
    executor 1 on 10.0.0.3:4100 was lost (Command exited with code 137 (killed by SIGKILL))
    Horovod rank 1 exited with no exit status (its task service is gone)
    """
    text = str(exc).replace("\\n", "\n")
    lost = _HOROVOD_EXIT.search(text)
    executor = _EXECUTOR_LOST.search(text)
    rank = None
    if lost:
        status = ("no exit status (its task service is gone)" if lost.group(2) == "None"
                  else describe_exit(int(lost.group(2))))
        rank = f"rank {lost.group(1)} exited with {status}"
    if executors:
        cause = "; ".join(f"executor {eid} on {host} was lost ({_executor_reason(reason)})"
                          for eid, (host, reason) in sorted(executors.items()))
        if rank:
            cause += f"; Horovod {rank}"
    elif rank:
        cause = rank
    elif executor:
        reason = (executor.group(2) or "").strip()
        cause = f"executor {executor.group(1)} was lost" + (f": {reason}" if reason else "")
    else:
        first = next((line for line in text.splitlines() if line.strip()), repr(exc))
        cause = f"{type(exc).__name__}: {first.strip()}"
    parts = [f"distributed training of run {run_id} failed: {cause}"]
    tracebacks = _worker_errors(store, run_id) if store is not None else ""
    if tracebacks:
        parts.append("the workers' own errors, first failure first:\n" + tracebacks)
    if not lost and not executor and not executors and text.strip() != parts[0]:
        parts.append(f"raised by horovod.spark.run: {text.strip()[:4000]}")
    return "\n".join(parts)


def _executor_reason(reason: str) -> str:
    """Spark's removal reason, its exit code explained: `Command exited with code 137
    (killed by SIGKILL)`."""
    if not reason:
        return "no reason recorded"
    code = _COMMAND_EXIT.search(reason)
    if code is None:
        return reason
    explained = describe_exit(int(code.group(1)))
    return reason + explained[len(f"status {code.group(1)}"):]


def describe_exit(code: int) -> str:
    """`status 137 (killed by SIGKILL)` for a process exit code (negative: the signal).

    >>> describe_exit(-9), describe_exit(1)
    ('status -9 (killed by SIGKILL)', 'status 1')
    """
    number = -code if code < 0 else code - 128 if 128 < code < 160 else None
    if number is None:
        return f"status {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"status {code}"
    return f"status {code} (killed by {name})"


def _worker_errors(store, run_id) -> str:
    """The workers' own tracebacks, the first failure first."""
    texts = []
    for path in store.glob(store.path(run_id, "errors", "*_rank_*.txt")):
        rank = path.rsplit("_rank_", 1)[-1][:-len(".txt")]
        texts.append(f"--- worker rank {rank} ---\n" +
                     store.read_bytes(path).decode(errors="replace"))
    return "\n".join(texts)
