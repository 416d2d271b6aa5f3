"""The line-level baseline: Spark ML logistic regression on the line features.

featurized lines -> hashed token counts (HashingTF over the token ids) + shape features
-> VectorAssembler -> LogisticRegression (class weights through a weight column). All
stages are Spark's own, so the fitted PipelineModel persists like any other.

`train.model: logistic` runs it as the jobs' model (`train_logistic`, `evaluate_logistic`):
it reads the configured files' lines itself (the windows of `prepare` are the network's),
splits them with the same DocumentSplitter, and saves files -> predictions as one
PipelineModel (parser, featurizer, then the stages above), which `predict` runs as it is.
Class weights come from a `weighted_cross_entropy` loss (`class_weights` or
`weight_strategy` of train.loss_config); any other loss trains unweighted.
"""
import logging

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (HashingTF, IndexToString, SQLTransformer, StringIndexerModel,
                                VectorAssembler)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)


def logistic_pipeline(labels, vocab_size: int, n_shape: int, reg_param: float = 1e-3,
                      max_iter: int = 100) -> Pipeline:
    """A Pipeline over LineFeaturizer output that has a `weight` column (add_weights)."""
    shape_cols = [f"_s{i}" for i in range(n_shape)]
    expand = SQLTransformer(statement=(
        "SELECT *, transform(token_ids, t -> CAST(t AS STRING)) AS _tokens"
        + "".join(f", shape[{i}] AS {c}" for i, c in enumerate(shape_cols))
        + " FROM __THIS__"))
    # "error": the index's metadata then names exactly `labels`, so the regression has one
    # class (and one probability) per label; an extra "unknown" class would add a column
    # of probability no label stands for. Training lines always carry one of `labels`.
    indexer = StringIndexerModel.from_labels(list(labels), inputCol="label",
                                             outputCol="label_index", handleInvalid="error")
    tf = HashingTF(inputCol="_tokens", outputCol="_tf", numFeatures=vocab_size)
    assembler = VectorAssembler(inputCols=["_tf"] + shape_cols, outputCol="features")
    lr = LogisticRegression(featuresCol="features", labelCol="label_index",
                            weightCol="weight", regParam=reg_param, maxIter=max_iter,
                            family="multinomial", predictionCol="prediction_index",
                            probabilityCol="probability")
    back = IndexToString(inputCol="prediction_index", outputCol="prediction",
                         labels=list(labels))
    return Pipeline(stages=[expand, indexer, tf, assembler, lr, back])


def add_weights(lines: DataFrame, class_weights: dict, label_col: str = "label") -> DataFrame:
    """Adds `weight` = class_weights[label] (1.0 for labels not listed)."""
    expr = F.lit(1.0)
    for label, weight in class_weights.items():
        expr = F.when(F.col(label_col) == F.lit(label), F.lit(float(weight))).otherwise(expr)
    return lines.withColumn("weight", expr)


def split_lines(spark, cfg) -> DataFrame:
    """The configured files' featurized lines with their `split` column (lazy)."""
    from focalseq.pipelines import builders
    from focalseq.pipelines.prepare import parse_and_featurize

    _, lines = parse_and_featurize(spark, cfg)
    return builders.splitter(cfg).transform(lines)


def class_weights_for(cfg, train_lines: DataFrame, class_weights=None,
                      weight_strategy=None) -> dict:
    """{label: weight}: given ones, or computed by `weight_strategy` from the train
    lines' label counts, or those of a weighted_cross_entropy train.loss_config."""
    from focalseq.losses import compute_class_weights

    if class_weights is None and weight_strategy is None \
            and cfg.train.loss == "weighted_cross_entropy":
        class_weights = cfg.train.loss_config.get("class_weights")
        weight_strategy = cfg.train.loss_config.get("weight_strategy")
    if class_weights:
        return dict(class_weights)
    if not weight_strategy:
        return {}
    counts = {r["label"]: r["count"] for r in train_lines.groupBy("label").count().collect()}
    return compute_class_weights(weight_strategy, {lab: counts.get(lab, 0) for lab in cfg.labels},
                                 cfg.labels)


def train_logistic(spark, cfg, lines: DataFrame = None, class_weights=None,
                   weight_strategy=None):
    """Fits the baseline on the train split; returns files -> predictions as a PipelineModel.

    Args:
        spark: the session.
        cfg: configuration (data, features, labels, split, loss for the class weights).
        lines: `split_lines` output to reuse (default: read the files).
        class_weights / weight_strategy: override the configuration's weights.

    Raises:
        ValueError: the train split has no lines.
    """
    from pyspark.ml import PipelineModel

    from focalseq.pipelines import builders

    lines = split_lines(spark, cfg) if lines is None else lines
    train = lines.filter(F.col("split") == "train")
    if train.limit(1).count() == 0:
        raise ValueError("train.model logistic: the train split has no lines; check "
                         "data.paths and data.split (fractions or patterns)")
    weights = class_weights_for(cfg, train, class_weights, weight_strategy)
    logger.info("logistic baseline: class weights %s", weights or "none")
    featurizer = builders.featurizer(cfg)
    fitted = logistic_pipeline(cfg.labels, cfg.features.vocab_size, featurizer.n_shape()).fit(
        add_weights(train, weights))
    # The label index serves the fit only: a model that labels new, unlabelled lines
    # must not need a label.
    predicting = [s for s in fitted.stages if not isinstance(s, StringIndexerModel)]
    return PipelineModel([builders.parser(cfg), featurizer] + predicting)


def evaluate_logistic(spark, cfg, model, split: str = "test", lines: DataFrame = None,
                      log_to_mlflow: bool = True):
    """The per-label report of `model` (from `train_logistic`) on one split's lines, or
    None when the split has no lines."""
    from pyspark.ml.functions import vector_to_array

    from focalseq.pipelines import builders

    lines = split_lines(spark, cfg) if lines is None else lines
    part = lines.filter(F.col("split") == split)
    if part.limit(1).count() == 0:
        return None
    predictions = part
    for stage in model.stages[2:]:  # after the parser and the featurizer
        predictions = stage.transform(predictions)
    ev = builders.evaluator(cfg, split, log_to_mlflow)
    ev.evaluate(predictions.withColumn("probability", vector_to_array("probability")))
    return ev.last_report
