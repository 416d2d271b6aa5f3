"""Pipeline builders: configuration -> Spark ML stages, in data-flow order.

files -> YeddaParser -> lines -> LineFeaturizer -> features -> DocumentSplitter ->
Windower -> windows -> BiLSTMEstimator (or an ensemble of them) -> BiLSTMModel -> per-line predictions ->
PerLabelEvaluator -> metrics (MLflow).
"""
from focalseq.config import Config
from focalseq.stages.bilstm import BiLSTMEstimator
from focalseq.stages.ensemble import EnsembleEstimator
from focalseq.stages.evaluation import PerLabelEvaluator
from focalseq.stages.features import LineFeaturizer
from focalseq.stages.parse import YeddaParser
from focalseq.stages.split import DocumentSplitter
from focalseq.stages.windows import Windower


def parser(cfg: Config, fmt: str = None) -> YeddaParser:
    return YeddaParser(format=fmt or cfg.data.format, keepLabels=cfg.data.keep_labels,
                       defaultLabel=cfg.data.default_label, labelMap=cfg.data.label_map,
                       strict=cfg.data.strict, labels=cfg.labels,
                       multiLabel=cfg.multi_label, unlabelled=cfg.data.unlabelled)


def featurizer(cfg: Config) -> LineFeaturizer:
    f = cfg.features
    return LineFeaturizer(vocabSize=f.vocab_size, maxTokens=f.max_tokens, useWords=f.words,
                          useSuffixes=f.suffixes, suffixLength=f.suffix_len,
                          useCharNgrams=f.char_ngrams, ngramSize=f.ngram_n,
                          shapeFeatures=f.shape_features)


def splitter(cfg: Config) -> DocumentSplitter:
    s = cfg.data.split
    return DocumentSplitter(fractions=s.fractions, patterns=s.patterns, seed=s.seed)


def windower(cfg: Config, stride: int = None) -> Windower:
    return Windower(labels=cfg.labels, windowSize=cfg.windows.size,
                    stride=stride or cfg.windows.stride, multiLabel=cfg.multi_label)


def estimator(cfg: Config, label_counts: dict = None):
    """The configured BiLSTMEstimator, or an EnsembleEstimator of train.ensemble_members."""
    t = cfg.train
    single = BiLSTMEstimator(
        hiddenSize=t.hidden_size, numLayers=t.num_layers, dropout=t.dropout,
        recurrentDropout=t.recurrent_dropout, embeddingDim=t.embedding_dim, encoder=t.encoder,
        collective=t.collective,
        tokenDropout=t.token_dropout, skipConnection=t.skip_connection, head=t.head,
        vocabSize=cfg.features.vocab_size, epochs=t.epochs, batchSize=t.batch_size,
        learningRate=t.learning_rate, warmupEpochs=t.warmup_epochs,
        learningRateDecay=t.lr_decay, optimizer=t.optimizer,
        loss=t.loss, lossConfig=t.loss_config, numProc=t.num_proc,
        earlyStoppingPatience=t.early_stopping_patience, restoreBest=t.restore_best,
        seed=t.seed, storePath=cfg.store, runId=t.run_id, focalLabels=cfg.focal_labels,
        labelCounts=label_counts or "", rowGroupBytes=cfg.windows.row_group_bytes,
        mixedPrecision=t.mixed_precision)
    if t.ensemble_members == 1:
        return single
    return ensemble_of(single, ensemble_seeds(t.seed, t.ensemble_members))


def ensemble_seeds(seed: int, members: int) -> list:
    """Member seeds of ensemble `seed`: seed*K .. seed*K+K-1, disjoint across seeds."""
    return [seed * members + i for i in range(members)]


def ensemble_of(estimator: BiLSTMEstimator, seeds) -> EnsembleEstimator:
    """An EnsembleEstimator sharing `estimator`'s params, one member per seed."""
    shared = {p.name: estimator.getOrDefault(p) for p in estimator.params
              if estimator.isDefined(p)}
    return EnsembleEstimator(**shared, memberParams=[{"seed": s} for s in seeds])


def load_model(spark, path: str):
    """A saved BiLSTMModel or EnsembleModel (the class is read from its metadata).

    Only classes focalseq writes are loaded (`persistence.check_saved`, before any import).
    """
    from focalseq.stages.persistence import load_stage

    return load_stage(path, spark.sparkContext, source=f"model {path!r}")


def evaluator(cfg: Config, split: str = "test", log_to_mlflow: bool = True) -> PerLabelEvaluator:
    return PerLabelEvaluator(labels=cfg.labels, focalLabels=cfg.focal_labels,
                             multiLabel=cfg.multi_label, logToMlflow=log_to_mlflow,
                             splitName=split)
