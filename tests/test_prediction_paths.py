"""The default prediction path: no merge shuffle when each document's windows arrive
together from Parquet, the shuffle when they do not, the same lines either way."""
import numpy as np
import pytest

from focalseq.stages.bilstm import BiLSTMModel
from test_estimator_units import (LABELS, _assert_each_line_once_with_its_mean,
                                  _expected_lines, _network_bytes, _windows)

DOCS = {"doc_a": 9, "doc_b": 5, "doc_c": 3, "doc_d": 12}


def _default_model(data):
    model = BiLSTMModel(labels=LABELS, batchSize=2)
    model._network_bytes = data
    return model


def _transform(model, windows):
    out = model.transform(windows)
    shuffled = "Exchange" in out._jdf.queryExecution().executedPlan().toString()
    return out.toPandas(), shuffled


def _write_files(spark, path, frames):
    """Each frame written as one Parquet file of `path` (file names keep their order)."""
    for frame in frames:
        frame.coalesce(1).write.mode("append").parquet(path)
    return spark.read.parquet(path)


def test_documents_together_in_each_file_need_no_shuffle(spark, tmp_path):
    net, data = _network_bytes(tmp_path)
    windows = _windows(spark, DOCS, split=False)
    path = str(tmp_path / "grouped")
    read = _write_files(spark, path, [windows.filter(windows.doc_id.isin(*names))
                                      for names in (["doc_a", "doc_b"], ["doc_c", "doc_d"])])
    out, shuffled = _transform(_default_model(data), read)
    assert not shuffled
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, read.toPandas()))


@pytest.mark.parametrize("order", ["split", "interleaved", "repeated"])
def test_documents_not_together_are_merged_by_the_shuffle(spark, tmp_path, order):
    """split: doc_d's first windows in one file, the rest in another file, which the
    two tasks read apart; interleaved: one file with the windows ordered by start, so
    documents alternate; repeated: doc_a's windows twice in one file."""
    net, data = _network_bytes(tmp_path)
    windows = _windows(spark, DOCS, split=False)
    path = str(tmp_path / order)
    if order == "split":
        frames = [windows.filter("doc_id != 'doc_d' or start < 4"),
                  windows.filter("doc_id = 'doc_d' and start >= 4")]
    elif order == "interleaved":
        frames = [windows.orderBy("start", "doc_id")]
    else:
        frames = [windows.union(windows.filter("doc_id = 'doc_a'"))
                  .select(*[windows[c].alias(c, metadata=windows.schema[c].metadata)
                            for c in windows.columns])]
    read = _write_files(spark, path, frames)
    rows = read.toPandas()
    if order == "interleaved":  # the check has something to find
        ids = list(rows["doc_id"])
        assert sum(a != b for a, b in zip(ids, ids[1:])) + 1 > len(DOCS)
    out, shuffled = _transform(_default_model(data), read)
    assert shuffled
    # Independent reference: the mean over every window row read (a repeated window
    # counts twice, which leaves its lines' means unchanged).
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, rows))
    assert len(out) == sum(DOCS.values())


def test_grouped_input_forced_on_split_documents_still_fails(spark, tmp_path):
    _, data = _network_bytes(tmp_path)
    windows = _windows(spark, DOCS, split=False)
    read = _write_files(spark, str(tmp_path / "split"), [
        windows.filter("doc_id != 'doc_d' or start < 4"),
        windows.filter("doc_id = 'doc_d' and start >= 4")])
    model = _default_model(data).setGroupedInput(True)
    with pytest.raises(Exception, match="doc_d.*not together in one partition"):
        model.transform(read).collect()


def test_the_runs_of_documents_in_arrow_batches():
    """One row per run of a document's windows, across batch boundaries; a run is in
    order when it starts at 0 and its starts increase."""
    import pyarrow as pa

    from focalseq.stages.prediction import _document_runs

    def runs(*parts):
        batches = [pa.RecordBatch.from_pydict({"doc_id": [d for d, _ in p],
                                               "start": np.array([s for _, s in p], np.int32)})
                   for p in parts]
        (out,) = _document_runs(batches, ["doc_id"])
        return list(zip(out.column("doc_id").to_pylist(), out.column("_in_order").to_pylist()))

    assert runs([("a", 0), ("a", 2)], [("a", 4), ("b", 0)]) == [("a", True), ("b", True)]
    assert runs([("a", 0), ("b", 0)], [("a", 2)]) == [("a", True), ("b", True), ("a", False)]
    assert runs([("a", 2), ("a", 4)]) == [("a", False)]
    assert runs([("a", 0), ("a", 2)], [("a", 2)]) == [("a", False)]
    assert runs([("a", 0)], [("b", 0)], [("a", 0)]) == [("a", True), ("b", True), ("a", True)]
    assert list(_document_runs([], ["doc_id"])) == []
