"""Worker side of distributed training: runs inside each Horovod process.

`train_worker(spec)` is what `horovod.spark.run` calls on the executors. `spec` is a dict
of plain values built by the driver (focalseq.stages.bilstm.BiLSTMEstimator). TensorFlow and Horovod are
imported here, never by the stages, so importing a stage stays cheap.

Per worker: init Horovod, pin one GPU by local rank (CPU threads otherwise), read this
rank's petastorm shard, build the network and the loss from the registry, wrap the
optimizer in hvd.DistributedOptimizer with the learning rate scaled by the number of
workers (warmed up from the one-worker rate), restore the last checkpoint when resuming,
broadcast rank 0's variables, and train. Rank 0 alone evaluates the validation split,
writes checkpoints, progress and MLflow metrics, and decides early stopping; the decision
is broadcast so every rank stops at the same epoch.
"""
import io
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
import warnings

import numpy as np
import tensorflow as tf

from focalseq.training.packed import one_collective, packable

logger = logging.getLogger(__name__)

INPUTS = ("token_ids", "shape")


def train_worker(spec: dict) -> dict:
    """Entry point of each Horovod process; a failure leaves its traceback in the store."""
    _exit_on_sigterm()
    scratch = tempfile.mkdtemp(prefix=f"focalseq-{spec['run_id']}-")
    try:
        return _train(spec, scratch)
    except BaseException:
        _report_failure(spec)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _exit_on_sigterm():
    """SIGTERM (how Horovod stops the workers of an interrupted or failed job) raises
    SystemExit, so `finally` blocks run and the scratch folder is removed; by default
    the process would die on the spot and leave it behind."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _report_failure(spec):
    from focalseq.training.run_store import RunStore

    rank = os.environ.get("HOROVOD_RANK", "unknown")
    store = RunStore(spec["store"])
    # The name sorts by time, so the driver shows the first failure (the cause) first.
    name = f"{time.time_ns():020d}_rank_{rank}.txt"
    store.write_bytes(store.path(spec["run_id"], "errors", name), traceback.format_exc().encode())


def _train(spec: dict, scratch: str) -> dict:
    from focalseq.training.run_store import RunStore

    hvd = _init_horovod(spec)
    store = RunStore(spec["store"])
    run_id, dims = spec["run_id"], spec["dims"]
    state = store.checkpoint_state(run_id)
    initial_epoch = 0 if state is None else state["epoch"] + 1
    done = initial_epoch >= spec["epochs"] or bool((state or {}).get("stopped"))

    train = None
    steps = 1
    if not done:
        train = read_windows(store.url(run_id, "data", "part=train"), dims, hvd.rank(),
                             hvd.size())
        steps = _steps_per_epoch(hvd, len(train["mask"]), spec["batch_size"])
    model, loss = _build_model(hvd, spec, steps)
    if state is not None:
        _restore(model, store, run_id, state["epoch"], scratch)
    if done:
        return _finish(model, store, spec, hvd.rank(), initial_epoch, scratch)

    val = None
    if spec["has_validation"] and hvd.rank() == 0:
        val = read_windows(store.url(run_id, "data", "part=validation"), dims, 0, 1)
    _broadcast_variables(hvd, model)
    callbacks = [ValidateAndCheckpoint(hvd, model, loss, store, spec, val, state, steps, scratch)]
    if getattr(loss, "progress", None) is not None:
        from focalseq.losses import CurriculumCallback

        callbacks.append(CurriculumCallback(loss, spec["epochs"]))
    model.fit(_train_dataset(train, spec, hvd.rank()), epochs=spec["epochs"],
              initial_epoch=initial_epoch, steps_per_epoch=steps, callbacks=callbacks,
              verbose=0)
    return _finish(model, store, spec, hvd.rank(), initial_epoch, scratch)


# Setup ---------------------------------------------------------------------------------


# Horovod's background thread coordinates the ranks once per cycle. With one collective
# a step (focalseq.training.packed) the cycle's wait is most of a CPU step's
# communication: 1 ms (Horovod's default) gave 2 workers x batch 32 0.96-1.07x the
# in-memory throughput, 5 ms 0.84x (benchmarks/train_throughput.py). HOROVOD_CYCLE_TIME
# overrides.
CYCLE_TIME_MS = "1"


def _init_horovod(spec):
    import horovod.tensorflow.keras as hvd

    os.environ.setdefault("HOROVOD_CYCLE_TIME", CYCLE_TIME_MS)  # read by hvd.init()
    hvd.init()
    _configure_devices(hvd, spec)
    # The same seed on every rank: identical initial weights. Shuffling differs by rank.
    tf.keras.utils.set_random_seed(spec["seed"])
    return hvd


def _configure_devices(hvd, spec):
    """One GPU per process by local rank when GPUs exist; otherwise a share of the CPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if hvd.local_size() > len(gpus):
            logger.warning("%d workers on this host share %d GPUs", hvd.local_size(), len(gpus))
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.set_visible_devices(gpu, "GPU")
        tf.config.experimental.set_memory_growth(gpu, True)
        if spec.get("mixed_precision"):
            tf.keras.mixed_precision.set_global_policy("mixed_float16")
        return
    if spec.get("mixed_precision"):
        logger.warning("mixedPrecision ignored: no GPU in this worker")
    threads = spec.get("threads_per_worker") or cpu_threads(hvd.local_size())
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def cpu_threads(workers_on_host: int) -> int:
    """This host's usable CPUs divided among its worker processes (at least one each)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, workers_on_host))


def read_windows(url: str, dims: dict, shard: int, shard_count: int) -> dict:
    """Reads one shard of windowed Parquet with petastorm into dense numpy arrays."""
    from petastorm import make_batch_reader

    W, K, F, L = dims["window"], dims["max_tokens"], dims["n_shape"], len(dims["labels"])
    parts = {"token_ids": [], "shape": [], "y": [], "mask": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyarrow legacy-dataset notices
        with make_batch_reader(url, schema_fields=list(parts), cur_shard=shard,
                               shard_count=shard_count, num_epochs=1,
                               shuffle_row_groups=False, reader_pool_type="dummy") as reader:
            for batch in reader:
                for name in parts:
                    column = getattr(batch, name)
                    if len(column):
                        parts[name].append(np.stack(column))
    shapes = {"token_ids": (W, K), "shape": (W, F), "y": (W, L), "mask": (W,)}
    dtypes = {"token_ids": np.int32, "shape": np.float32, "y": np.float32, "mask": np.float32}
    return {name: (np.concatenate(chunks) if chunks else np.zeros((0,) + shapes[name]))
            .reshape((-1,) + shapes[name]).astype(dtypes[name]) for name, chunks in parts.items()}


def _steps_per_epoch(hvd, n_local: int, batch_size: int) -> int:
    """Every rank must run the same number of steps, or the allreduce would hang."""
    import horovod.tensorflow as hvd_tf

    sizes = hvd_tf.allgather_object(n_local)
    if min(sizes) == 0:
        raise ValueError(f"training data: some workers got no windows (windows per worker: "
                         f"{sizes}); use fewer workers (numProc) or more training data")
    return max(1, min(sizes) // batch_size)


def build_plain_network(spec, loss=None) -> tf.keras.Model:
    """The spec's network, uncompiled (`loss` decides whether it has a projection head)."""
    from focalseq.training.network import build_network

    dims = spec["dims"]
    net = dict(spec["network"])
    rep_dim = net.pop("representation_dim", 64)
    if not getattr(loss, "needs_representation", False):
        rep_dim = 0
    return build_network(dims["window"], dims["max_tokens"], dims["n_shape"],
                         len(dims["labels"]), multi_label=dims["multi_label"],
                         representation_dim=rep_dim, **net)


def build_loss_for(spec):
    from focalseq.losses import build_loss

    dims = spec["dims"]
    return build_loss(spec["loss"], spec["loss_config"], dims["labels"],
                      label_counts=spec["label_counts"], multi_label=dims["multi_label"])


@tf.keras.saving.register_keras_serializable(package="focalseq")
class WarmupSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `peak * start_fraction` to `peak` over `warmup_steps` steps,
    optionally times a cosine decay to 0 over `decay_steps` steps (0: no decay).

    With `start_fraction = 1 / workers` this is Goyal et al. (2017), "Accurate, Large
    Minibatch SGD": start at the one-worker rate, reach the scaled rate after warm-up.
    The cosine factor is Loshchilov & Hutter (2017), SGDR, without restarts: the last
    epochs take small steps, so the final weights do not depend on where the last large
    step happened to land. Computed in the graph from the optimizer's step counter, so it
    costs nothing per batch and continues correctly when a run resumes with the optimizer
    state restored.
    """

    def __init__(self, peak, warmup_steps, start_fraction, decay_steps=0):
        super().__init__()
        self.peak, self.warmup_steps, self.start_fraction = peak, warmup_steps, start_fraction
        self.decay_steps = decay_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.peak, tf.float32)
        if self.warmup_steps > 0:
            progress = tf.minimum(1.0, step / float(self.warmup_steps))
            rate = rate * (self.start_fraction + (1.0 - self.start_fraction) * progress)
        if self.decay_steps > 0:
            done = tf.minimum(1.0, step / float(self.decay_steps))
            rate = rate * 0.5 * (1.0 + tf.cos(np.pi * done))
        return rate

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "start_fraction": self.start_fraction, "decay_steps": self.decay_steps}


def sum_duplicate_rows(grad):
    """An embedding gradient with each row once, duplicates summed.

    The embedding's gradient has one row per token position in the batch (padding and
    repeated words included); Horovod allgathers those rows. Summing rows of the same id
    first sends one row per distinct token: the same update, several times fewer bytes.
    """
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    ids, positions = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(ids)[0])
    return tf.IndexedSlices(values, ids, grad.dense_shape)


def _deduplicating(optimizer_class):
    """`optimizer_class` whose sparse gradients leave `_compute_gradients` deduplicated.

    hvd.DistributedOptimizer subclasses the optimizer's class and allreduces what this
    method returns, so the deduplication happens before any communication.
    """
    class Deduplicating(optimizer_class):
        def _compute_gradients(self, loss, var_list, grad_loss=None, tape=None):
            pairs = super()._compute_gradients(loss, var_list, grad_loss, tape)
            return [(sum_duplicate_rows(g), v) for g, v in pairs]

    Deduplicating.__name__ = optimizer_class.__name__
    return Deduplicating


OPTIMIZERS = {"adam": tf.keras.optimizers.legacy.Adam, "sgd": tf.keras.optimizers.legacy.SGD,
              "rmsprop": tf.keras.optimizers.legacy.RMSprop}


def _build_model(hvd, spec, steps_per_epoch):
    loss = build_loss_for(spec)
    model = build_plain_network(spec, loss)
    peak = spec["learning_rate"] * hvd.size()
    warmup_steps = int(round(spec["warmup_epochs"] * steps_per_epoch))
    decay_steps = spec["epochs"] * steps_per_epoch if spec.get("lr_decay") == "cosine" else 0
    lr = WarmupSchedule(peak, warmup_steps, 1.0 / hvd.size(), decay_steps) \
        if warmup_steps > 0 or decay_steps > 0 else peak
    optimizer_class = _deduplicating(OPTIMIZERS[spec["optimizer"]])
    # CPU workers: one allgather a step for every gradient instead of Horovod's allreduce
    # plus two allgathers for the embedding; the latency of each collective, not its
    # bytes, dominates a CPU step. GPUs keep Horovod's (NCCL) allreduce.
    packed = (hvd.size() > 1 and packable(model.trainable_variables)
              and not tf.config.list_physical_devices("GPU"))
    if packed:
        optimizer_class = one_collective(optimizer_class, hvd)
    opt = optimizer_class(learning_rate=lr, clipnorm=spec.get("clipnorm"))
    if not packed:
        opt = hvd.DistributedOptimizer(opt)
    model.compile(optimizer=opt, loss=loss, experimental_run_tf_function=False)
    return model, loss


def _broadcast_variables(hvd, model):
    import horovod.tensorflow as hvd_tf

    variables = list(model.variables) + list(model.optimizer.variables())
    hvd_tf.broadcast_variables(variables, root_rank=0)


def _train_dataset(data, spec, rank):
    """Shuffled fixed-size batches, reshuffled every pass over this rank's windows.

    Batches are gathered by index from tensors held once in the pipeline (as Keras does
    for numpy input), not sliced element by element, so the input costs almost nothing
    next to a training step.
    """
    n, batch = len(data["mask"]), spec["batch_size"]
    tensors = ({k: data[k] for k in INPUTS}, data["y"], data["mask"])
    indices = (tf.data.Dataset.range(n)
               .shuffle(n, seed=spec["seed"] + rank, reshuffle_each_iteration=True)
               .repeat().batch(min(batch, n), drop_remainder=True))
    held = tf.data.Dataset.from_tensors(tensors).repeat()

    def gather(index, arrays):
        return tf.nest.map_structure(lambda a: tf.gather(a, index), arrays)

    options = tf.data.Options()
    # One batch ahead on one input thread: the training step, not the input, should
    # have the CPU (a worker usually owns a single core).
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return (tf.data.Dataset.zip((indices, held)).map(gather).prefetch(1)
            .with_options(options))


# Checkpoints ---------------------------------------------------------------------------


def _weights_bytes(model, scratch) -> bytes:
    path = os.path.join(scratch, "w.weights.h5")
    model.save_weights(path)
    with open(path, "rb") as fh:
        data = fh.read()
    os.remove(path)
    return data


def _load_weights(model, data: bytes, scratch):
    path = os.path.join(scratch, "r.weights.h5")
    with open(path, "wb") as fh:
        fh.write(data)
    model.load_weights(path)
    os.remove(path)


def _optimizer_bytes(optimizer) -> bytes:
    buf = io.BytesIO()
    weights = optimizer.get_weights()
    np.savez(buf, *weights)
    return buf.getvalue()


def _load_optimizer(model, data: bytes):
    with np.load(io.BytesIO(data)) as arrays:
        weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    model.optimizer._create_all_weights(model.trainable_variables)
    model.optimizer.set_weights(weights)


def _restore(model, store, run_id, epoch, scratch):
    """Weights and optimizer state (step counter, moments) of a finished epoch."""
    _load_weights(model, store.read_bytes(store.checkpoint_weights_path(run_id, epoch)), scratch)
    opt_path = store.checkpoint_optimizer_path(run_id, epoch)
    if store.exists(opt_path):
        _load_optimizer(model, store.read_bytes(opt_path))


# The epoch end -------------------------------------------------------------------------


def predict_probs(model, data: dict, n_labels: int, batch_size: int = 256) -> np.ndarray:
    out = model.predict({k: data[k] for k in INPUTS}, batch_size=batch_size, verbose=0)
    return out[..., :n_labels]


def window_f1(probs, y, mask, labels, multi_label=False) -> dict:
    """Per-label F1 over the unmasked lines of a set of windows."""
    m = mask.reshape(-1) > 0
    p = probs.reshape(-1, probs.shape[-1])[m]
    t = y.reshape(-1, y.shape[-1])[m]
    if multi_label:
        pred = p >= 0.5
    else:
        pred = np.eye(p.shape[1], dtype=bool)[p.argmax(1)]
    true = t > 0.5
    scores = {}
    for j, label in enumerate(labels):
        tp = float(np.sum(pred[:, j] & true[:, j]))
        fp = float(np.sum(pred[:, j] & ~true[:, j]))
        fn = float(np.sum(~pred[:, j] & true[:, j]))
        scores[label] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return scores


class ValidateAndCheckpoint(tf.keras.callbacks.Callback):
    """Every rank: average the epoch loss. Rank 0: validation, checkpoint, progress,
    MLflow and the early-stopping decision, which is broadcast to all ranks."""

    def __init__(self, hvd, model, loss, store, spec, val, state, steps, scratch):
        super().__init__()
        self.hvd, self.net, self.loss, self.store = hvd, model, loss, store
        self.spec, self.val, self.scratch = spec, val, scratch
        self.windows = steps * spec["batch_size"] * hvd.size()
        state = state or {}
        self.best = state.get("best_score", -np.inf)
        self.best_epoch = state.get("best_epoch", -1)
        self.wait = state.get("wait", 0)
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()
        self.cpu_started = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        import horovod.tensorflow as hvd_tf

        train_seconds = time.time() - self.started
        local = [float((logs or {}).get("loss", np.nan)), time.process_time() - self.cpu_started]
        # One collective: the ranks' mean loss and their CPU seconds of the epoch together.
        total = hvd_tf.allreduce(tf.constant(local, tf.float64), op=hvd_tf.Sum,
                                 name=f"epoch_end_{epoch}").numpy()
        loss, cpu_seconds = float(total[0]) / self.hvd.size(), float(total[1])
        stop = 0
        if self.hvd.rank() == 0:
            stop = int(self._rank0_epoch_end(epoch, loss, train_seconds, cpu_seconds))
        stop = int(hvd_tf.broadcast(tf.constant(stop), 0, name=f"stop_{epoch}").numpy())
        if stop:
            self.model.stop_training = True

    def _rank0_epoch_end(self, epoch, loss, train_seconds, cpu_seconds):
        spec, run_id = self.spec, self.spec["run_id"]
        record = {"epoch": epoch, "epochs": spec["epochs"], "loss": loss,
                  "learning_rate": _current_lr(self.net.optimizer),
                  "windows": self.windows, "train_seconds": round(train_seconds, 3),
                  "train_cpu_seconds": round(cpu_seconds, 3)}
        score = -loss
        if self.val is not None and len(self.val["mask"]):
            record.update(self._validate())
            score = record["val_focal_macro_f1"]
        improved = score > self.best + spec["min_delta"]
        if improved:
            self.best, self.best_epoch, self.wait = score, epoch, 0
        else:
            self.wait += 1
        patience = spec["early_stopping_patience"]
        stop = bool(patience and self.wait >= patience)
        self._checkpoint(epoch, improved, stop)
        record["seconds"] = round(time.time() - self.started, 3)
        self.store.append_line(self.store.progress_path(run_id), json.dumps(record))
        log_mlflow(spec, record, epoch)
        return stop

    def _validate(self) -> dict:
        labels, multi = self.spec["dims"]["labels"], self.spec["dims"]["multi_label"]
        out = self.net.predict({k: self.val[k] for k in INPUTS}, batch_size=256, verbose=0)
        # A fresh local copy: never communicates, and sees the curriculum's progress now.
        val_loss = self.loss.local_copy()(self.val["y"], out, sample_weight=self.val["mask"])
        f1 = window_f1(out[..., :len(labels)], self.val["y"], self.val["mask"], labels, multi)
        focal = self.spec["focal_labels"] or labels
        record = {"val_loss": float(val_loss)}
        record.update({f"val_f1_{label}": f1[label] for label in labels})
        record["val_focal_macro_f1"] = float(np.mean([f1[label] for label in focal]))
        return record

    def _checkpoint(self, epoch, improved, stop):
        store, run_id = self.store, self.spec["run_id"]
        weights = _weights_bytes(self.net, self.scratch)
        store.write_bytes(store.checkpoint_weights_path(run_id, epoch), weights)
        store.write_bytes(store.checkpoint_optimizer_path(run_id, epoch),
                          _optimizer_bytes(self.net.optimizer))
        if improved:
            store.write_bytes(store.path(run_id, "checkpoints", "best.weights.h5"), weights)
        # state.json is written last: it names an epoch only once that epoch's files exist.
        store.write_json(store.path(run_id, "checkpoints", "state.json"), {
            "epoch": epoch, "best_score": self.best, "best_epoch": self.best_epoch,
            "wait": self.wait, "stopped": stop})
        if epoch >= 2:  # keep two epochs: the newest is what state.json names
            store.remove(store.checkpoint_weights_path(run_id, epoch - 2))
            store.remove(store.checkpoint_optimizer_path(run_id, epoch - 2))


def _current_lr(optimizer) -> float:
    lr = optimizer.learning_rate
    if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(optimizer.iterations)
    return float(tf.keras.backend.get_value(lr))


_METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


def log_mlflow(spec, record, epoch):
    """Logs one epoch's numbers to the driver's active MLflow run (rank 0 only)."""
    if not spec.get("tracking_uri") or not spec.get("mlflow_run_id"):
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    names = {"loss": "train_loss", "seconds": "epoch_seconds"}
    metrics = [Metric(_METRIC_KEY.sub("_", names.get(k, k)), float(v), now, epoch)
               for k, v in record.items()
               if k not in ("epoch", "epochs") and v is not None and np.isfinite(v)]
    try:
        MlflowClient(spec["tracking_uri"]).log_batch(spec["mlflow_run_id"], metrics=metrics)
    except Exception as exc:  # tracking is a side channel: an outage must not stop training
        logger.warning("MLflow: epoch %d metrics not logged: %s", epoch, exc)


def _finish(model, store, spec, rank, initial_epoch, scratch) -> dict:
    """Rank 0 writes the final network (best epoch if validated) and reports the run."""
    if rank != 0:
        return {"rank": rank}
    run_id = spec["run_id"]
    best = store.path(run_id, "checkpoints", "best.weights.h5")
    if spec["restore_best"] and store.exists(best):
        _load_weights(model, store.read_bytes(best), scratch)
    # A fresh float32 network without optimizer or loss: what prediction loads.
    tf.keras.mixed_precision.set_global_policy("float32")
    plain = build_plain_network(spec, model.loss)
    plain.set_weights(model.get_weights())
    path = os.path.join(scratch, "network.keras")
    plain.save(path)
    with open(path, "rb") as fh:
        store.write_bytes(store.model_path(run_id), fh.read())
    return {"rank": 0, "initial_epoch": initial_epoch, "state": store.checkpoint_state(run_id),
            "model_path": store.model_path(run_id)}
