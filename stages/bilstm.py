"""Windows -> trained network -> per-line predictions.

`BiLSTMEstimator` is the driver side of distributed training: it validates its params
(including the loss config, before any Spark job runs), writes the train and validation
windows as Parquet into the run's store, and starts `horovod.spark.run` with a spec of
plain values; the worker side is `focalseq.training.worker`. `BiLSTMModel` predicts with
`mapInPandas` over Arrow batches (the network is loaded once per executor process) and
averages the probabilities of overlapping windows back onto each line.
"""
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from functools import lru_cache

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import (DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader,
                             MLWritable, MLWriter)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from focalseq.stages._params import HasFocalLabels, HasLabels
from focalseq.stages.windows import read_window_metadata

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd", "rmsprop")


class _BiLSTMParams(HasFocalLabels):
    hiddenSize = Param(Params._dummy(), "hiddenSize", "BiLSTM units (both directions)",
                       typeConverter=TypeConverters.toInt)
    numLayers = Param(Params._dummy(), "numLayers", "stacked BiLSTM layers over lines",
                      typeConverter=TypeConverters.toInt)
    dropout = Param(Params._dummy(), "dropout", "dropout rate", typeConverter=TypeConverters.toFloat)
    recurrentDropout = Param(Params._dummy(), "recurrentDropout", "LSTM recurrent dropout",
                             typeConverter=TypeConverters.toFloat)
    embeddingDim = Param(Params._dummy(), "embeddingDim", "token embedding size",
                         typeConverter=TypeConverters.toInt)
    encoder = Param(Params._dummy(), "encoder", "per-line token encoder: mean, cnn or bilstm",
                    typeConverter=TypeConverters.toString)
    vocabSize = Param(Params._dummy(), "vocabSize",
                      "hashed token space; must match LineFeaturizer.vocabSize",
                      typeConverter=TypeConverters.toInt)
    epochs = Param(Params._dummy(), "epochs", "training epochs", typeConverter=TypeConverters.toInt)
    batchSize = Param(Params._dummy(), "batchSize", "windows per batch per worker",
                      typeConverter=TypeConverters.toInt)
    learningRate = Param(Params._dummy(), "learningRate",
                         "learning rate of one worker; scaled by the number of workers",
                         typeConverter=TypeConverters.toFloat)
    warmupEpochs = Param(Params._dummy(), "warmupEpochs", "epochs of linear learning-rate warm-up",
                         typeConverter=TypeConverters.toFloat)
    optimizer = Param(Params._dummy(), "optimizer", f"one of {OPTIMIZERS}",
                      typeConverter=TypeConverters.toString)
    loss = Param(Params._dummy(), "loss", "loss name from focalseq.losses.LOSS_NAMES",
                 typeConverter=TypeConverters.toString)
    lossConfig = Param(Params._dummy(), "lossConfig", "loss hyperparameters as a JSON object",
                       typeConverter=TypeConverters.toString)
    numProc = Param(Params._dummy(), "numProc", "Horovod worker processes",
                    typeConverter=TypeConverters.toInt)
    earlyStoppingPatience = Param(Params._dummy(), "earlyStoppingPatience",
                                  "epochs without improvement of the validation macro-F1 over "
                                  "focal labels before stopping (0: never stop early)",
                                  typeConverter=TypeConverters.toInt)
    restoreBest = Param(Params._dummy(), "restoreBest",
                        "keep the weights of the best validation epoch",
                        typeConverter=TypeConverters.toBoolean)
    seed = Param(Params._dummy(), "seed", "random seed", typeConverter=TypeConverters.toInt)
    storePath = Param(Params._dummy(), "storePath",
                      "directory or fsspec URL for run data, checkpoints and models",
                      typeConverter=TypeConverters.toString)
    runId = Param(Params._dummy(), "runId",
                  "run id in the store; fitting again with the same id resumes it "
                  "(empty: a new id per fit)", typeConverter=TypeConverters.toString)
    labelCounts = Param(Params._dummy(), "labelCounts",
                        "training label counts as a JSON object (empty: counted from windows)",
                        typeConverter=TypeConverters.toString)
    rowGroupBytes = Param(Params._dummy(), "rowGroupBytes", "Parquet row-group size in bytes",
                          typeConverter=TypeConverters.toInt)
    mixedPrecision = Param(Params._dummy(), "mixedPrecision", "mixed float16 on GPU workers",
                           typeConverter=TypeConverters.toBoolean)
    trackingUri = Param(Params._dummy(), "trackingUri",
                        "MLflow tracking URI for per-epoch metrics (empty: the active run's "
                        "or none)", typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(hiddenSize=128, numLayers=1, dropout=0.2, recurrentDropout=0.0,
                         embeddingDim=64, encoder="mean", vocabSize=2 ** 16, epochs=5,
                         batchSize=32, learningRate=1e-3, warmupEpochs=0.0, optimizer="adam",
                         loss="cross_entropy", lossConfig="{}", numProc=2,
                         earlyStoppingPatience=0, restoreBest=True, seed=0,
                         storePath=os.path.join(tempfile.gettempdir(), "focalseq-store"),
                         runId="", labelCounts="", rowGroupBytes=4 * 1024 * 1024,
                         mixedPrecision=False, trackingUri="", focalLabels=[])

    def getLossConfig(self) -> dict:
        return json.loads(self.getOrDefault(self.lossConfig))


class BiLSTMEstimator(Estimator, _BiLSTMParams, MLReadable, MLWritable):
    """Trains the BiLSTM line labeler with Horovod on Spark executors.

    Input: windows from `Windower` (optionally with a `split` column: rows with
    split == "validation" drive early stopping, "test" rows are ignored).

    >>> est = BiLSTMEstimator(loss="soft_f1", focalLabels=["Nomenclature"], epochs=3)
    >>> model = est.fit(windows)  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self.setParams(**self._input_kwargs)
        self._fault = None  # test hook: {"rank": r, "epoch": e} raises in that worker

    @keyword_only
    def setParams(self, **kwargs):
        kwargs = dict(self._input_kwargs)
        for key in ("lossConfig", "labelCounts"):
            if key in kwargs and not isinstance(kwargs[key], str):
                kwargs[key] = json.dumps(kwargs[key], sort_keys=True)
        unknown = [k for k in kwargs if not self.hasParam(k)]
        if unknown:
            raise ValueError(f"BiLSTMEstimator: unknown parameter(s) {unknown}; valid: "
                             f"{sorted(p.name for p in self.params)}")
        self._set(**{k: v for k, v in kwargs.items() if v is not None})
        return self

    def validate(self, labels, multi_label=False) -> dict:
        """Checks every param and the loss config; returns the normalised loss config."""
        from focalseq.losses import validate_loss_config

        if self.getOrDefault(self.encoder) not in ("mean", "cnn", "bilstm"):
            raise ValueError(f"encoder: {self.getOrDefault(self.encoder)!r} is not one of "
                             "['mean', 'cnn', 'bilstm']")
        if self.getOrDefault(self.optimizer) not in OPTIMIZERS:
            raise ValueError(f"optimizer: {self.getOrDefault(self.optimizer)!r} is not one of "
                             f"{list(OPTIMIZERS)}")
        for name in ("hiddenSize", "numLayers", "epochs", "batchSize", "numProc", "embeddingDim"):
            if self.getOrDefault(name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {self.getOrDefault(name)}")
        for name in ("dropout", "recurrentDropout"):
            if not 0.0 <= self.getOrDefault(name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {self.getOrDefault(name)}")
        config = dict(self.getLossConfig())
        focal = self.getFocalLabels()
        if focal and "focal_labels" not in config and self.getOrDefault(self.loss) in (
                "soft_f1",):
            config["focal_labels"] = focal
        unknown = [f for f in focal if f not in labels]
        if unknown:
            raise ValueError(f"focalLabels: {unknown} are not labels; valid labels: {labels}")
        return validate_loss_config(self.getOrDefault(self.loss), config, labels,
                                    multi_label=multi_label)

    def _fit(self, dataset: DataFrame) -> "BiLSTMModel":
        from focalseq.training.store import Store

        dims = read_window_metadata(dataset)
        labels = dims["labels"]
        loss_config = self.validate(labels, dims["multi_label"])
        store = Store(self.getOrDefault(self.storePath))
        run_id = self.getOrDefault(self.runId) or uuid.uuid4().hex[:12]
        has_split = "split" in dataset.columns
        train = dataset.filter(F.col("split") == "train") if has_split else dataset
        val = dataset.filter(F.col("split") == "validation") if has_split else None
        has_val = self._write_data(store, run_id, train, val)
        counts = self._label_counts(train, labels)
        logger.info("run %s: label counts %s, loss %s %s", run_id, counts,
                    self.getOrDefault(self.loss), loss_config)
        spec = self._spec(store, run_id, dims, loss_config, counts, has_val)
        result = _run_horovod(spec, self.getOrDefault(self.numProc), store)
        network = store.read_bytes(result["model_path"])
        model = BiLSTMModel(labels=labels, focalLabels=self.getFocalLabels(),
                            multiLabel=dims["multi_label"], runId=run_id)
        model._network_bytes = network
        model.training_summary = {"run_id": run_id, "label_counts": counts,
                                  "loss_config": loss_config,
                                  "initial_epoch": result["initial_epoch"],
                                  "history": _read_progress(store, run_id)}
        return model

    def _write_data(self, store, run_id, train, val) -> bool:
        """Writes the run's train/validation windows (skipped when resuming a run)."""
        cols = ["token_ids", "shape", "y", "mask"]
        n_files = max(2, self.getOrDefault(self.numProc) * 2)
        block = str(self.getOrDefault(self.rowGroupBytes))
        has_val = False
        for name, df in (("train", train), ("validation", val)):
            if df is None:
                continue
            path = store.path(run_id, "data", name)
            if not store.exists(path + "/_SUCCESS"):
                (df.select(*cols).repartition(n_files).write.mode("overwrite")
                   .option("parquet.block.size", block).parquet(store.url(run_id, "data", name)))
            if name == "validation":
                has_val = bool(store.fs.glob(path + "/*.parquet")) and \
                    df.limit(1).count() > 0
        return has_val

    def _label_counts(self, train: DataFrame, labels) -> dict:
        given = self.getOrDefault(self.labelCounts)
        if given:
            counts = json.loads(given)
            missing = [lab for lab in labels if lab not in counts]
            if missing:
                raise ValueError(f"labelCounts: no count for {missing}; expected every label "
                                 f"of {labels}")
            return {lab: int(counts[lab]) for lab in labels}
        # One distributed pass. Overlapping windows count a line once per window covering
        # it; the overlap is the same for every label, so relative frequencies hold.
        n = len(labels)
        sums = train.select("y", "mask").rdd.mapPartitions(
            lambda rows: [_partition_label_sums(rows, n)]).reduce(lambda a, b: [x + y for x, y in zip(a, b)])
        return {lab: int(round(v)) for lab, v in zip(labels, sums)}

    def _spec(self, store, run_id, dims, loss_config, counts, has_val) -> dict:
        g = self.getOrDefault
        tracking_uri, mlflow_run_id = _mlflow_target(g(self.trackingUri))
        return {
            "store": store.prefix, "run_id": run_id, "dims": dims, "seed": g(self.seed),
            "network": {"vocab_size": g(self.vocabSize), "embedding_dim": g(self.embeddingDim),
                        "encoder": g(self.encoder), "hidden_size": g(self.hiddenSize),
                        "num_layers": g(self.numLayers), "dropout": g(self.dropout),
                        "recurrent_dropout": g(self.recurrentDropout)},
            "loss": g(self.loss), "loss_config": loss_config, "label_counts": counts,
            "focal_labels": self.getFocalLabels(), "epochs": g(self.epochs),
            "batch_size": g(self.batchSize), "learning_rate": g(self.learningRate),
            "warmup_epochs": g(self.warmupEpochs), "optimizer": g(self.optimizer),
            "early_stopping_patience": g(self.earlyStoppingPatience), "min_delta": 1e-4,
            "restore_best": g(self.restoreBest) and has_val, "has_validation": has_val,
            "mixed_precision": g(self.mixedPrecision),
            "threads_per_worker": max(1, (os.cpu_count() or 2) // g(self.numProc)),
            "tracking_uri": tracking_uri, "mlflow_run_id": mlflow_run_id, "fault": self._fault,
        }

    def write(self):
        return DefaultParamsWriter(self)

    @classmethod
    def read(cls):
        return DefaultParamsReader(cls)


def _partition_label_sums(rows, n):
    import numpy as np

    total = np.zeros(n)
    for row in rows:
        y = np.asarray(row["y"], dtype=np.float64).reshape(-1, n)
        total += (y * np.asarray(row["mask"])[:, None]).sum(0)
    return total.tolist()


def _mlflow_target(tracking_uri: str):
    """(tracking URI, run id) for per-epoch metrics: the active MLflow run, if any."""
    try:
        import mlflow
    except ImportError:
        return None, None
    run = mlflow.active_run()
    if run is None:
        return None, None
    return tracking_uri or mlflow.get_tracking_uri(), run.info.run_id


def _read_progress(store, run_id):
    path = store.progress_path(run_id)
    if not store.exists(path):
        return []
    return [json.loads(line) for line in store.read_bytes(path).decode().splitlines() if line]


def format_epoch(record: dict) -> str:
    parts = [f"epoch {record['epoch'] + 1}", f"loss {record['loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4f}")
    parts += [f"{k[len('val_'):]} {v:.3f}" for k, v in record.items()
              if k.startswith("val_f1_")]
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)


def _run_horovod(spec, num_proc, store) -> dict:
    """Runs the workers; a thread tails rank 0's progress file and logs each epoch."""
    import horovod.spark

    from focalseq.training.worker import train_worker

    stop = threading.Event()

    def tail():
        seen = len(_read_progress(store, spec["run_id"]))
        while not stop.wait(1.0):
            try:
                records = _read_progress(store, spec["run_id"])
            except (OSError, ValueError):
                continue  # a file mid-rename; read it on the next tick
            for record in records[seen:]:
                logger.info("%s", format_epoch(record))
            seen = len(records)

    thread = threading.Thread(target=tail, name="focalseq-progress", daemon=True)
    thread.start()
    started = time.time()
    try:
        results = horovod.spark.run(train_worker, args=(spec,), num_proc=num_proc,
                                    use_gloo=True, verbose=0, start_timeout=600)
    except Exception as exc:
        raise RuntimeError(f"distributed training of run {spec['run_id']} failed:\n"
                           f"{_worker_errors(store, spec['run_id']) or exc}") from exc
    finally:
        stop.set()
        thread.join(timeout=5)
    logger.info("run %s: %d workers finished in %.1fs", spec["run_id"], num_proc,
                time.time() - started)
    return next(r for r in results if r.get("rank") == 0)


def _worker_errors(store, run_id) -> str:
    """The workers' own tracebacks, written to the store by focalseq.training.worker."""
    folder = store.path(run_id, "errors")
    if not store.exists(folder):
        return ""
    texts = []
    for path in sorted(store.fs.glob(folder + "/rank_*.txt")):
        name = path.rsplit("/", 1)[-1][:-4]
        texts.append(f"--- worker {name} ---\n" + store.read_bytes(path).decode(errors="replace"))
        store.remove(path)
    return "\n".join(texts)


# --------------------------------------------------------------------------------------
# The model


class _BiLSTMModelParams(HasLabels, HasFocalLabels):
    multiLabel = Param(Params._dummy(), "multiLabel", "sigmoid head with label sets",
                       typeConverter=TypeConverters.toBoolean)
    runId = Param(Params._dummy(), "runId", "the training run", typeConverter=TypeConverters.toString)
    logOffsets = Param(Params._dummy(), "logOffsets",
                       "single-label: per-label offsets added to log-probabilities before the "
                       "argmax (tuned thresholds / logit adjustment); empty: none",
                       typeConverter=TypeConverters.toListFloat)
    thresholds = Param(Params._dummy(), "thresholds",
                       "multi-label: per-label decision thresholds (empty: 0.5)",
                       typeConverter=TypeConverters.toListFloat)
    predictionCol = Param(Params._dummy(), "predictionCol", "predicted label column",
                          typeConverter=TypeConverters.toString)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "per-label probability column",
                           typeConverter=TypeConverters.toString)
    batchSize = Param(Params._dummy(), "batchSize", "windows per predict call",
                      typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(multiLabel=False, runId="", logOffsets=[], thresholds=[],
                         predictionCol="prediction", probabilityCol="probability",
                         batchSize=512, focalLabels=[], labels=[])


class BiLSTMModel(Model, _BiLSTMModelParams, MLReadable, MLWritable):
    """Per-line predictions from windows; overlapping windows' probabilities are averaged.

    Output: one row per line with doc_id, line_idx, the true `label` (when the windows
    had one), `probability` (array in label order) and `prediction`.
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, multiLabel=False, runId="",
                 logOffsets=None, thresholds=None, predictionCol="prediction",
                 probabilityCol="probability", batchSize=512):
        super().__init__()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        self._network_bytes = None
        self.training_summary = None

    def setLogOffsets(self, value):
        return self._set(logOffsets=value)

    def setThresholds(self, value):
        return self._set(thresholds=value)

    @property
    def network_bytes(self) -> bytes:
        if self._network_bytes is None:
            raise ValueError("BiLSTMModel has no network: fit it or load a saved model")
        return self._network_bytes

    def load_network(self):
        """The Keras network in this process (cached by content)."""
        return _load_network(hashlib.sha256(self.network_bytes).hexdigest(), self.network_bytes)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        labels = self.getLabels()
        n = len(labels)
        network = self.network_bytes
        digest = hashlib.sha256(network).hexdigest()
        sc = dataset.sparkSession.sparkContext
        shared = sc.broadcast(network)
        keys = [c for c in ("split",) if c in dataset.columns]
        window = read_window_metadata(dataset)["window"]
        batch = self.getOrDefault(self.batchSize)
        schema = T.StructType([T.StructField("doc_id", T.StringType())] +
                              [dataset.schema[k] for k in keys] + [
            T.StructField("line_idx", T.IntegerType()),
            T.StructField("y", T.ArrayType(T.FloatType())),
            T.StructField("p", T.ArrayType(T.FloatType()))])
        cols = ["doc_id"] + keys + ["start", "n_valid", "token_ids", "shape", "y"]

        def predict(frames):
            return _predict_windows(frames, digest, shared, window, n, keys, batch)

        per_window_line = dataset.select(*cols).mapInPandas(predict, schema=schema)
        agg = per_window_line.groupBy("doc_id", *keys, "line_idx").agg(
            *[F.avg(F.col("p")[j]).alias(f"_p{j}") for j in range(n)],
            *[F.max(F.col("y")[j]).alias(f"_y{j}") for j in range(n)])
        prob = F.array(*[F.col(f"_p{j}") for j in range(n)])
        out = agg.withColumn(self.getOrDefault(self.probabilityCol), prob)
        out = out.withColumn("label", _label_expr(labels, [F.col(f"_y{j}") for j in range(n)],
                                                  self.getOrDefault(self.multiLabel)))
        out = out.withColumn(self.getOrDefault(self.predictionCol), self._decision(prob, n))
        return out.drop(*[f"_p{j}" for j in range(n)], *[f"_y{j}" for j in range(n)])

    def _decision(self, prob, n):
        labels = self.getLabels()
        if self.getOrDefault(self.multiLabel):
            th = self.getOrDefault(self.thresholds) or [0.5] * n
            parts = [F.when(prob[j] >= F.lit(th[j]), F.lit(labels[j])) for j in range(n)]
            return F.concat_ws("|", *parts)
        offsets = self.getOrDefault(self.logOffsets) or [0.0] * n
        if len(offsets) != n:
            raise ValueError(f"logOffsets: expected {n} values (one per label {labels}), "
                             f"got {len(offsets)}")
        scores = [F.log(F.greatest(prob[j], F.lit(1e-12))) + F.lit(offsets[j]) for j in range(n)]
        best = F.greatest(*scores)
        expr = F.lit(labels[-1])
        for j in reversed(range(n)):
            expr = F.when(scores[j] == best, F.lit(labels[j])).otherwise(expr)
        return expr

    def write(self):
        return _BiLSTMModelWriter(self)

    @classmethod
    def read(cls):
        return _BiLSTMModelReader(cls)


def _label_expr(labels, ys, multi_label):
    if multi_label:
        parts = [F.when(y > 0.5, F.lit(lab)) for lab, y in zip(labels, ys)]
        return F.concat_ws("|", *parts)
    expr = F.lit(None).cast("string")
    for lab, y in reversed(list(zip(labels, ys))):
        expr = F.when(y > 0.5, F.lit(lab)).otherwise(expr)
    return expr


@lru_cache(maxsize=4)
def _load_network(digest: str, data: bytes):  # digest keys the cache
    import tensorflow as tf

    import focalseq.training.network  # noqa: F401  (registers the custom layers)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "network.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return tf.keras.models.load_model(path, compile=False)


def _predict_windows(frames, digest, shared, window, n_labels, keys, batch):
    import numpy as np
    import pandas as pd

    net = None
    for frame in frames:
        if not len(frame):
            continue
        if net is None:
            net = _load_network_cached(digest, shared)
        tokens = np.stack(frame["token_ids"].to_numpy()).reshape(len(frame), window, -1)
        shape = np.stack(frame["shape"].to_numpy()).reshape(len(frame), window, -1)
        y = np.stack(frame["y"].to_numpy()).reshape(len(frame), window, n_labels)
        probs = net.predict_on_batch({"token_ids": tokens, "shape": shape}) \
            if len(frame) <= batch else net.predict(
                {"token_ids": tokens, "shape": shape}, batch_size=batch, verbose=0)
        probs = np.asarray(probs)[..., :n_labels]
        valid = frame["n_valid"].to_numpy()
        rows = np.concatenate([np.arange(v) for v in valid])
        win = np.repeat(np.arange(len(frame)), valid)
        out = {"doc_id": np.repeat(frame["doc_id"].to_numpy(), valid)}
        for k in keys:
            out[k] = np.repeat(frame[k].to_numpy(), valid)
        out["line_idx"] = (np.repeat(frame["start"].to_numpy(), valid) + rows).astype(np.int32)
        out["y"] = list(y[win, rows])
        out["p"] = list(probs[win, rows].astype(np.float32))
        yield pd.DataFrame(out)


def _load_network_cached(digest, shared):
    return _load_network(digest, shared.value)


class _BiLSTMModelWriter(MLWriter):
    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        _write_bytes(os.path.join(path, "network.keras"), self.instance.network_bytes)


class _BiLSTMModelReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path):
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        model = self.cls()
        DefaultParamsReader.getAndSetParams(model, metadata)
        model._network_bytes = _read_bytes(os.path.join(path, "network.keras"))
        return model


def _write_bytes(path, data):
    import fsspec

    with fsspec.open(path, "wb") as fh:
        fh.write(data)


def _read_bytes(path):
    import fsspec

    with fsspec.open(path, "rb") as fh:
        return fh.read()
