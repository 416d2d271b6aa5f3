"""Files -> lines: list annotated files with Spark and parse them on the executors.

`list_files` turns paths or globs on any filesystem Spark lists (local, HDFS, S3, DBFS)
into a DataFrame of file paths, spread round-robin over partitions; no file content
touches the driver. `YeddaParser` reads and parses each file inside the executors and
emits one row per non-empty physical line, plus one row per problem found. Problem rows
have `problem` set ("<code>: <message>") and `line_no` where the fault shows;
`split_problems` separates them. Nothing is lost silently:

    non-empty lines in the readable files == line rows + sum(lines_dropped)

A line that holds only markup (``[@`` alone, ``#Table*]`` alone) is a non-empty line of
the file, so it is kept, with ``text == ""`` and the label its markup belongs to.

Problem codes: those of :mod:`focalseq.text.yedda` (``unterminated_span``,
``missing_close``, ``empty_label``, ``bad_label``, ``nested_span``, ``stray_close``,
``empty_file``), plus ``unreadable_file`` (line 0: the file vanished after listing, is
a directory, a broken link, or reading failed; the job goes on without it) and
``invalid_utf8`` (at the line of the first bad byte sequence; the file is decoded with
U+FFFD replacements and parsed as usual), and ``unknown_label`` (a span's label, after
`labelMap` and `keepLabels`, is not one of `labels`: one problem per run of such lines, at
its first line; the lines are kept with `defaultLabel`, so they still count as lines out
and training and evaluation never see a label outside `labels`; in multi-label mode only
the unknown labels are dropped from the set).

Multi-label (`multiLabel`): a closer may carry a set, ``[@text#joy|anger*]``; the `label`
column holds the mapped set joined by ``|``, and ``""`` (the empty set) for text outside
spans when `unlabelled` is "none" (with "default_label" it gets `defaultLabel`). A null
`label` means "not annotated" (format "plain").

Files are read through `focalseq.fileio` (fsspec) on the executors, so a local path, a
``file:`` URL, ``hdfs://``, ``s3://`` and the other schemes fsspec knows are read alike.
"""
import json
import logging
import re
from functools import partial

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from focalseq.config import CHOICES, DEFAULTS
from focalseq.stages._task_setup import lighten_task_setup
from focalseq.text.yedda import LABEL_SEPARATOR

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
UNREADABLE = "unreadable_file"
INVALID_UTF8 = "invalid_utf8"
UNKNOWN_LABEL = "unknown_label"
PROBLEM_CODES = ("unterminated_span", "missing_close", "empty_label", "bad_label",
                 "nested_span", "stray_close", "empty_file", UNREADABLE, INVALID_UTF8,
                 UNKNOWN_LABEL)
UNLABELLED = CHOICES["data.unlabelled"]


def list_files(spark: SparkSession, paths, recursive: bool = False,
               num_partitions: int = None, bytes_per_task: int = None) -> DataFrame:
    """Lists the files matching `paths` as a DataFrame with one `path` column.

    The driver JVM's Hadoop FileSystem lists them (one glob per path, one listing per
    directory, no Spark job), so every filesystem Spark reads works, and, as in Spark,
    files whose names start with "_" or "." are skipped and a directory stands for the
    files in it. Only the listing happens here (no file is opened), so a file removed afterwards
    shows up later as an ``unreadable_file`` problem, not a failed job.

    Args:
        spark: the session.
        paths: a path or glob, or a list of them.
        recursive: also list files in subdirectories of directories.
        num_partitions: partitions of the result; default enough that each holds about
            `bytes_per_task` of files, and at least ``min(files, 4 x default
            parallelism)``. Files are dealt round-robin in path order, so big files
            that sit together (whole volumes) land in different partitions.
        bytes_per_task: the file bytes a partition should hold; default
            ``data.bytes_per_task`` of `focalseq.config.DEFAULTS`. A task's work (its
            parsed lines, their windows sorted by split before they are written) grows
            with its files, so this bounds an executor's memory whatever the corpus.

    Raises:
        ValueError: no paths, or a path or glob that matches nothing.
    """
    if isinstance(paths, str):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("paths: expected at least one file path or glob, got an empty list")
    sizes = dict(_hadoop_listing(spark, paths, recursive))
    files = sorted(sizes)
    if not files:
        raise ValueError(f"paths: {paths} matched no files")
    if num_partitions is not None and num_partitions < 1:
        raise ValueError(f"num_partitions: must be >= 1, got {num_partitions}")
    bytes_per_task = bytes_per_task or DEFAULTS.data.bytes_per_task
    by_size = -(-sum(sizes.values()) // bytes_per_task)
    n = num_partitions or max(4 * spark.sparkContext.defaultParallelism, by_size)
    n = min(n, len(files))
    # File i goes to partition i mod n: a broadcast join of the (path, slot) list with a
    # range of n slots, one per partition; all on the JVM and without a shuffle.
    import pandas as pd

    # From pandas (Arrow) the list is a local relation; a Python list would need a
    # Python worker in every task just to unpickle paths.
    listed = spark.createDataFrame(pd.DataFrame({"path": files, "slot": [
        i % n for i in range(len(files))]}), "path string, slot long")
    slots = spark.range(0, n, 1, numPartitions=n)
    return slots.join(F.broadcast(listed), slots["id"] == listed["slot"]).select(
        F.col("path"))


def _hadoop_listing(spark: SparkSession, paths, recursive: bool):
    """The files `paths` stand for, as (Hadoop path string ('file:/a b'), length in
    bytes), listed by the driver JVM's Hadoop FileSystem: one glob per path, one listing
    per directory.

    Not Spark's DataFrame reader: it makes every file a glob matches a root of its own,
    and above `spark.sql.sources.parallelPartitionDiscovery.threshold` (32) roots it lists
    them in a Spark job of one task per file, whose task records (UI status store) and
    file statuses (file-status cache) the driver then keeps: memory and time that grow
    with the number of files.
    """
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    files = []
    for given in paths:
        try:
            pattern = jvm.org.apache.hadoop.fs.Path(given)
            fs = pattern.getFileSystem(conf)
            matches = fs.globStatus(pattern)
        except Exception as exc:  # Py4JJavaError: a bad URI, an unknown scheme, no access
            raise ValueError(f"paths: cannot list {given!r}: {exc}") from exc
        if not matches:  # None: no such path; []: a glob that matches nothing
            raise ValueError(f"paths: cannot list {given!r}: no such file or directory "
                             "(expected a file, a directory or a glob that matches some)")
        matched = _statuses(jvm, matches)
        _release(matches)
        for name, is_dir, length in matched:
            # As in Spark, a directory the user names is listed whatever its name; the
            # files in it, and the files a glob matches, are skipped when hidden.
            if is_dir:
                files.extend(_files_under(jvm, fs, name, recursive))
            elif not _hidden(name):
                files.append((name, length))
    return files


def _files_under(jvm, fs, directory: str, recursive: bool):
    """(path, length) of the files in `directory` (and below it if `recursive`), hidden
    names skipped."""
    pending = [directory]
    while pending:
        listed = fs.listStatus(jvm.org.apache.hadoop.fs.Path(pending.pop()))
        children = _statuses(jvm, listed)
        _release(listed)
        for name, is_dir, length in children:
            if _hidden(name):
                continue
            if not is_dir:
                yield name, length
            elif recursive:
                pending.append(name)


def _statuses(jvm, statuses):
    """[(path string, is a directory, length)] of a Java FileStatus array, in two Py4J
    calls (one call per file would take seconds for tens of thousands of files).

    The paths come as one NUL-joined string (NUL cannot occur in a path); whether each is
    a directory, and a file's length, are read from `FileStatus.toString`, which has
    begun with "{path=<path>; isDirectory=<bool>" (a file's followed by "; length=<n>")
    since Hadoop 2, asking the JVM only if not.
    """
    if not statuses:
        return []
    paths = _join(jvm, jvm.org.apache.hadoop.fs.FileUtil.stat2Paths(statuses)).split("\0")
    described = _join(jvm, statuses).split("\0")
    if len(paths) != len(statuses) or len(described) != len(statuses):
        described = [None] * len(statuses)  # a path or description with NUL in it
        paths = [str(status.getPath().toString()) for status in statuses]
    out = []
    for i, (path, text) in enumerate(zip(paths, described)):
        head, sep, tail = (text or "").partition(f"{{path={path}; isDirectory=")
        is_dir = tail.startswith("true") if sep else bool(statuses[i].isDirectory())
        length = _LENGTH.match(tail) if sep else None
        length = int(length.group(1)) if length else int(statuses[i].getLen())
        out.append((path, is_dir, length))
    return out


_LENGTH = re.compile(r"(?:true|false); length=(\d+);")


def _release(java_object):
    """Lets the JVM free a Py4J object now: a listing's FileStatus array holds a few
    hundred bytes a file, which Py4J would otherwise release only when Python collects
    the proxy."""
    if java_object is not None:
        java_object._detach()


def _join(jvm, array) -> str:
    """The `toString` of every element of a Java array, NUL-joined, in one call."""
    scala = jvm.scala.collection.mutable
    try:
        seq = scala.ArraySeq.make(array)        # Scala 2.13 (Spark 4)
    except Exception:  # Py4JError: no such method under Scala 2.12 (Spark 3.5)
        seq = scala.WrappedArray.make(array)
    return seq.mkString("\0")


def _hidden(path: str) -> bool:
    """Spark's rule for files a read skips: names starting with '_' or '.', and files
    still being copied."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith(("_", ".")) or name.endswith("._COPYING_")


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
    labels = Param(Params._dummy(), "labels",
                   "the valid labels: a mapped label outside them is an unknown_label "
                   "problem and the line gets defaultLabel (empty list: every label valid)",
                   typeConverter=TypeConverters.toListString)
    multiLabel = Param(Params._dummy(), "multiLabel",
                       f"labels may be '{LABEL_SEPARATOR}'-separated sets of `labels`",
                       typeConverter=TypeConverters.toBoolean)
    unlabelled = Param(Params._dummy(), "unlabelled",
                       f"text outside spans, one of {list(UNLABELLED)}: 'default_label' gets "
                       "defaultLabel, 'none' the empty label set '' (multiLabel only)",
                       typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        data = DEFAULTS.data
        self._setDefault(pathCol="path", format=data.format, keepLabels=list(data.keep_labels),
                         defaultLabel=data.default_label,
                         labelMap=json.dumps(data.label_map, sort_keys=True), strict=data.strict,
                         labels=[], multiLabel=DEFAULTS.multi_label,
                         unlabelled=data.unlabelled)

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

    def getLabels(self):
        return self.getOrDefault(self.labels)

    def getMultiLabel(self):
        return self.getOrDefault(self.multiLabel)

    def getUnlabelled(self):
        return self.getOrDefault(self.unlabelled)


class YeddaParser(Transformer, _YeddaParserParams, DefaultParamsReadable, DefaultParamsWritable):
    """Parses YEDDA-annotated (`[@text#Label*]`) or plain files into one row per line.

    Output columns: `LINE_SCHEMA`. `label` is the raw label mapped by `labelMap`, then
    `keepLabels`/`defaultLabel` (text outside spans gets `defaultLabel`); with format
    "plain" `label` and `raw_label` are null. With `labels` set, a mapped label outside
    them is reported (``unknown_label``, file and line) and replaced by `defaultLabel`,
    or fails the task with `strict`. Rows of one file are contiguous, in line
    order, in one partition (`Windower` relies on it). Arguments left None take their
    defaults from `focalseq.config.DEFAULTS` (`data`).

    The third span lacks its ``*``: its text is kept, with the default label, and the
    problem is reported with its line.

    >>> import os
    >>> doc = os.path.join(temp_path, "doc.ann")
    >>> with open(doc, "w") as f:
    ...     _ = f.write("[@Agaricus campestris L.#Nomenclature*]\\nSpores 5-8 um.\\n"
    ...                 "[@Pileus white#Description]\\n")
    >>> parser = YeddaParser(keepLabels=["Nomenclature", "Description"])
    >>> lines, problems = split_problems(parser.transform(list_files(spark, doc)))
    >>> for r in lines.orderBy("line_idx").collect():
    ...     print(r.line_idx, r.label, r.text)
    0 Nomenclature Agaricus campestris L.
    1 Misc-exposition Spores 5-8 um.
    2 Misc-exposition Pileus white
    >>> [(r.line_no, r.problem.split(":")[0], r.lines_dropped) for r in problems.collect()]
    [(3, 'missing_close', 0)]
    >>> parser.save(os.path.join(temp_path, "parser"))
    >>> loaded = YeddaParser.load(os.path.join(temp_path, "parser"))
    >>> loaded.uid == parser.uid, loaded.getKeepLabels()
    (True, ['Nomenclature', 'Description'])
    """

    @keyword_only
    def __init__(self, *, pathCol="path", format=None, keepLabels=None, defaultLabel=None,
                 labelMap=None, strict=None, labels=None, multiLabel=None, unlabelled=None):
        super().__init__()
        kwargs = self._input_kwargs
        self.setParams(**kwargs)

    @keyword_only
    def setParams(self, *, pathCol="path", format=None, keepLabels=None, defaultLabel=None,
                  labelMap=None, strict=None, labels=None, multiLabel=None, unlabelled=None):
        """Sets params by keyword (labelMap as a dict or a JSON string); returns self."""
        kwargs = dict(self._input_kwargs)
        if kwargs.get("labelMap") is not None and not isinstance(kwargs["labelMap"], str):
            kwargs["labelMap"] = json.dumps(kwargs["labelMap"], sort_keys=True)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self._set(**kwargs)
        self._validate()
        return self

    def setStrict(self, value):
        return self._set(strict=value)

    def setFormat(self, value):
        self._set(format=value)
        self._validate()
        return self

    def _validate(self):
        if self.getFormat() not in FORMATS:
            raise ValueError(f"format: {self.getFormat()!r} is not one of {FORMATS}")
        if not self.getDefaultLabel():
            raise ValueError("defaultLabel: must be a non-empty label, got ''")
        try:
            mapping = self.getLabelMap()
        except json.JSONDecodeError as exc:
            raise ValueError(f"labelMap: not a JSON object: {exc}") from exc
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise ValueError(f"labelMap: expected a {{raw label: label}} object of strings, "
                             f"got {mapping!r}")
        if self.getUnlabelled() not in UNLABELLED:
            raise ValueError(f"unlabelled: {self.getUnlabelled()!r} is not one of "
                             f"{list(UNLABELLED)}")
        if self.getUnlabelled() == "none" and not self.getMultiLabel():
            raise ValueError("unlabelled: 'none' (the empty label set) needs multiLabel=True; "
                             "a single-label line has exactly one label")

    def batch_function(self, batch_lines: int = 10000):
        """The executor function: Arrow batches of paths (first column) -> line batches.

        A picklable callable of plain values; `_transform` runs it with mapInArrow, and a
        job may compose it with the next stages' functions in one Python pass.
        """
        self._validate()
        spec = {
            "format": self.getFormat(),
            "label_map": {"keep": self.getKeepLabels() or None,
                          "default": self.getDefaultLabel(),
                          "explicit": self.getLabelMap() or None,
                          "multi_label": self.getMultiLabel(),
                          "unlabelled": self.getUnlabelled()},
            "strict": self.getStrict(),
            "labels": list(self.getLabels()) or None,
            "multi_label": self.getMultiLabel(),
            "batch_lines": batch_lines if batch_lines > 0 else 10000,
        }
        return partial(_parse_partition, spec=spec)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.getPathCol() not in dataset.columns:
            raise ValueError(f"pathCol: input has no column {self.getPathCol()!r}; columns "
                             f"are {dataset.columns} (list_files makes a 'path' column)")
        paths = dataset.select(F.col(self.getPathCol()).cast("string").alias("path"))
        return paths.mapInArrow(self.batch_function(arrow_batch_size(dataset)),
                                schema=LINE_SCHEMA)

    def setDefaultLabel(self, value):
        return self._set(defaultLabel=value)

    def setKeepLabels(self, value):
        return self._set(keepLabels=value)

    def setLabelMap(self, value):
        return self._set(labelMap=value)

    def setPathCol(self, value):
        return self._set(pathCol=value)

    def setLabels(self, value):
        return self._set(labels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setUnlabelled(self, value):
        return self._set(unlabelled=value)


def arrow_batch_size(df: DataFrame) -> int:
    """The session's spark.sql.execution.arrow.maxRecordsPerBatch (default 10000)."""
    return int(df.sparkSession.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch",
                                        "10000"))


def split_problems(parsed: DataFrame):
    """Returns (lines, problems) from a YeddaParser output, both lazy."""
    lines = parsed.filter(F.col("problem").isNull()).drop("problem", "lines_dropped")
    problems = parsed.filter(F.col("problem").isNotNull()).select(
        "doc_id", "line_no", "problem", "lines_dropped")
    return lines, problems


def problem_code(problem):
    """Column expression: the stable code of a `problem` column value."""
    return F.regexp_extract(problem, r"^([a-z_0-9]+)", 1)


# -- the executor side ---------------------------------------------------------------

def _read_bytes(path: str) -> bytes:
    """Reads a whole file through `focalseq.fileio` (fsspec), whatever its scheme.

    Spark's `path` column writes a local file ``file:/a b`` (one slash, not
    percent-encoded); fsspec reads ``file:`` URLs without decoding them, so the name
    reaches the filesystem as listed.
    """
    from focalseq import fileio

    return fileio.read_bytes(path)


def _first_bad_line(data: bytes) -> int:
    """1-based line (after BOM removal and CR/CRLF -> LF) of the first non-UTF-8 bytes."""
    from focalseq.text.yedda import decode_bytes

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        return 1
    except UnicodeDecodeError as exc:
        text, _ = decode_bytes(data[:exc.start])
        return text.count("\n") + 1


class _Batch:
    """Column lists of LINE_SCHEMA, flushed as one Arrow record batch."""

    def __init__(self):
        self.cols = {f.name: [] for f in LINE_SCHEMA.fields}
        self.n = 0

    def problem(self, path, line_no, reason, dropped=0):
        c = self.cols
        for name, value in (("doc_id", path), ("line_no", line_no), ("problem", reason),
                            ("lines_dropped", dropped)):
            c[name].append(value)
        for name in ("line_idx", "n_lines", "text", "label", "raw_label", "blank_before",
                     "indent"):
            c[name].append(None)
        self.n += 1

    def lines(self, path, lines, labels):
        c = self.cols
        n = len(lines)
        c["doc_id"].extend([path] * n)
        c["line_no"].extend([x.line_no for x in lines])
        c["line_idx"].extend(range(n))
        c["n_lines"].extend([n] * n)
        c["text"].extend([x.text for x in lines])
        c["label"].extend(labels)
        c["raw_label"].extend([x.label for x in lines])
        c["blank_before"].extend([x.blank_before for x in lines])
        c["indent"].extend([x.indent for x in lines])
        c["problem"].extend([None] * n)
        c["lines_dropped"].extend([None] * n)
        self.n += n

    def record_batch(self):
        import pyarrow as pa

        schema = _arrow_schema()
        return pa.RecordBatch.from_arrays(
            [pa.array(self.cols[f.name], type=f.type) for f in schema], schema=schema)


def _arrow_schema():
    import pyarrow as pa

    kinds = {"StringType()": pa.string(), "IntegerType()": pa.int32(),
             "BooleanType()": pa.bool_()}
    return pa.schema([pa.field(f.name, kinds[str(f.dataType)], f.nullable)
                      for f in LINE_SCHEMA.fields])


def _parse_partition(batches, spec):
    """mapInArrow body: reads and parses every file of the partition on the executor."""
    from focalseq.text.yedda import AnnotationError, LabelMap, decode_bytes, parse_plain, \
        parse_yedda

    lighten_task_setup()
    label_map = _LabelMemo(LabelMap(**spec["label_map"]))
    valid = None if spec.get("labels") is None else _ValidLabels(
        spec["labels"], label_map.label_map)
    plain = spec["format"] == "plain"
    strict = spec["strict"]
    out = _Batch()
    for batch in batches:
        for path in batch.column(0).to_pylist():
            if path is None:
                continue
            try:
                data = _read_bytes(path)
            except (OSError, ValueError) as exc:  # fsspec raises ValueError on bad URLs
                reason = f"{UNREADABLE}: {type(exc).__name__}: {exc}"
                if strict:
                    raise AnnotationError(f"{path}: line 0: {reason}") from exc
                out.problem(path, 0, reason)
                continue
            text, n_replaced = decode_bytes(data)
            if n_replaced:
                line_no = _first_bad_line(data)
                reason = (f"{INVALID_UTF8}: {n_replaced} byte sequence(s) are not UTF-8 "
                          f"(first at line {line_no}); replaced with U+FFFD")
                if strict:
                    raise AnnotationError(f"{path}: line {line_no}: {reason}")
                out.problem(path, line_no, reason)
            if plain:
                lines = parse_plain(text, path)
                problems = [] if lines else _empty_file(path)
                if strict and problems:
                    raise AnnotationError(str(problems[0]), problems[0])
            else:
                lines, problems = parse_yedda(text, path, strict=strict)
            for p in problems:
                out.problem(path, p.line_no, p.reason, p.lines_dropped)
            labels = [None] * len(lines) if plain else [label_map[x.label] for x in lines]
            if valid is not None and not plain:
                for line_no, reason in valid.replace_unknown(lines, labels):
                    if strict:
                        raise AnnotationError(f"{path}: line {line_no}: {reason}")
                    out.problem(path, line_no, reason)
            out.lines(path, lines, labels)
            if out.n >= spec["batch_lines"]:
                yield out.record_batch()
                out = _Batch()
    if out.n:
        yield out.record_batch()


class _LabelMemo(dict):
    """raw label -> mapped label, computed once per distinct raw label."""

    def __init__(self, label_map):
        super().__init__()
        self.label_map = label_map

    def __missing__(self, raw):
        value = self[raw] = self.label_map.map(raw)
        return value


class _ValidLabels:
    """Finds mapped labels outside the valid ones; memoised per distinct label.

    Single-label: an unknown label becomes the default. Multi-label: unknown labels are
    dropped from the set; a set left empty becomes what the label map gives unlabelled
    text (the default label or the empty set).
    """

    def __init__(self, labels, label_map):
        self.labels = list(labels)
        self.default = label_map.default
        self.multi_label = label_map.multi_label
        self._valid = set(labels)
        self._unlabelled = label_map.map(None)
        self._known = {self._unlabelled: self._unlabelled, None: None}

    def checked(self, label):
        """`label` with its unknown labels replaced (equal to `label` when valid)."""
        known = self._known.get(label, _UNSEEN)
        if known is _UNSEEN:
            if not self.multi_label:
                known = label if label in self._valid else self.default
            else:
                kept = [p for p in label.split(LABEL_SEPARATOR) if p in self._valid]
                known = LABEL_SEPARATOR.join(kept) if kept else self._unlabelled
            self._known[label] = known
        return known

    def replace_unknown(self, lines, labels):
        """Replaces unknown labels in `labels` in place; returns (line_no, reason) of each
        run of consecutive lines with one unknown raw label."""
        found = []
        i, n = 0, len(labels)
        while i < n:
            fixed = self.checked(labels[i])
            if fixed == labels[i]:
                i += 1
                continue
            j, raw, mapped = i, lines[i].label, labels[i]
            while j < n and lines[j].label == raw and labels[j] == mapped:
                labels[j] = fixed
                j += 1
            where = (f"line {lines[i].line_no}" if j - i == 1 else
                     f"{j - i} lines, {lines[i].line_no}-{lines[j - 1].line_no}")
            mapped_note = "" if mapped == raw else f" (mapped to {mapped!r})"
            if self.multi_label:
                unknown = [p for p in mapped.split(LABEL_SEPARATOR) if p not in self._valid]
                what = (f"label set {raw!r}{mapped_note} holds {unknown}, which are not "
                        f"among the labels {self.labels} ({where}); they are dropped, the "
                        f"lines get {fixed!r}")
            else:
                what = (f"label {raw!r}{mapped_note} is not one of the labels {self.labels} "
                        f"({where}); the lines get {fixed!r}")
            found.append((lines[i].line_no,
                          f"{UNKNOWN_LABEL}: {what}; add it to labels, or map it with "
                          "data.label_map or data.keep_labels"))
            i = j
        return found


_UNSEEN = object()


def _empty_file(path):
    from focalseq.text.yedda import Problem

    return [Problem(path, 1, "empty_file: no non-empty line", 0)]
