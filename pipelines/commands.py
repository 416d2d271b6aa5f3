"""The CLI commands: configuration in, a report on stdout, artefacts on disk and MLflow."""
import json

from focalseq.config import Config
from focalseq.stages.evaluation import format_report


def _spark(cfg: Config):
    from focalseq.pipelines.session import get_spark

    return get_spark(cfg.spark.master, cfg.spark.app_name, cfg.spark.conf)


def _windows_dir(cfg: Config) -> str:
    return cfg.path("windows")


def _mlflow_hint(cfg: Config, run_id: str) -> str:
    return (f"MLflow run {run_id} (experiment '{cfg.mlflow.experiment}') in "
            f"{cfg.mlflow.tracking_uri}\n  open it with: mlflow ui --backend-store-uri "
            f"{cfg.mlflow.tracking_uri}")


def cmd_prepare(cfg: Config, args) -> int:
    from focalseq.pipelines.prepare import prepare

    manifest = prepare(_spark(cfg), cfg, _windows_dir(cfg))
    r = manifest["report"]
    print(f"prepared {r['documents']} documents, {r['lines_out']} lines, "
          f"{r['problems']} problems ({r['lines_dropped']} lines dropped) -> "
          f"{manifest['windows_dir']}")
    for reason, n in sorted(r["problems_by_reason"].items()):
        print(f"  problem {reason}: {n}")
    print("label counts: " + json.dumps(manifest["label_counts"]))
    return 0


def cmd_train(cfg: Config, args) -> int:
    from focalseq.pipelines.prepare import load_manifest
    from focalseq.pipelines.run import start_mlflow_run
    from focalseq.pipelines.train import train

    manifest = load_manifest(_windows_dir(cfg))
    with start_mlflow_run(cfg, "train") as run:
        model = train(_spark(cfg), cfg, manifest)
    what = f"run {model.getOrDefault('runId')}" if model.hasParam("runId") else cfg.train.model
    print(f"trained {what}; model in {cfg.path('model')}")
    print(_mlflow_hint(cfg, run.info.run_id))
    return 0


def cmd_evaluate(cfg: Config, args) -> int:
    from focalseq.pipelines.evaluate import evaluate
    from focalseq.pipelines.prepare import load_manifest
    from focalseq.pipelines.run import start_mlflow_run
    from focalseq.pipelines import builders

    manifest = load_manifest(_windows_dir(cfg))
    model = builders.load_model(_spark(cfg), cfg.path("model"))
    with start_mlflow_run(cfg, f"evaluate-{args.split}") as run:
        report = evaluate(_spark(cfg), cfg, manifest, model, args.split)
    print(format_report(report))
    print(_mlflow_hint(cfg, run.info.run_id))
    return 0


def cmd_predict(cfg: Config, args) -> int:
    from focalseq.fileio import check_output_target
    from focalseq.pipelines.predict import check_yedda_labels, predict

    fmt = args.format or cfg.output.predictions_format
    overwrite = bool(getattr(args, "overwrite", False)) or cfg.output.mode == "overwrite"
    # Before Spark starts: a refused output costs the user no waiting.
    check_output_target(args.output, overwrite)
    if fmt == "yedda":
        check_yedda_labels(cfg)
    n = predict(_spark(cfg), cfg, args.input, args.output, fmt=fmt, plain=args.plain,
                overwrite=overwrite)
    print(f"labelled {n} lines -> {args.output}")
    return 0


def cmd_run(cfg: Config, args) -> int:
    from focalseq.pipelines.run import run_all

    result = run_all(_spark(cfg), cfg)
    r = result["manifest"]["report"]
    print(f"data: {r['documents']} documents, {r['lines_out']} lines, {r['problems']} problems")
    for split, report in result["reports"].items():
        print(f"\n{split} (line level):")
        print(format_report(report))
    print()
    print(_mlflow_hint(cfg, result["mlflow_run_id"]))
    return 0
