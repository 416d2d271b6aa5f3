"""Worker side of distributed training: runs inside each Horovod process.

`train_worker(spec)` is what `horovod.spark.run` calls on the executors. `spec` is a dict
of plain values built by the driver (focalseq.stages.bilstm.BiLSTMEstimator). TensorFlow and Horovod are
imported here, never by the stages, so importing a stage stays cheap.

Per worker: init Horovod, pin one GPU by local rank (CPU threads otherwise), find this
rank's row groups of the training Parquet and the steps per epoch every rank shares
(`focalseq.training.streaming`: the shard is read a few row groups at a time, never
whole), build the network and the loss from the registry, average the gradients with
one packed allgather or hvd.DistributedOptimizer's allreduce, whichever the collective
model finds cheaper for the job's workers (`choose_averaging`), with the learning rate
scaled by the number of workers (warmed up from the one-worker rate), restore the last
checkpoint when resuming, broadcast rank 0's variables, and train. At each epoch's end
every rank scores its files of the validation split line by line (`Validation`) and one
collective sums the counts; rank 0 writes checkpoints, progress and MLflow metrics, and
decides early stopping; the decision is broadcast so every rank stops at the same epoch.
"""
import io
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
import traceback
import warnings

import numpy as np
import tensorflow as tf

from focalseq.training import line_scores, streaming
from focalseq.training.packed import one_collective, packable

logger = logging.getLogger(__name__)

INPUTS = ("token_ids", "shape")


def train_worker(spec: dict) -> dict:
    """Entry point of each Horovod process; a failure leaves its traceback in the store."""
    from focalseq.training import scratch as scratch_folders

    _exit_on_sigterm()
    # Workers killed with SIGKILL on this host left theirs behind.
    scratch_folders.remove_stale()
    scratch = scratch_folders.make_scratch(spec["run_id"])
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
    run_id = spec["run_id"]
    state = store.checkpoint_state(run_id)
    initial_epoch = 0 if state is None else state["epoch"] + 1
    done = initial_epoch >= spec["epochs"] or bool((state or {}).get("stopped"))

    groups, steps, batch = [], 1, spec["batch_size"]
    if not done:
        groups = streaming.row_groups(store.fs, streaming.parquet_files(
            store.fs, store.path(run_id, "data", "part=train")))
        steps, batch = streaming.equal_steps(groups, hvd.size(), spec["batch_size"])
    model, loss = _build_model(hvd, spec, steps)
    if state is not None:
        _restore(model, store, run_id, state["epoch"], scratch)
    if done:
        return _finish(model, store, spec, hvd.rank(), initial_epoch, scratch, [])

    val_files = []
    if spec["has_validation"]:
        val_files = streaming.files_of_rank(streaming.parquet_files(
            store.fs, store.path(run_id, "data", "part=validation")), hvd.rank(), hvd.size())
    _broadcast_variables(hvd, model)
    callbacks = [ValidateAndCheckpoint(hvd, model, loss, store, spec, val_files, state,
                                       steps * batch, scratch)]
    if getattr(loss, "progress", None) is not None:
        from focalseq.losses import CurriculumCallback

        callbacks.append(CurriculumCallback(loss, spec["epochs"]))
    reader = streaming.WindowReader(store.fs, spec["dims"])
    batches = streaming.training_batches(
        reader, streaming.shard(groups, hvd.rank(), hvd.size()), batch, steps, spec["seed"],
        hvd.rank(), initial_epoch)
    history = model.fit(_train_dataset(batches, batch, spec["dims"]), epochs=spec["epochs"],
                        initial_epoch=initial_epoch, steps_per_epoch=steps,
                        callbacks=callbacks, verbose=0)
    return _finish(model, store, spec, hvd.rank(), initial_epoch, scratch, history.epoch)


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
    """Reads one whole shard of windowed Parquet with petastorm into dense numpy arrays.

    For inspection and tests; training streams its shard (`focalseq.training.streaming`).
    """
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
    # One packed allgather a step (fewest collectives: on CPU workers their latency, not
    # their bytes, dominates) or Horovod's allreduce once the allgather's volume, which
    # grows with the workers, costs more: the collective model's choice (docs/scaling.md).
    collective, dense_embedding = choose_averaging(hvd, spec, model)
    packed = hvd.size() > 1 and collective == "allgather"
    if packed:
        optimizer_class = one_collective(optimizer_class, hvd)
    opt = optimizer_class(learning_rate=lr, clipnorm=spec.get("clipnorm"))
    if not packed:
        opt = hvd.DistributedOptimizer(opt, sparse_as_dense=dense_embedding)
    model.compile(optimizer=opt, loss=loss, experimental_run_tf_function=False)
    return model, loss


def gradient_figures(spec, model):
    """The collective model's `Figures` of this network: its dense gradient bytes and the
    embedding rows a step touches (DEFAULT_ROWS_PER_SLOT of batch x window x tokens)."""
    from focalseq.training import collective_model as cm

    try:
        embedding = model.get_layer("token_embedding").embeddings
    except ValueError:
        embedding = None
    trainable = model.trainable_variables
    if embedding is not None and not any(v is embedding for v in trainable):
        embedding = None
    dense = sum(v.shape.num_elements() * v.dtype.size for v in trainable
                if v is not embedding)
    if embedding is None:
        return cm.Figures(batch=spec["batch_size"], dense_bytes=dense)
    dims = spec["dims"]
    slots = spec["batch_size"] * dims["window"] * dims["max_tokens"]
    rows, width = embedding.shape[0], embedding.shape[1:].num_elements()
    return cm.Figures(batch=spec["batch_size"], dense_bytes=dense,
                      sparse_rows=min(rows, cm.DEFAULT_ROWS_PER_SLOT * slots),
                      row_bytes=width * embedding.dtype.size,
                      embedding_bytes=rows * width * embedding.dtype.size)


def choose_averaging(hvd, spec, model):
    """(collective, sparse_as_dense): how the ranks average gradients.

    "allgather" is `focalseq.training.packed` (one collective a step), "allreduce"
    Horovod's DistributedOptimizer, with the embedding allreduced as a dense tensor when
    `sparse_as_dense`. `spec["collective"]` (train.collective) picks one, or "auto": the
    cheaper by `focalseq.training.collective_model` for hvd.size() workers, this
    network's gradient sizes and the model's default network figures (docs/scaling.md).
    The packed allgather needs float32 variables (`packable`); otherwise the allreduce.
    """
    from focalseq.training import collective_model as cm

    setting = spec.get("collective", "auto")
    if setting not in ("auto",) + cm.COLLECTIVES:
        raise ValueError(f"collective: {setting!r} is not one of auto, "
                         f"{', '.join(cm.COLLECTIVES)}")
    figures = gradient_figures(spec, model)
    n = hvd.size()
    collective = cm.choose_collective(n, figures) if setting == "auto" else setting
    if collective == "allgather" and not packable(model.trainable_variables):
        collective = "allreduce"
    dense_embedding = collective == "allreduce" and cm.sparse_as_dense(n, figures)
    if hvd.rank() == 0 and n > 1:
        logger.info("gradients averaged by %s%s over %d workers (%s; model: allgather "
                    "%.1f ms, allreduce %.1f ms a step)", collective,
                    " (sparse_as_dense)" if dense_embedding else "", n, setting,
                    1e3 * cm.allgather_seconds(n, figures),
                    1e3 * cm.allreduce_seconds(n, figures))
    return collective, dense_embedding


def _broadcast_variables(hvd, model):
    import horovod.tensorflow as hvd_tf

    variables = list(model.variables) + list(model.optimizer.variables())
    hvd_tf.broadcast_variables(variables, root_rank=0)


def _train_dataset(batches, batch_size: int, dims: dict):
    """The worker's batches (`focalseq.training.streaming.training_batches`) for Keras.

    Endless (Keras then keeps one iterator across epochs, so each epoch continues the
    generator where the last stopped) and with a fixed batch size, so the training step
    is traced once.
    """
    W, K, F, L = dims["window"], dims["max_tokens"], dims["n_shape"], len(dims["labels"])
    signature = ({"token_ids": tf.TensorSpec((batch_size, W, K), tf.int32),
                  "shape": tf.TensorSpec((batch_size, W, F), tf.float32)},
                 tf.TensorSpec((batch_size, W, L), tf.float32),
                 tf.TensorSpec((batch_size, W), tf.float32))

    def generate():
        for b in batches:
            yield {k: b[k] for k in INPUTS}, b["y"], b["mask"]

    options = tf.data.Options()
    # One batch ahead on one input thread: the training step, not the input, should
    # have the CPU (a worker usually owns a single core).
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return (tf.data.Dataset.from_generator(generate, output_signature=signature)
            .apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
            .prefetch(1).with_options(options))


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


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (getrusage, Unix)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Validation:
    """One rank's share of the per-epoch validation: its files of the validation split.

    The windows are read a row group at a time and scored by the network; each line gets
    the mean probability of the windows covering it (`focalseq.training.line_scores`), as
    the evaluator's predictions do, and counts once. A document's windows are all in one
    file (the estimator writes them so), hence on one rank.

    Args:
        net: the network being trained.
        loss: its loss (a fresh local copy scores each row group).
        reader: a `streaming.WindowReader` of the validation columns.
        files: this rank's validation files.
        dims: the windows' dimensions.
    """

    def __init__(self, net, loss, reader, files, dims, batch_size=256):
        self.net, self.loss, self.reader, self.files = net, loss, reader, files
        self.labels, self.multi_label = dims["labels"], dims["multi_label"]
        self.batch_size = batch_size
        self._forward = None

    def totals(self) -> np.ndarray:
        """[loss x positions, positions, lines, TP..., FP..., FN...] of this rank's share.

        Positions are the unmasked (window, line) pairs: the losses average over them, so
        weighting each row group's loss by its positions gives, summed over ranks, the
        loss of the whole split (exactly for the losses that are means over lines).
        """
        n = len(self.labels)
        counts = line_scores.LineCounts(n, self.multi_label)
        # A fresh local copy: never communicates, and sees the curriculum's progress now.
        loss = self.loss.local_copy()
        loss_sum, positions = 0.0, 0.0
        for path in self.files:
            for part in self.reader.file_batches(path):
                rows = len(part["mask"])
                if not rows:
                    continue
                out = self._predict(part)
                weight = float(part["mask"].sum())
                loss_sum += float(loss(part["y"], out, sample_weight=part["mask"])) * weight
                positions += weight
                counts.add(part["doc_id"], part["start"], part["n_valid"], out[..., :n],
                           part["y"])
        confusion = counts.finish()  # scores the last document: count lines after it
        return np.concatenate([[loss_sum, positions, counts.lines], confusion.reshape(-1)])

    def _predict(self, part) -> np.ndarray:
        if self._forward is None:
            # Traced once for any number of rows: the row groups' sizes vary.
            net = self.net
            signature = {name: tf.TensorSpec((None,) + tuple(x.shape[1:]), x.dtype)
                         for name, x in zip(net.input_names, net.inputs)}
            self._forward = tf.function(lambda inputs: net(inputs, training=False),
                                        input_signature=[signature])
        rows = len(part["mask"])
        return np.concatenate([
            self._forward({k: part[k][i:i + self.batch_size] for k in INPUTS}).numpy()
            for i in range(0, rows, self.batch_size)]).astype(np.float32, copy=False)

    def record(self, totals, focal_labels) -> dict:
        """The progress fields from the totals summed over the ranks."""
        n = len(self.labels)
        loss_sum, positions, lines = totals[:3]
        f1 = line_scores.f1_scores(np.asarray(totals[3:]).reshape(3, n))
        by_label = dict(zip(self.labels, f1.tolist()))
        record = {"val_loss": float(loss_sum / positions) if positions else float("nan"),
                  "val_lines": int(lines)}
        record.update({f"val_f1_{label}": by_label[label] for label in self.labels})
        record["val_focal_macro_f1"] = float(np.mean(
            [by_label[label] for label in (focal_labels or self.labels)]))
        return record


class ValidateAndCheckpoint(tf.keras.callbacks.Callback):
    """Every rank: its share of the validation split, then one collective that sums the
    epoch's loss, CPU time and validation counts. Rank 0: checkpoint, progress, MLflow
    and the early-stopping decision, which is broadcast to all ranks."""

    def __init__(self, hvd, model, loss, store, spec, val_files, state, windows_per_rank,
                 scratch):
        super().__init__()
        self.hvd, self.net, self.loss, self.store = hvd, model, loss, store
        self.spec, self.scratch = spec, scratch
        self.validation = None
        if spec["has_validation"]:
            reader = streaming.WindowReader(store.fs, spec["dims"],
                                            streaming.VALIDATION_COLUMNS)
            self.validation = Validation(model, loss, reader, val_files, spec["dims"])
        self.windows = windows_per_rank * hvd.size()
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
        if self.validation is not None:
            local.extend(self.validation.totals())
        local.append(peak_rss_mb())
        # One collective: every rank's loss, CPU seconds, validation counts and peak
        # memory; summed here (the memory: the largest).
        every = hvd_tf.allgather(tf.constant([local], tf.float64),
                                 name=f"epoch_end_{epoch}").numpy()
        total = every[:, :-1].sum(0)
        loss, cpu_seconds = float(total[0]) / self.hvd.size(), float(total[1])
        stop = 0
        if self.hvd.rank() == 0:
            record = {"epoch": epoch, "epochs": self.spec["epochs"], "loss": loss,
                      "learning_rate": _current_lr(self.net.optimizer),
                      "windows": self.windows, "train_seconds": round(train_seconds, 3),
                      "train_cpu_seconds": round(cpu_seconds, 3),
                      "worker_peak_rss_mb": round(float(every[:, -1].max()), 1)}
            if self.validation is not None and total[3] > 0:
                record.update(self.validation.record(total[2:], self.spec["focal_labels"]))
            stop = int(self._rank0_epoch_end(epoch, record))
        stop = int(hvd_tf.broadcast(tf.constant(stop), 0, name=f"stop_{epoch}").numpy())
        if stop:
            self.model.stop_training = True

    def _rank0_epoch_end(self, epoch, record):
        spec, run_id = self.spec, self.spec["run_id"]
        score = record.get("val_focal_macro_f1", -record["loss"])
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


def _finish(model, store, spec, rank, initial_epoch, scratch, epochs_run) -> dict:
    """Rank 0 writes the final network (best epoch if validated) and reports the run.

    Every rank reports the last epoch it trained (None: none in this attempt), so the
    driver can tell that all stopped together."""
    last_epoch = max(epochs_run) if len(epochs_run) else None
    if rank != 0:
        return {"rank": rank, "last_epoch": last_epoch}
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
            "model_path": store.model_path(run_id), "last_epoch": last_epoch}
