"""Files -> per-line labels as Parquet, JSON lines, or YEDDA files written back."""
import os

from pyspark.sql import functions as F

from focalseq.config import Config
from focalseq.pipelines import builders
from focalseq.stages.parse import list_files, split_problems


def predict(spark, cfg: Config, inputs, output: str, fmt: str = "parquet",
            plain: bool = False, model=None) -> int:
    """Labels every line of `inputs`; returns the number of lines written."""
    if fmt not in ("parquet", "jsonl", "yedda"):
        raise ValueError(f"format: {fmt!r} is not one of ['parquet', 'jsonl', 'yedda']")
    model = model or builders.load_model(spark, cfg.path("model"))
    parsed = builders.parser(cfg, "plain" if plain else None).transform(
        list_files(spark, inputs, recursive=cfg.data.recursive))
    lines, _ = split_problems(parsed)
    lines = lines.cache()
    windows = builders.windower(cfg).transform(builders.featurizer(cfg).transform(lines))
    if model.hasParam("groupedInput"):  # windows built where their file was parsed
        model = model.copy({model.getParam("groupedInput"): True})
    preds = model.transform(windows).select("doc_id", "line_idx", "prediction", "probability")
    out = lines.select("doc_id", "line_no", "line_idx", "text", F.col("label").alias("true_label")) \
        .join(preds, ["doc_id", "line_idx"], "left")
    if fmt == "parquet":
        out.write.mode("overwrite").parquet(output)
    elif fmt == "jsonl":
        out.write.mode("overwrite").json(output)
    else:
        _write_yedda(out, output)
    n = lines.count()
    lines.unpersist()
    return n


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
