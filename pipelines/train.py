"""Windowed Parquet -> trained BiLSTMModel (its decision rule tuned on the validation split
when `train.tune` asks), and the inference PipelineModel around it; or, with
`train.model: logistic`, the files' lines -> the Spark ML logistic baseline."""
import logging

from pyspark.ml import PipelineModel

from focalseq.config import Config
from focalseq.pipelines import builders

logger = logging.getLogger(__name__)


def train(spark, cfg: Config, manifest: dict):
    """Fits the configured model and saves it (and the inference pipeline) under output.dir.

    Returns the BiLSTMModel / EnsembleModel (tuned per `train.tune`), or with
    `train.model: logistic` the logistic PipelineModel (files -> predictions).
    """
    return train_with_report(spark, cfg, manifest)[0]


def train_with_report(spark, cfg: Config, manifest: dict):
    """`train`, also returning the tuning report (`pipelines.tune`; None untuned)."""
    if cfg.train.model == "logistic":
        from focalseq.pipelines.logistic import train_logistic

        model = train_logistic(spark, cfg)
        model.write().overwrite().save(cfg.path("model"))
        model.write().overwrite().save(cfg.path("pipeline"))
        logger.info("logistic model saved to %s", cfg.path("model"))
        return model, None
    from focalseq.pipelines.tune import tune_model

    windows = spark.read.parquet(manifest["windows_dir"])
    windows = windows.filter(windows.split.isin("train", "validation"))
    counts = manifest["label_counts"].get("train")
    if not counts:
        raise ValueError(f"{manifest['windows_dir']}: the train split is empty; check "
                         "data.split (fractions or patterns)")
    est = builders.estimator(cfg, label_counts=counts)
    model, tuning = tune_model(spark, cfg, manifest, est.fit(windows))
    model_dir = cfg.path("model")
    model.write().overwrite().save(model_dir)
    pipeline = inference_pipeline(cfg, model)
    pipeline.write().overwrite().save(cfg.path("pipeline"))
    logger.info("model saved to %s", model_dir)
    return model, tuning


def inference_pipeline(cfg: Config, model, fmt: str = None, stride: int = None) -> PipelineModel:
    """files (a `path` column) -> per-line predictions, as one PipelineModel.

    The Windower builds each document's windows in the partition that parsed its file,
    so the model averages every line in its Python pass (groupedInput) and the pipeline
    runs without a shuffle. `stride`: the prediction windows' stride (default
    windows.stride). A logistic PipelineModel already starts at the files: returned as it
    is (with `fmt`, its parser reads that format).
    """
    if isinstance(model, PipelineModel):
        if fmt:
            parser = model.stages[0]
            return PipelineModel([parser.copy({parser.format: fmt})] + model.stages[1:])
        return model
    if model.hasParam("groupedInput"):
        model = model.copy({model.getParam("groupedInput"): True})
    return PipelineModel([builders.parser(cfg, fmt), builders.featurizer(cfg),
                          builders.windower(cfg, stride), model])
