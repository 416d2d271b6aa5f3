"""Windowed Parquet -> trained BiLSTMModel, and the inference PipelineModel around it."""
import logging

from pyspark.ml import PipelineModel

from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.bilstm import BiLSTMModel

logger = logging.getLogger(__name__)


def train(spark, cfg: Config, manifest: dict) -> BiLSTMModel:
    """Fits the estimator on the train split (validation split for early stopping)."""
    windows = spark.read.parquet(manifest["windows_dir"])
    windows = windows.filter(windows.split.isin("train", "validation"))
    counts = manifest["label_counts"].get("train")
    if not counts:
        raise ValueError(f"{manifest['windows_dir']}: the train split is empty; check "
                         "data.split (fractions or patterns)")
    est = builders.estimator(cfg, label_counts=counts)
    model = est.fit(windows)
    model_dir = cfg.path("model")
    model.write().overwrite().save(model_dir)
    pipeline = inference_pipeline(cfg, model)
    pipeline.write().overwrite().save(cfg.path("pipeline"))
    logger.info("model saved to %s", model_dir)
    return model


def inference_pipeline(cfg: Config, model: BiLSTMModel, fmt: str = None) -> PipelineModel:
    """files (a `path` column) -> per-line predictions, as one PipelineModel.

    The Windower builds each document's windows in the partition that parsed its file,
    so the model averages every line in its Python pass (groupedInput) and the pipeline
    runs without a shuffle.
    """
    if model.hasParam("groupedInput"):
        model = model.copy({model.getParam("groupedInput"): True})
    return PipelineModel([builders.parser(cfg, fmt), builders.featurizer(cfg),
                          builders.windower(cfg), model])
