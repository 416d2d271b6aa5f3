"""Files -> windowed Parquet (one folder per split) + manifest.json.

The manifest is what training reads instead of rescanning the data: label counts per
split (from one distributed aggregation), feature and window dimensions, and the
problem report of the parse (counts by reason, plus a bounded sample of records; the
full list is written as Parquet beside it).
"""
import json
import logging
import os

from pyspark import StorageLevel
from pyspark.sql import functions as F

from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import list_files, split_problems

logger = logging.getLogger(__name__)

MAX_PROBLEM_SAMPLES = 50


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
    out_dir = os.path.abspath(out_dir or os.path.join(cfg.output.dir, "windows"))
    parsed = builders.parser(cfg).transform(
        list_files(spark, input_paths(cfg), recursive=cfg.data.recursive))
    parsed = builders.splitter(cfg).transform(parsed).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        report = _parse_report(parsed)
        lines = parsed.filter(F.col("problem").isNull()).drop("problem", "lines_dropped")
        counts = _label_counts(lines, cfg)
        feats = builders.featurizer(cfg)
        windows = builders.windower(cfg).transform(feats.transform(lines))
        (windows.write.mode("overwrite").partitionBy("split")
         .option("parquet.block.size", str(cfg.windows.row_group_bytes)).parquet(out_dir))
        problems = parsed.filter(F.col("problem").isNotNull()).select(
            "doc_id", "line_no", "problem", "lines_dropped")
        problems.write.mode("overwrite").parquet(os.path.join(out_dir, "_problems"))
        window_counts = {r["split"]: int(r["count"]) for r in
                         spark.read.parquet(out_dir).groupBy("split").count().collect()}
    finally:
        parsed.unpersist()
    manifest = {
        "windows_dir": out_dir,
        "splits": {s: os.path.join(out_dir, f"split={s}") for s in window_counts},
        "labels": cfg.labels, "focal_labels": cfg.focal_labels,
        "multi_label": cfg.multi_label,
        "label_counts": counts, "window_counts": window_counts,
        "features": {"vocab_size": cfg.features.vocab_size,
                     "max_tokens": cfg.features.max_tokens,
                     "n_shape": feats.n_shape(),
                     "shape_features": list(feats.enabled_shape_features())},
        "window": {"size": cfg.windows.size, "stride": cfg.windows.stride},
        "report": report,
    }
    with open(os.path.join(out_dir, "_manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    logger.info("prepared %d lines (%d problems) into %s", report["lines_out"],
                report["problems"], out_dir)
    return manifest


def load_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, "_manifest.json")
    if not os.path.exists(path):
        raise ValueError(f"{path}: no manifest; run `focalseq prepare` first")
    with open(path) as fh:
        return json.load(fh)


def _parse_report(parsed) -> dict:
    """Counts from one aggregation; lines in the files == lines_out + lines_dropped."""
    row = parsed.agg(
        F.sum(F.when(F.col("problem").isNull(), 1).otherwise(0)).alias("lines_out"),
        F.sum(F.when(F.col("problem").isNotNull(), 1).otherwise(0)).alias("problems"),
        F.sum(F.coalesce(F.col("lines_dropped"), F.lit(0))).alias("lines_dropped"),
        F.countDistinct("doc_id").alias("documents")).first()
    reason = F.regexp_extract(F.col("problem"), r"^([a-z_]+)", 1)
    by_reason = {r["reason"]: int(r["count"]) for r in parsed.filter(
        F.col("problem").isNotNull()).groupBy(reason.alias("reason")).count().collect()}
    samples = [r.asDict() for r in parsed.filter(F.col("problem").isNotNull()).select(
        "doc_id", "line_no", "problem", "lines_dropped").limit(MAX_PROBLEM_SAMPLES).collect()]
    return {"lines_out": int(row["lines_out"] or 0), "problems": int(row["problems"] or 0),
            "lines_dropped": int(row["lines_dropped"] or 0),
            "documents": int(row["documents"] or 0),
            "problems_by_reason": by_reason, "problem_samples": samples}


def _label_counts(lines, cfg: Config) -> dict:
    """{split: {label: lines}} in one distributed pass."""
    label = F.explode(F.split("label", r"\|")) if cfg.multi_label else F.col("label")
    rows = lines.select("split", label.alias("label")).groupBy("split", "label").count().collect()
    counts = {}
    for r in rows:
        counts.setdefault(r["split"], {lab: 0 for lab in cfg.labels})[r["label"]] = int(r["count"])
    return counts
