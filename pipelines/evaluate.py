"""Per-line predictions of a split -> per-label report (and MLflow)."""
from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.pipelines.prepare import read_split
from focalseq.stages.bilstm import BiLSTMModel


def evaluate(spark, cfg: Config, manifest: dict, model: BiLSTMModel, split: str = "test",
             log_to_mlflow: bool = True) -> dict:
    predictions = model.transform(read_split(spark, manifest, split))
    ev = builders.evaluator(cfg, split, log_to_mlflow)
    ev.evaluate(predictions)
    return ev.last_report
