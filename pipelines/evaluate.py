"""Per-line predictions of a split -> per-label report (and MLflow)."""
from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.bilstm import BiLSTMModel


def evaluate(spark, cfg: Config, manifest: dict, model: BiLSTMModel, split: str = "test",
             log_to_mlflow: bool = True) -> dict:
    if split not in manifest["splits"]:
        raise ValueError(f"split: {split!r} has no windows; prepared splits are "
                         f"{sorted(manifest['splits'])}")
    windows = spark.read.parquet(manifest["windows_dir"])
    windows = windows.filter(windows.split == split)
    predictions = model.transform(windows)
    ev = builders.evaluator(cfg, split, log_to_mlflow)
    ev.evaluate(predictions)
    return ev.last_report
