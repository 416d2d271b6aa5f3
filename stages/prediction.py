"""The Arrow prediction engine: windows -> one row of averaged probabilities per line.

`predict_lines` runs one or several trained networks (Keras archive bytes, broadcast
once) over every window in one Python pass (`mapInArrow`); each executor process loads
a network once and keeps its traced forward pass (cached by content digest). A line
covered by several overlapping windows gets the mean of their probabilities: summed
within each Arrow batch in Python, then merged across batches and partitions by one
aggregation, or, when each document's windows arrive together (`grouped`), completed in
Python with no shuffle. With `direct_read`, a plain Parquet scan is read by the Python
workers themselves (`focalseq.stages.parquet_input`), and a quick look at its key columns
tells whether the documents arrive together (prepared Parquet: yes), so the default
path skips the shuffle whenever it safely can.

`BiLSTMModel` and `EnsembleModel` call it and then apply `focalseq.stages.decision`.
"""
import atexit
import hashlib
import json
import os
import tempfile
from functools import lru_cache

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from focalseq.arrow_columns import dense, runs
from focalseq.stages import parquet_input
from focalseq.stages.windows import read_window_metadata
from focalseq.training.line_scores import line_groups, line_sums, window_lines


def predict_lines(dataset: DataFrame, networks: list, labels: list, multi_label: bool,
                  batch_size: int, grouped: bool = False, weights: list = None,
                  probability_col: str = "probability", direct_read: bool = True) -> DataFrame:
    """Windows -> one row per line: doc_id, [split], line_idx, probabilities, label.

    Each network (Keras archive bytes) runs over every window in one Python pass; with
    several networks (an ensemble) their outputs are averaged with `weights` first. A
    line's probability is then the mean over the windows that cover it: within each Arrow
    batch in Python, and across batches and partitions by a final aggregation, or, when
    `grouped` (each document's windows together in one partition), in Python alone.

    With `direct_read`, when `dataset` is a plain scan of Parquet files the Python
    workers read the files themselves (`focalseq.stages.parquet_input`); the result is
    the same. Then, even without `grouped`, a small job reads the files' document keys
    and window starts, and when each document's windows arrive together in one task
    (`_arrives_grouped`) the lines are completed in Python without the aggregation.
    """
    n = len(labels)
    if batch_size < 1:
        raise ValueError(f"batchSize: must be >= 1, got {batch_size}")
    dims = read_window_metadata(dataset)
    if list(dims["labels"]) != list(labels):
        raise ValueError(f"windows: labels {dims['labels']} differ from the model's "
                         f"{labels}")
    weights = list(weights or [1.0] * len(networks))
    sc = dataset.sparkSession.sparkContext
    keys = ["doc_id"] + [c for c in ("split",) if c in dataset.columns]
    plan = {"digests": [hashlib.sha256(b).hexdigest() for b in networks],
            "weights": weights, "window": dims["window"], "labels": labels,
            "multi_label": multi_label, "keys": keys, "batch": batch_size,
            "threads": int(sc.getConf().get("spark.task.cpus", "1"))}
    shared = sc.broadcast(list(networks))
    schema = T.StructType([dataset.schema[k] for k in keys] + [
        T.StructField("line_idx", T.IntegerType()),
        T.StructField("_n", T.IntegerType()),
        T.StructField("label", T.StringType())] +
        [T.StructField(f"_p{j}", T.DoubleType()) for j in range(n)])
    cols = keys + ["start", "n_valid", "token_ids", "shape", "y"]
    windows, read = dataset.select(*cols), None
    files = parquet_input.parquet_files(dataset, cols) if direct_read else None
    if files is not None:
        bins = _task_files(dataset, files)
        windows, read = _file_assignments(dataset, bins), _reader(dataset, cols)
        if not grouped:
            # The files are read whole, one task each: when a look at two small columns
            # shows every document's windows together in one task (true of prepared
            # Parquet), the lines complete in Python and the merge shuffle is skipped.
            grouped = _arrives_grouped(dataset, bins, keys)
    step = _grouped_lines if grouped else _predict_batches
    per_line = windows.mapInArrow(
        lambda batches: step(read(batches) if read else batches, plan, shared), schema)
    if grouped:
        # Every line leaves the Python pass complete: no shuffle.
        agg = per_line
    else:
        # Lines are summed within each Arrow batch; this merges the lines whose windows
        # fell into different batches or partitions.
        agg = per_line.groupBy(*keys, "line_idx").agg(
            F.sum("_n").alias("_n"), F.first("label").alias("label"),
            *[F.sum(f"_p{j}").alias(f"_p{j}") for j in range(n)])
    prob = F.array(*[F.col(f"_p{j}") / F.col("_n") for j in range(n)])
    return agg.select(*keys, "line_idx", prob.alias(probability_col), "label")


def _task_files(dataset, files) -> list:
    """The files dealt to tasks: one list of (path, partition values) per task."""
    sc = dataset.sparkSession.sparkContext
    # As many tasks as Spark's own scan would use (its files packed by
    # spark.sql.files.maxPartitionBytes), and at least one per core.
    tasks = max(sc.defaultParallelism, dataset.rdd.getNumPartitions())
    return parquet_input.packed(files, tasks)


def _file_assignments(dataset, bins) -> DataFrame:
    """One row per task: the [path, partition values] of the files it reads, in order."""
    spark = dataset.sparkSession
    sc = spark.sparkContext
    rows = [([[path, json.dumps(part)] for path, part in b],) for b in bins]
    schema = T.StructType([T.StructField("files", T.ArrayType(T.ArrayType(T.StringType())))])
    return spark.createDataFrame(sc.parallelize(rows, len(rows)), schema)


def _arrives_grouped(dataset, bins, keys) -> bool:
    """Whether, read as `bins` deals them, each document's windows arrive together.

    One small job reads the key and `start` columns of every file (not the arrays) and
    emits one row per run of a document's windows in each task's stream
    (`_document_runs`): the run is in order when its first window starts at line 0 and
    its starts increase. The documents arrive together when every run is in order and no
    document has two runs, in one task or in two (counted by Spark, so only three
    numbers reach the driver): a document split between tasks, interleaved with another
    or repeated shows a run out of order or a second run.
    """
    read = _reader(dataset, keys + ["start"])
    schema = T.StructType([dataset.schema[k] for k in keys] +
                          [T.StructField("_in_order", T.BooleanType())])
    runs_of = _file_assignments(dataset, bins).mapInArrow(
        lambda assignments: _document_runs(read(assignments), keys), schema)
    row = runs_of.agg(F.count(F.lit(1)).alias("runs"),
                      F.count_distinct(*[F.col(k) for k in keys]).alias("documents"),
                      F.min(F.col("_in_order").cast("int")).alias("in_order")).first()
    return row["runs"] == row["documents"] and row["in_order"] in (None, 1)


def _document_runs(batches, keys):
    """Arrow batches of windows (`keys`, `start`) -> one row per run of a document's
    consecutive windows, across batch boundaries: its keys and `_in_order` (the run
    starts at 0 and its starts increase)."""
    import numpy as np
    import pyarrow as pa

    run_keys, run_ok = [], []
    last_key, last_start = None, -1
    for batch in batches:
        if not batch.num_rows:
            continue
        key = _row_keys(batch, keys)
        starts = batch.column("start").to_numpy(zero_copy_only=False).astype(np.int64)
        new_doc = np.empty(len(starts), dtype=bool)
        new_doc[0] = last_key is None or key[0] != last_key
        new_doc[1:] = key[1:] != key[:-1]
        previous = np.concatenate([[last_start], starts[:-1]])
        ok = np.where(new_doc, starts == 0, starts > previous)
        # Run r covers rows [first[r], first[r + 1]); a run continued from the last
        # batch has no first row here and updates the last run kept.
        first = np.flatnonzero(new_doc)
        if len(first) == 0 or first[0] > 0:
            run_ok[-1] = run_ok[-1] and bool(ok[:first[0] if len(first) else None].all())
        bounds = np.append(first, len(starts))
        for a, b in zip(bounds[:-1], bounds[1:]):
            run_keys.append(key[a])
            run_ok.append(bool(ok[a:b].all()))
        last_key, last_start = key[-1], int(starts[-1])
    columns = {k: [rk[i] if len(keys) > 1 else rk for rk in run_keys]
               for i, k in enumerate(keys)}
    if run_ok:  # a task with no windows has no runs (and no column types to give)
        yield pa.RecordBatch.from_pydict({**columns, "_in_order": run_ok})


def _row_keys(batch, keys):
    """Each row's document key (doc_id, or doc_id and split) as one numpy object array."""
    import numpy as np

    columns = [batch.column(k).to_numpy(zero_copy_only=False) for k in keys]
    if len(columns) == 1:
        return columns[0]
    out = np.empty(batch.num_rows, dtype=object)
    out[:] = list(zip(*columns))
    return out


def _reader(dataset, cols):
    """batches of file assignments -> Arrow batches of the windows' `cols`."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(dataset.select(*cols).schema)
    rows = int(dataset.sparkSession.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch",
                                               "10000"))

    def read(assignments):
        return parquet_input.read_batches(assignments, cols, schema, rows)

    return read


@lru_cache(maxsize=16)
def _load_network(digest: str, data: bytes):  # digest keys the cache
    import tensorflow as tf

    import focalseq.training.network  # noqa: F401  (registers the custom layers)

    with tempfile.TemporaryDirectory(prefix="focalseq-network-") as tmp:
        path = os.path.join(tmp, "network.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return tf.keras.models.load_model(path, compile=False)


@lru_cache(maxsize=16)
def _predictor(digest: str, data: bytes):
    """The network's forward pass as one traced function: (token_ids, shape) -> probs.

    Traced once for any number of rows (the batch dimension is left free), so ragged
    last chunks never retrace, and called directly rather than through
    `Model.predict_on_batch`, whose per-call data handling costs about a fifth of the
    CPU of a 512-window call.
    """
    import tensorflow as tf

    net = _load_network(digest, data)
    signature = {name: tf.TensorSpec((None,) + tuple(x.shape[1:]), x.dtype)
                 for name, x in zip(net.input_names, net.inputs)}

    @tf.function(input_signature=[signature])
    def predict(inputs):
        return net(inputs, training=False)

    if _predictor.cache_info().currsize == 0:
        atexit.register(_free_predictors)
    return predict


def _combined_predictor(plan, networks):
    """One network's forward pass, or the weighted mean of several (an ensemble)."""
    fns = [_predictor(d, b) for d, b in zip(plan["digests"], networks)]
    if len(fns) == 1:
        return fns[0]
    weights, total = plan["weights"], float(sum(plan["weights"]))

    def predict(inputs):
        return sum(w * f(inputs) for w, f in zip(weights, fns)) / total

    return predict


def _free_predictors():
    """Drops the traced functions while TensorFlow is still whole (not at teardown)."""
    import gc

    _predictor.cache_clear()
    _load_network.cache_clear()
    gc.collect()


def _set_tf_threads(threads: int):
    """Gives TensorFlow in this executor process the task's CPUs (once, before first use)."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already running in this process: keep its pools
        pass


def _predict_batches(batches, plan, shared):
    """Windows (Arrow batches) -> one row per line of each batch, probabilities summed."""
    for batch, predict in _with_predictor(batches, plan, shared):
        yield _lines_of_batch(batch, predict, plan)


def _with_predictor(batches, plan, shared):
    """(batch, predict) for each non-empty batch; the networks load on the first one."""
    predict = None
    for batch in batches:
        if not batch.num_rows:
            continue
        if predict is None:
            _set_tf_threads(plan["threads"])
            predict = _combined_predictor(plan, shared.value)
        yield batch, predict


def _grouped_lines(batches, plan, shared):
    """Windows grouped by document -> one complete row per line, no merge needed later.

    A document's windows may span Arrow batches: the lines of each batch's last document
    are held back and merged with the next batch's first document when it is the same.
    Every other document is complete when its batch ends, which is checked: each run of
    a document's windows in the partition must include its first window (start 0), so a
    document split across partitions (or interleaved with another) fails loudly instead
    of giving two half-averaged rows per line.
    """
    held, held_doc = None, None
    for batch, predict in _with_predictor(batches, plan, shared):
        lines = _lines_of_batch(batch, predict, plan)
        windows_doc, starts = batch.column("doc_id"), batch.column("start").to_numpy()
        doc_runs = _spans(windows_doc)
        parts = {lines.column("doc_id")[a].as_py(): (a, b)
                 for a, b in _spans(lines.column("doc_id"))}
        if len(parts) != len(doc_runs):
            raise ValueError("groupedInput: a document's windows are interleaved with "
                             "another's; transform with groupedInput=False")
        for i, (a, b) in enumerate(doc_runs):
            doc, first_start = windows_doc[a].as_py(), int(starts[a:b].min())
            continued = i == 0 and held is not None and doc == held_doc
            if i == 0 and held is not None and not continued:
                yield held
                held = None
            if first_start != 0 and not continued:
                raise ValueError(
                    f"groupedInput: the windows of document {doc!r} are not together in "
                    f"one partition (a run of them starts at line {first_start}); "
                    f"transform with groupedInput=False, which merges lines with a shuffle")
            lo, hi = parts[doc]
            part = lines.slice(lo, hi - lo)
            if continued:
                part = _merge_line_sums(held, part, plan)
                held = None
            if i == len(doc_runs) - 1:
                held, held_doc = part, doc
            else:
                yield part
    if held is not None:
        yield held


def _spans(column) -> list:
    """(start, end) of each run of equal values in an Arrow column."""
    starts, lengths = runs(column)
    return list(zip(starts.tolist(), (starts + lengths).tolist()))


def _merge_line_sums(a, b, plan):
    """Two record batches of one document's partial line sums -> one row per line."""
    import numpy as np
    import pyarrow as pa

    both = pa.Table.from_batches([a, b]).combine_chunks().to_batches()[0]
    line = both.column("line_idx").to_numpy()
    unique, first, inverse = np.unique(line, return_index=True, return_inverse=True)
    out = {k: both.column(k).take(pa.array(first)) for k in plan["keys"] + ["line_idx"]}
    out["_n"] = pa.array(np.bincount(inverse, weights=both.column("_n").to_numpy(),
                                     minlength=len(unique)).astype(np.int32))
    out["label"] = both.column("label").take(pa.array(first))
    for j in range(len(plan["labels"])):
        out[f"_p{j}"] = pa.array(np.bincount(inverse, weights=both.column(f"_p{j}").to_numpy(),
                                             minlength=len(unique)))
    return pa.RecordBatch.from_pydict({name: out[name] for name in a.schema.names})


def _lines_of_batch(batch, predict, plan):
    import numpy as np
    import pyarrow as pa

    W, labels = plan["window"], plan["labels"]
    n = len(labels)
    tokens = _window_array(batch.column("token_ids"), W, np.int32)
    shape = _window_array(batch.column("shape"), W, np.float32)
    y = _window_array(batch.column("y"), W, None)
    probs = _predict_rows(predict, tokens, shape, plan["batch"])[..., :n]
    # Every valid (window, line) pair, grouped by (window's document, line_idx).
    win, offset, line_idx = window_lines(batch.column("start").to_numpy(),
                                         batch.column("n_valid").to_numpy())
    first, inverse, counts = line_groups(_codes(batch, plan["keys"]), win, line_idx)
    sums = line_sums(probs, win, offset, inverse, len(first))
    take = pa.array(win[first])
    out = {k: batch.column(k).take(take) for k in plan["keys"]}
    out["line_idx"] = pa.array(line_idx[first].astype(np.int32))
    out["_n"] = pa.array(counts.astype(np.int32))
    out["label"] = _line_labels(y[win[first], offset[first]], labels, plan["multi_label"])
    for j in range(n):
        out[f"_p{j}"] = pa.array(np.ascontiguousarray(sums[:, j]))
    return pa.RecordBatch.from_pydict(out)


def _window_array(column, window, dtype):
    """A window list column (window x width values a row) as (rows, window, width)."""
    rows = len(column)
    width = len(column.flatten()) // max(rows * window, 1)
    return dense(column, window * width, dtype).reshape(rows, window, width)


def _predict_rows(predict, tokens, shape, step):
    """`predict` over all rows, `step` windows a call."""
    import numpy as np

    return np.concatenate([
        predict({"token_ids": tokens[i:i + step], "shape": shape[i:i + step]}).numpy()
        for i in range(0, len(tokens), step)])


def _codes(batch, keys):
    """Integers 0..g-1 naming each window's (doc_id, split) group within the batch."""
    import numpy as np

    codes = np.zeros(batch.num_rows, dtype=np.int64)
    for k in keys:
        c = np.asarray(batch.column(k).dictionary_encode().indices.fill_null(-1), np.int64) + 1
        codes = codes * (int(c.max()) + 1) + c
    return np.unique(codes, return_inverse=True)[1]


def _line_labels(y, labels, multi_label):
    """The true label of each line from its target row, as an Arrow string array.

    Single-label: the hot label, null for unlabeled lines. Multi-label: the hot labels
    joined by "|", "" for none. Vectorised: one lookup per distinct row pattern, not a
    Python call per line (that loop was most of the post-processing time).
    """
    import numpy as np
    import pyarrow as pa

    hot = y > 0.5
    if multi_label:
        codes = hot.astype(np.int64) @ (np.int64(1) << np.arange(len(labels), dtype=np.int64))
        patterns, index = np.unique(codes, return_inverse=True)
        names = ["|".join(lab for j, lab in enumerate(labels) if (int(c) >> j) & 1)
                 for c in patterns]
        return pa.array(names, pa.string()).take(pa.array(index.astype(np.int64)))
    index = pa.array(hot.argmax(1).astype(np.int32), mask=~hot.any(1))
    return pa.DictionaryArray.from_arrays(index, pa.array(labels, pa.string())) \
        .cast(pa.string())
