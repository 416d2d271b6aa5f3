"""Per-line predictions of a split -> per-label report (and MLflow)."""
from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.pipelines.prepare import read_split
from focalseq.stages.bilstm import BiLSTMModel


def evaluate(spark, cfg: Config, manifest: dict, model: BiLSTMModel, split: str = "test",
             log_to_mlflow: bool = True) -> dict:
    if cfg.train.model == "logistic":  # a line model: it reads the split's lines itself
        from focalseq.pipelines.logistic import evaluate_logistic

        return evaluate_logistic(spark, cfg, model, split, log_to_mlflow=log_to_mlflow)
    predictions = model.transform(read_split(spark, manifest, split))
    ev = builders.evaluator(cfg, split, log_to_mlflow)
    ev.evaluate(predictions)
    return ev.last_report
