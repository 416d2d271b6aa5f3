"""Features -> windows: fixed-size runs of a document's lines, padded and masked.

A window never crosses documents. Each window row keeps `doc_id` (and `split` when
present) and `start`, the line_idx of its first line, so that line ``start + i`` of the
document is row i of the window for ``i < n_valid``. Array columns are flat and
fixed-length (petastorm reads them as dense tensors); their shapes travel as column
metadata under the key "focalseq", which survives Parquet round trips:

    token_ids  int   window * max_tokens
    shape      float window * n_shape
    y          float window * n_labels   (one-hot, or multi-hot; zeros for padding and
                                          for lines without a label)
    mask       float window              (1 real line, 0 padding)

Window starts follow :func:`focalseq.text.windows.window_starts`.

Input order: `YeddaParser` emits each document's lines contiguously, in line order,
within one partition, and `LineFeaturizer`, `DocumentSplitter` and filters keep that.
With ``inputOrder="grouped"`` (the default) windows are built in that same pass, with
no shuffle; every document is checked to be complete (line_idx 0 .. n_lines - 1 in
order) and a document split across partitions fails the task naming it. With
``inputOrder="any"`` lines are first grouped by document with a shuffle.
"""
import logging
from functools import partial

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from focalseq.arrow_columns import dense, list_array, runs
from focalseq.config import DEFAULTS
from focalseq.stages._params import HasLabels, HasMultiLabel, HasWindow
from focalseq.stages._task_setup import lighten_task_setup

logger = logging.getLogger(__name__)

META_KEY = "focalseq"
INPUT_ORDERS = ("grouped", "any")
ARRAY_COLUMNS = ("token_ids", "shape", "y", "mask")
WINDOW_FIELDS = [
    T.StructField("start", T.IntegerType(), False),
    T.StructField("n_valid", T.IntegerType(), False),
    T.StructField("token_ids", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("shape", T.ArrayType(T.FloatType(), False), False),
    T.StructField("y", T.ArrayType(T.FloatType(), False), False),
    T.StructField("mask", T.ArrayType(T.FloatType(), False), False),
]


class _WindowerParams(HasLabels, HasWindow, HasMultiLabel):
    labelSeparator = Param(Params._dummy(), "labelSeparator",
                           "separator of label sets in multi-label mode",
                           typeConverter=TypeConverters.toString)
    inputOrder = Param(Params._dummy(), "inputOrder",
                       f"one of {INPUT_ORDERS}: 'grouped' windows each partition in place "
                       "(each document's lines contiguous and in order, as YeddaParser "
                       "emits them; checked), 'any' groups lines by document with a shuffle",
                       typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        # labels stay empty (required): they describe the data, not a setting.
        self._setDefault(labels=[], windowSize=DEFAULTS.windows.size,
                         stride=DEFAULTS.windows.stride, multiLabel=DEFAULTS.multi_label,
                         labelSeparator="|", inputOrder="grouped")

    def getLabelSeparator(self):
        return self.getOrDefault(self.labelSeparator)

    def getInputOrder(self):
        return self.getOrDefault(self.inputOrder)


class Windower(Transformer, _WindowerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Groups each document's featurized lines into windows with a padding mask.

    Input: lines with `doc_id`, `line_idx`, `n_lines`, `label`, `token_ids`, `shape`
    (YeddaParser + LineFeaturizer) and optionally `split`. Rows with a non-null
    `problem` (parser problem records) are ignored. Labels must be among `labels`
    (null gives an all-zero target, as for prediction input).

    Arguments left None take their defaults from `focalseq.config.DEFAULTS`.

    A document of three lines (two token ids and one shape feature each) in one window
    of four: the last line of the window is padding. As YeddaParser's output, the
    document's lines sit in one partition.

    >>> lines = spark.createDataFrame(
    ...     [("d", i, 3, label, [i + 1, 0], [0.5]) for i, label in enumerate("ABA")],
    ...     "doc_id string, line_idx int, n_lines int, label string, "
    ...     "token_ids array<int>, shape array<float>").coalesce(1)
    >>> w = Windower(labels=["A", "B"], windowSize=4, stride=2)
    >>> windows = w.transform(lines)
    >>> row = windows.first()
    >>> row.start, row.n_valid, row.token_ids, row.mask
    (0, 3, [1, 0, 2, 0, 3, 0, 0, 0], [1.0, 1.0, 1.0, 0.0])
    >>> row.y
    [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    >>> read_window_metadata(windows)["max_tokens"]
    2
    >>> w.save(temp_path + "/windower")
    >>> loaded = Windower.load(temp_path + "/windower")
    >>> loaded.uid == w.uid, loaded.getWindowSize(), loaded.getStride()
    (True, 4, 2)
    """

    @keyword_only
    def __init__(self, *, labels=None, windowSize=None, stride=None, multiLabel=None,
                 labelSeparator="|", inputOrder="grouped"):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, windowSize=None, stride=None, multiLabel=None,
                  labelSeparator="|", inputOrder="grouped"):
        """Sets params by keyword; returns self."""
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        if self.getInputOrder() not in INPUT_ORDERS:
            raise ValueError(f"inputOrder: {self.getInputOrder()!r} is not one of "
                             f"{INPUT_ORDERS}")
        return self

    def setInputOrder(self, value):
        return self.setParams(inputOrder=value)

    def _validate(self):
        from focalseq.text.windows import window_starts

        labels = self.getLabels()
        if not labels:
            raise ValueError("labels: Windower needs the ordered list of labels, got []")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels: duplicates in {labels}")
        if self.getMultiLabel() and any(self.getLabelSeparator() in lab for lab in labels):
            raise ValueError(f"labels: {labels} contain the separator "
                             f"{self.getLabelSeparator()!r}")
        window_starts(1, self.getWindowSize(), self.getStride())  # validates the sizes
        if self.getInputOrder() not in INPUT_ORDERS:
            raise ValueError(f"inputOrder: {self.getInputOrder()!r} is not one of "
                             f"{INPUT_ORDERS}")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        fields = {f.name: f for f in dataset.schema.fields}
        needed = ["doc_id", "line_idx", "label", "token_ids", "shape"]
        if self.getInputOrder() == "grouped":
            needed.append("n_lines")
        missing = [c for c in needed if c not in fields]
        if missing:
            raise ValueError(f"Windower: input column(s) {missing} missing; it needs the "
                             "output of YeddaParser + LineFeaturizer")
        if "problem" in fields:
            dataset = dataset.filter(F.col("problem").isNull())
        max_tokens, n_shape = _feature_dims(dataset)
        keys = ["doc_id"] + (["split"] if "split" in fields else [])
        out_schema = T.StructType([fields[k] for k in keys] + WINDOW_FIELDS)
        if self.getInputOrder() == "grouped":
            cols = keys + ["line_idx", "n_lines", "label", "token_ids", "shape"]
            windows = dataset.select(*cols).mapInArrow(
                self.batch_function(keys, max_tokens, n_shape), schema=out_schema)
        else:
            spec = self._spec(keys, max_tokens, n_shape)
            cols = keys + ["line_idx", "label", "token_ids", "shape"]
            lines = dataset.select(*cols)
            windows = _apply_in_arrow(lines.groupBy(*keys), lines.schema,
                                      partial(_windows_of_group, spec=spec), out_schema)
        return self.with_metadata(windows, max_tokens, n_shape)

    def _spec(self, keys, max_tokens, n_shape) -> dict:
        return {"labels": self.getLabels(), "window": self.getWindowSize(),
                "stride": self.getStride(), "multi_label": self.getMultiLabel(),
                "sep": self.getLabelSeparator(), "keys": list(keys),
                "max_tokens": int(max_tokens), "n_shape": int(n_shape)}

    def batch_function(self, keys, max_tokens: int, n_shape: int):
        """The executor function of ``inputOrder="grouped"``: line batches -> windows.

        Input batches hold `keys` (doc_id first), line_idx, n_lines, label, token_ids and
        shape, each document's lines contiguous and in order; output columns are `keys`
        then those of WINDOW_FIELDS. A picklable callable of plain values.
        """
        self._validate()
        return partial(_windows_in_order, spec=self._spec(keys, max_tokens, n_shape))

    def with_metadata(self, windows: DataFrame, max_tokens: int, n_shape: int) -> DataFrame:
        """`windows` with the window dimensions on its array columns."""
        meta = window_metadata(self.getLabels(), self.getWindowSize(), self.getStride(),
                               max_tokens, n_shape, self.getMultiLabel())
        for col in ARRAY_COLUMNS:
            windows = windows.withMetadata(col, {META_KEY: meta})
        return windows

    def setLabelSeparator(self, value):
        return self._set(labelSeparator=value)

    def setLabels(self, value):
        return self._set(labels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setStride(self, value):
        return self._set(stride=value)

    def setWindowSize(self, value):
        return self._set(windowSize=value)


def window_metadata(labels, window, stride, max_tokens, n_shape, multi_label) -> dict:
    """The dimensions stored on the window array columns."""
    return {"labels": list(labels), "window": int(window), "stride": int(stride),
            "max_tokens": int(max_tokens), "n_shape": int(n_shape),
            "multi_label": bool(multi_label)}


def read_window_metadata(df: DataFrame) -> dict:
    """Returns the window dimensions stored on the `mask` column by `Windower`."""
    meta = df.schema["mask"].metadata.get(META_KEY)
    if meta is None:
        raise ValueError("windows: the 'mask' column carries no focalseq metadata; "
                         "build windows with focalseq.stages.windows.Windower")
    return meta


def _feature_dims(dataset: DataFrame):
    """(max_tokens, n_shape) from LineFeaturizer's column metadata, else from a row."""
    from focalseq.stages.features import read_feature_metadata

    meta = read_feature_metadata(dataset)
    if meta is not None:
        return int(meta["max_tokens"]), int(meta["n_shape"])
    first = dataset.select("token_ids", "shape").first()
    if first is None:
        raise ValueError("Windower: the input has no lines and no LineFeaturizer metadata "
                         "to size the windows")
    return len(first["token_ids"]), len(first["shape"])


# -- the executor side ---------------------------------------------------------------

def _windows_in_order(batches, spec):
    """mapInArrow body: windows of documents whose lines arrive contiguous and in order.

    A document may span Arrow batches; its rows wait in `pending` until the next
    document starts or the partition ends.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    lighten_task_setup()
    pending = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        doc = batch.column(0)
        # Positions where doc_id changes: runs of one document.
        change = np.flatnonzero(pc.not_equal(doc.slice(1), doc.slice(0, len(doc) - 1))
                                .to_numpy(zero_copy_only=False)) + 1
        if pending and pending[-1].column(0)[-1].as_py() != doc[0].as_py():
            yield from _emit(pa.Table.from_batches(pending), spec)
            pending = []
        if len(change) == 0:
            pending.append(batch)
            continue
        head = batch.slice(0, int(change[-1]))
        pending.append(head)
        yield from _emit(pa.Table.from_batches(pending), spec)
        pending = [batch.slice(int(change[-1]))]
    if pending:
        yield from _emit(pa.Table.from_batches(pending), spec)


def _emit(table, spec):
    if table.num_rows:
        yield _window_batch(table, spec, check_complete=True)


def _apply_in_arrow(grouped, in_schema, func, out_schema):
    """``grouped.applyInArrow(func, out_schema)``, also on Spark 3.5.

    GroupedData.applyInArrow is new in Spark 4.0, and Databricks 15.4 LTS ML (the last
    runtime with Horovod), EMR 7 and Dataproc 2.2 run Spark 3.5. There each group goes
    through applyInPandas, turned back into an Arrow table of the input's own Arrow types
    (so that a group whose labels are all null still has a string column) and the result
    into pandas: the same `func`, the same windows.
    """
    if hasattr(type(grouped), "applyInArrow"):
        return grouped.applyInArrow(func, schema=out_schema)
    from pyspark.sql.pandas.types import to_arrow_schema

    return grouped.applyInPandas(partial(_via_pandas, func=func,
                                         schema=to_arrow_schema(in_schema)),
                                 schema=out_schema)


def _via_pandas(frame, func, schema):
    """applyInPandas body of :func:`_apply_in_arrow`: pandas -> Arrow -> func -> pandas."""
    import pyarrow as pa

    return func(pa.Table.from_pandas(frame, schema=schema, preserve_index=False)).to_pandas()


def _windows_of_group(table, spec):
    """applyInArrow body: one document's lines in any order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lighten_task_setup()
    order = pc.sort_indices(table, sort_keys=[("line_idx", "ascending")])
    return pa.Table.from_batches([_window_batch(table.take(order), spec,
                                                check_complete=False)])


def _window_batch(table, spec, check_complete: bool):
    """Windows of the documents in `table` (each document's rows contiguous, in order)."""
    import pyarrow as pa

    from focalseq.text.windows import window_starts

    W, K, F_, S = spec["window"], spec["max_tokens"], spec["n_shape"], spec["stride"]
    n = table.num_rows
    table = pa.RecordBatch.from_arrays(
        [c.combine_chunks() for c in table.columns], names=table.column_names)
    doc_col = table.column("doc_id")
    doc_ids = doc_col.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    line_idx = table.column("line_idx").to_numpy(zero_copy_only=False)
    run_start, run_len = runs(doc_ids)
    expected = (table.column("n_lines").to_numpy(zero_copy_only=False)[run_start]
                if check_complete else run_len)
    within = np.arange(n) - np.repeat(run_start, run_len)
    bad = (line_idx != within) | np.repeat(run_len != expected, run_len)
    if bad.any():
        r = int(np.searchsorted(run_start, np.flatnonzero(bad)[0], side="right") - 1)
        raise ValueError(
            f"Windower: document {doc_col[int(run_start[r])].as_py()!r} has {int(run_len[r])} contiguous "
            f"lines here but expects {int(expected[r])} with line_idx 0, 1, ...; its lines "
            "are not all together and in order (use inputOrder='any' for such input, "
            "and do not drop lines of a document before windowing)")
    tokens = _dense(table.column("token_ids"), K, np.int32, n)
    shapes = _dense(table.column("shape"), F_, np.float32, n)
    y = _targets(table.column("label"), spec, n)

    # Global row index of every window position; row n is an all-zero padding row.
    starts_of_doc = [window_starts(int(m), W, S) for m in run_len]
    n_win = np.fromiter(map(len, starts_of_doc), dtype=np.int64, count=len(run_len))
    win_doc = np.repeat(np.arange(len(run_len)), n_win)
    win_start = np.fromiter((s for ss in starts_of_doc for s in ss), dtype=np.int64,
                            count=int(n_win.sum()))
    offset = np.arange(W)
    pos = win_start[:, None] + offset[None, :]
    valid = pos < run_len[win_doc][:, None]
    rows = np.where(valid, run_start[win_doc][:, None] + pos, n)
    m = len(win_start)

    def flat_list(values, width):
        return list_array(values[rows].reshape(m, width * W))

    first_rows = pa.array(run_start[win_doc])
    columns = [table.column(k).take(first_rows) for k in spec["keys"]]
    columns += [pa.array(win_start.astype(np.int32)),
                pa.array(valid.sum(axis=1).astype(np.int32)),
                flat_list(tokens, K), flat_list(shapes, F_), flat_list(y, len(spec["labels"])),
                flat_list(np.concatenate([np.ones(n, np.float32), np.zeros(1, np.float32)]), 1)]
    names = spec["keys"] + ["start", "n_valid", "token_ids", "shape", "y", "mask"]
    return pa.RecordBatch.from_arrays(columns, names=names)


def _dense(column, width, dtype, n):
    """A list column of fixed `width` as an (n + 1, width) array; the extra row is 0."""
    out = np.zeros((n + 1, width), dtype=dtype)
    if n:
        try:
            out[:n] = dense(column, width)
        except ValueError as exc:
            raise ValueError(f"Windower: {exc} (from LineFeaturizer)") from exc
    return out


def _targets(column, spec, n):
    """(n + 1, n_labels) one-/multi-hot targets; null labels and the padding row are 0."""
    labels = spec["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.zeros((n + 1, len(labels)), dtype=np.float32)
    encoded = column.dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    rows_of = {}
    for code, value in enumerate(encoded.dictionary.to_pylist()):
        # "" is the empty label set of a multi-label line: all zeros, still a real line.
        names = [x for x in value.split(spec["sep"]) if x] if spec["multi_label"] else [value]
        unknown = [x for x in names if x not in index]
        if unknown:
            raise ValueError(f"Windower: label {unknown[0]!r} is not one of the labels "
                             f"{labels}; map it with YeddaParser's keepLabels/labelMap")
        rows_of[code] = [index[x] for x in names]
    for code, cols in rows_of.items():
        hit = np.flatnonzero(codes == code)
        for j in cols:
            y[hit, j] = 1.0
    return y
