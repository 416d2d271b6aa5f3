"""The params of `BiLSTMEstimator` (and of the ensemble that shares them).

Every default comes from `focalseq.config.DEFAULTS` (the typed configuration defines it
once); the few params the configuration has no key for say why next to their value.
Each param has a camelCase getter and a setter here, shared by `BiLSTMEstimator` and
`EnsembleEstimator`.
"""
import os
import tempfile

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasSeed

from focalseq.config import CHOICES
from focalseq.config import DEFAULTS as _D
from focalseq.losses.config import WEIGHT_STRATEGIES
from focalseq.stages._params import HasFocalLabels, json_object, json_text

OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_DECAYS = ("none", "cosine")
ENCODERS = ("mean", "cnn", "bilstm")
COLLECTIVES = ("auto", "allgather", "allreduce")
HEADS = CHOICES["train.head"]
# The configuration puts the store under output.dir; a stage used on its own needs one.
DEFAULT_STORE = os.path.join(tempfile.gettempdir(), "focalseq-store")


def _json(value) -> str:
    return json_text(value) if value else "{}"


def _param(name, doc, converter):
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class BiLSTMParams(HasFocalLabels, HasSeed):
    """Network, optimisation, validation and cluster params of BiLSTM training."""

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
    skipConnection = _param("skipConnection", "the head also sees each line's own projection",
                            TypeConverters.toBoolean)
    head = _param("head", f"one of {HEADS}: a softmax per line, or a linear-chain CRF over "
                  "the window's lines (single-label) output as per-line marginals",
                  TypeConverters.toString)
    vocabSize = _param("vocabSize", "hashed token space; must match LineFeaturizer.vocabSize",
                       TypeConverters.toInt)
    epochs = _param("epochs", "training epochs", TypeConverters.toInt)
    batchSize = _param("batchSize", "windows per batch per worker", TypeConverters.toInt)
    learningRate = _param("learningRate", "learning rate of one worker; scaled by the number "
                          "of workers", TypeConverters.toFloat)
    warmupEpochs = _param("warmupEpochs", "epochs of linear warm-up from the one-worker "
                          "learning rate to the scaled one (0: none)", TypeConverters.toFloat)
    learningRateDecay = _param("learningRateDecay", f"learning-rate decay over all epochs, one"
                               f" of {LR_DECAYS}", TypeConverters.toString)
    optimizer = _param("optimizer", f"one of {OPTIMIZERS}", TypeConverters.toString)
    loss = _param("loss", "loss name from focalseq.losses.LOSS_NAMES", TypeConverters.toString)
    lossConfig = _param("lossConfig", "loss hyperparameters (JSON object)", json_text)
    classWeights = _param("classWeights", "per-label loss weights, JSON object {label: "
                          "weight} (empty: none); goes into the loss config "
                          "as class_weights", json_text)
    weightStrategy = _param("weightStrategy", f"class weights from the training label counts, "
                            f"one of {WEIGHT_STRATEGIES} (empty: none); goes"
                            f" into the loss config as weight_strategy", TypeConverters.toString)
    validationFraction = _param("validationFraction", "fraction of documents (by a seeded "
                                "hash of doc_id) held out for "
                                "validation when the windows have no "
                                "split column", TypeConverters.toFloat)
    earlyStoppingPatience = _param("earlyStoppingPatience", "epochs without improvement of "
                                   "the validation macro-F1 over "
                                   "focal labels before stopping (0:"
                                   " never)", TypeConverters.toInt)
    restoreBest = _param("restoreBest", "keep the weights of the best validation epoch",
                         TypeConverters.toBoolean)
    numProc = _param("numProc", "Horovod worker processes", TypeConverters.toInt)
    threadsPerWorker = _param("threadsPerWorker", "TensorFlow CPU threads per worker (0: the "
                              "host's CPUs divided by its workers)", TypeConverters.toInt)
    mixedPrecision = _param("mixedPrecision", "mixed float16 on GPU workers",
                            TypeConverters.toBoolean)
    collective = _param("collective", f"how ranks average gradients, one of {COLLECTIVES} "
                        "(auto: the cheaper by the step-time model, docs/scaling.md)",
                        TypeConverters.toString)
    storePath = _param("storePath", "directory or fsspec URL for run data, checkpoints, "
                       "progress and models", TypeConverters.toString)
    runId = _param("runId", "run id in the store; fitting again with the same id resumes the "
                   "run (empty: a new id per fit)", TypeConverters.toString)
    labelCounts = _param("labelCounts", "training label counts, JSON object (empty: counted "
                         "from the training windows)", json_text)
    rowGroupBytes = _param("rowGroupBytes", "Parquet row-group size of the training data",
                           TypeConverters.toInt)
    trackingUri = _param("trackingUri", "MLflow tracking URI of the active run that receives "
                         "per-epoch metrics (empty: mlflow.get_tracking_uri())",
                         TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(**self.default_params())

    @staticmethod
    def default_params() -> dict:
        """Every param's default, by name."""
        return dict(
            hiddenSize=_D.train.hidden_size,
            numLayers=_D.train.num_layers,
            dropout=_D.train.dropout,
            recurrentDropout=_D.train.recurrent_dropout,
            embeddingDim=_D.train.embedding_dim,
            encoder=_D.train.encoder,
            tokenDropout=_D.train.token_dropout,
            skipConnection=_D.train.skip_connection,
            head=_D.train.head,
            vocabSize=_D.features.vocab_size,
            epochs=_D.train.epochs,
            batchSize=_D.train.batch_size,
            learningRate=_D.train.learning_rate,
            warmupEpochs=_D.train.warmup_epochs,
            learningRateDecay=_D.train.lr_decay,
            optimizer=_D.train.optimizer,
            loss=_D.train.loss,
            lossConfig=_json(_D.train.loss_config),
            classWeights="",  # the configuration gives them in train.loss_config
            weightStrategy="",  # the configuration gives it in train.loss_config
            validationFraction=0.0,  # the configuration always has a split column (data.split)
            earlyStoppingPatience=_D.train.early_stopping_patience,
            restoreBest=_D.train.restore_best,
            numProc=_D.train.num_proc,
            threadsPerWorker=0,  # the cluster's, not the model's: no configuration key
            mixedPrecision=_D.train.mixed_precision,
            collective=_D.train.collective,
            storePath=DEFAULT_STORE,  # the configuration puts the store under output.dir
            runId=_D.train.run_id,
            labelCounts="",  # counted from the data unless given
            rowGroupBytes=_D.windows.row_group_bytes,
            trackingUri="",  # the active MLflow run's own URI
            seed=_D.train.seed,
            focalLabels=[],  # no focal labels: early stopping and reports use every label
        )

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

    def getHead(self):
        return self.getOrDefault(self.head)

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

    def getLearningRateDecay(self):
        return self.getOrDefault(self.learningRateDecay)

    def getOptimizer(self):
        return self.getOrDefault(self.optimizer)

    def getLoss(self):
        return self.getOrDefault(self.loss)

    def getLossConfig(self) -> dict:
        return json_object(self, "lossConfig") or {}

    def getClassWeights(self):
        """The classWeights as a dict, or None."""
        return json_object(self, "classWeights")

    def getWeightStrategy(self):
        return self.getOrDefault(self.weightStrategy)

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

    def getCollective(self):
        return self.getOrDefault(self.collective)

    def getStorePath(self):
        return self.getOrDefault(self.storePath)

    def getRunId(self):
        return self.getOrDefault(self.runId)

    def getLabelCounts(self):
        """The labelCounts as a dict, or None."""
        return json_object(self, "labelCounts")

    def getRowGroupBytes(self):
        return self.getOrDefault(self.rowGroupBytes)

    def getTrackingUri(self):
        return self.getOrDefault(self.trackingUri)

    # Setters ----------------------------------------------------------------------------

    def setHiddenSize(self, value):
        return self._set(hiddenSize=value)

    def setNumLayers(self, value):
        return self._set(numLayers=value)

    def setDropout(self, value):
        return self._set(dropout=value)

    def setRecurrentDropout(self, value):
        return self._set(recurrentDropout=value)

    def setEmbeddingDim(self, value):
        return self._set(embeddingDim=value)

    def setEncoder(self, value):
        return self._set(encoder=value)

    def setTokenDropout(self, value):
        return self._set(tokenDropout=value)

    def setSkipConnection(self, value):
        return self._set(skipConnection=value)

    def setHead(self, value):
        return self._set(head=value)

    def setVocabSize(self, value):
        return self._set(vocabSize=value)

    def setEpochs(self, value):
        return self._set(epochs=value)

    def setBatchSize(self, value):
        return self._set(batchSize=value)

    def setLearningRate(self, value):
        return self._set(learningRate=value)

    def setWarmupEpochs(self, value):
        return self._set(warmupEpochs=value)

    def setLearningRateDecay(self, value):
        return self._set(learningRateDecay=value)

    def setOptimizer(self, value):
        return self._set(optimizer=value)

    def setLoss(self, value):
        return self._set(loss=value)

    def setLossConfig(self, value):
        return self._set(lossConfig=value)

    def setClassWeights(self, value):
        return self._set(classWeights=value)

    def setWeightStrategy(self, value):
        return self._set(weightStrategy=value)

    def setValidationFraction(self, value):
        return self._set(validationFraction=value)

    def setEarlyStoppingPatience(self, value):
        return self._set(earlyStoppingPatience=value)

    def setRestoreBest(self, value):
        return self._set(restoreBest=value)

    def setNumProc(self, value):
        return self._set(numProc=value)

    def setThreadsPerWorker(self, value):
        return self._set(threadsPerWorker=value)

    def setMixedPrecision(self, value):
        return self._set(mixedPrecision=value)

    def setCollective(self, value):
        return self._set(collective=value)

    def setStorePath(self, value):
        return self._set(storePath=value)

    def setRunId(self, value):
        return self._set(runId=value)

    def setLabelCounts(self, value):
        return self._set(labelCounts=value)

    def setRowGroupBytes(self, value):
        return self._set(rowGroupBytes=value)

    def setTrackingUri(self, value):
        return self._set(trackingUri=value)

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setSeed(self, value):
        return self._set(seed=value)
