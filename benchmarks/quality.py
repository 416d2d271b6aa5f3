"""Model quality on real annotated literature (SKOL): networks against the users' strong
baseline, on splits by volume and by journal.

Folds (`--folds`, defined as data in benchmarks/_skol.py, FOLDS: each one a
`data.split.patterns` list of [split, regex] pairs over file paths):

* `vol117`: today's split (conf/skol.yaml): test Mycotaxon Vol117; Persoonia n4 validates;
  the rest (Mycotaxon Vol054-Vol058, Persoonia n1-n3) trains.
* `lojo` (leave one journal out): train on Mycotaxon, test on Persoonia (Mycotaxon Vol058
  validates); train on Persoonia n1-n3, test on all of Mycotaxon (Persoonia n4 validates).
* `lovo` (leave one volume out): each Mycotaxon volume in turn is the test, a neighbouring
  Mycotaxon volume validates, the rest (Persoonia included) trains.
* `all`: the three. A comma-separated list may also name single folds.

Validation always comes from the training side: it picks the baseline's L2 strength and
the networks' tuned offsets, and nothing is chosen on a test fold. Three labels:
Nomenclature, Description, Misc-exposition (every other raw label). Models (`--models`):

* `baseline`: the users' context baseline in Spark ML (benchmarks/_baseline.py: TF-IDF of
  words + character 2-4-grams of the line and of lines -2..+2, LogisticRegression);
* `sklearn`: the same baseline written independently in scikit-learn as the users
  describe it (benchmarks/_sklearn_baseline.py), the check on the Spark one;
* `default`: the network of the configuration as it stands (its loss; an ensemble when
  `train.ensemble_members` > 1);
* any single-label loss name (`soft_f1`, `focal`, ...): the configuration's network with
  that loss at its defaults.

Networks are trained through the real pipeline (windows prepared once per fold to Parquet
with Spark, BiLSTMEstimator on 2 Horovod workers, BiLSTMModel.transform,
PerLabelEvaluator), once per seed. Prints per-label precision, recall and F1, writes the
tables into --out (a marked section, replaced on each run) and logs every run to MLflow
(sqlite in the run directory). With more than one fold it prints a table per fold and a
summary: mean ± sd over the folds (and seeds) of each group.

Usage, from the repository root:

    .venv/bin/python benchmarks/quality.py                       # Vol117, every loss, 3 seeds
    .venv/bin/python benchmarks/quality.py --folds all --models baseline,sklearn --name folds-baseline
    .venv/bin/python benchmarks/quality.py --folds lojo --models default --seeds 0 --name folds-default
    .venv/bin/python benchmarks/quality.py --losses soft_f1 --seeds 0 --epochs 3
"""
import argparse
import json
import logging
import os
import re
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
SKLEARN = "sklearn_context"
MODEL_ALIASES = {"baseline": BASELINE, "sklearn": SKLEARN}
OFFSET_GRID = [x / 4 for x in range(-12, 13)]  # log-probability offsets, -3 .. 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=_skol.DEFAULT_DATA,
                   help="SKOL corpus root (default: ../shared/data/skol from the repo root)")
    p.add_argument("--folds", default=None,
                   help="comma-separated fold groups (" + ", ".join(_skol.FOLD_GROUPS) +
                        ") or fold names (" + ", ".join(_skol.FOLDS) + "); default: the "
                        "configuration's own split (Vol117 for conf/skol.yaml)")
    p.add_argument("--models", default=None,
                   help="comma-separated: baseline (Spark ML), sklearn (scikit-learn "
                        "reference), default (the configuration's network), or loss names "
                        "(" + ",".join(LOSS_CONFIGS) + "); overrides --losses, "
                        "--no-baseline and --baseline-only")
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
    try:
        args.folds = _skol.fold_names(args.folds) if args.folds else None
    except ValueError as exc:
        p.error(f"--folds: {exc}")
    if args.models is not None:
        models = [x.strip() for x in args.models.split(",") if x.strip()]
        valid = list(MODEL_ALIASES) + ["default"] + list(LOSS_CONFIGS)
        unknown = [x for x in models if x not in valid]
        if unknown or not models:
            p.error(f"--models: {unknown or models!r} not valid; valid: {', '.join(valid)}")
        args.models = list(dict.fromkeys(MODEL_ALIASES.get(x, x) for x in models))
        return args
    losses = [x for x in args.losses.split(",") if x]
    unknown = [x for x in losses if x not in LOSS_CONFIGS]
    if unknown:
        p.error(f"--losses: {unknown} are not single-label losses; valid: "
                f"{', '.join(LOSS_CONFIGS)}")
    args.models = ([] if args.no_baseline else [BASELINE]) + \
        ([] if args.baseline_only else losses)
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
    folds = args.folds or [None]
    configs = {fold: _skol.task_config(
        args.data, args.run_dir, overrides + ([_skol.split_override(fold)] if fold else []),
        conf=args.conf) for fold in folds}
    cfg0 = configs[folds[0]]
    networks = [m for m in args.models if m not in (BASELINE, SKLEARN)]

    import mlflow

    from focalseq.pipelines.session import get_spark

    spark = None
    if BASELINE in args.models or networks:
        spark = get_spark(cfg0.spark.master, "focalseq-quality", cfg0.spark.conf)
    mlflow.set_tracking_uri(cfg0.mlflow.tracking_uri)
    mlflow.set_experiment("skol-quality")

    # Every finished run is recorded at once, so an interrupted comparison resumes where
    # it stopped instead of retraining what it already has.
    ledger = Ledger(os.path.join(args.run_dir, "quality_runs.jsonl"), args.name,
                    fresh=args.fresh)
    shared = {}  # what every fold reuses: parsed corpus, baseline features
    results = {}
    for fold in folds:
        cfg = configs[fold]
        label = fold or "config"
        if fold:
            print(f"== fold {fold}: split {json.dumps(_skol.FOLDS[fold])}", flush=True)
        data_digest = _digest(cfg, ("labels", "data"))  # all the baselines depend on
        per_fold = results.setdefault(label, {})
        if BASELINE in args.models:
            digest = data_digest + "-" + _baseline_digest()
            per_fold[BASELINE] = [
                ledger.get(BASELINE, None, digest, label) or ledger.put(
                    BASELINE, None, digest, run_baseline(spark, cfg, args.name, label, shared),
                    label)]
        if SKLEARN in args.models:
            per_fold[SKLEARN] = [
                ledger.get(SKLEARN, None, data_digest, label) or ledger.put(
                    SKLEARN, None, data_digest, run_sklearn(cfg, args, label, shared), label)]
        if not networks:
            continue
        started = time.time()
        manifest = _skol.prepared_windows(spark, cfg, os.path.join(args.run_dir, "cache"))
        print(f"windows: {manifest['windows_dir']} ({time.time() - started:.0f}s); "
              f"label counts {json.dumps(manifest['label_counts'])}", flush=True)
        net_digest = _digest(cfg, ("labels", "data", "features", "windows", "train"))
        members = cfg.train.ensemble_members
        # Seed by seed over all networks, so an interrupted comparison already covers each.
        for seed in args.seeds:
            for model in networks:
                loss = cfg.train.loss if model == "default" else model
                name = model if members == 1 else f"{model} x{members} ensemble"
                loss_config = dict(cfg.train.loss_config) if model == "default" \
                    else dict(LOSS_CONFIGS[loss])
                digest = net_digest if model != "default" else \
                    _digest(cfg, ("labels", "data", "features", "windows", "train"),
                            keep_loss=True)
                per_fold.setdefault(name, []).append(
                    ledger.get(name, seed, digest, label) or ledger.put(
                        name, seed, digest,
                        run_network(spark, cfg, manifest, loss, loss_config, seed, args.name),
                        label))

    if folds == [None] or folds == ["vol117"]:
        table = format_table(results[folds[0] or "config"], cfg0)
    else:
        table = format_fold_tables(results, cfg0)
    print("\n" + table, flush=True)
    if args.out != "-":
        write_section(args.out, args.name, section_text(args, cfg0, table))
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

    def get(self, model: str, seed, digest: str, fold: str = ""):
        row = self.rows.get((model, seed, digest))
        if row is not None:
            print(f"{fold + ': ' if fold else ''}{model}"
                  f"{'' if seed is None else f' seed {seed}'}: reused from {self.path}")
        return row

    def put(self, model: str, seed, digest: str, row: dict, fold: str = "") -> dict:
        # The digest covers the split, so the fold name is only there for a reader.
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"section": self.section, "digest": digest, "model": model,
                                 "seed": seed, "fold": fold, "row": row}) + "\n")
        return row


def _digest(cfg, sections, keep_loss: bool = False) -> str:
    """Digest of the config sections a run depends on (seed and run id excluded).

    The loss is left out unless `keep_loss` (the model name carries it), so that runs
    recorded before a loss became a default are still found.
    """
    import hashlib

    d = cfg.to_dict()
    picked = {k: d[k] for k in sections}
    if "train" in picked:
        dropped = ("seed", "run_id") if keep_loss else ("seed", "run_id", "loss", "loss_config")
        picked["train"] = {k: v for k, v in picked["train"].items() if k not in dropped}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]


# -- one run each -----------------------------------------------------------------------


def _baseline_digest() -> str:
    """Digest of the Spark baseline's own settings, so a change of them retrains it."""
    import hashlib

    from _baseline import SETTINGS

    return hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode()).hexdigest()[:8]


def run_baseline(spark, cfg, name: str, fold: str, shared: dict) -> dict:
    import mlflow

    import _baseline
    from focalseq.pipelines import builders
    from focalseq.tracking import report_metrics

    if "baseline_features" not in shared:
        # Term counts do not depend on the split: built once, every fold refits IDF and
        # the classifier on its own training lines.
        shared["baseline_features"] = _baseline.featurize(
            _skol.corpus_lines(spark, cfg), os.path.join(cfg.output.dir, "baseline"))
    with mlflow.start_run(run_name=f"{name}-{fold}-{BASELINE}"):
        mlflow.set_tags({"section": name, "model": BASELINE, "fold": fold})
        out = _baseline.fit_fold(
            spark, shared["baseline_features"], cfg.data.split.patterns, cfg.labels,
            lambda split: builders.evaluator(cfg, split, log_to_mlflow=False),
            os.path.join(cfg.output.dir, "baseline"))
        mlflow.log_params({"reg_param": out["reg_param"], **_baseline.SETTINGS})
        mlflow.log_metrics({**report_metrics(out["reports"]["test"], "test"),
                            **report_metrics(out["reports"]["validation"], "validation"),
                            "train_seconds": out["seconds"]})
    row = {"test": out["reports"]["test"], "validation": out["reports"]["validation"],
           "seconds": out["seconds"],
           "note": f"regParam {out['reg_param']:g} (chosen on validation)"}
    _print_run(f"{fold}: {BASELINE}", None, row)
    return row


def run_sklearn(cfg, args, fold: str, shared: dict) -> dict:
    import mlflow

    import _sklearn_baseline as sk
    from focalseq.tracking import report_metrics

    if "corpus" not in shared:
        shared["corpus"] = sk.read_corpus(_skol.corpus_dir(args.data), _skol.VOLUMES,
                                          cfg.focal_labels or cfg.labels[:-1],
                                          cfg.data.default_label)
    corpus = shared["corpus"]
    splits = sk.assign_splits(corpus, cfg.data.split.patterns)
    with mlflow.start_run(run_name=f"{args.name}-{fold}-{SKLEARN}"):
        mlflow.set_tags({"section": args.name, "model": SKLEARN, "fold": fold})
        out = sk.reference(corpus, splits, cfg.labels, cfg.focal_labels)
        mlflow.log_params({"C": 1.0, "class_weight": "none"})
        mlflow.log_metrics({**report_metrics(out["reports"]["test"], "test"),
                            "train_seconds": out["seconds"]})
    row = {"test": out["reports"]["test"], "validation": out["reports"].get("validation"),
           "seconds": out["seconds"], "note": f"C 1, {out['iterations']} L-BFGS iterations"}
    _print_run(f"{fold}: {SKLEARN}", None, row)
    return row


def run_network(spark, cfg, manifest, loss: str, loss_config: dict, seed: int,
                name: str) -> dict:
    import mlflow

    from focalseq.pipelines import builders
    from focalseq.pipelines.prepare import read_split
    from focalseq.tracking import report_metrics

    # A run id allows letters, digits, '.', '_' and '-': a section name may hold more.
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "run"
    run_cfg = _skol.with_train(cfg, loss=loss, loss_config=loss_config,
                               seed=seed, run_id=f"{slug}-{loss}-{seed}-{uuid.uuid4().hex[:6]}")
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
    short = _short(labels)
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


def _short(labels) -> dict:
    return {lab: "".join(w[0] for w in lab.split("-")).upper() if "-" in lab else lab[:4]
            for lab in labels}


def format_fold_tables(results: dict, cfg) -> str:
    """Markdown: a summary (mean ± sd over the folds and seeds of each group), then per fold."""
    labels, focal = cfg.labels, cfg.focal_labels or cfg.labels
    short = _short(labels)
    models = list(dict.fromkeys(m for per_fold in results.values() for m in per_fold))
    groups = [g for g in ("vol117", "lojo", "lovo")
              if any(_skol.fold_group(f) == g for f in results)]
    head = ["model"]
    for g in groups:
        head += [f"{g}: {short[f]} F1" for f in focal] + [f"{g}: macro"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in models:
        cells = [model]
        for g in groups:
            rows = [r for fold, per_fold in results.items() if _skol.fold_group(fold) == g
                    for r in per_fold.get(model, [])]
            if not rows:
                cells += ["n/a"] * (len(focal) + 1)
                continue
            n_folds = sum(1 for fold, per_fold in results.items()
                          if _skol.fold_group(fold) == g and per_fold.get(model))
            cells += [_cell([r["test"]["per_label"][f]["f1"] for r in rows]) for f in focal]
            cells.append(_cell([r["test"]["focal_macro_f1"] for r in rows]) +
                         f" ({n_folds}f x {len(rows) // max(n_folds, 1)}s)")
        lines.append("| " + " | ".join(cells) + " |")
    head = ["fold", "model", "seeds"]
    for lab in labels:
        head += [f"{short[lab]} P", f"{short[lab]} R", f"{short[lab]} F1"]
    head += ["macro F1 " + "+".join(short[f] for f in focal), "train s", "note"]
    per = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for fold, per_fold in results.items():
        for model, rows in per_fold.items():
            cells = [fold, model, str(len(rows))]
            for lab in labels:
                for metric in ("precision", "recall", "f1"):
                    cells.append(_cell([r["test"]["per_label"][lab][metric] for r in rows]))
            cells.append(_cell([r["test"]["focal_macro_f1"] for r in rows]))
            cells.append(f"{statistics.fmean(r['seconds'] for r in rows):.0f}")
            notes = sorted({r.get("note", "") for r in rows} - {""})
            cells.append("; ".join(notes))
            per.append("| " + " | ".join(cells) + " |")
    return ("Summary: test F1, mean ± sd over the folds of each group and the seeds "
            "(f folds x s seeds).\n\n" + "\n".join(lines) +
            "\n\nPer fold (mean ± sd over seeds):\n\n" + "\n".join(per))


def section_text(args, cfg, table: str) -> str:
    t = cfg.train
    cmd = " ".join(["python", "benchmarks/quality.py"] + (sys.argv[1:] if sys.argv else []))
    f = cfg.features
    settings = (f"encoder {t.encoder}, head {t.head}, embedding {t.embedding_dim}, "
                f"hidden {t.hidden_size}, "
                f"layers {t.num_layers}, dropout {t.dropout}, token dropout {t.token_dropout}, "
                f"window {cfg.windows.size}/{cfg.windows.stride}, max_tokens {f.max_tokens}, "
                f"char n-grams {f.char_ngrams}, shape features "
                f"{len(f.shape_features) or 'all'}, epochs {t.epochs} (patience "
                f"{t.early_stopping_patience}, restore best {t.restore_best}), batch "
                f"{t.batch_size} x {t.num_proc} workers, lr {t.learning_rate} ({t.lr_decay} "
                f"decay)" + (f", ensemble of {t.ensemble_members} networks"
                             if t.ensemble_members > 1 else ""))
    if args.folds and args.folds != ["vol117"]:
        folds = "; ".join(f"`{name}`: " + ", ".join(f"{s} `{p}`" for s, p in _skol.FOLDS[name])
                          for name in args.folds)
        return (f"Command: `{cmd}`\n\nNetwork (where one ran): {settings}. Folds (split by "
                f"path, first match wins): {folds}. Line level; seeds {args.seeds} for the "
                f"networks (the baselines are deterministic: one run per fold).\n\n"
                f"{table}\n")
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
