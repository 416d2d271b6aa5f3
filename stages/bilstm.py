"""Windows -> trained network -> per-line predictions.

`BiLSTMEstimator` is the driver side of distributed training: it validates its params
(the loss config included, before any Spark job runs), writes the train and validation
windows once as Parquet into the run's store, and starts `horovod.spark.run` with a spec
of plain values; the worker side is `focalseq.training.worker`. A thread tails rank 0's
progress file and logs one line per epoch. Fitting again with the same `runId` resumes
from the last complete epoch (or returns the finished model).

`BiLSTMModel` predicts with `mapInArrow` over Arrow batches (the network is loaded once
per executor process), averages the probabilities of overlapping windows back onto each
line, and decides with `logOffsets` (single-label) or `thresholds` (multi-label).

>>> est = BiLSTMEstimator(loss="soft_f1", focalLabels=["Nomenclature"], epochs=3)
>>> est.getEpochs(), est.getLoss()
(3, 'soft_f1')
>>> model = est.fit(windows)  # doctest: +SKIP
>>> model.save(path); BiLSTMModel.load(path).transform(windows)  # doctest: +SKIP
"""
import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import signal
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

from focalseq.losses.config import WEIGHT_STRATEGIES
from focalseq.stages import parquet_input
from focalseq.stages._params import HasFocalLabels, HasLabels
from focalseq.stages.windows import read_window_metadata

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_DECAYS = ("none", "cosine")
ENCODERS = ("mean", "cnn", "bilstm")
WINDOW_COLUMNS = ("token_ids", "shape", "y", "mask")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _to_json(value) -> str:
    """Type converter of JSON params: a JSON string, or a value to serialise."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"expected a JSON string or a JSON-serialisable value, got {value!r}") \
            from exc


def _param(name, doc, converter):
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class _BiLSTMParams(HasFocalLabels):
    # The network
    hiddenSize = _param("hiddenSize", "width of the line projection and the window BiLSTM",
                        TypeConverters.toInt)
    numLayers = _param("numLayers", "stacked BiLSTM layers over lines", TypeConverters.toInt)
    dropout = _param("dropout", "dropout rate", TypeConverters.toFloat)
    recurrentDropout = _param("recurrentDropout", "LSTM recurrent dropout",
                              TypeConverters.toFloat)
    embeddingDim = _param("embeddingDim", "token embedding size", TypeConverters.toInt)
    encoder = _param("encoder", f"per-line token encoder, one of {ENCODERS}",
                     TypeConverters.toString)
    tokenDropout = _param("tokenDropout", "probability of dropping each token while training",
                          TypeConverters.toFloat)
    skipConnection = _param("skipConnection",
                            "the head also sees each line's own projection",
                            TypeConverters.toBoolean)
    vocabSize = _param("vocabSize", "hashed token space; must match LineFeaturizer.vocabSize",
                       TypeConverters.toInt)
    # Optimisation
    epochs = _param("epochs", "training epochs", TypeConverters.toInt)
    batchSize = _param("batchSize", "windows per batch per worker", TypeConverters.toInt)
    learningRate = _param("learningRate",
                          "learning rate of one worker; scaled by the number of workers",
                          TypeConverters.toFloat)
    warmupEpochs = _param("warmupEpochs", "epochs of linear warm-up from the one-worker "
                          "learning rate to the scaled one (0: none)", TypeConverters.toFloat)
    learningRateDecay = _param("learningRateDecay", f"learning-rate decay over all epochs, "
                               f"one of {LR_DECAYS}", TypeConverters.toString)
    optimizer = _param("optimizer", f"one of {OPTIMIZERS}", TypeConverters.toString)
    loss = _param("loss", "loss name from focalseq.losses.LOSS_NAMES", TypeConverters.toString)
    lossConfig = _param("lossConfig", "loss hyperparameters (JSON object)", _to_json)
    classWeights = _param("classWeights", "per-label loss weights, JSON object {label: weight} "
                          "(empty: none); goes into the loss config as class_weights",
                          _to_json)
    weightStrategy = _param("weightStrategy", f"class weights from the training label counts, "
                            f"one of {WEIGHT_STRATEGIES} (empty: none); goes into the loss "
                            "config as weight_strategy", TypeConverters.toString)
    seed = _param("seed", "random seed", TypeConverters.toInt)
    # Validation and early stopping
    validationFraction = _param("validationFraction",
                                "fraction of documents (by a seeded hash of doc_id) held out "
                                "for validation when the windows have no split column",
                                TypeConverters.toFloat)
    earlyStoppingPatience = _param("earlyStoppingPatience",
                                   "epochs without improvement of the validation macro-F1 "
                                   "over focal labels before stopping (0: never)",
                                   TypeConverters.toInt)
    restoreBest = _param("restoreBest", "keep the weights of the best validation epoch",
                         TypeConverters.toBoolean)
    # The cluster and the run
    numProc = _param("numProc", "Horovod worker processes", TypeConverters.toInt)
    threadsPerWorker = _param("threadsPerWorker", "TensorFlow CPU threads per worker (0: the "
                              "host's CPUs divided by its workers)", TypeConverters.toInt)
    mixedPrecision = _param("mixedPrecision", "mixed float16 on GPU workers",
                            TypeConverters.toBoolean)
    storePath = _param("storePath", "directory or fsspec URL for run data, checkpoints, "
                       "progress and models", TypeConverters.toString)
    runId = _param("runId", "run id in the store; fitting again with the same id resumes "
                   "the run (empty: a new id per fit)", TypeConverters.toString)
    labelCounts = _param("labelCounts", "training label counts, JSON object (empty: counted "
                         "from the training windows)", _to_json)
    rowGroupBytes = _param("rowGroupBytes", "Parquet row-group size of the training data",
                           TypeConverters.toInt)
    trackingUri = _param("trackingUri", "MLflow tracking URI of the active run that receives "
                         "per-epoch metrics (empty: mlflow.get_tracking_uri())",
                         TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(hiddenSize=128, numLayers=1, dropout=0.2, recurrentDropout=0.0,
                         embeddingDim=64, encoder="mean", tokenDropout=0.0,
                         skipConnection=False, vocabSize=2 ** 16, epochs=5, batchSize=32,
                         learningRate=1e-3, warmupEpochs=0.0, learningRateDecay="none",
                         optimizer="adam", loss="cross_entropy", lossConfig="{}", classWeights="",
                         weightStrategy="", seed=0, validationFraction=0.0,
                         earlyStoppingPatience=0, restoreBest=True, numProc=2,
                         threadsPerWorker=0, mixedPrecision=False,
                         storePath=os.path.join(tempfile.gettempdir(), "focalseq-store"),
                         runId="", labelCounts="", rowGroupBytes=4 * 1024 * 1024,
                         trackingUri="", focalLabels=[])

    def getHiddenSize(self):
        return self.getOrDefault(self.hiddenSize)

    def getNumLayers(self):
        return self.getOrDefault(self.numLayers)

    def getDropout(self):
        return self.getOrDefault(self.dropout)

    def getRecurrentDropout(self):
        return self.getOrDefault(self.recurrentDropout)

    def getEmbeddingDim(self):
        return self.getOrDefault(self.embeddingDim)

    def getEncoder(self):
        return self.getOrDefault(self.encoder)

    def getTokenDropout(self):
        return self.getOrDefault(self.tokenDropout)

    def getSkipConnection(self):
        return self.getOrDefault(self.skipConnection)

    def getVocabSize(self):
        return self.getOrDefault(self.vocabSize)

    def getEpochs(self):
        return self.getOrDefault(self.epochs)

    def getBatchSize(self):
        return self.getOrDefault(self.batchSize)

    def getLearningRate(self):
        return self.getOrDefault(self.learningRate)

    def getWarmupEpochs(self):
        return self.getOrDefault(self.warmupEpochs)

    def getOptimizer(self):
        return self.getOrDefault(self.optimizer)

    def getLoss(self):
        return self.getOrDefault(self.loss)

    def getLossConfig(self) -> dict:
        return _json_object(self, "lossConfig") or {}

    def getClassWeights(self):
        """The class weights as a dict, or None."""
        return _json_object(self, "classWeights")

    def getWeightStrategy(self):
        return self.getOrDefault(self.weightStrategy)

    def getSeed(self):
        return self.getOrDefault(self.seed)

    def getValidationFraction(self):
        return self.getOrDefault(self.validationFraction)

    def getEarlyStoppingPatience(self):
        return self.getOrDefault(self.earlyStoppingPatience)

    def getRestoreBest(self):
        return self.getOrDefault(self.restoreBest)

    def getNumProc(self):
        return self.getOrDefault(self.numProc)

    def getThreadsPerWorker(self):
        return self.getOrDefault(self.threadsPerWorker)

    def getMixedPrecision(self):
        return self.getOrDefault(self.mixedPrecision)

    def getStorePath(self):
        return self.getOrDefault(self.storePath)

    def getRunId(self):
        return self.getOrDefault(self.runId)

    def getLabelCounts(self):
        """The given label counts as a dict, or None."""
        return _json_object(self, "labelCounts")

    def getRowGroupBytes(self):
        return self.getOrDefault(self.rowGroupBytes)

    def getTrackingUri(self):
        return self.getOrDefault(self.trackingUri)


def _json_object(stage, name):
    """A JSON-object param as a dict (None when empty); ValueError naming the param."""
    text = stage.getOrDefault(name)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a JSON object, got {text!r}")
    return value


class BiLSTMEstimator(Estimator, _BiLSTMParams, MLReadable, MLWritable):
    """Trains the BiLSTM line labeler with Horovod on the Spark executors.

    Input: windows from `Windower`. With a `split` column, rows with split "train" train
    and "validation" rows drive early stopping and the best-epoch choice ("test" rows are
    ignored); without one, `validationFraction` of the documents are held out. Dimensions,
    labels and single- or multi-label come from the windows' column metadata.

    >>> est = BiLSTMEstimator(loss="weighted_cross_entropy", weightStrategy="balanced",
    ...                       focalLabels=["Nomenclature"], epochs=3, numProc=2)
    >>> est.getWeightStrategy()
    'balanced'
    """

    @keyword_only
    def __init__(self, *, hiddenSize=128, numLayers=1, dropout=0.2, recurrentDropout=0.0,
                 embeddingDim=64, encoder="mean", tokenDropout=0.0, skipConnection=False,
                 vocabSize=2 ** 16, epochs=5, batchSize=32, learningRate=1e-3,
                 warmupEpochs=0.0, learningRateDecay="none", optimizer="adam",
                 loss="cross_entropy", lossConfig="{}",
                 classWeights="", weightStrategy="", focalLabels=None, seed=0,
                 validationFraction=0.0, earlyStoppingPatience=0, restoreBest=True,
                 numProc=2, threadsPerWorker=0, mixedPrecision=False, storePath=None,
                 runId="", labelCounts="", rowGroupBytes=4 * 1024 * 1024, trackingUri=""):
        super().__init__()
        self._fault = None  # test hook: {"rank": r, "epoch": e} raises after that epoch
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, hiddenSize=128, numLayers=1, dropout=0.2, recurrentDropout=0.0,
                  embeddingDim=64, encoder="mean", tokenDropout=0.0, skipConnection=False,
                  vocabSize=2 ** 16, epochs=5, batchSize=32, learningRate=1e-3,
                  warmupEpochs=0.0, learningRateDecay="none", optimizer="adam",
                  loss="cross_entropy", lossConfig="{}",
                  classWeights="", weightStrategy="", focalLabels=None, seed=0,
                  validationFraction=0.0, earlyStoppingPatience=0, restoreBest=True,
                  numProc=2, threadsPerWorker=0, mixedPrecision=False, storePath=None,
                  runId="", labelCounts="", rowGroupBytes=4 * 1024 * 1024, trackingUri=""):
        """Sets params by name; dict/list values of JSON params are serialised."""
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        return self

    def setEpochs(self, value):
        return self._set(epochs=value)

    def setBatchSize(self, value):
        return self._set(batchSize=value)

    def setLearningRate(self, value):
        return self._set(learningRate=value)

    def setLoss(self, value):
        return self._set(loss=value)

    def setLossConfig(self, value):
        return self._set(lossConfig=value)

    def setClassWeights(self, value):
        return self._set(classWeights=value)

    def setWeightStrategy(self, value):
        return self._set(weightStrategy=value)

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setNumProc(self, value):
        return self._set(numProc=value)

    def setSeed(self, value):
        return self._set(seed=value)

    def setStorePath(self, value):
        return self._set(storePath=value)

    def setRunId(self, value):
        return self._set(runId=value)

    def setValidationFraction(self, value):
        return self._set(validationFraction=value)

    def setEarlyStoppingPatience(self, value):
        return self._set(earlyStoppingPatience=value)

    # Validation ----------------------------------------------------------------------

    def validate(self, labels, multi_label=False) -> dict:
        """Checks every param and the loss config; returns the normalised loss config."""
        from focalseq.losses import validate_loss_config

        g = self.getOrDefault
        for name, valid in (("encoder", ENCODERS), ("optimizer", OPTIMIZERS),
                            ("weightStrategy", ("",) + WEIGHT_STRATEGIES),
                            ("learningRateDecay", LR_DECAYS)):
            if g(name) not in valid:
                raise ValueError(f"{name}: {g(name)!r} is not one of {list(valid)}")
        for name in ("hiddenSize", "numLayers", "epochs", "batchSize", "numProc",
                     "embeddingDim", "vocabSize", "rowGroupBytes"):
            if g(name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {g(name)}")
        for name in ("threadsPerWorker", "earlyStoppingPatience", "warmupEpochs"):
            if g(name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {g(name)}")
        for name in ("dropout", "recurrentDropout", "tokenDropout", "validationFraction"):
            if not 0.0 <= g(name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {g(name)}")
        if not g(self.learningRate) > 0:
            raise ValueError(f"learningRate: must be > 0, got {g(self.learningRate)}")
        if not g(self.storePath):
            raise ValueError("storePath: expected a directory or URL, got ''")
        if g(self.runId) and not _RUN_ID.match(g(self.runId)):
            raise ValueError(f"runId: {g(self.runId)!r} must be letters, digits, '.', '_' or "
                             "'-' (it names a folder in the store)")
        focal = self.getFocalLabels()
        unknown = [f for f in focal if f not in labels]
        if unknown:
            raise ValueError(f"focalLabels: {unknown} are not labels; valid labels: {labels}")
        return validate_loss_config(g(self.loss), self._loss_config(), labels,
                                    multi_label=multi_label)

    def _loss_config(self) -> dict:
        """lossConfig plus what the classWeights, weightStrategy and focalLabels params add."""
        config = dict(self.getLossConfig())
        for param, key, value in (("classWeights", "class_weights", self.getClassWeights()),
                                  ("weightStrategy", "weight_strategy",
                                   self.getWeightStrategy() or None)):
            if value is None:
                continue
            if key in config:
                raise ValueError(f"{param}: lossConfig already sets {key} "
                                 f"({config[key]!r}); give it in one place")
            config[key] = value
        # soft_f1 restricts itself to the focal labels; other losses use them only for
        # early stopping and reports.
        if self.getFocalLabels() and self.getLoss() == "soft_f1" and "focal_labels" not in config:
            config["focal_labels"] = list(self.getFocalLabels())
        return config

    # Fit ---------------------------------------------------------------------------------

    def _fit(self, dataset: DataFrame) -> "BiLSTMModel":
        from focalseq.training.store import Store

        dims = read_window_metadata(dataset)
        labels = dims["labels"]
        loss_config = self.validate(labels, dims["multi_label"])
        _check_slots(dataset.sparkSession, self.getNumProc())
        store = Store(self.getStorePath())
        run_id = self.getRunId() or uuid.uuid4().hex[:12]
        state = store.checkpoint_state(run_id)
        summary = {"run_id": run_id, "loss_config": loss_config}
        if _finished(state, self.getEpochs()) and store.exists(store.model_path(run_id)):
            logger.info("run %s finished at epoch %d: returning its model", run_id,
                        state["epoch"] + 1)
            summary.update(initial_epoch=state["epoch"] + 1, state=state)
            return self._model(store, run_id, dims, summary)
        store.remove(store.path(run_id, "errors"))
        windows = self._write_data(store, run_id, dataset)
        if not windows.get("train"):
            raise ValueError("windows: no training windows (split 'train', or all windows "
                             "when there is no split column)")
        counts = self._label_counts(store, run_id, dataset.sparkSession, labels)
        has_val = windows.get("validation", 0) > 0
        logger.info("run %s: %s windows, label counts %s, loss %s %s", run_id, windows,
                    counts, self.getLoss(), loss_config)
        spec = self._spec(store, run_id, dims, loss_config, counts, has_val)
        result = _run_horovod(spec, self.getNumProc(), store)
        store.remove(store.path(run_id, "data"))
        summary.update(label_counts=counts, windows=windows,
                       initial_epoch=result["initial_epoch"], state=result["state"])
        return self._model(store, run_id, dims, summary)

    def _model(self, store, run_id, dims, summary) -> "BiLSTMModel":
        model = BiLSTMModel(labels=dims["labels"], focalLabels=self.getFocalLabels(),
                            multiLabel=dims["multi_label"], runId=run_id)
        model._network_bytes = store.read_bytes(store.model_path(run_id))
        model.training_summary = {**summary, "history": read_progress(store, run_id)}
        return model

    def _split_expr(self, dataset: DataFrame):
        """'train', 'validation' or null (left out) for each window."""
        if "split" in dataset.columns:
            if self.getValidationFraction() > 0:
                logger.warning("validationFraction %s ignored: the windows have a split "
                               "column", self.getValidationFraction())
            return F.when(F.col("split").isin("train", "validation"), F.col("split"))
        if self.getValidationFraction() > 0:
            # Whole documents, as DocumentSplitter does: u in [0, 1) from a seeded hash.
            u = (F.abs(F.xxhash64(F.col("doc_id"), F.lit(self.getSeed()))) %
                 F.lit(1_000_000)) / F.lit(1_000_000.0)
            return F.when(u < F.lit(self.getValidationFraction()), F.lit("validation")) \
                .otherwise(F.lit("train"))
        return F.lit("train")

    def _write_data(self, store, run_id, dataset) -> dict:
        """Writes the run's windows once (kept until the fit succeeds); {part: windows}."""
        url = store.url(run_id, "data")
        if not store.exists(store.path(run_id, "data", "_SUCCESS")):
            # Round-robin files of equal size: petastorm shards by row group, and the
            # smallest shard sets every worker's steps per epoch.
            n_files = 2 * self.getNumProc()
            (dataset.select(*WINDOW_COLUMNS, self._split_expr(dataset).alias("part"))
             .filter(F.col("part").isNotNull()).repartition(n_files)
             .write.mode("overwrite").partitionBy("part")
             .option("parquet.block.size", str(self.getRowGroupBytes())).parquet(url))
        if not store.glob(store.path(run_id, "data", "part=*")):
            return {}
        rows = dataset.sparkSession.read.parquet(url).groupBy("part").count().collect()
        return {r["part"]: int(r["count"]) for r in rows}

    def _label_counts(self, store, run_id, spark, labels) -> dict:
        given = self.getLabelCounts()
        if given is not None:
            missing = [lab for lab in labels if lab not in given]
            if missing:
                raise ValueError(f"labelCounts: no count for {missing}; expected every label "
                                 f"of {labels}")
            return {lab: int(given[lab]) for lab in labels}
        # Overlapping windows count a line once per window covering it; the overlap is
        # the same for every label, so relative frequencies hold.
        n = len(labels)
        train = spark.read.parquet(store.url(run_id, "data", "part=train"))
        rows = train.select("y", "mask").mapInArrow(
            lambda batches: _label_sums(batches, n), "sums array<double>").collect()
        totals = [sum(r["sums"][j] for r in rows) for j in range(n)]
        return {lab: int(round(v)) for lab, v in zip(labels, totals)}

    def _spec(self, store, run_id, dims, loss_config, counts, has_val) -> dict:
        g = self.getOrDefault
        tracking_uri, mlflow_run_id = _mlflow_target(g(self.trackingUri))
        return {
            "store": store.prefix, "run_id": run_id, "dims": dims, "seed": g(self.seed),
            "network": {"vocab_size": g(self.vocabSize), "embedding_dim": g(self.embeddingDim),
                        "encoder": g(self.encoder), "hidden_size": g(self.hiddenSize),
                        "num_layers": g(self.numLayers), "dropout": g(self.dropout),
                        "recurrent_dropout": g(self.recurrentDropout),
                        "token_dropout": g(self.tokenDropout), "skip": g(self.skipConnection)},
            "loss": g(self.loss), "loss_config": loss_config, "label_counts": counts,
            "focal_labels": self.getFocalLabels(), "epochs": g(self.epochs),
            "batch_size": g(self.batchSize), "learning_rate": g(self.learningRate),
            "warmup_epochs": g(self.warmupEpochs), "lr_decay": g(self.learningRateDecay),
            "optimizer": g(self.optimizer),
            "early_stopping_patience": g(self.earlyStoppingPatience), "min_delta": 1e-4,
            "restore_best": g(self.restoreBest) and has_val, "has_validation": has_val,
            "mixed_precision": g(self.mixedPrecision),
            "threads_per_worker": g(self.threadsPerWorker),
            "tracking_uri": tracking_uri, "mlflow_run_id": mlflow_run_id, "fault": self._fault,
        }

    def write(self):
        return DefaultParamsWriter(self)

    @classmethod
    def read(cls):
        return DefaultParamsReader(cls)


def _finished(state, epochs) -> bool:
    return state is not None and (bool(state.get("stopped")) or state["epoch"] + 1 >= epochs)


def _check_slots(spark, num_proc):
    """Local mode runs at most local[N] tasks at once; Horovod would wait for the rest."""
    sc = spark.sparkContext
    if sc.master.startswith("local") and num_proc > sc.defaultParallelism:
        raise ValueError(f"numProc: {num_proc} workers need {num_proc} concurrent Spark tasks, "
                         f"but {sc.master} runs {sc.defaultParallelism}; use numProc <= "
                         f"{sc.defaultParallelism}")


def _label_sums(batches, n):
    import numpy as np
    import pyarrow as pa

    total = np.zeros(n)
    for batch in batches:
        if not batch.num_rows:
            continue
        y = batch.column("y").flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
        mask = batch.column("mask").flatten().to_numpy(zero_copy_only=False)
        total += (y * mask[:, None]).sum(0)
    yield pa.RecordBatch.from_pydict({"sums": [total.tolist()]},
                                     schema=pa.schema([("sums", pa.list_(pa.float64()))]))


def _mlflow_target(tracking_uri: str):
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


def format_epoch(record: dict, labels=None) -> str:
    """One driver log line: epoch, loss, validation loss, F1 of `labels`, time."""
    parts = [f"epoch {record['epoch'] + 1}/{record.get('epochs', '?')}",
             f"loss {record['loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4f}")
        names = labels or [k[len("val_f1_"):] for k in record if k.startswith("val_f1_")]
        parts.append("val F1 " + ", ".join(f"{name} {record[f'val_f1_{name}']:.3f}"
                                           for name in names if f"val_f1_{name}" in record))
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)


class _ProgressTail:
    """Logs each new record of rank 0's progress file on the driver, once per record."""

    def __init__(self, store, run_id, labels, period=1.0):
        self.store, self.run_id, self.labels, self.period = store, run_id, labels, period
        self.seen = len(read_progress(store, run_id))
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
            logger.info("run %s: %s", self.run_id, format_epoch(record, self.labels))
        self.seen = max(self.seen, len(records))


def _controller() -> dict:
    """MPI when Horovod was built with it and mpirun exists, else Gloo."""
    from horovod.common.util import mpi_built

    if mpi_built() and shutil.which("mpirun"):
        return {"use_mpi": True}
    return {"use_gloo": True}


def _run_horovod(spec, num_proc, store) -> dict:
    """Runs the workers; returns rank 0's result.

    Raises:
        RuntimeError: a worker failed; the message holds the workers' own tracebacks.
        KeyboardInterrupt: the driver was interrupted (SIGINT/SIGTERM); Horovod has
            stopped the workers and cancelled its Spark job group.
    """
    import horovod.spark

    from focalseq.training.worker import train_worker

    run_id = spec["run_id"]
    handlers = _signal_handlers()
    started = time.time()
    with _ProgressTail(store, run_id, spec["focal_labels"] or spec["dims"]["labels"]):
        try:
            results = horovod.spark.run(train_worker, args=(spec,), num_proc=num_proc,
                                        verbose=0, **_controller())
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


# --------------------------------------------------------------------------------------
# The model


class _BiLSTMModelParams(HasLabels, HasFocalLabels):
    multiLabel = _param("multiLabel", "sigmoid head with label sets", TypeConverters.toBoolean)
    runId = _param("runId", "the training run", TypeConverters.toString)
    logOffsets = _param("logOffsets", "single-label: per-label offsets added to "
                        "log-probabilities before the argmax (tuned thresholds / logit "
                        "adjustment); empty: none", TypeConverters.toListFloat)
    thresholds = _param("thresholds", "multi-label: per-label decision thresholds (empty: 0.5)",
                        TypeConverters.toListFloat)
    predictionCol = _param("predictionCol", "predicted label column", TypeConverters.toString)
    probabilityCol = _param("probabilityCol", "per-label probability column",
                            TypeConverters.toString)
    batchSize = _param("batchSize", "windows per network call", TypeConverters.toInt)
    groupedInput = _param("groupedInput", "each document's windows arrive together, in one "
                          "partition (true of Windower output within the same job, as in "
                          "the inference pipeline): lines are averaged in the Python pass "
                          "and no shuffle merges them; a document found in two places "
                          "fails the task, naming it", TypeConverters.toBoolean)
    directRead = _param("directRead", "when the input is a plain scan of Parquet files "
                        "(spark.read.parquet, columns selected or dropped, filters on "
                        "partition columns only), the "
                        "Python workers read the files with pyarrow instead of receiving "
                        "rows from the JVM (the same result, faster); other inputs always "
                        "go through the JVM", TypeConverters.toBoolean)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(multiLabel=False, runId="", logOffsets=[], thresholds=[],
                         predictionCol="prediction", probabilityCol="probability",
                         batchSize=512, groupedInput=False, directRead=True, focalLabels=[],
                         labels=[])

    def getMultiLabel(self):
        return self.getOrDefault(self.multiLabel)

    def getRunId(self):
        return self.getOrDefault(self.runId)

    def getLogOffsets(self):
        return self.getOrDefault(self.logOffsets)

    def getThresholds(self):
        return self.getOrDefault(self.thresholds)

    def getPredictionCol(self):
        return self.getOrDefault(self.predictionCol)

    def getProbabilityCol(self):
        return self.getOrDefault(self.probabilityCol)

    def getBatchSize(self):
        return self.getOrDefault(self.batchSize)

    def getGroupedInput(self):
        return self.getOrDefault(self.groupedInput)

    def getDirectRead(self):
        return self.getOrDefault(self.directRead)


class BiLSTMModel(Model, _BiLSTMModelParams, MLReadable, MLWritable):
    """Per-line predictions from windows; overlapping windows' probabilities are averaged.

    Output: one row per line with doc_id, [split], line_idx, `probability` (array in
    label order), the true `label` (null or "" for unlabeled lines) and `prediction`.
    Saved with its network (`network.keras`) beside the params; loading needs no
    custom_objects.
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, multiLabel=False, runId="",
                 logOffsets=None, thresholds=None, predictionCol="prediction",
                 probabilityCol="probability", batchSize=512, groupedInput=False,
                 directRead=True):
        super().__init__()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        self._network_bytes = None
        self.training_summary = None

    def setLogOffsets(self, value):
        return self._set(logOffsets=value)

    def setThresholds(self, value):
        return self._set(thresholds=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)

    def setBatchSize(self, value):
        return self._set(batchSize=value)

    def setGroupedInput(self, value):
        return self._set(groupedInput=value)

    def setDirectRead(self, value):
        return self._set(directRead=value)

    def copy(self, extra=None):
        that = super().copy(extra)
        that._network_bytes = self._network_bytes
        that.training_summary = self.training_summary
        return that

    @property
    def network_bytes(self) -> bytes:
        if self._network_bytes is None:
            raise ValueError("BiLSTMModel has no network: fit it or load a saved model")
        return self._network_bytes

    def load_network(self):
        """The Keras network in this process (cached by content)."""
        return _load_network(hashlib.sha256(self.network_bytes).hexdigest(), self.network_bytes)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        out = predict_lines(dataset, [self.network_bytes], self.getLabels(),
                            self.getMultiLabel(), self.getBatchSize(), self.getGroupedInput(),
                            probability_col=self.getProbabilityCol(),
                            direct_read=self.getDirectRead())
        prob = F.col(self.getProbabilityCol())
        return out.withColumn(self.getPredictionCol(), self._decision(prob, len(self.getLabels())))

    def _decision(self, prob, n):
        labels = self.getLabels()
        if self.getMultiLabel():
            th = self.getThresholds() or [0.5] * n
            if len(th) != n:
                raise ValueError(f"thresholds: expected {n} values (one per label {labels}), "
                                 f"got {len(th)}")
            parts = [F.when(prob[j] >= F.lit(th[j]), F.lit(labels[j])) for j in range(n)]
            return F.concat_ws("|", *parts)
        offsets = self.getLogOffsets() or [0.0] * n
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


def predict_lines(dataset: DataFrame, networks: list, labels: list, multi_label: bool,
                  batch_size: int, grouped: bool = False, weights: list = None,
                  probability_col: str = "probability", direct_read: bool = True) -> DataFrame:
    """Windows -> one row per line: doc_id, [split], line_idx, probabilities, label.

    Each network (Keras archive bytes) runs over every window in one Python pass; with
    several networks (an ensemble) their outputs are averaged with `weights` first. A
    line's probability is then the mean over the windows that cover it: within each Arrow
    batch in Python, and across batches and partitions by a final aggregation, or, when
    `grouped` (each document's windows together in one partition), in Python alone.

    With `direct_read`, when `dataset` is a plain scan of Parquet files the Python
    workers read the files themselves (`focalseq.stages.parquet_input`); the result is
    the same.
    """
    n = len(labels)
    if batch_size < 1:
        raise ValueError(f"batchSize: must be >= 1, got {batch_size}")
    dims = read_window_metadata(dataset)
    if list(dims["labels"]) != list(labels):
        raise ValueError(f"windows: labels {dims['labels']} differ from the model's "
                         f"{labels}")
    weights = list(weights or [1.0] * len(networks))
    sc = dataset.sparkSession.sparkContext
    keys = ["doc_id"] + [c for c in ("split",) if c in dataset.columns]
    spec = {"digests": [hashlib.sha256(b).hexdigest() for b in networks],
            "weights": weights, "window": dims["window"], "labels": labels,
            "multi_label": multi_label, "keys": keys, "batch": batch_size,
            "threads": int(sc.getConf().get("spark.task.cpus", "1"))}
    shared = sc.broadcast(list(networks))
    schema = T.StructType([dataset.schema[k] for k in keys] + [
        T.StructField("line_idx", T.IntegerType()),
        T.StructField("_n", T.IntegerType()),
        T.StructField("label", T.StringType())] +
        [T.StructField(f"_p{j}", T.DoubleType()) for j in range(n)])
    cols = keys + ["start", "n_valid", "token_ids", "shape", "y"]
    windows, read = dataset.select(*cols), None
    files = parquet_input.parquet_files(dataset, cols) if direct_read else None
    if files is not None:
        windows, read = _file_assignments(dataset, files), _reader(dataset, cols)
    step = _grouped_lines if grouped else _predict_batches
    per_line = windows.mapInArrow(
        lambda batches: step(read(batches) if read else batches, spec, shared), schema)
    if grouped:
        # Every line leaves the Python pass complete: no shuffle.
        agg = per_line
    else:
        # Lines are summed within each Arrow batch; this merges the lines whose windows
        # fell into different batches or partitions.
        agg = per_line.groupBy(*keys, "line_idx").agg(
            F.sum("_n").alias("_n"), F.first("label").alias("label"),
            *[F.sum(f"_p{j}").alias(f"_p{j}") for j in range(n)])
    prob = F.array(*[F.col(f"_p{j}") / F.col("_n") for j in range(n)])
    return agg.select(*keys, "line_idx", prob.alias(probability_col), "label")


def _file_assignments(dataset, files) -> DataFrame:
    """One row per task: the [path, partition values] of the files it reads, in order."""
    spark = dataset.sparkSession
    sc = spark.sparkContext
    # As many tasks as Spark's own scan would use (its files packed by
    # spark.sql.files.maxPartitionBytes), and at least one per core.
    tasks = max(sc.defaultParallelism, dataset.rdd.getNumPartitions())
    bins = parquet_input.packed(files, tasks)
    rows = [([[path, json.dumps(part)] for path, part in b],) for b in bins]
    schema = T.StructType([T.StructField("files", T.ArrayType(T.ArrayType(T.StringType())))])
    return spark.createDataFrame(sc.parallelize(rows, len(rows)), schema)


def _reader(dataset, cols):
    """batches of file assignments -> Arrow batches of the windows' `cols`."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(dataset.select(*cols).schema)
    rows = int(dataset.sparkSession.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch",
                                               "10000"))

    def read(assignments):
        return parquet_input.read_batches(assignments, cols, schema, rows)

    return read


@lru_cache(maxsize=16)
def _load_network(digest: str, data: bytes):  # digest keys the cache
    import tensorflow as tf

    import focalseq.training.network  # noqa: F401  (registers the custom layers)

    with tempfile.TemporaryDirectory(prefix="focalseq-network-") as tmp:
        path = os.path.join(tmp, "network.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return tf.keras.models.load_model(path, compile=False)


@lru_cache(maxsize=16)
def _predictor(digest: str, data: bytes):
    """The network's forward pass as one traced function: (token_ids, shape) -> probs.

    Traced once for any number of rows (the batch dimension is left free), so ragged
    last chunks never retrace, and called directly rather than through
    `Model.predict_on_batch`, whose per-call data handling costs about a fifth of the
    CPU of a 512-window call.
    """
    import tensorflow as tf

    net = _load_network(digest, data)
    signature = {name: tf.TensorSpec((None,) + tuple(x.shape[1:]), x.dtype)
                 for name, x in zip(net.input_names, net.inputs)}

    @tf.function(input_signature=[signature])
    def predict(inputs):
        return net(inputs, training=False)

    if _predictor.cache_info().currsize == 0:
        atexit.register(_free_predictors)
    return predict


def _combined_predictor(spec, networks):
    """One network's forward pass, or the weighted mean of several (an ensemble)."""
    fns = [_predictor(d, b) for d, b in zip(spec["digests"], networks)]
    if len(fns) == 1:
        return fns[0]
    weights, total = spec["weights"], float(sum(spec["weights"]))

    def predict(inputs):
        return sum(w * f(inputs) for w, f in zip(weights, fns)) / total

    return predict


def _free_predictors():
    """Drops the traced functions while TensorFlow is still whole (not at teardown)."""
    import gc

    _predictor.cache_clear()
    _load_network.cache_clear()
    gc.collect()


def _set_tf_threads(threads: int):
    """Gives TensorFlow in this executor process the task's CPUs (once, before first use)."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already running in this process: keep its pools
        pass


def _predict_batches(batches, spec, shared):
    """Windows (Arrow batches) -> one row per line of each batch, probabilities summed."""
    for batch, predict in _with_predictor(batches, spec, shared):
        yield _lines_of_batch(batch, predict, spec)


def _with_predictor(batches, spec, shared):
    """(batch, predict) for each non-empty batch; the networks load on the first one."""
    predict = None
    for batch in batches:
        if not batch.num_rows:
            continue
        if predict is None:
            _set_tf_threads(spec["threads"])
            predict = _combined_predictor(spec, shared.value)
        yield batch, predict


def _grouped_lines(batches, spec, shared):
    """Windows grouped by document -> one complete row per line, no merge needed later.

    A document's windows may span Arrow batches: the lines of each batch's last document
    are held back and merged with the next batch's first document when it is the same.
    Every other document is complete when its batch ends, which is checked: each run of
    a document's windows in the partition must include its first window (start 0), so a
    document split across partitions (or interleaved with another) fails loudly instead
    of giving two half-averaged rows per line.
    """
    held, held_doc = None, None
    for batch, predict in _with_predictor(batches, spec, shared):
        lines = _lines_of_batch(batch, predict, spec)
        windows_doc, starts = batch.column("doc_id"), batch.column("start").to_numpy()
        runs = _runs(windows_doc)
        parts = {lines.column("doc_id")[a].as_py(): (a, b)
                 for a, b in _runs(lines.column("doc_id"))}
        if len(parts) != len(runs):
            raise ValueError("groupedInput: a document's windows are interleaved with "
                             "another's; transform with groupedInput=False")
        for i, (a, b) in enumerate(runs):
            doc, first_start = windows_doc[a].as_py(), int(starts[a:b].min())
            continued = i == 0 and held is not None and doc == held_doc
            if i == 0 and held is not None and not continued:
                yield held
                held = None
            if first_start != 0 and not continued:
                raise ValueError(
                    f"groupedInput: the windows of document {doc!r} are not together in "
                    f"one partition (a run of them starts at line {first_start}); "
                    f"transform with groupedInput=False, which merges lines with a shuffle")
            lo, hi = parts[doc]
            part = lines.slice(lo, hi - lo)
            if continued:
                part = _merge_line_sums(held, part, spec)
                held = None
            if i == len(runs) - 1:
                held, held_doc = part, doc
            else:
                yield part
    if held is not None:
        yield held


def _runs(column) -> list:
    """(start, end) of each run of equal values in an Arrow column."""
    import numpy as np

    codes = column.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    edges = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1, [len(codes)]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _merge_line_sums(a, b, spec):
    """Two record batches of one document's partial line sums -> one row per line."""
    import numpy as np
    import pyarrow as pa

    both = pa.Table.from_batches([a, b]).combine_chunks().to_batches()[0]
    line = both.column("line_idx").to_numpy()
    unique, first, inverse = np.unique(line, return_index=True, return_inverse=True)
    out = {k: both.column(k).take(pa.array(first)) for k in spec["keys"] + ["line_idx"]}
    out["_n"] = pa.array(np.bincount(inverse, weights=both.column("_n").to_numpy(),
                                     minlength=len(unique)).astype(np.int32))
    out["label"] = both.column("label").take(pa.array(first))
    for j in range(len(spec["labels"])):
        out[f"_p{j}"] = pa.array(np.bincount(inverse, weights=both.column(f"_p{j}").to_numpy(),
                                             minlength=len(unique)))
    return pa.RecordBatch.from_pydict({name: out[name] for name in a.schema.names})


def _dense(column, rows, *tail):
    import numpy as np

    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values).reshape((rows,) + tail)


def _lines_of_batch(batch, predict, spec):
    import numpy as np
    import pyarrow as pa

    rows, W, labels = batch.num_rows, spec["window"], spec["labels"]
    n = len(labels)
    tokens = _dense(batch.column("token_ids"), rows, W, -1).astype(np.int32, copy=False)
    shape = _dense(batch.column("shape"), rows, W, -1).astype(np.float32, copy=False)
    y = _dense(batch.column("y"), rows, W, n)
    probs = _predict_rows(predict, tokens, shape, spec["batch"])[..., :n]
    # Every valid (window, line) pair, keyed by (window's document, line_idx).
    valid = batch.column("n_valid").to_numpy().astype(np.int64)
    win = np.repeat(np.arange(rows), valid)
    offset = np.arange(len(win)) - np.repeat(np.cumsum(valid) - valid, valid)
    line_idx = np.repeat(batch.column("start").to_numpy().astype(np.int64), valid) + offset
    doc_codes = _codes(batch, spec["keys"])
    key = doc_codes[win] * (int(line_idx.max()) + 1) + line_idx
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(unique))
    p = probs[win, offset]
    sums = [np.bincount(inverse, weights=p[:, j], minlength=len(unique)) for j in range(n)]
    take = pa.array(win[first])
    out = {k: batch.column(k).take(take) for k in spec["keys"]}
    out["line_idx"] = pa.array(line_idx[first].astype(np.int32))
    out["_n"] = pa.array(counts.astype(np.int32))
    out["label"] = _line_labels(y[win[first], offset[first]], labels, spec["multi_label"])
    for j in range(n):
        out[f"_p{j}"] = pa.array(sums[j])
    return pa.RecordBatch.from_pydict(out)


def _predict_rows(predict, tokens, shape, step):
    """`predict` over all rows, `step` windows a call."""
    import numpy as np

    return np.concatenate([
        predict({"token_ids": tokens[i:i + step], "shape": shape[i:i + step]}).numpy()
        for i in range(0, len(tokens), step)])


def _codes(batch, keys):
    """Integers 0..g-1 naming each window's (doc_id, split) group within the batch."""
    import numpy as np

    codes = np.zeros(batch.num_rows, dtype=np.int64)
    for k in keys:
        c = np.asarray(batch.column(k).dictionary_encode().indices.fill_null(-1), np.int64) + 1
        codes = codes * (int(c.max()) + 1) + c
    return np.unique(codes, return_inverse=True)[1]


def _line_labels(y, labels, multi_label):
    """The true label of each line from its target row, as an Arrow string array.

    Single-label: the hot label, null for unlabeled lines. Multi-label: the hot labels
    joined by "|", "" for none. Vectorised: one lookup per distinct row pattern, not a
    Python call per line (that loop was most of the post-processing time).
    """
    import numpy as np
    import pyarrow as pa

    hot = y > 0.5
    if multi_label:
        codes = hot.astype(np.int64) @ (np.int64(1) << np.arange(len(labels), dtype=np.int64))
        patterns, index = np.unique(codes, return_inverse=True)
        names = ["|".join(lab for j, lab in enumerate(labels) if (int(c) >> j) & 1)
                 for c in patterns]
        return pa.array(names, pa.string()).take(pa.array(index.astype(np.int64)))
    index = pa.array(hot.argmax(1).astype(np.int32), mask=~hot.any(1))
    return pa.DictionaryArray.from_arrays(index, pa.array(labels, pa.string())) \
        .cast(pa.string())


class _BiLSTMModelWriter(MLWriter):
    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        _write_bytes(os.path.join(path, "network.keras"), self.instance.network_bytes)
        if self.instance.training_summary is not None:
            _write_bytes(os.path.join(path, "training_summary.json"),
                         json.dumps(self.instance.training_summary, indent=1).encode())


class _BiLSTMModelReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path):
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        model = self.cls()
        DefaultParamsReader.getAndSetParams(model, metadata)
        model._network_bytes = _read_bytes(os.path.join(path, "network.keras"))
        summary = os.path.join(path, "training_summary.json")
        if _exists(summary):
            model.training_summary = json.loads(_read_bytes(summary))
        return model


def _write_bytes(path, data):
    import fsspec

    with fsspec.open(path, "wb") as fh:
        fh.write(data)


def _read_bytes(path):
    import fsspec

    with fsspec.open(path, "rb") as fh:
        return fh.read()


def _exists(path) -> bool:
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    return fs.exists(root)
