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
import posixpath
from functools import partial

from pyspark.sql import Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from focalseq import fileio
from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import (PROBLEM_CODES, arrow_batch_size, list_files,
                                   problem_code, split_problems)
from focalseq.stages.split import SPLITS
from focalseq.stages.windows import WINDOW_FIELDS

logger = logging.getLogger(__name__)

MAX_PROBLEM_SAMPLES = 50
MANIFEST = "_manifest.json"
PROBLEMS_DIR = "_problems"

# What the prepare pass emits: window rows (start set), problem rows (problem set) and
# label-count rows (n_lines set: one per run of a document's lines in a batch).
PREPARE_SCHEMA = T.StructType(
    [T.StructField("doc_id", T.StringType(), False)]
    + [T.StructField(f.name, f.dataType, True) for f in WINDOW_FIELDS]
    + [T.StructField("problem", T.StringType(), True),
       T.StructField("line_no", T.IntegerType(), True),
       T.StructField("lines_dropped", T.IntegerType(), True),
       T.StructField("n_lines", T.IntegerType(), True),
       T.StructField("label_counts", T.ArrayType(T.LongType(), False), True)])


def input_paths(cfg: Config) -> list:
    """The configured files, generating the synthetic corpus first when asked to."""
    if cfg.data.source == "files":
        return list(cfg.data.paths)
    from focalseq.synthetic import generate_binary_corpus, generate_corpus
    from focalseq.synthetic_multilabel import generate_multilabel_corpus

    s = cfg.data.synthetic
    out = cfg.path("corpus")
    common = {"n_docs": s.n_docs, "lines_per_doc": s.lines_per_doc, "noise": s.noise,
              "seed": s.seed}
    if s.kind == "multilabel":
        paths = generate_multilabel_corpus(out, labels=list(cfg.labels), **common)
    elif s.kind == "binary":
        paths = generate_binary_corpus(out, labels=list(cfg.labels), ratio=tuple(s.ratio),
                                       **common)
    else:
        paths = generate_corpus(out, ratio=tuple(s.ratio), **common)
    logger.info("synthetic %s corpus: %d documents in %s", s.kind, len(paths), out)
    return [posixpath.join(out, "*.ann")]


def parse_and_featurize(spark, cfg: Config, paths=None, fmt=None):
    """Returns (parsed rows incl. problems, featurized lines) as lazy DataFrames."""
    files = list_files(spark, paths or input_paths(cfg), recursive=cfg.data.recursive,
                       bytes_per_task=cfg.data.bytes_per_task)
    parsed = builders.parser(cfg, fmt).transform(files)
    lines, _ = split_problems(parsed)
    return parsed, builders.featurizer(cfg).transform(lines)


def prepare(spark, cfg: Config, out_dir: str = None) -> dict:
    """Parses, featurizes, splits and windows the configured files into `out_dir`.

    The stages' executor functions (YeddaParser, LineFeaturizer, Windower) run composed
    in one Python pass per partition, which spares two Arrow round trips between the
    JVM and Python per line; the windows are exactly those of the stages applied one
    after the other. Alongside the windows the pass emits problem records and per-
    document label counts, which observed metrics aggregate while the windows are
    written.

    Args:
        spark: the session.
        cfg: configuration (data, features, windows, labels).
        out_dir: output folder, a local path or URL (kept as given: Spark and fsspec
            both resolve a relative path against the driver's working directory);
            default ``<output.dir>/windows`` (`Config.path`). Replaced if focalseq
            wrote it (its marker or manifest); a non-empty folder it did not write is
            refused (`focalseq.fileio.OutputExistsError`).

    Returns:
        The manifest, also written to ``<out_dir>/_manifest.json``.
    """
    out_dir = out_dir or cfg.path("windows")
    # The folder is replaced below: only if it is ours (issue 12).
    fileio.check_own_folder(out_dir, legacy=(MANIFEST,))
    paths = input_paths(cfg)
    parser, featurizer = builders.parser(cfg), builders.featurizer(cfg)
    windower = builders.windower(cfg)
    obs_files, obs_parse, obs_split = (Observation(n) for n in ("files", "parse", "split"))
    files = list_files(spark, paths, recursive=cfg.data.recursive,
                       bytes_per_task=cfg.data.bytes_per_task)
    files = files.observe(obs_files, F.count(F.lit(1)).alias("files"))
    rows = files.mapInArrow(partial(
        _prepare_partition, parse=parser.batch_function(arrow_batch_size(files)),
        featurize=featurizer.batch_function(),
        window=windower.batch_function(["doc_id"], featurizer.getMaxTokens(),
                                       featurizer.n_shape()),
        labels=list(cfg.labels), multi_label=cfg.multi_label,
        sep=windower.getLabelSeparator()), schema=PREPARE_SCHEMA)
    rows = rows.observe(obs_parse, *_parse_metrics())
    rows = builders.splitter(cfg).transform(rows)
    rows = rows.observe(obs_split, *_split_metrics(cfg))
    windows = rows.filter(F.col("start").isNotNull()).select(
        "doc_id", "split", *[f.name for f in WINDOW_FIELDS])
    windows = windower.with_metadata(windows, featurizer.getMaxTokens(), featurizer.n_shape())

    (windows.write.mode("overwrite").partitionBy("split")
     .option("parquet.block.size", str(cfg.windows.row_group_bytes))
     .parquet(out_dir))
    fileio.mark_output(out_dir, {"command": "prepare"})

    split_row = obs_split.get
    report = _parse_report(obs_parse.get, obs_files.get["files"])
    report["lines_in_splits"] = int(split_row["lines"] or 0)
    label_counts = _label_counts(split_row, cfg)
    no_label = {s: int(split_row[f"{s}_none"] or 0) for s in label_counts}
    window_counts = {s: int(split_row[f"windows_{s}"] or 0) for s in SPLITS
                     if split_row[f"windows_{s}"]}
    empty = [s for s, f in cfg.data.split.fractions.items()
             if f > 0 and s not in window_counts and not cfg.data.split.patterns]
    if empty:
        logger.warning("data.split: split(s) %s got no document (fractions %s over %d "
                       "documents, by a hash of each path); with few documents name them "
                       "in data.split.patterns instead", empty, cfg.data.split.fractions,
                       int(obs_parse.get["documents"] or 0))
    report["problem_samples"] = []
    if report["problems"]:
        report["problem_samples"] = _write_problems(spark, cfg, paths, out_dir)
    manifest = {
        "windows_dir": out_dir,
        "splits": {s: posixpath.join(out_dir, f"split={s}") for s in window_counts},
        "labels": list(cfg.labels), "focal_labels": list(cfg.focal_labels),
        "multi_label": cfg.multi_label,
        "label_counts": label_counts, "window_counts": window_counts,
        "lines_without_label": no_label,
        "features": {"vocab_size": cfg.features.vocab_size,
                     "max_tokens": cfg.features.max_tokens,
                     "n_shape": featurizer.n_shape(),
                     "shape_features": list(featurizer.enabled_shape_features())},
        "window": {"size": cfg.windows.size, "stride": cfg.windows.stride,
                   "row_group_bytes": cfg.windows.row_group_bytes},
        "report": report,
    }
    fileio.write_bytes(posixpath.join(out_dir, MANIFEST),
                       json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
    logger.info("prepared %d lines of %d files (%d problems) into %s", report["lines_out"],
                report["files"], report["problems"], out_dir)
    if any(no_label.values()):
        logger.info("lines without a label (the empty label set) per split: %s", no_label)
    return manifest


def load_manifest(out_dir: str) -> dict:
    """The manifest `prepare` wrote into `out_dir` (a local path or URL)."""
    path = posixpath.join(out_dir, MANIFEST)
    if not fileio.exists(path):
        raise ValueError(f"{path}: no manifest; run `focalseq prepare` first")
    return json.loads(fileio.read_bytes(path).decode("utf-8"))


def read_split(spark, manifest: dict, split: str):
    """The windows of one split, `split` column included, as a plain Parquet scan.

    Reading the split's folder with the base path (rather than filtering the whole
    folder) gives a plain scan of just its files, which models' Python workers read
    themselves (BiLSTMModel.directRead) without a job to list the files a filter keeps.
    """
    if split not in manifest["splits"]:
        raise ValueError(f"split: {split!r} has no windows; prepared splits are "
                         f"{sorted(manifest['splits'])}")
    return (spark.read.option("basePath", manifest["windows_dir"])
            .parquet(manifest["splits"][split]))


def _parse_metrics():
    """Fixed-size aggregates over the pass's rows: windows, problems, label counts."""
    is_problem = F.col("problem").isNotNull()
    code = problem_code(F.col("problem"))

    def count(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    return [F.sum("n_lines").alias("lines_out"),
            count(is_problem).alias("problems"),
            F.sum("lines_dropped").alias("lines_dropped"),
            count(F.col("start") == 0).alias("documents"),
            count(is_problem & ~code.isin(*PROBLEM_CODES)).alias("problem_other"),
            *[count(is_problem & (code == c)).alias(f"problem_{c}") for c in PROBLEM_CODES]]


def _parse_report(row: dict, n_files: int) -> dict:
    """Lines in the readable files == lines_out + lines_dropped."""
    by_reason = {c: int(row[f"problem_{c}"] or 0) for c in PROBLEM_CODES + ("other",)}
    return {"files": int(n_files or 0), "documents": int(row["documents"] or 0),
            "lines_out": int(row["lines_out"] or 0), "problems": int(row["problems"] or 0),
            "lines_dropped": int(row["lines_dropped"] or 0),
            "problems_by_reason": {c: n for c, n in by_reason.items() if n}}


def _split_metrics(cfg: Config):
    """Per split: lines per label and windows; a small fixed set of sums, not a collect."""
    out = [F.sum("n_lines").alias("lines")]
    for s in SPLITS:
        in_split = F.col("split") == s
        out.append(F.sum(F.when(in_split & F.col("start").isNotNull(), 1).otherwise(0))
                   .alias(f"windows_{s}"))
        out += [F.sum(F.when(in_split, F.col("label_counts")[j])).alias(f"{s}_{j}")
                for j in range(len(cfg.labels))]
        out.append(F.sum(F.when(in_split, F.col("label_counts")[len(cfg.labels)]))
                   .alias(f"{s}_none"))
    return out


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
    files = list_files(spark, paths, recursive=cfg.data.recursive,
                       bytes_per_task=cfg.data.bytes_per_task)
    _, problems = split_problems(builders.parser(cfg).transform(files))
    path = posixpath.join(out_dir, PROBLEMS_DIR)
    problems.write.mode("overwrite").parquet(path)
    return [r.asDict() for r in spark.read.parquet(path).orderBy("doc_id", "line_no")
            .limit(MAX_PROBLEM_SAMPLES).collect()]


# -- the executor side ---------------------------------------------------------------

def _prepare_partition(batches, parse, featurize, window, labels, multi_label, sep):
    """mapInArrow body: paths -> parse -> features -> windows in one Python pass."""
    import pyarrow.compute as pc

    side = []  # problem and label-count batches, emitted between window batches

    def lines():
        for batch in parse(batches):
            is_line = pc.is_null(batch.column("problem"))
            if batch.column("problem").null_count < batch.num_rows:
                side.append(_problem_rows(batch.filter(pc.invert(is_line))))
            batch = batch.filter(is_line)
            if batch.num_rows:
                side.append(_count_rows(batch, labels, multi_label, sep))
                yield batch

    def window_input(featurized):
        for batch in featurized:
            yield batch.select(["doc_id", "line_idx", "n_lines", "label", "token_ids",
                                "shape"])

    for batch in window(window_input(featurize(lines()))):
        while side:
            yield side.pop()
        yield _with_all_columns({name: batch.column(name) for name in batch.schema.names},
                                batch.num_rows)
    while side:
        yield side.pop()


def _with_all_columns(columns: dict, n: int):
    """A record batch of PREPARE_SCHEMA: the given columns, nulls elsewhere."""
    import pyarrow as pa

    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, type=_arrow_type(f.name))
              for f in PREPARE_SCHEMA.fields]
    return pa.RecordBatch.from_arrays(arrays, names=PREPARE_SCHEMA.names)


def _list_of(kind):
    import pyarrow as pa

    return pa.list_(pa.field("element", kind, nullable=False))


def _arrow_type(name):
    """The Arrow type of a PREPARE_SCHEMA column."""
    import pyarrow as pa

    lists = {"token_ids": pa.int32(), "shape": pa.float32(), "y": pa.float32(),
             "mask": pa.float32(), "label_counts": pa.int64()}
    if name in lists:
        return _list_of(lists[name])
    return pa.string() if name in ("doc_id", "problem") else pa.int32()


def _problem_rows(batch):
    return _with_all_columns({name: batch.column(name) for name in
                              ("doc_id", "problem", "line_no", "lines_dropped")},
                             batch.num_rows)


def _count_rows(batch, labels, multi_label, sep):
    """One row per run of a document's lines: its number of lines, lines per label and,
    last, lines with no label (null, or the empty set "" of a multi-label line)."""
    import numpy as np
    import pyarrow as pa

    from focalseq.arrow_columns import list_array, runs

    doc = batch.column("doc_id")
    starts, lengths = runs(doc)
    run = np.repeat(np.arange(len(starts)), lengths)
    encoded = batch.column("label").dictionary_encode()
    label_codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    index = {lab: j for j, lab in enumerate(labels)}
    counts = np.zeros((len(starts), len(labels) + 1), dtype=np.int64)
    np.add.at(counts[:, len(labels)], run[label_codes == -1], 1)
    for code, value in enumerate(encoded.dictionary.to_pylist()):
        names = [x for x in value.split(sep) if x] if multi_label else [value]
        for j in {index[x] for x in names if x in index}:
            np.add.at(counts[:, j], run[label_codes == code], 1)
        if not names:
            np.add.at(counts[:, len(labels)], run[label_codes == code], 1)
    n_lines = np.bincount(run, minlength=len(starts)).astype(np.int32)
    return _with_all_columns({
        "doc_id": doc.take(pa.array(starts)), "n_lines": pa.array(n_lines),
        "label_counts": list_array(counts)}, len(starts))
