"""The whole flow in one MLflow run: prepare -> train -> evaluate -> report."""
import logging

from focalseq import fileio
from focalseq.config import Config
from focalseq.pipelines.evaluate import evaluate
from focalseq.pipelines.prepare import prepare
from focalseq.pipelines.train import train_with_report

logger = logging.getLogger(__name__)


def start_mlflow_run(cfg: Config, run_name: str):
    import mlflow

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    return mlflow.start_run(run_name=cfg.mlflow.run_name or run_name)


def run_all(spark, cfg: Config) -> dict:
    """Returns {"manifest", "model", "reports": {split: report}, "tuning" (the report of
    `train.tune`, None untuned), "mlflow_run_id"}."""
    import mlflow

    from focalseq.pipelines import builders
    from focalseq.tracking import log_stage_params

    with start_mlflow_run(cfg, "run") as active:
        mlflow.log_dict(cfg.to_dict(), "config.json")
        manifest = prepare(spark, cfg)
        mlflow.log_dict(manifest, "manifest.json")
        if cfg.train.model == "bilstm":
            log_stage_params([builders.parser(cfg), builders.featurizer(cfg),
                              builders.windower(cfg), builders.estimator(cfg)])
        else:
            mlflow.log_param("model", cfg.train.model)
        model, tuning = train_with_report(spark, cfg, manifest)
        reports = {}
        for split in ("validation", "test"):
            if split in manifest["splits"]:
                reports[split] = evaluate(spark, cfg, manifest, model, split)
        if cfg.mlflow.log_model or cfg.mlflow.register_model:
            log_inference_pipeline(spark, cfg, model)
        elif local_folder(cfg.path("model")):  # remote stores keep the model where it is
            mlflow.log_artifacts(local_folder(cfg.path("model")), "model")
        return {"manifest": manifest, "model": model, "reports": reports, "tuning": tuning,
                "mlflow_run_id": active.info.run_id}


def local_folder(url: str):
    """The local path of `url` when its filesystem is this machine's, else None."""
    fs, path = fileio.filesystem(url)
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return path if {"file", "local"} & set(protocols) else None


def log_inference_pipeline(spark, cfg: Config, model):
    """Logs files -> predictions as one PipelineModel (MLflow Spark flavor), optionally
    registered under `mlflow.register_model` with `mlflow.alias`."""
    import pandas as pd

    from focalseq.pipelines.prepare import input_paths
    from focalseq.pipelines.train import inference_pipeline
    from focalseq.stages.parse import list_files
    from focalseq.tracking import log_pipeline_model

    first = list_files(spark, input_paths(cfg), recursive=cfg.data.recursive).first()
    example = pd.DataFrame({"path": [first["path"]]}) if first is not None else None
    return log_pipeline_model(inference_pipeline(cfg, model), example,
                              registered_model_name=cfg.mlflow.register_model or None,
                              alias=cfg.mlflow.alias or None, stage_params=False)
