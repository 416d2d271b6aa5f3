"""Files -> per-line labels as Parquet, JSON lines, or YEDDA files written back.

Outputs never destroy data: `predict` writes the whole output into a temporary sibling of
the output directory, marks it as focalseq's, and only then moves it into place
(`focalseq.fileio.output_directory`). A non-empty output directory is refused unless
`overwrite` is asked for, and even then only an earlier focalseq output (one carrying
the marker) is replaced. A failed write leaves the output directory as it was.

YEDDA output keeps each input's path relative to the inputs' common folder, so
``a/doc.txt`` and ``b/doc.txt`` both come out, and restores the input's blank lines, so
line numbers match the input's. A multi-label model's sets are written as
``[@text#joy|anger*]`` and an empty set as text outside any span, which the parser reads
back as the same sets (with ``data.unlabelled: none``).
"""
import logging
import posixpath

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq import fileio
from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import list_files, split_problems

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "jsonl", "yedda")


def predict(spark, cfg: Config, inputs, output: str, fmt: str = "parquet",
            plain: bool = False, model=None, overwrite: bool = None) -> int:
    """Labels every line of `inputs` into the directory `output`.

    Args:
        spark: the session.
        cfg: configuration (model location, parser, features, windows, labels).
        inputs: files or globs.
        output: a directory (path or URL) that does not exist, is empty, or (with
            `overwrite`) holds an earlier focalseq output.
        fmt: "parquet", "jsonl" or "yedda" (one file per input).
        plain: inputs carry no annotations.
        model: a fitted model; default the one saved under ``output.dir``.
        overwrite: replace an earlier focalseq output; None takes ``output.mode``.

    Returns:
        The number of lines written.

    Raises:
        focalseq.fileio.OutputExistsError: `output` may not be written (checked before
            any work and again before the swap).
        ValueError: a bad format, labels YEDDA cannot write, or two inputs that would
            be written to one YEDDA file.
    """
    from focalseq.pipelines.train import inference_pipeline

    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {list(FORMATS)}")
    if overwrite is None:
        overwrite = cfg.output.mode == "overwrite"
    fileio.check_output_target(output, overwrite)
    if fmt == "yedda":
        check_yedda_labels(cfg)
    model = model or builders.load_model(spark, cfg.path("model"))
    pipeline = inference_pipeline(cfg, model)
    files = list_files(spark, inputs, recursive=cfg.data.recursive,
                       bytes_per_task=cfg.data.bytes_per_task)
    depth = 0
    if fmt == "yedda":
        depth = yedda_names([r["path"] for r in files.collect()])[1]
    lines = parse_lines(pipeline, files, plain).cache()
    out = label_lines(pipeline, lines)
    written_by = {"command": "predict", "format": fmt,
                  "inputs": [inputs] if isinstance(inputs, str) else [str(p) for p in inputs]}
    try:
        with fileio.output_directory(output, overwrite, written_by) as tmp:
            # Spark's default save mode (error if the path exists): the temporary folder
            # is new, and nothing is ever deleted by a writer.
            if fmt == "parquet":
                (out.write.option("parquet.block.size", str(cfg.output.row_group_bytes))
                 .parquet(tmp))
            elif fmt == "jsonl":
                out.write.json(tmp)
            else:
                _write_yedda(out, tmp, depth)
        return lines.count()
    finally:
        lines.unpersist()


def parse_lines(pipeline: PipelineModel, files: DataFrame, plain: bool = False) -> DataFrame:
    """files (a `path` column) -> their lines, by the pipeline's parser (its first stage).

    With `plain`, the files are read as plain text whatever the parser's format.
    """
    parser = pipeline.stages[0]
    if plain:
        parser = parser.copy({parser.format: "plain"})
    lines, _ = split_problems(parser.transform(files))
    return lines


def label_lines(pipeline: PipelineModel, lines: DataFrame) -> DataFrame:
    """Parsed lines -> one row per line: doc_id, line_no, line_idx, text, true_label,
    prediction, probability (an array in label order), by the pipeline's later stages.

    The one prediction flow of the CLI's `predict` and the Python API's `predict`.
    """
    out = lines
    for stage in pipeline.stages[1:]:
        out = stage.transform(out)
    if isinstance(out.schema["probability"].dataType, VectorUDT):
        out = out.withColumn("probability", vector_to_array("probability"))
    keys = ["doc_id", "line_idx"]
    columns = lines.select(*keys, "line_no", "text", F.col("label").alias("true_label"))
    return columns.join(out.select(*keys, "prediction", "probability"), keys, "left") \
        .select(*keys[:1], "line_no", *keys[1:], "text", "true_label", "prediction",
                "probability")


def check_yedda_labels(cfg: Config) -> None:
    """Raises ValueError unless every label the model predicts can be written as YEDDA."""
    from focalseq.text.yedda import LABEL_PATTERN, is_label

    # Multi-label sets are written joined by '|' (`#joy|anger*]`), the empty set outside
    # any span; config validation keeps '|' out of the labels.
    bad = [lab for lab in cfg.labels if not is_label(lab)]
    if bad:
        raise ValueError(f"format: 'yedda' cannot write the labels {bad}: a YEDDA label "
                         f"must match {LABEL_PATTERN}; use 'parquet' or 'jsonl'")


def yedda_names(paths):
    """({path: output name}, depth) for YEDDA output: each path relative to the paths'
    common folder, which is their first `depth` '/'-separated parts.

    Raises:
        ValueError: two paths give one name (both named), or a name is the marker's.
    """
    parts = [p.split("/") for p in paths]
    depth = 0
    if parts:
        shortest = min(len(p) for p in parts) - 1  # the folders of every path
        while depth < shortest and len({p[depth] for p in parts}) == 1:
            depth += 1
    names, owner = {}, {}
    for path in paths:
        name = _relative_name(path, depth)
        if name in owner:
            raise ValueError(f"YEDDA output: inputs {owner[name]!r} and {path!r} would both "
                             f"be written to {name!r}; nothing was written")
        if name == fileio.MARKER:
            raise ValueError(f"YEDDA output: input {path!r} has the name of focalseq's "
                             f"marker file {fileio.MARKER!r}; rename it")
        owner[name] = path
        names[path] = name
    return names, depth


def _relative_name(path: str, depth: int) -> str:
    """`path` without its first `depth` '/'-separated parts (and without empty parts)."""
    return "/".join(part for part in path.split("/")[depth:] if part)


def yedda_document(line_nos, texts, labels) -> str:
    """One document's predicted lines as YEDDA, its blank lines restored from `line_nos`."""
    from focalseq.text.yedda import format_yedda

    entries, previous = [], 0
    for line_no, text, label in zip(line_nos, texts, labels):
        entries.extend(("", None) for _ in range(previous + 1, line_no))
        entries.append((text, label))
        previous = line_no
    return format_yedda(entries)


def _write_yedda(lines: DataFrame, out_url: str, depth: int, write_file=None):
    """One YEDDA file per input document, written by the executors through fileio.

    Args:
        lines: `label_lines` output.
        out_url: the (temporary) output folder.
        depth: see `yedda_names`.
        write_file: `(url, bytes)` writer; default `focalseq.fileio.write_bytes` (the
            tests pass one that fails).
    """
    write_file = write_file or fileio.write_bytes

    def write_doc(pdf):
        import pandas as pd

        from focalseq.text.yedda import encode_document

        pdf = pdf.sort_values("line_idx")
        doc_id = pdf["doc_id"].iloc[0]
        text = yedda_document(pdf["line_no"].tolist(), pdf["text"].tolist(),
                              pdf["prediction"].tolist())
        write_file(posixpath.join(out_url, _relative_name(doc_id, depth)),
                   encode_document(text))
        return pd.DataFrame({"doc_id": [doc_id], "lines": [len(pdf)]})

    lines.groupBy("doc_id").applyInPandas(write_doc, "doc_id string, lines long").count()
