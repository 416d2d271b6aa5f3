"""Files -> lines: list annotated files with Spark and parse them on the executors.

`list_files` turns paths or globs on any filesystem Spark reads into a DataFrame of
file paths (Spark lists; no file content touches the driver). `YeddaParser` reads and
parses each file inside the executors and emits one row per non-empty line, plus one
row per problem found (malformed span, undecodable bytes, unreadable or empty file).
Problem rows carry `problem` (non-null) and `lines_dropped`; `split_problems` separates
them, so that lines in the files == lines out + lines reported.
"""
import json
import logging

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

logger = logging.getLogger(__name__)

LINE_SCHEMA = T.StructType([
    T.StructField("doc_id", T.StringType(), False),
    T.StructField("line_no", T.IntegerType(), False),
    T.StructField("line_idx", T.IntegerType(), True),
    T.StructField("n_lines", T.IntegerType(), True),
    T.StructField("text", T.StringType(), True),
    T.StructField("label", T.StringType(), True),
    T.StructField("raw_label", T.StringType(), True),
    T.StructField("blank_before", T.BooleanType(), True),
    T.StructField("indent", T.IntegerType(), True),
    T.StructField("problem", T.StringType(), True),
    T.StructField("lines_dropped", T.IntegerType(), True),
])

FORMATS = ("yedda", "plain")


def list_files(spark: SparkSession, paths, recursive: bool = False) -> DataFrame:
    """Lists files matching `paths` (a path, a glob, or a list of them) as a `path` column.

    Uses Spark's own file listing (local, HDFS, S3, DBFS, ...); the content column of
    the binaryFile source is pruned, so nothing is read here.
    """
    if isinstance(paths, str):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("paths: expected at least one file path or glob, got an empty list")
    reader = spark.read.format("binaryFile")
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    try:
        df = reader.load(paths)
    except Exception as exc:  # AnalysisException has no stable import path across versions
        raise ValueError(f"paths: cannot list {paths}: {exc}") from exc
    return df.select("path")


class _YeddaParserParams(Params):
    pathCol = Param(Params._dummy(), "pathCol", "input column with file paths",
                    typeConverter=TypeConverters.toString)
    format = Param(Params._dummy(), "format",
                   f"file format, one of {FORMATS}: 'plain' has no annotations (prediction)",
                   typeConverter=TypeConverters.toString)
    keepLabels = Param(Params._dummy(), "keepLabels",
                       "labels kept as they are; every other label maps to defaultLabel "
                       "(empty list: keep every label)",
                       typeConverter=TypeConverters.toListString)
    defaultLabel = Param(Params._dummy(), "defaultLabel",
                         "label of text outside spans and of labels not kept",
                         typeConverter=TypeConverters.toString)
    labelMap = Param(Params._dummy(), "labelMap",
                     "explicit {raw label: label} map applied first, as a JSON object",
                     typeConverter=TypeConverters.toString)
    strict = Param(Params._dummy(), "strict",
                   "fail on the first problem (naming file and line) instead of reporting it",
                   typeConverter=TypeConverters.toBoolean)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(pathCol="path", format="yedda", keepLabels=[],
                         defaultLabel="Misc-exposition", labelMap="{}", strict=False)

    def getPathCol(self):
        return self.getOrDefault(self.pathCol)

    def getFormat(self):
        return self.getOrDefault(self.format)

    def getKeepLabels(self):
        return self.getOrDefault(self.keepLabels)

    def getDefaultLabel(self):
        return self.getOrDefault(self.defaultLabel)

    def getLabelMap(self):
        return json.loads(self.getOrDefault(self.labelMap))

    def getStrict(self):
        return self.getOrDefault(self.strict)


class YeddaParser(Transformer, _YeddaParserParams, DefaultParamsReadable, DefaultParamsWritable):
    """Parses YEDDA-annotated (`[@text#Label*]`) or plain files into one row per line.

    >>> parser = YeddaParser(keepLabels=["Nomenclature", "Description"])
    >>> lines = parser.transform(list_files(spark, "corpus/*.ann"))  # doctest: +SKIP
    >>> parser.save("/tmp/parser"); YeddaParser.load("/tmp/parser").getKeepLabels()  # doctest: +SKIP
    ['Nomenclature', 'Description']
    """

    @keyword_only
    def __init__(self, *, pathCol="path", format="yedda", keepLabels=None,
                 defaultLabel="Misc-exposition", labelMap=None, strict=False):
        super().__init__()
        kwargs = self._input_kwargs
        self.setParams(**kwargs)

    @keyword_only
    def setParams(self, *, pathCol="path", format="yedda", keepLabels=None,
                  defaultLabel="Misc-exposition", labelMap=None, strict=False):
        kwargs = dict(self._input_kwargs)
        if kwargs.get("labelMap") is not None and not isinstance(kwargs["labelMap"], str):
            kwargs["labelMap"] = json.dumps(kwargs["labelMap"], sort_keys=True)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self._set(**kwargs)
        self._validate()
        return self

    def _validate(self):
        if self.getFormat() not in FORMATS:
            raise ValueError(f"format: {self.getFormat()!r} is not one of {FORMATS}")
        try:
            mapping = self.getLabelMap()
        except json.JSONDecodeError as exc:
            raise ValueError(f"labelMap: not a JSON object: {exc}") from exc
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise ValueError(f"labelMap: expected a {{raw label: label}} object of strings, "
                             f"got {mapping!r}")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        spec = {
            "path_col": self.getPathCol(),
            "format": self.getFormat(),
            "label_map": {"keep": self.getKeepLabels() or None,
                          "default": self.getDefaultLabel(),
                          "explicit": self.getLabelMap() or None},
            "strict": self.getStrict(),
        }
        paths = dataset.select(F.col(spec["path_col"]).alias("path"))
        return paths.mapInPandas(lambda frames: _parse_partition(frames, spec),
                                 schema=LINE_SCHEMA)


def split_problems(parsed: DataFrame):
    """Returns (lines, problems) from a YeddaParser output."""
    lines = parsed.filter(F.col("problem").isNull()).drop("problem", "lines_dropped")
    problems = parsed.filter(F.col("problem").isNotNull()).select(
        "doc_id", "line_no", "problem", "lines_dropped")
    return lines, problems


def _read_bytes(path: str) -> bytes:
    import fsspec

    local = path[len("file:"):] if path.startswith("file:") else None
    if local is not None:
        while local.startswith("//"):
            local = local[1:]
        with open(local, "rb") as fh:
            return fh.read()
    if path.startswith("dbfs:/"):
        with open("/dbfs/" + path[len("dbfs:/"):].lstrip("/"), "rb") as fh:
            return fh.read()
    with fsspec.open(path, "rb") as fh:
        return fh.read()


def _parse_partition(frames, spec):
    """mapInPandas body: reads and parses every file of the partition on the executor."""
    import pandas as pd

    from focalseq.text.yedda import (AnnotationError, LabelMap, decode_bytes, parse_plain,
                                     parse_yedda)

    label_map = LabelMap(**spec["label_map"])
    columns = [f.name for f in LINE_SCHEMA.fields]
    for frame in frames:
        for path in frame["path"]:
            rows = []
            try:
                data = _read_bytes(path)
            except OSError as exc:
                if spec["strict"]:
                    raise AnnotationError(f"{path}: unreadable file: {exc}") from exc
                rows.append(_problem_row(path, 0, f"unreadable: {exc}", 0))
                yield pd.DataFrame(rows, columns=columns)
                continue
            text, n_replaced = decode_bytes(data)
            if n_replaced:
                reason = (f"decoding: {n_replaced} byte sequence(s) were not UTF-8 and were "
                          "replaced with U+FFFD")
                if spec["strict"]:
                    raise AnnotationError(f"{path}: {reason}")
                rows.append(_problem_row(path, 0, reason, 0))
            if spec["format"] == "plain":
                lines, problems = parse_plain(text, path), []
            else:
                lines, problems = parse_yedda(text, path, strict=spec["strict"])
            for p in problems:
                rows.append(_problem_row(path, p.line_no, p.reason, p.lines_dropped))
            n = len(lines)
            for idx, line in enumerate(lines):
                label = None if spec["format"] == "plain" else label_map.map(line.label)
                rows.append((path, line.line_no, idx, n, line.text, label, line.label,
                             line.blank_before, line.indent, None, 0))
            yield pd.DataFrame(rows, columns=columns).astype(
                {"line_no": "int32", "lines_dropped": "int32"})


def _problem_row(path, line_no, reason, dropped):
    return (path, line_no, None, None, None, None, None, None, None, reason, dropped)
