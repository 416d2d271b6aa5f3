"""MLflow as the system of record: metric names, reports and run discovery.

Metric names follow `<split>_<metric>_<label>` (e.g. `test_f1_Nomenclature`) with
characters MLflow rejects replaced by `_`.
"""
import json
import logging
import re

logger = logging.getLogger(__name__)


def metric_key(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", "_".join(p for p in parts if p))


def report_metrics(report: dict, split: str) -> dict:
    metrics = {}
    for label, m in report["per_label"].items():
        for name in ("precision", "recall", "f1", "support"):
            metrics[metric_key(split, name, label)] = float(m[name])
    for name in ("macro_f1", "micro_f1", "focal_macro_f1", "accuracy"):
        if report.get(name) is not None:
            metrics[metric_key(split, name)] = float(report[name])
    return metrics


def report_markdown(report: dict) -> str:
    lines = ["| label | precision | recall | f1 | support |", "| --- | --- | --- | --- | --- |"]
    for label in report["labels"]:
        m = report["per_label"][label]
        lines.append(f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} "
                     f"| {m['support']} |")
    lines.append(f"| macro | | | {report['macro_f1']:.4f} | {report['n']} |")
    lines.append(f"| focal macro ({', '.join(report.get('focal_labels', []))}) | | | "
                 f"{report['focal_macro_f1']:.4f} | |")
    return "\n".join(lines) + "\n"


def log_report(report: dict, split: str) -> None:
    """Logs a PerLabelEvaluator report to the active MLflow run (one is started if none)."""
    import mlflow

    if mlflow.active_run() is None:
        mlflow.start_run()
    mlflow.log_metrics(report_metrics(report, split))
    mlflow.log_text(json.dumps(report, indent=1), f"reports/{split}_classification_report.json")
    mlflow.log_text(report_markdown(report), f"reports/{split}_classification_report.md")
    logger.info("logged %s metrics to MLflow run %s", split, mlflow.active_run().info.run_id)


def log_stage_params(stages, prefix: str = "") -> None:
    """Logs every explicitly set or default param of each stage once, as `<Stage>.<param>`."""
    import mlflow

    params = {}
    for stage in stages:
        name = type(stage).__name__
        for param in stage.params:
            if stage.isDefined(param):
                value = stage.getOrDefault(param)
                params[f"{prefix}{name}.{param.name}"] = str(value)[:5000]
    mlflow.log_params(params)
