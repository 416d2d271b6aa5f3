"""Model quality on real annotated literature (SKOL): every single-label loss against the
users' strong baseline, on a split by volume.

Train and validate on Mycotaxon Vol054-Vol058 and Persoonia Vol016 (the split of
conf/skol.yaml: one Persoonia issue, n4, validates), test on Mycotaxon Vol117. The
baseline and every network see exactly the same split. Three labels: Nomenclature,
Description, Misc-exposition (every other raw label). The network settings are those of
conf/skol.yaml (plus any --set overrides); each loss is trained through the real pipeline
(windows prepared once to Parquet with Spark, BiLSTMEstimator on 2 Horovod workers,
BiLSTMModel.transform, PerLabelEvaluator) once per seed. The baseline is TF-IDF words +
character 2-4-grams of the line and its neighbours -2..+2, Spark ML LogisticRegression with
class weights through a weight column (benchmarks/_baseline.py).

Prints per-label precision, recall and F1 for the three labels (mean and spread over the
seeds) and training time, writes the table into --out (a marked section, replaced on each
run) and logs every run to MLflow (sqlite in the run directory).

Usage, from the repository root:

    .venv/bin/python benchmarks/quality.py                       # everything, 3 seeds
    .venv/bin/python benchmarks/quality.py --losses soft_f1 --seeds 0 --epochs 3
    .venv/bin/python benchmarks/quality.py --name ablation-cnn --set train.encoder=cnn \\
        --losses soft_f1 --no-baseline
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
import warnings

# A sibling module: `python benchmarks/<name>.py` puts this folder first on sys.path.
import _skol

# Loss configs of the comparison: the users' three (standard, weighted, soft-F1 over the
# focal labels) first, then the rest of the single-label library at its defaults.
LOSS_CONFIGS = {
    "cross_entropy": {},
    "weighted_cross_entropy": {"weight_strategy": "inverse"},
    "soft_f1": {},  # focal labels come from the config
    "focal": {"gamma": 2.0},
    "adaptive": {"weight_strategy": "inverse", "gamma": 2.0},
    "focal_contrastive": {},
    "class_balanced": {"beta": 0.999},
    "logit_adjusted": {"tau": 1.0},
}
BASELINE = "logistic_context"
OFFSET_GRID = [x / 4 for x in range(-12, 13)]  # log-probability offsets, -3 .. 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=_skol.DEFAULT_DATA,
                   help="SKOL corpus root (default: ../shared/data/skol from the repo root)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="default: conf/skol.yaml")
    p.add_argument("--losses", default=",".join(LOSS_CONFIGS),
                   help="comma-separated subset of " + ",".join(LOSS_CONFIGS))
    p.add_argument("--out", default=os.path.join(_skol.REPO, "docs", "results.md"),
                   help="markdown file whose section --name is (re)written; '-' for none")
    p.add_argument("--name", default="losses", help="section of --out to write")
    p.add_argument("--run-dir", default=_skol.DEFAULT_RUN_DIR,
                   help="store, cached windows and mlflow.db (default runs/quality)")
    p.add_argument("--conf", default=_skol.DEFAULT_CONF)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override, e.g. train.encoder=cnn")
    p.add_argument("--members", type=int, default=None,
                   help="train.ensemble_members (default: the config's); > 1: each seed "
                        "trains an EnsembleEstimator of this many members "
                        "(member seeds seed*K .. seed*K+K-1) and reports the ensemble")
    p.add_argument("--no-baseline", action="store_true", help="skip the logistic baseline")
    p.add_argument("--baseline-only", action="store_true")
    p.add_argument("--fresh", action="store_true",
                   help="retrain runs already recorded in <run-dir>/quality_runs.jsonl for the "
                        "same section, model, seed and configuration (default: reuse them)")
    args = p.parse_args(argv)
    losses = [x for x in args.losses.split(",") if x]
    unknown = [x for x in losses if x not in LOSS_CONFIGS]
    if unknown:
        p.error(f"--losses: {unknown} are not single-label losses; valid: "
                f"{', '.join(LOSS_CONFIGS)}")
    args.losses = [] if args.baseline_only else losses
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("py4j", "pyspark", "mlflow", "alembic", "horovod"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.members is not None:
        overrides.append(f"train.ensemble_members={args.members}")
    cfg = _skol.task_config(args.data, args.run_dir, overrides, conf=args.conf)

    import mlflow

    from focalseq.pipelines.session import get_spark

    spark = get_spark(cfg.spark.master, "focalseq-quality", cfg.spark.conf)
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment("skol-quality")

    started = time.time()
    manifest = _skol.prepared_windows(spark, cfg, os.path.join(args.run_dir, "cache"))
    print(f"windows: {manifest['windows_dir']} ({time.time() - started:.0f}s); "
          f"label counts {json.dumps(manifest['label_counts'])}", flush=True)

    # Every finished run is recorded at once, so an interrupted comparison resumes where
    # it stopped instead of retraining what it already has.
    ledger = Ledger(os.path.join(args.run_dir, "quality_runs.jsonl"), args.name,
                    fresh=args.fresh)
    data_digest = _digest(cfg, ("labels", "data"))  # all the baseline depends on
    net_digest = _digest(cfg, ("labels", "data", "features", "windows", "train"))
    results = {}
    if not args.no_baseline:
        results[BASELINE] = [
            ledger.get(BASELINE, None, data_digest) or ledger.put(
                BASELINE, None, data_digest, run_baseline(spark, cfg, args.name))]
    members = cfg.train.ensemble_members
    names = {loss: loss if members == 1 else f"{loss} x{members} ensemble"
             for loss in args.losses}
    # Seed by seed over all losses, so an interrupted comparison already covers every loss.
    for seed in args.seeds:
        for loss in args.losses:
            results.setdefault(names[loss], []).append(
                ledger.get(names[loss], seed, net_digest) or ledger.put(
                    names[loss], seed, net_digest,
                    run_network(spark, cfg, manifest, loss, seed, args.name)))

    table = format_table(results, cfg)
    print("\n" + table, flush=True)
    if args.out != "-":
        write_section(args.out, args.name, section_text(args, cfg, table))
        print(f"wrote section '{args.name}' of {args.out}")
    return 0


class Ledger:
    """Finished runs as JSON lines, keyed by section, model, seed and config digest."""

    def __init__(self, path: str, section: str, fresh: bool = False):
        self.path, self.section = path, section
        self.rows = {}
        if not fresh and os.path.exists(path):
            with open(path) as fh:
                for line in fh:
                    rec = json.loads(line)
                    if rec["section"] == section:
                        self.rows[(rec["model"], rec["seed"], rec["digest"])] = rec["row"]

    def get(self, model: str, seed, digest: str):
        row = self.rows.get((model, seed, digest))
        if row is not None:
            print(f"{model}{'' if seed is None else f' seed {seed}'}: reused from {self.path}")
        return row

    def put(self, model: str, seed, digest: str, row: dict) -> dict:
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"section": self.section, "digest": digest, "model": model,
                                 "seed": seed, "row": row}) + "\n")
        return row


def _digest(cfg, sections) -> str:
    """Digest of the config sections a run depends on (seed and run id excluded)."""
    import hashlib

    d = cfg.to_dict()
    picked = {k: d[k] for k in sections}
    if "train" in picked:
        picked["train"] = {k: v for k, v in picked["train"].items()
                           if k not in ("seed", "run_id", "loss", "loss_config")}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]


# -- one run each -----------------------------------------------------------------------


def run_baseline(spark, cfg, name: str) -> dict:
    import mlflow

    from _baseline import run_baseline as fit_baseline
    from focalseq.pipelines import builders
    from focalseq.tracking import report_metrics

    with mlflow.start_run(run_name=f"{name}-{BASELINE}"):
        mlflow.set_tags({"section": name, "model": BASELINE})
        out = fit_baseline(_skol.split_lines(spark, cfg), cfg.labels, cfg.focal_labels,
                           lambda split: builders.evaluator(cfg, split, log_to_mlflow=False),
                           cfg.output.dir)
        mlflow.log_params({"reg_param": out["reg_param"], "offsets": "-2..+2"})
        mlflow.log_metrics({**report_metrics(out["reports"]["test"], "test"),
                            **report_metrics(out["reports"]["validation"], "validation"),
                            "train_seconds": out["seconds"]})
    row = {"test": out["reports"]["test"], "seconds": out["seconds"],
           "note": f"regParam {out['reg_param']:g} (chosen on validation)"}
    _print_run(BASELINE, None, row)
    return row


def run_network(spark, cfg, manifest, loss: str, seed: int, name: str) -> dict:
    import mlflow

    from focalseq.pipelines import builders
    from focalseq.pipelines.prepare import read_split
    from focalseq.tracking import report_metrics

    run_cfg = _skol.with_train(cfg, loss=loss, loss_config=dict(LOSS_CONFIGS[loss]),
                               seed=seed, run_id=f"{name}-{loss}-{seed}-{uuid.uuid4().hex[:6]}")
    windows = spark.read.parquet(manifest["windows_dir"])
    with mlflow.start_run(run_name=f"{name}-{loss}-seed{seed}"):
        mlflow.set_tags({"section": name, "model": "bilstm", "loss": loss})
        mlflow.log_params(_skol.flat_params(run_cfg))
        est = builders.estimator(run_cfg, label_counts=manifest["label_counts"]["train"])
        t0 = time.time()
        model = est.fit(windows.filter(windows.split.isin("train", "validation")))
        seconds = time.time() - t0
        fitted = getattr(model, "members", None) or [model]
        history = fitted[0].training_summary["history"]
        best = max(history, key=lambda r: r.get("val_focal_macro_f1", -1.0)) if history else {}

        val = model.transform(read_split(spark, manifest, "validation"))
        offsets = tune_offsets(val.select("probability", "label").toPandas(), cfg.labels,
                               cfg.focal_labels)
        test_windows = read_split(spark, manifest, "test")
        report = builders.evaluator(run_cfg, "test", False).report(model.transform(test_windows))
        model.setLogOffsets(offsets)
        tuned = builders.evaluator(run_cfg, "test", False).report(model.transform(test_windows))
        mlflow.log_params({"log_offsets": json.dumps(offsets)})
        mlflow.log_metrics({**report_metrics(report, "test"),
                            **report_metrics(tuned, "test_tuned"),
                            "train_seconds": seconds, "epochs_run": len(history),
                            "best_epoch": best.get("epoch", -1) + 1})
    row = {"test": report, "tuned": tuned, "seconds": seconds, "offsets": offsets,
           "epochs_run": len(history), "best_epoch": best.get("epoch", -1) + 1}
    _print_run(loss, seed, row)
    return row


def tune_offsets(frame, labels, focal_labels) -> list:
    """Log-probability offsets (last label fixed at 0) maximising focal macro-F1.

    Exhaustive over `OFFSET_GRID` for up to two free labels, then coordinate ascent.
    """
    import itertools

    import numpy as np

    probs = np.log(np.maximum(np.stack(frame["probability"].to_numpy()), 1e-12))
    index = {lab: i for i, lab in enumerate(labels)}
    truth = np.array([index.get(t, -1) for t in frame["label"]])
    focal = [index[f] for f in (focal_labels or labels)]
    free = list(range(len(labels) - 1))

    def score(offsets):
        pred = (probs + np.asarray(offsets)).argmax(1)
        f1 = []
        for j in focal:
            tp = np.sum((pred == j) & (truth == j))
            denom = np.sum(pred == j) + np.sum(truth == j)
            f1.append(2 * tp / denom if denom else 0.0)
        return float(np.mean(f1))

    zero = [0.0] * len(labels)
    best, best_score = zero, score(zero)
    if len(free) <= 2:
        for combo in itertools.product(OFFSET_GRID, repeat=len(free)):
            offsets = list(combo) + [0.0] * (len(labels) - len(free))
            s = score(offsets)
            # Ties keep the smaller adjustment: offsets are only trusted where they pay.
            if s > best_score + 1e-9 or (abs(s - best_score) <= 1e-9 and
                                          sum(map(abs, offsets)) < sum(map(abs, best))):
                best, best_score = offsets, s
        return best
    for _ in range(2):
        for j in free:
            for v in OFFSET_GRID:
                trial = list(best)
                trial[j] = v
                s = score(trial)
                if s > best_score + 1e-9:
                    best, best_score = trial, s
    return best


def _print_run(model, seed, row):
    r = row["test"]
    cells = "  ".join(f"{lab} F1 {r['per_label'][lab]['f1']:.3f}" for lab in r["labels"])
    extra = ""
    if "tuned" in row:
        extra = (f" | tuned offsets {row['offsets']}: focal macro "
                 f"{row['tuned']['focal_macro_f1']:.3f}; best epoch {row['best_epoch']}/"
                 f"{row['epochs_run']}")
    print(f"{model}{'' if seed is None else f' seed {seed}'}: {cells}  focal macro "
          f"{r['focal_macro_f1']:.3f}  ({row['seconds']:.0f}s){extra}", flush=True)


# -- the table --------------------------------------------------------------------------


def _stat(values):
    mean = statistics.fmean(values)
    return (mean, statistics.stdev(values)) if len(values) > 1 else (mean, None)


def _cell(values, digits=3):
    mean, sd = _stat(values)
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def format_table(results: dict, cfg) -> str:
    """Markdown: per-label P/R/F1 (mean ± sd over seeds), focal macro, tuned macro, time."""
    labels = cfg.labels
    short = {lab: "".join(w[0] for w in lab.split("-")).upper() if "-" in lab else lab[:4]
             for lab in labels}
    head = ["model", "seeds"]
    for lab in labels:
        head += [f"{short[lab]} P", f"{short[lab]} R", f"{short[lab]} F1"]
    focal = "+".join(short[f] for f in cfg.focal_labels)
    head += [f"macro F1 {focal}", f"tuned: {' / '.join(short[f] + ' F1' for f in cfg.focal_labels)}"
             f" / macro", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model, rows in results.items():
        cells = [model, str(len(rows))]
        for lab in labels:
            for metric in ("precision", "recall", "f1"):
                cells.append(_cell([r["test"]["per_label"][lab][metric] for r in rows]))
        cells.append(_cell([r["test"]["focal_macro_f1"] for r in rows]))
        if all("tuned" in r for r in rows):
            tuned = [_cell([r["tuned"]["per_label"][f]["f1"] for r in rows])
                     for f in cfg.focal_labels]
            tuned.append(_cell([r["tuned"]["focal_macro_f1"] for r in rows]))
            cells.append(" / ".join(tuned))
        else:
            cells.append("n/a")
        cells.append(f"{statistics.fmean(r['seconds'] for r in rows):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section_text(args, cfg, table: str) -> str:
    t = cfg.train
    cmd = " ".join(["python", "benchmarks/quality.py"] + (sys.argv[1:] if sys.argv else []))
    f = cfg.features
    settings = (f"encoder {t.encoder}, embedding {t.embedding_dim}, hidden {t.hidden_size}, "
                f"layers {t.num_layers}, dropout {t.dropout}, token dropout {t.token_dropout}, "
                f"window {cfg.windows.size}/{cfg.windows.stride}, max_tokens {f.max_tokens}, "
                f"char n-grams {f.char_ngrams}, shape features "
                f"{len(f.shape_features) or 'all'}, epochs {t.epochs} (patience "
                f"{t.early_stopping_patience}, restore best {t.restore_best}), batch "
                f"{t.batch_size} x {t.num_proc} workers, lr {t.learning_rate} ({t.lr_decay} "
                f"decay)" + (f", ensemble of {t.ensemble_members} networks"
                             if t.ensemble_members > 1 else ""))
    split = ", ".join(f"{s} `{p}`" for s, p in cfg.data.split.patterns)
    return (f"Command: `{cmd}`\n\nNetwork: {settings}. Split by path: {split}. Test: "
            f"Mycotaxon Vol117 (line level); mean ± sd over seeds {args.seeds}; *tuned*: "
            f"log-probability offsets chosen on the validation split.\n\n{table}\n")


def write_section(path: str, name: str, body: str) -> None:
    """Replaces (or appends) the block between the markers of section `name`."""
    begin, end = f"<!-- quality:{name}:begin -->", f"<!-- quality:{name}:end -->"
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {name}\n\n{block}\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main())
