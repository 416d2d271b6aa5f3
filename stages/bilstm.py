"""Windows -> trained network -> per-line predictions: the BiLSTM stages.

`BiLSTMEstimator` is the driver side of distributed training: it validates its params
(the loss config included, before any Spark job runs), writes the train and validation
windows once as Parquet into the run's store (`focalseq.training.run_store`) and hands
a spec of plain values to `focalseq.training.launch`, which runs the worker side
(`focalseq.training.remote`) with Horovod. Fitting again with the same `runId` and the
same settings resumes from the last complete epoch (or returns the finished model); a
run id means one training, so other settings are refused (the run's `settings.json`),
and so is a second fit of a run id while the first is alive (`focalseq.training.run_lock`).

`BiLSTMModel` predicts with the Arrow engine of `focalseq.stages.prediction` (overlapping
windows' probabilities averaged onto each line) and decides with the rule of
`focalseq.stages.decision`. It saves its network beside its params.

>>> est = BiLSTMEstimator(loss="soft_f1", focalLabels=["Nomenclature"], epochs=3)
>>> est.getEpochs(), est.getLoss()
(3, 'soft_f1')
>>> est.setBatchSize(64).getBatchSize()
64
>>> model = est.fit(windows)  # doctest: +SKIP
"""
import contextlib
import hashlib
import json
import logging
import math
import re
import uuid

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq.losses.choice import loss_config_for
from focalseq.losses.config import WEIGHT_STRATEGIES
from focalseq.stages._params import (HasDecisionRule, HasFocalLabels, HasLabels,
                                     HasMultiLabel, HasWindowInput)
from focalseq.stages.bilstm_params import (COLLECTIVES, ENCODERS, HEADS, LR_DECAYS, OPTIMIZERS,
                                           BiLSTMParams)
from focalseq.stages.decision import decision_expr
from focalseq.stages.persistence import FilesReader, FilesWriter, read_file, read_json
from focalseq.stages.windows import read_window_metadata
from focalseq.training import launch
from focalseq.training.run_lock import RunLock
from focalseq.training.run_store import RunStore

logger = logging.getLogger(__name__)

WINDOW_COLUMNS = ("token_ids", "shape", "y", "mask")
DOCUMENT_COLUMNS = ("doc_id", "start", "n_valid")
# Spark's vectorized Parquet reader fills one array per column with a batch of rows
# (spark.sql.parquet.columnarReaderBatchSize, 4,096 by default) and grows it, batch after
# batch, by reallocating. A window row is wide (3 KB in benchmarks/scale.py, 9 KB at the
# SKOL settings), so 4,096 of them make arrays of 13-36 MB per task: G1 places arrays that
# large outside the young generation and grows the heap for them. The run's own reads of
# windows (its data shuffle, the label counts) take batches of about this many bytes:
# at 3M lines the phase's peak committed heap fell from 670-800 MB to 550-590 MB and the
# JVM's peak RSS from 1,010-1,150 MB to 945-990 MB (docs/training.md, Scale).
READ_BATCH_BYTES = 2 * 1024 * 1024
_SPARK_READER_BATCH_ROWS = 4096
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The params' names for the loss-config rules' errors.
_PARAM_NAMES = {"class_weights": "classWeights", "weight_strategy": "weightStrategy",
                "loss_config": "lossConfig"}


class BiLSTMEstimator(Estimator, BiLSTMParams, MLReadable, MLWritable):
    """Trains the BiLSTM line labeler with Horovod on the Spark executors.

    Input: windows from `Windower`. With a `split` column, rows with split "train" train
    and "validation" rows drive early stopping and the best-epoch choice ("test" rows are
    ignored); without one, `validationFraction` of the documents are held out. Dimensions,
    labels and single- or multi-label come from the windows' column metadata. A param
    left at None takes its default (`BiLSTMParams.default_params()`).

    >>> est = BiLSTMEstimator(loss="weighted_cross_entropy", weightStrategy="balanced",
    ...                       focalLabels=["Nomenclature"], epochs=3, numProc=2)
    >>> est.getWeightStrategy()
    'balanced'
    """

    @keyword_only
    def __init__(self, *,
        hiddenSize=None, numLayers=None, dropout=None, recurrentDropout=None,
        embeddingDim=None, encoder=None, tokenDropout=None, skipConnection=None, head=None,
        vocabSize=None, epochs=None, batchSize=None, learningRate=None,
        warmupEpochs=None, learningRateDecay=None, optimizer=None, loss=None,
        lossConfig=None, classWeights=None, weightStrategy=None,
        validationFraction=None, earlyStoppingPatience=None, restoreBest=None,
        numProc=None, threadsPerWorker=None, mixedPrecision=None, collective=None,
        storePath=None,
        runId=None, labelCounts=None, rowGroupBytes=None, trackingUri=None,
        focalLabels=None, seed=None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *,
        hiddenSize=None, numLayers=None, dropout=None, recurrentDropout=None,
        embeddingDim=None, encoder=None, tokenDropout=None, skipConnection=None, head=None,
        vocabSize=None, epochs=None, batchSize=None, learningRate=None,
        warmupEpochs=None, learningRateDecay=None, optimizer=None, loss=None,
        lossConfig=None, classWeights=None, weightStrategy=None,
        validationFraction=None, earlyStoppingPatience=None, restoreBest=None,
        numProc=None, threadsPerWorker=None, mixedPrecision=None, collective=None,
        storePath=None,
        runId=None, labelCounts=None, rowGroupBytes=None, trackingUri=None,
        focalLabels=None, seed=None):
        """Sets params by name; dict/list values of JSON params are serialised."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    # Validation ----------------------------------------------------------------------

    def validate(self, labels, multi_label=False) -> dict:
        """Checks every param and the loss config; returns the normalised loss config."""
        from focalseq.losses import validate_loss_config

        g = self.getOrDefault
        for name, valid in (("encoder", ENCODERS), ("head", HEADS), ("optimizer", OPTIMIZERS),
                            ("collective", COLLECTIVES),
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
        if g(self.head) == "crf" and multi_label:
            raise ValueError("head: 'crf' labels each line with one label; these windows are "
                             "multi-label (use head 'softmax', a sigmoid per label)")
        focal = self.getFocalLabels()
        unknown = [f for f in focal if f not in labels]
        if unknown:
            raise ValueError(f"focalLabels: {unknown} are not labels; valid labels: {labels}")
        return validate_loss_config(g(self.loss), self._loss_config(), labels,
                                    multi_label=multi_label)

    def _loss_config(self) -> dict:
        """lossConfig plus what the classWeights, weightStrategy and focalLabels params add."""
        return loss_config_for(self.getLoss(), self.getLossConfig(),
                               focal_labels=self.getFocalLabels(),
                               class_weights=self.getClassWeights(),
                               weight_strategy=self.getWeightStrategy() or None,
                               names=_PARAM_NAMES)

    # Fit ---------------------------------------------------------------------------------

    def _fit(self, dataset: DataFrame) -> "BiLSTMModel":
        dims = read_window_metadata(dataset)
        labels = dims["labels"]
        loss_config = self.validate(labels, dims["multi_label"])
        launch.check_slots(dataset.sparkSession, self.getNumProc())
        store = RunStore(self.getStorePath())
        run_id = self.getRunId() or uuid.uuid4().hex[:12]
        with RunLock(store, run_id):  # released however the fit ends
            store.check_settings(run_id, self._settings(dims, loss_config))
            return self._fit_run(dataset, store, run_id, dims, loss_config)

    def _settings(self, dims, loss_config) -> dict:
        """What a run id stands for: every value that changes the trained model.

        Left out: where the run lives (storePath, runId), where it reports (trackingUri,
        the MLflow run) and threadsPerWorker, which only changes the speed.
        """
        g = self.getOrDefault
        return {"dims": dims, "network": self._network(), "loss": g(self.loss),
                "loss_config": loss_config, "label_counts": self.getLabelCounts(),
                "focal_labels": self.getFocalLabels(), "epochs": g(self.epochs),
                "batch_size": g(self.batchSize), "learning_rate": g(self.learningRate),
                "warmup_epochs": g(self.warmupEpochs), "lr_decay": g(self.learningRateDecay),
                "optimizer": g(self.optimizer),
                "early_stopping_patience": g(self.earlyStoppingPatience),
                "restore_best": g(self.restoreBest),
                "validation_fraction": g(self.validationFraction),
                "mixed_precision": g(self.mixedPrecision), "num_proc": g(self.numProc),
                "row_group_bytes": g(self.rowGroupBytes), "seed": g(self.seed)}

    def _network(self) -> dict:
        g = self.getOrDefault
        return {"vocab_size": g(self.vocabSize), "embedding_dim": g(self.embeddingDim),
                "encoder": g(self.encoder), "hidden_size": g(self.hiddenSize),
                "num_layers": g(self.numLayers), "dropout": g(self.dropout),
                "recurrent_dropout": g(self.recurrentDropout),
                "token_dropout": g(self.tokenDropout), "skip": g(self.skipConnection),
                "head": g(self.head)}

    def _fit_run(self, dataset, store, run_id, dims, loss_config) -> "BiLSTMModel":
        """The fit of a locked run whose settings match its record."""
        labels = dims["labels"]
        state = store.checkpoint_state(run_id)
        summary = {"run_id": run_id, "loss_config": loss_config}
        if _finished(state, self.getEpochs()) and store.exists(store.model_path(run_id)):
            logger.info("run %s finished at epoch %d: returning its model", run_id,
                        state["epoch"] + 1)
            summary.update(initial_epoch=state["epoch"] + 1, state=state)
            return self._model(store, run_id, dims, summary)
        store.remove(store.path(run_id, "errors"))
        spark = dataset.sparkSession
        with _parquet_batch_rows(spark, _read_batch_rows(dims)):
            windows = self._write_data(store, run_id, dataset, dims)
            if not windows.get("train"):
                raise ValueError("windows: no training windows (split 'train', or all "
                                 "windows when there is no split column)")
            counts = self._label_counts(store, run_id, spark, labels)
        has_val = windows.get("validation", 0) > 0
        logger.info("run %s: %s windows, label counts %s, loss %s %s", run_id, windows,
                    counts, self.getLoss(), loss_config)
        spec = self._spec(store, run_id, dims, loss_config, counts, has_val)
        result = launch.run_horovod(spec, self.getNumProc(), store)
        store.remove(store.path(run_id, "data"))
        summary.update(label_counts=counts, windows=windows,
                       initial_epoch=result["initial_epoch"], state=result["state"])
        return self._model(store, run_id, dims, summary)

    def _model(self, store, run_id, dims, summary) -> "BiLSTMModel":
        model = BiLSTMModel(labels=dims["labels"], focalLabels=self.getFocalLabels(),
                            multiLabel=dims["multi_label"], runId=run_id)
        model._set_network(store.read_bytes(store.model_path(run_id)))
        model.training_summary = {**summary, "history": launch.read_progress(store, run_id)}
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

    def _write_data(self, store, run_id, dataset, dims) -> dict:
        """Writes the run's windows once (kept until the fit succeeds); {part: windows}."""
        url = store.url(run_id, "data")
        if not store.exists(store.path(run_id, "data", "_SUCCESS")):
            part = self._split_expr(dataset).alias("part")
            rows = dataset.select(*_data_columns(dataset), part) \
                .filter(F.col("part").isNotNull())
            (self._data_files(rows, _file_count(rows, dims, self.getNumProc()))
             .write.mode("overwrite").partitionBy("part")
             .option("parquet.block.size", str(self.getRowGroupBytes())).parquet(url))
        if not store.glob(store.path(run_id, "data", "part=*")):
            return {}
        rows = dataset.sparkSession.read.parquet(url).groupBy("part").count().collect()
        return {r["part"]: int(r["count"]) for r in rows}

    def _data_files(self, rows: DataFrame, n_files: int) -> DataFrame:
        """`rows` arranged into the `n_files` files of each part the workers read.

        Training windows spread evenly over the files: the workers shard them by row
        group, and the smallest shard sets every worker's steps per epoch. Validation
        windows go by document, sorted by (doc_id, start): each document's windows lie
        together in one file, so the one worker reading that file can average every
        line over all the windows covering it (`focalseq.training.streaming`).
        """
        if "doc_id" not in rows.columns:  # no documents, hence no validation windows
            return rows.repartition(n_files)
        validation = F.col("part") == F.lit("validation")
        key = F.when(validation, F.xxhash64("doc_id")).otherwise(F.xxhash64("doc_id", "start"))
        return rows.repartition(n_files, key).sortWithinPartitions(
            "part", F.when(validation, F.col("doc_id")), F.when(validation, F.col("start")))

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
        tracking_uri, mlflow_run_id = launch.mlflow_target(g(self.trackingUri))
        return {
            "store": store.prefix, "run_id": run_id, "dims": dims, "seed": g(self.seed),
            "network": self._network(),
            "loss": g(self.loss), "loss_config": loss_config, "label_counts": counts,
            "focal_labels": self.getFocalLabels(), "epochs": g(self.epochs),
            "batch_size": g(self.batchSize), "learning_rate": g(self.learningRate),
            "warmup_epochs": g(self.warmupEpochs), "lr_decay": g(self.learningRateDecay),
            "optimizer": g(self.optimizer),
            "early_stopping_patience": g(self.earlyStoppingPatience), "min_delta": 1e-4,
            "restore_best": g(self.restoreBest) and has_val, "has_validation": has_val,
            "mixed_precision": g(self.mixedPrecision), "collective": g(self.collective),
            "threads_per_worker": g(self.threadsPerWorker),
            "tracking_uri": tracking_uri, "mlflow_run_id": mlflow_run_id,
        }

    def write(self):
        return DefaultParamsWriter(self)

    @classmethod
    def read(cls):
        return DefaultParamsReader(cls)



def _finished(state, epochs) -> bool:
    return state is not None and (bool(state.get("stopped")) or state["epoch"] + 1 >= epochs)



def _data_columns(dataset: DataFrame) -> list:
    """The columns the workers read: the window arrays, and what places each window in
    its document (validation scores lines) when the windows have it."""
    place = [c for c in DOCUMENT_COLUMNS if c in dataset.columns]
    if len(place) < len(DOCUMENT_COLUMNS) and (place or "split" in dataset.columns):
        raise ValueError(f"windows: columns {list(DOCUMENT_COLUMNS)} place each window in "
                         f"its document (validation scores lines); got only {place} "
                         "(build windows with Windower)")
    return list(WINDOW_COLUMNS) + place


def _file_count(rows: DataFrame, dims: dict, num_proc: int) -> int:
    """How many files the run's windows go into: 2 x numProc at least, and enough that
    no file holds more than Spark's advisory partition size of rows in memory
    (spark.sql.adaptive.advisoryPartitionSizeInBytes, 64 MB by default).

    One task sorts and writes each file, so a fixed number of files would make each
    task's sort, and the executor memory it fills, grow with the corpus; a multiple of
    numProc keeps the workers' shards even.
    """
    spark = rows.sparkSession
    target = spark._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get("spark.sql.adaptive.advisoryPartitionSizeInBytes", "64MB"))
    groups = math.ceil(rows.count() * _window_bytes(dims) / (target * num_proc))
    return num_proc * max(2, groups)


def _window_bytes(dims: dict) -> int:
    """A window in memory: four float or int arrays of window positions (tokens, shape
    features, targets, mask), 4 bytes an element."""
    return 4 * dims["window"] * (dims["max_tokens"] + dims["n_shape"]
                                 + len(dims["labels"]) + 1)


def _read_batch_rows(dims: dict) -> int:
    """Windows per Parquet reader batch: about READ_BATCH_BYTES, at most Spark's 4,096."""
    return max(1, min(_SPARK_READER_BATCH_ROWS, READ_BATCH_BYTES // _window_bytes(dims)))


@contextlib.contextmanager
def _parquet_batch_rows(spark, rows: int):
    """Spark's Parquet reader batch (spark.sql.parquet.columnarReaderBatchSize) at most
    `rows` while the block runs, then the session's own setting again (as petastorm's
    materialize_dataset does with the Parquet writer's settings)."""
    key = "spark.sql.parquet.columnarReaderBatchSize"
    before = spark.conf.get(key, None)
    current = int(before) if before is not None else _SPARK_READER_BATCH_ROWS
    spark.conf.set(key, str(min(rows, current)))
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


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


# --------------------------------------------------------------------------------------
# The model


class _BiLSTMModelParams(HasLabels, HasFocalLabels, HasMultiLabel, HasDecisionRule,
                         HasWindowInput, HasPredictionCol, HasProbabilityCol):
    runId = Param(Params._dummy(), "runId", "the training run", TypeConverters.toString)
    batchSize = Param(Params._dummy(), "batchSize", "windows per network call",
                      typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        # No configuration keys: these describe a fitted model (labels, runId, the tuned
        # decision values) or how it reads its input, not a training setting.
        self._setDefault(labels=[], focalLabels=[], multiLabel=False, runId="",
                         logOffsets=[], thresholds=[], predictionCol="prediction",
                         probabilityCol="probability", batchSize=512, groupedInput=False,
                         directRead=True)

    def getRunId(self):
        return self.getOrDefault(self.runId)

    def getBatchSize(self):
        return self.getOrDefault(self.batchSize)


class BiLSTMModel(Model, _BiLSTMModelParams, MLReadable, MLWritable):
    """Per-line predictions from windows; overlapping windows' probabilities are averaged.

    Output: one row per line with doc_id, [split], line_idx, `probability` (array in
    label order), the true `label` (null or "" for unlabeled lines) and `prediction`.
    Saved with its network (`network.keras`) beside the params; loading needs no
    custom_objects.

    >>> model = BiLSTMModel(labels=["A", "B"], logOffsets=[0.0, 1.5])
    >>> model.setThresholds([]).getLogOffsets()
    [0.0, 1.5]
    """

    @keyword_only
    def __init__(self, *, labels=None, focalLabels=None, multiLabel=None, runId=None,
                 logOffsets=None, thresholds=None, predictionCol=None, probabilityCol=None,
                 batchSize=None, groupedInput=None, directRead=None):
        super().__init__()
        self._network_bytes = None
        self.training_summary = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, focalLabels=None, multiLabel=None, runId=None,
                  logOffsets=None, thresholds=None, predictionCol=None, probabilityCol=None,
                  batchSize=None, groupedInput=None, directRead=None):
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def setLabels(self, value):
        return self._set(labels=value)

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setRunId(self, value):
        return self._set(runId=value)

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

    def _set_network(self, data: bytes):
        self._network_bytes = data

    @property
    def network_bytes(self) -> bytes:
        if self._network_bytes is None:
            raise ValueError("BiLSTMModel has no network: fit it or load a saved model")
        return self._network_bytes

    def load_network(self):
        """The Keras network in this process (cached by content)."""
        from focalseq.stages.prediction import load_network

        return load_network(hashlib.sha256(self.network_bytes).hexdigest(), self.network_bytes)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from focalseq.stages.prediction import predict_lines

        out = predict_lines(dataset, [self.network_bytes], self.getLabels(),
                            self.getMultiLabel(), self.getBatchSize(), self.getGroupedInput(),
                            probability_col=self.getProbabilityCol(),
                            direct_read=self.getDirectRead())
        return out.withColumn(self.getPredictionCol(), decision_expr(
            F.col(self.getProbabilityCol()), self.getLabels(), self.getMultiLabel(),
            self.getLogOffsets(), self.getThresholds()))

    # Persistence: the network and the training summary beside the params.

    def _files_to_save(self) -> dict:
        summary = self.training_summary
        return {"network.keras": self.network_bytes,
                "training_summary.json":
                    None if summary is None else json.dumps(summary, indent=1).encode()}

    def _restore_files(self, path, metadata, sc):
        self._set_network(read_file(path, "network.keras"))
        self.training_summary = read_json(path, "training_summary.json", required=False)

    def write(self):
        return FilesWriter(self)

    @classmethod
    def read(cls):
        return FilesReader(cls)
