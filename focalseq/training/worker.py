"""Worker side of distributed training: runs inside each Horovod process.

`train_worker(spec)` is what `horovod.spark.run` calls on the executors. `spec` is a dict
of plain values built by the driver (focalseq.stages.bilstm). TensorFlow and Horovod are
imported here, never by the stages, so importing a stage stays cheap.

Per worker: init Horovod, pin one GPU by local rank (CPU otherwise), read this rank's
petastorm shard, build the network and the loss from the registry, wrap the optimizer in
hvd.DistributedOptimizer with the learning rate scaled by the number of workers (with
warm-up), broadcast rank 0's initial weights, and train. Rank 0 alone evaluates the
validation split, writes checkpoints, progress and MLflow metrics, and decides early
stopping; the decision is broadcast so every rank stops at the same epoch.
"""
import io
import json
import logging
import os
import tempfile
import time
import warnings

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def train_worker(spec: dict) -> dict:
    """Entry point of each Horovod process; a failure leaves its traceback in the store."""
    try:
        return _train(spec)
    except BaseException:
        import traceback

        from focalseq.training.store import Store

        rank = os.environ.get("HOROVOD_RANK", "unknown")
        try:
            Store(spec["store"]).write_bytes(
                Store(spec["store"]).path(spec["run_id"], "errors", f"rank_{rank}.txt"),
                traceback.format_exc().encode())
        finally:
            raise


def _train(spec: dict) -> dict:
    import horovod.tensorflow.keras as hvd

    hvd.init()
    _configure_devices(hvd, spec)
    tf.keras.utils.set_random_seed(spec["seed"] + hvd.rank())

    from focalseq.training.store import Store

    store = Store(spec["store"])
    run_id = spec["run_id"]
    dims = spec["dims"]
    train = read_windows(store.url(run_id, "data", "train"), dims, hvd.rank(), hvd.size())
    val = None
    if spec["has_validation"] and hvd.rank() == 0:
        val = read_windows(store.url(run_id, "data", "validation"), dims, 0, 1)

    steps = _steps_per_epoch(hvd, len(train["mask"]), spec["batch_size"])
    model, loss = _build_model(hvd, spec)
    state = store.checkpoint_state(run_id)
    initial_epoch = 0
    if state is not None:
        model.load_weights(_local_copy(store, store.checkpoint_weights_path(run_id, state["epoch"])))
        initial_epoch = state["epoch"] + 1
    if initial_epoch >= spec["epochs"] or (state or {}).get("stopped"):
        return _finish(model, store, spec, state, hvd.rank(), initial_epoch)

    dataset = _train_dataset(train, spec, hvd.rank())
    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.LearningRateWarmupCallback(
            initial_lr=spec["learning_rate"] * hvd.size(),
            warmup_epochs=spec["warmup_epochs"], steps_per_epoch=steps, verbose=0),
        EpochEnd(hvd, model, loss.local_copy(), store, spec, val, state, initial_epoch),
    ]
    curriculum = getattr(loss, "progress", None)
    if curriculum is not None:
        from focalseq.losses import CurriculumCallback

        callbacks.append(CurriculumCallback(loss, spec["epochs"]))
    model.fit(dataset, epochs=spec["epochs"], initial_epoch=initial_epoch,
              steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    return _finish(model, store, spec, store.checkpoint_state(run_id), hvd.rank(),
                   initial_epoch)


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


def _configure_devices(hvd, spec):
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.experimental.set_memory_growth(gpus[hvd.local_rank()], True)
        tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")
        if spec.get("mixed_precision"):
            tf.keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        threads = spec.get("threads_per_worker") or 0
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)


def _steps_per_epoch(hvd, n_local: int, batch_size: int) -> int:
    """Every rank must run the same number of steps, or the allreduce would hang."""
    import horovod.tensorflow as hvd_tf

    sizes = hvd_tf.allgather_object(n_local)
    if min(sizes) == 0:
        raise ValueError(f"training data: some workers got no windows (windows per worker: "
                         f"{sizes}); use fewer workers or write more row groups")
    return max(1, min(sizes) // batch_size)


def _build_model(hvd, spec):
    from focalseq.losses import build_loss
    from focalseq.training.network import build_network

    dims = spec["dims"]
    loss = build_loss(spec["loss"], spec["loss_config"], dims["labels"],
                      label_counts=spec["label_counts"], multi_label=dims["multi_label"])
    rep_dim = spec["network"].get("representation_dim", 64) \
        if getattr(loss, "needs_representation", False) else 0
    net_kwargs = {k: v for k, v in spec["network"].items() if k != "representation_dim"}
    model = build_network(dims["window"], dims["max_tokens"], dims["n_shape"],
                          len(dims["labels"]), multi_label=dims["multi_label"],
                          representation_dim=rep_dim, **net_kwargs)
    optimizers = {"adam": tf.keras.optimizers.legacy.Adam,
                  "sgd": tf.keras.optimizers.legacy.SGD,
                  "rmsprop": tf.keras.optimizers.legacy.RMSprop}
    opt = optimizers[spec["optimizer"]](learning_rate=spec["learning_rate"] * hvd.size(),
                                        clipnorm=spec.get("clipnorm"))
    model.compile(optimizer=hvd.DistributedOptimizer(opt), loss=loss,
                  experimental_run_tf_function=False)
    return model, loss


def _train_dataset(data, spec, rank):
    ds = tf.data.Dataset.from_tensor_slices(
        ({"token_ids": data["token_ids"], "shape": data["shape"]}, data["y"], data["mask"]))
    ds = ds.shuffle(len(data["mask"]), seed=spec["seed"] + rank, reshuffle_each_iteration=True)
    return ds.repeat().batch(spec["batch_size"]).prefetch(2)


def predict_probs(model, data: dict, n_labels: int, batch_size: int = 256) -> np.ndarray:
    out = model.predict({"token_ids": data["token_ids"], "shape": data["shape"]},
                        batch_size=batch_size, verbose=0)
    return out[..., :n_labels]


def window_f1(probs, y, mask, labels, multi_label=False) -> dict:
    """Per-label F1 over the unmasked lines of a set of windows."""
    m = mask.reshape(-1) > 0
    p = probs.reshape(-1, probs.shape[-1])[m]
    t = y.reshape(-1, y.shape[-1])[m]
    if multi_label:
        pred = p >= 0.5
        true = t > 0.5
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


class EpochEnd(tf.keras.callbacks.Callback):
    """Rank 0: validation, checkpoint, progress, MLflow, early stopping (broadcast)."""

    def __init__(self, hvd, model, loss, store, spec, val, state, initial_epoch):
        super().__init__()
        self.hvd, self.net, self.loss_fn, self.store = hvd, model, loss, store
        self.spec, self.val = spec, val
        state = state or {}
        self.best = state.get("best_score", -np.inf)
        self.best_epoch = state.get("best_epoch", -1)
        self.wait = state.get("wait", 0)
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        stop = 0
        if self.hvd.rank() == 0:
            stop = int(self._rank0_epoch_end(epoch, logs or {}))
        stop = int(self.hvd.broadcast(tf.constant(stop), 0, name=f"stop_{epoch}").numpy())
        fault = self.spec.get("fault")
        if fault and fault["epoch"] == epoch and fault["rank"] == self.hvd.rank():
            raise RuntimeError(f"injected fault on rank {fault['rank']} after epoch {epoch}")
        if stop:
            self.model.stop_training = True

    def _rank0_epoch_end(self, epoch, logs):
        spec, run_id, labels = self.spec, self.spec["run_id"], self.spec["dims"]["labels"]
        record = {"epoch": epoch, "loss": float(logs.get("loss", np.nan))}
        score = -float(record["loss"])
        if self.val is not None and len(self.val["mask"]):
            out = self.net.predict({"token_ids": self.val["token_ids"],
                                    "shape": self.val["shape"]}, batch_size=256, verbose=0)
            record["val_loss"] = float(self.loss_fn(self.val["y"], out,
                                                    sample_weight=self.val["mask"]))
            probs = out[..., :len(labels)]
            f1 = window_f1(probs, self.val["y"], self.val["mask"], labels,
                           spec["dims"]["multi_label"])
            for label in labels:
                record[f"val_f1_{label}"] = f1[label]
            focal = spec["focal_labels"] or labels
            score = float(np.mean([f1[label] for label in focal]))
            record["val_focal_macro_f1"] = score
        record["seconds"] = round(time.time() - self.started, 3)
        improved = score > self.best + spec["min_delta"]
        if improved:
            self.best, self.best_epoch, self.wait = score, epoch, 0
        else:
            self.wait += 1
        patience = spec["early_stopping_patience"]
        stop = bool(patience and self.wait >= patience)
        self._checkpoint(epoch, improved, stop)
        self.store.append_line(self.store.progress_path(run_id), json.dumps(record))
        _log_mlflow(spec, record, epoch)
        return stop

    def _checkpoint(self, epoch, improved, stop):
        run_id = self.spec["run_id"]
        weights = _weights_bytes(self.net)
        self.store.write_bytes(self.store.checkpoint_weights_path(run_id, epoch), weights)
        if improved:
            self.store.write_bytes(self.store.path(run_id, "checkpoints", "best.weights.h5"),
                                   weights)
        self.store.write_json(self.store.path(run_id, "checkpoints", "state.json"), {
            "epoch": epoch, "best_score": self.best, "best_epoch": self.best_epoch,
            "wait": self.wait, "stopped": stop})
        # Keep the last two epochs' weights: the newest is what state.json names.
        old = self.store.checkpoint_weights_path(run_id, epoch - 2)
        if epoch >= 2:
            self.store.remove(old)



def _weights_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.weights.h5")
        model.save_weights(path)
        with open(path, "rb") as fh:
            return fh.read()


def _local_copy(store, path: str) -> str:
    tmp = tempfile.NamedTemporaryFile(suffix=".weights.h5", delete=False)
    tmp.write(store.read_bytes(path))
    tmp.close()
    return tmp.name


def _log_mlflow(spec, record, epoch):
    if not spec.get("tracking_uri") or not spec.get("mlflow_run_id"):
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec["tracking_uri"])
    for key, value in record.items():
        if key != "epoch" and value is not None and np.isfinite(value):
            client.log_metric(spec["mlflow_run_id"], f"train_{key}" if key == "loss" else key,
                              float(value), step=epoch)


def _finish(model, store, spec, state, rank, initial_epoch) -> dict:
    """Rank 0 writes the final network (best epoch if validated) and reports the run."""
    if rank != 0:
        return {"rank": rank}
    run_id = spec["run_id"]
    best = store.path(run_id, "checkpoints", "best.weights.h5")
    if spec["restore_best"] and store.exists(best):
        model.load_weights(_local_copy(store, best))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "network.keras")
        # An uncompiled copy: the saved network carries no optimizer or loss state.
        plain = tf.keras.models.clone_model(model)
        plain.set_weights(model.get_weights())
        plain.save(path)
        with open(path, "rb") as fh:
            store.write_bytes(store.model_path(run_id), fh.read())
    return {"rank": 0, "initial_epoch": initial_epoch, "state": state,
            "model_path": store.model_path(run_id)}
