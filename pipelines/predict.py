"""Files -> per-line labels as Parquet, JSON lines, or YEDDA files written back."""
import os

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import list_files, split_problems


def predict(spark, cfg: Config, inputs, output: str, fmt: str = "parquet",
            plain: bool = False, model=None) -> int:
    """Labels every line of `inputs`; returns the number of lines written."""
    from focalseq.pipelines.train import inference_pipeline

    if fmt not in ("parquet", "jsonl", "yedda"):
        raise ValueError(f"format: {fmt!r} is not one of ['parquet', 'jsonl', 'yedda']")
    model = model or builders.load_model(spark, cfg.path("model"))
    pipeline = inference_pipeline(cfg, model)
    lines = parse_lines(pipeline, list_files(spark, inputs, recursive=cfg.data.recursive),
                        plain).cache()
    out = label_lines(pipeline, lines)
    if fmt == "parquet":
        out.write.mode("overwrite").parquet(output)
    elif fmt == "jsonl":
        out.write.mode("overwrite").json(output)
    else:
        _write_yedda(out, output)
    n = lines.count()
    lines.unpersist()
    return n


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


def _write_yedda(lines, output: str):
    """One YEDDA file per input document, written by the executors."""
    os.makedirs(output, exist_ok=True)
    out_dir = os.path.abspath(output)

    def write_doc(pdf):
        import pandas as pd

        from focalseq.text.yedda import format_yedda

        pdf = pdf.sort_values("line_idx")
        name = os.path.basename(pdf["doc_id"].iloc[0].split(":", 1)[-1])
        text = format_yedda(list(zip(pdf["text"], pdf["prediction"])))
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
        return pd.DataFrame({"doc_id": [pdf["doc_id"].iloc[0]], "lines": [len(pdf)]})

    lines.groupBy("doc_id").applyInPandas(write_doc, "doc_id string, lines long").count()
