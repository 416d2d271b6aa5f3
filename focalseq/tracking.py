"""MLflow as the system of record: metric names, reports, plots, params and models.

Metric names follow `<split>_<metric>_<label>` (e.g. `test_f1_Nomenclature`) with
characters MLflow rejects replaced by `_`. A report logged for a split leaves, in the
active run:

    metrics    <split>_{precision,recall,f1,support}_<label>,
               <split>_average_precision_<label> (focal labels, when probabilities exist),
               <split>_{micro,macro}_{precision,recall,f1}, <split>_weighted_f1,
               <split>_focal_macro_{precision,recall,f1}, <split>_accuracy
    artifacts  reports/<split>_classification_report.{json,md}
               plots/<split>_confusion_matrix.png, plots/<split>_f1_by_label.png,
               plots/<split>_pr_curves.png (focal labels, when probabilities exist)

Plots are drawn on `matplotlib.figure.Figure` objects (the Agg canvas), so no pyplot
state or display is involved.
"""
import importlib.metadata
import json
import logging
import re

logger = logging.getLogger(__name__)

AVERAGE_METRICS = ("micro_precision", "micro_recall", "micro_f1", "macro_precision",
                   "macro_recall", "macro_f1", "weighted_f1", "focal_macro_precision",
                   "focal_macro_recall", "focal_macro_f1", "accuracy", "examples_f1")
# What a logged pipeline needs at serving time, pinned to the versions it was built with.
# tensorflow-cpu or tensorflow (GPU nodes): whichever is installed is pinned.
SERVING_PACKAGES = ("pyspark", "mlflow", "tensorflow-cpu", "tensorflow", "numpy", "pandas",
                    "pyarrow", "protobuf", "fsspec")


def metric_key(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", "_".join(p for p in parts if p))


def report_metrics(report: dict, split: str) -> dict:
    metrics = {}
    for label, m in report["per_label"].items():
        for name in ("precision", "recall", "f1", "support", "average_precision"):
            if m.get(name) is not None:
                metrics[metric_key(split, name, label)] = float(m[name])
    for name in AVERAGE_METRICS:
        if report.get(name) is not None:
            metrics[metric_key(split, name)] = float(report[name])
    return metrics


def report_markdown(report: dict) -> str:
    """The classification report (and confusion matrix) as Markdown tables."""
    focal = report.get("focal_labels", [])
    lines = ["| label | precision | recall | f1 | support |", "| --- | --- | --- | --- | --- |"]
    for label in report["labels"]:
        m = report["per_label"][label]
        name = f"**{label}**" if label in focal else label
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} "
                     f"| {m['support']} |")
    for avg in ("micro", "macro", "focal_macro"):
        if f"{avg}_f1" in report:
            lines.append(f"| {avg.replace('_', ' ')} avg | {report[f'{avg}_precision']:.4f} | "
                         f"{report[f'{avg}_recall']:.4f} | {report[f'{avg}_f1']:.4f} | |")
    lines.append(f"\n{report['n']} lines; focal labels (bold): {', '.join(focal)}")
    if report.get("confusion"):
        lines += ["", "Confusion matrix (rows: true, columns: predicted)", "",
                  "| true \\ predicted | " + " | ".join(report["labels"]) + " |",
                  "| --- |" + " --- |" * len(report["labels"])]
        for label, row in zip(report["labels"], report["confusion"]):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def log_report(report: dict, split: str) -> None:
    """Logs a PerLabelEvaluator report to the active MLflow run (one is started if none)."""
    import mlflow

    if mlflow.active_run() is None:
        mlflow.start_run()
    mlflow.log_metrics(report_metrics(report, split))
    mlflow.log_text(json.dumps(report, indent=1), f"reports/{split}_classification_report.json")
    mlflow.log_text(report_markdown(report), f"reports/{split}_classification_report.md")
    mlflow.log_figure(confusion_figure(report, split), f"plots/{split}_confusion_matrix.png")
    mlflow.log_figure(f1_figure(report, split), f"plots/{split}_f1_by_label.png")
    if report.get("pr_curves"):
        mlflow.log_figure(pr_figure(report, split), f"plots/{split}_pr_curves.png")
    logger.info("logged %s metrics to MLflow run %s", split, mlflow.active_run().info.run_id)


def log_stage_params(stages, prefix: str = "", skip=()) -> dict:
    """Logs each stage's set or default params once per run, as `<prefix><Stage>.<param>`.

    Params the run already holds with the same value are not sent again, so callers may
    log a stage every time it runs. A different value for a logged key raises
    ValueError (MLflow params are immutable); give such stages a distinct `prefix`.
    Returns the params sent.
    """
    import mlflow

    if mlflow.active_run() is None:
        mlflow.start_run()
    params = {}
    for stage in stages:
        name = type(stage).__name__
        for param in stage.params:
            if param.name not in skip and stage.isDefined(param):
                params[f"{prefix}{name}.{param.name}"] = str(stage.getOrDefault(param))[:6000]
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    clash = {k: (logged[k], v) for k, v in params.items() if k in logged and logged[k] != v}
    if clash:
        raise ValueError(f"log_stage_params: the run already holds other values for "
                         f"{sorted(clash)} (logged, new): {clash}; use a distinct prefix")
    new = {k: v for k, v in params.items() if k not in logged}
    if new:
        mlflow.log_params(new)
    return new


# Plots --------------------------------------------------------------------------------


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_figure(report: dict, split: str = ""):
    """Counts as a heatmap; in multi-label mode one 2x2 matrix per label."""
    labels = report["labels"]
    if report.get("confusion"):
        n = len(labels)
        fig = _figure(2.2 + 1.1 * n, 1.8 + 1.0 * n)
        ax = fig.add_subplot()
        _heatmap(ax, report["confusion"], labels, labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{split} confusion matrix (lines)".strip())
        return fig
    fig = _figure(3.0 * len(labels), 3.2)
    for i, label in enumerate(labels):
        ax = fig.add_subplot(1, len(labels), i + 1)
        _heatmap(ax, report["label_confusion"][label], ["no", "yes"], ["no", "yes"])
        ax.set_title(label)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{split} per-label confusion (lines)".strip())
    return fig


def _heatmap(ax, matrix, rows, cols):
    import numpy as np

    values = np.asarray(matrix, dtype=float)
    # Row-normalised colours: a rare label's row is as readable as the majority's.
    shade = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{int(values[i, j])}", ha="center", va="center",
                    color="white" if shade[i, j] > 0.6 else "black")


def f1_figure(report: dict, split: str = ""):
    """Per-label F1 bars (focal labels highlighted) with precision and recall marks."""
    labels = report["labels"]
    focal = set(report.get("focal_labels", []))
    per = report["per_label"]
    fig = _figure(max(5.0, 1.4 * len(labels) + 2), 4.6)
    ax = fig.add_subplot()
    x = range(len(labels))
    bars = ax.bar(x, [per[lab]["f1"] for lab in labels], width=0.6,
                  color=["tab:orange" if lab in focal else "tab:gray" for lab in labels],
                  label="F1")
    ax.scatter([i - 0.18 for i in x], [per[lab]["precision"] for lab in labels], marker="_",
               s=250, linewidths=2.5, color="black", label="precision", zorder=3)
    ax.scatter([i + 0.18 for i in x], [per[lab]["recall"] for lab in labels], marker="x",
               color="tab:blue", label="recall", zorder=3)
    for bar, lab in zip(bars, labels):
        f1 = per[lab]["f1"]
        inside = f1 > 0.15  # the value sits inside the bar, clear of the marks above it
        ax.annotate(f"{f1:.3f}", (bar.get_x() + bar.get_width() / 2,
                                  f1 - 0.03 if inside else f1 + 0.02),
                    ha="center", va="top" if inside else "bottom", fontsize=9,
                    color="white" if inside else "black", fontweight="bold")
    ax.set_xticks(list(x), [f"{lab}\n(n={per[lab]['support']})" for lab in labels])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.axhline(report["focal_macro_f1"], color="tab:orange", linestyle="--", linewidth=1,
               label=f"focal macro F1 {report['focal_macro_f1']:.3f}")
    fig.legend(loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    ax.set_title(f"{split} per-label F1 (orange: focal labels)".strip())
    return fig


def pr_figure(report: dict, split: str = ""):
    """Precision-recall curves of the labels in report['pr_curves']."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    for label, curve in report["pr_curves"].items():
        # A step curve from recall 0, as average precision integrates it.
        recall = [0.0] + curve["recall"]
        precision = [curve["precision"][0] if curve["precision"] else 1.0] + curve["precision"]
        ax.step(recall, precision, where="pre",
                label=f"{label} (AP {curve['average_precision']:.3f}, "
                      f"n={curve['positives']})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{split} precision-recall (focal labels)".strip())
    return fig


# Models -------------------------------------------------------------------------------


def serving_requirements() -> list:
    """pip requirements of a logged pipeline: focalseq's runtime packages, pinned.

    Given explicitly, so MLflow does not infer them by loading the model in a subprocess.
    """
    reqs = []
    for name in SERVING_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return reqs


def pipeline_signature(pipeline, input_example=None, prediction_col: str = "prediction"):
    """Input: the example's columns, or the first stage's `pathCol` (files in, as the
    inference pipeline takes them); output: the prediction strings. None if unknown."""
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = pd.DataFrame({prediction_col: ["label"]})
    if input_example is not None:
        return infer_signature(input_example, outputs)
    stages = getattr(pipeline, "stages", [pipeline])
    if stages and stages[0].hasParam("pathCol"):
        return ModelSignature(inputs=Schema([ColSpec("string", stages[0].getOrDefault(
            "pathCol"))]), outputs=Schema([ColSpec("string", prediction_col)]))
    return None


def log_pipeline_model(pipeline, input_example, artifact_path: str = "model",
                       registered_model_name: str = None, alias: str = None,
                       stage_params: bool = True):
    """Logs a fitted PipelineModel with the MLflow Spark flavor; returns its ModelInfo.

    Args:
        pipeline: a fitted PipelineModel (every stage MLReadable and MLWritable), e.g.
            focalseq.pipelines.train.inference_pipeline.
        input_example: a pandas DataFrame of the pipeline's input, e.g. {"path": [...]}
            (None: no example; the signature then comes from the first stage).
        artifact_path: the model's name inside the run.
        registered_model_name: also register a version under this name.
        alias: point this alias of the registered model at the new version
            (needs `registered_model_name`); load with `models:/<name>@<alias>`.
        stage_params: log every stage's params to the run as well.
    """
    import mlflow

    if alias and not registered_model_name:
        raise ValueError(f"alias: {alias!r} needs registered_model_name (the model to alias)")
    if mlflow.active_run() is None:
        mlflow.start_run()
    if stage_params:
        log_stage_params(getattr(pipeline, "stages", [pipeline]))
    info = mlflow.spark.log_model(
        pipeline, artifact_path=artifact_path, input_example=input_example,
        signature=pipeline_signature(pipeline, input_example),
        registered_model_name=registered_model_name,
        pip_requirements=serving_requirements())
    if alias:
        version = info.registered_model_version
        mlflow.MlflowClient().set_registered_model_alias(registered_model_name, alias, version)
        logger.info("registered %s version %s as @%s", registered_model_name, version, alias)
    return info
