"""Files -> windowed Parquet (one folder per split) + _manifest.json.

Layout of ``out_dir``::

    split=train/part-*.parquet        windows (Windower columns), petastorm-readable:
    split=validation/...              fixed-length array columns, row groups of about
    split=test/...                    windows.row_group_bytes
    _problems/part-*.parquet          every problem record (doc_id, line_no, problem,
                                      lines_dropped); only when there are problems
    _manifest.json                    what training reads instead of rescanning

Everything is computed in ONE distributed pass, the write of the windows: the parse
report, the label counts per split and the window counts per split are observed
metrics (`DataFrame.observe`) of that pass, i.e. fixed-size aggregates merged from the
tasks. Nothing that grows with the corpus reaches the driver and nothing is cached.
Only when the parse found problems does a second, lighter pass (read + parse, no
features) write them to ``_problems``; the manifest then holds a bounded sample.
"""
import json
import logging
import os

from pyspark.sql import Observation
from pyspark.sql import functions as F

from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import PROBLEM_CODES, list_files, problem_code, split_problems
from focalseq.stages.split import SPLITS

logger = logging.getLogger(__name__)

MAX_PROBLEM_SAMPLES = 50
MANIFEST = "_manifest.json"
PROBLEMS_DIR = "_problems"


def input_paths(cfg: Config) -> list:
    """The configured files, generating the synthetic corpus first when asked to."""
    if cfg.data.source == "files":
        return list(cfg.data.paths)
    from focalseq.synthetic import generate_corpus

    s = cfg.data.synthetic
    out = os.path.abspath(os.path.join(cfg.output.dir, "corpus"))
    paths = generate_corpus(out, n_docs=s.n_docs, lines_per_doc=s.lines_per_doc,
                            ratio=tuple(s.ratio), noise=s.noise, seed=s.seed)
    logger.info("synthetic corpus: %d documents in %s", len(paths), out)
    return [os.path.join(out, "*.ann")]


def parse_and_featurize(spark, cfg: Config, paths=None, fmt=None):
    """Returns (parsed rows incl. problems, featurized lines) as lazy DataFrames."""
    files = list_files(spark, paths or input_paths(cfg), recursive=cfg.data.recursive)
    parsed = builders.parser(cfg, fmt).transform(files)
    lines, _ = split_problems(parsed)
    return parsed, builders.featurizer(cfg).transform(lines)


def prepare(spark, cfg: Config, out_dir: str = None) -> dict:
    """Parses, featurizes, splits and windows the configured files into `out_dir`.

    Args:
        spark: the session.
        cfg: configuration (data, features, windows, labels).
        out_dir: output folder; default ``<output.dir>/windows``. Overwritten.

    Returns:
        The manifest, also written to ``<out_dir>/_manifest.json``.
    """
    out_dir = os.path.abspath(out_dir or os.path.join(cfg.output.dir, "windows"))
    paths = input_paths(cfg)
    files = list_files(spark, paths, recursive=cfg.data.recursive)
    obs_files, obs_parse, obs_labels, obs_windows = (
        Observation(name) for name in ("files", "parse", "labels", "windows"))
    files = files.observe(obs_files, F.count(F.lit(1)).alias("files"))
    parsed = builders.parser(cfg).transform(files).observe(obs_parse, *_parse_metrics())
    lines, _ = split_problems(parsed)
    lines = builders.splitter(cfg).transform(lines)
    lines = lines.observe(obs_labels, *_label_metrics(cfg))
    featurizer = builders.featurizer(cfg)
    windows = builders.windower(cfg).transform(featurizer.transform(lines))
    windows = windows.observe(obs_windows, *[
        F.sum(F.when(F.col("split") == s, 1).otherwise(0)).alias(s) for s in SPLITS])

    (windows.write.mode("overwrite").partitionBy("split")
     .option("parquet.block.size", str(cfg.windows.row_group_bytes))
     .parquet(out_dir))

    report = _parse_report(obs_parse.get, obs_files.get["files"])
    label_counts = _label_counts(obs_labels.get, cfg)
    window_counts = {s: int(obs_windows.get[s] or 0) for s in SPLITS
                     if obs_windows.get[s]}
    report["lines_in_splits"] = int(obs_labels.get["lines"] or 0)
    report["problem_samples"] = []
    if report["problems"]:
        report["problem_samples"] = _write_problems(spark, cfg, paths, out_dir)
    manifest = {
        "windows_dir": out_dir,
        "splits": {s: os.path.join(out_dir, f"split={s}") for s in window_counts},
        "labels": list(cfg.labels), "focal_labels": list(cfg.focal_labels),
        "multi_label": cfg.multi_label,
        "label_counts": label_counts, "window_counts": window_counts,
        "features": {"vocab_size": cfg.features.vocab_size,
                     "max_tokens": cfg.features.max_tokens,
                     "n_shape": featurizer.n_shape(),
                     "shape_features": list(featurizer.enabled_shape_features())},
        "window": {"size": cfg.windows.size, "stride": cfg.windows.stride,
                   "row_group_bytes": cfg.windows.row_group_bytes},
        "report": report,
    }
    with open(os.path.join(out_dir, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    logger.info("prepared %d lines of %d files (%d problems) into %s", report["lines_out"],
                report["files"], report["problems"], out_dir)
    return manifest


def load_manifest(out_dir: str) -> dict:
    """The manifest `prepare` wrote into `out_dir`."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no manifest; run `focalseq prepare` first")
    with open(path) as fh:
        return json.load(fh)


def _parse_metrics():
    """Fixed-size aggregates over the parser's rows (lines and problems)."""
    is_line = F.col("problem").isNull()
    code = problem_code(F.col("problem"))

    def count(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    return [count(is_line).alias("lines_out"),
            count(~is_line).alias("problems"),
            F.sum(F.coalesce(F.col("lines_dropped"), F.lit(0))).alias("lines_dropped"),
            count(is_line & (F.col("line_idx") == 0)).alias("documents"),
            count(~is_line & ~code.isin(*PROBLEM_CODES)).alias("problem_other"),
            *[count(~is_line & (code == c)).alias(f"problem_{c}") for c in PROBLEM_CODES]]


def _parse_report(row: dict, n_files: int) -> dict:
    """Lines in the readable files == lines_out + lines_dropped."""
    by_reason = {c: int(row[f"problem_{c}"] or 0) for c in PROBLEM_CODES + ("other",)}
    return {"files": int(n_files or 0), "documents": int(row["documents"] or 0),
            "lines_out": int(row["lines_out"] or 0), "problems": int(row["problems"] or 0),
            "lines_dropped": int(row["lines_dropped"] or 0),
            "problems_by_reason": {c: n for c, n in by_reason.items() if n}}


def _label_metrics(cfg: Config):
    """One count per (split, label): a small fixed set of sums, not a collect."""
    if cfg.multi_label:
        parts = F.split(F.col("label"), r"\|")

        def has(label):
            return F.array_contains(parts, label)
    else:
        def has(label):
            return F.col("label") == label
    return [F.count(F.lit(1)).alias("lines")] + [
        F.sum(F.when((F.col("split") == s) & has(lab), 1).otherwise(0)).alias(f"{s}_{j}")
        for s in SPLITS for j, lab in enumerate(cfg.labels)]


def _label_counts(row: dict, cfg: Config) -> dict:
    """{split: {label: lines}} for the splits that have lines."""
    counts = {}
    for s in SPLITS:
        per_label = {lab: int(row[f"{s}_{j}"] or 0) for j, lab in enumerate(cfg.labels)}
        if any(per_label.values()):
            counts[s] = per_label
    return counts


def _write_problems(spark, cfg: Config, paths, out_dir: str) -> list:
    """Writes every problem record to _problems; returns a bounded sample of them."""
    files = list_files(spark, paths, recursive=cfg.data.recursive)
    _, problems = split_problems(builders.parser(cfg).transform(files))
    path = os.path.join(out_dir, PROBLEMS_DIR)
    problems.write.mode("overwrite").parquet(path)
    return [r.asDict() for r in spark.read.parquet(path).orderBy("doc_id", "line_no")
            .limit(MAX_PROBLEM_SAMPLES).collect()]
