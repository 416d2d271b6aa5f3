"""BiLSTMEstimator/BiLSTMModel without Horovod: params, loss-config plumbing, the run
store, checkpoint pieces, progress lines, MLflow logging, and the Model's overlap
averaging checked against a plain Keras predict and a hand-written average."""
import contextlib
import json
import logging
import math
import os

import numpy as np
import pytest

from focalseq.stages.bilstm import BiLSTMEstimator, BiLSTMModel
from focalseq.training.launch import format_epoch

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
W, K, F = 4, 3, 2


# Params ---------------------------------------------------------------------------------


def test_json_params_accept_dicts_and_store_json_strings():
    est = BiLSTMEstimator(classWeights={"Nomenclature": 4}, lossConfig={"beta": 0.9},
                          labelCounts={"Nomenclature": 1})
    assert json.loads(est.getOrDefault("classWeights")) == {"Nomenclature": 4}
    assert est.getClassWeights() == {"Nomenclature": 4}
    assert est.getLossConfig() == {"beta": 0.9}
    assert est.getLabelCounts() == {"Nomenclature": 1}
    assert BiLSTMEstimator().getClassWeights() is None
    assert BiLSTMEstimator().getLossConfig() == {}


def test_setters_return_self_and_set_params():
    est = BiLSTMEstimator()
    assert est.setEpochs(7).setRunId("abc").setValidationFraction(0.2) is est
    assert (est.getEpochs(), est.getRunId(), est.getValidationFraction()) == (7, "abc", 0.2)


def test_unknown_constructor_argument_is_a_type_error():
    with pytest.raises(TypeError, match="epoch"):
        BiLSTMEstimator(epoch=3)


def test_estimator_persistence_round_trip(spark, tmp_path):
    est = BiLSTMEstimator(epochs=3, classWeights={"Description": 2.5}, weightStrategy="",
                          loss="weighted_cross_entropy", focalLabels=["Nomenclature"],
                          validationFraction=0.25, tokenDropout=0.1, skipConnection=True)
    est.save(str(tmp_path / "est"))
    loaded = BiLSTMEstimator.load(str(tmp_path / "est"))
    for param in est.params:
        assert loaded.getOrDefault(param.name) == est.getOrDefault(param), param.name
    assert loaded.getClassWeights() == {"Description": 2.5}


def test_class_weights_param_feeds_the_loss_config():
    est = BiLSTMEstimator(loss="weighted_cross_entropy", classWeights={"Nomenclature": 5})
    config = est.validate(LABELS)
    # Labels left out get weight 1 (the losses' rule).
    assert config["class_weights"] == {"Nomenclature": 5.0, "Description": 1.0,
                                       "Misc-exposition": 1.0}
    assert config["weight_strategy"] is None


def test_weight_strategy_param_feeds_the_loss_config():
    est = BiLSTMEstimator(loss="adaptive", weightStrategy="effective_number")
    assert est.validate(LABELS)["weight_strategy"] == "effective_number"


def test_class_weights_with_focal_labels_raise_the_losses_error():
    est = BiLSTMEstimator(loss="soft_f1", focalLabels=["Nomenclature"],
                          classWeights={"Nomenclature": 3})
    with pytest.raises(ValueError, match="class_weights and focal_labels are mutually exclusive"):
        est.validate(LABELS)
    est = BiLSTMEstimator(loss="soft_f1", lossConfig={"focal_labels": ["Nomenclature"],
                                                      "class_weights": {"Nomenclature": 3}})
    with pytest.raises(ValueError, match="class_weights and focal_labels are mutually exclusive"):
        est.validate(LABELS)


def test_focal_labels_restrict_soft_f1_only():
    assert BiLSTMEstimator(loss="soft_f1", focalLabels=["Description"]).validate(
        LABELS)["focal_labels"] == ["Description"]
    # Other losses use focal labels for early stopping and reports, not in the loss.
    assert "focal_labels" not in BiLSTMEstimator(
        loss="focal", focalLabels=["Description"]).validate(LABELS)


@pytest.mark.parametrize("params, match", [
    ({"classWeights": {"Nomenclature": 2}, "lossConfig": {"class_weights": {"Description": 2}},
      "loss": "weighted_cross_entropy"}, "classWeights: lossConfig already sets class_weights"),
    ({"weightStrategy": "bogus"}, "weightStrategy: 'bogus' is not one of"),
    ({"classWeights": {"Nomenclature": 2}, "loss": "focal"}, "unknown parameter 'class_weights'"),
    ({"encoder": "gru"}, "encoder: 'gru' is not one of"),
    ({"optimizer": "adagrad"}, "optimizer: 'adagrad' is not one of"),
    ({"dropout": 1.0}, r"dropout: must be in \[0, 1\), got 1.0"),
    ({"validationFraction": -0.1}, r"validationFraction: must be in \[0, 1\)"),
    ({"batchSize": 0}, "batchSize: must be >= 1, got 0"),
    ({"learningRate": 0.0}, "learningRate: must be > 0, got 0.0"),
    ({"threadsPerWorker": -1}, "threadsPerWorker: must be >= 0"),
    ({"runId": "../elsewhere"}, "runId: '../elsewhere' must be"),
    ({"focalLabels": ["Nomenklatur"]}, r"focalLabels: \['Nomenklatur'\] are not labels"),
    ({"loss": "binary_focal"}, "multi-label"),
    ({"classWeights": "[1, 2]"}, "classWeights: expected a JSON object"),
])
def test_invalid_params_raise_value_errors_that_quote_the_value(params, match):
    with pytest.raises(ValueError, match=match):
        BiLSTMEstimator(**params).validate(LABELS)


# Hand-built windows ------------------------------------------------------------------


def _windows(spark, docs, multi_label=False, split=True):
    """Windows of W lines, stride 2, built by hand. `docs`: {doc_id: n_lines}.

    Line i of a document has tokens [i+1, doc+1, 0], shape [i/10, 1] and label i % 3.
    """
    from pyspark.sql import types as T

    from focalseq.stages.windows import META_KEY, window_metadata

    rows = []
    for d, (doc, n) in enumerate(sorted(docs.items())):
        starts = list(range(0, max(n - W, 0) + 1, 2))
        if starts[-1] + W < n:
            starts.append(n - W)
        for start in starts:
            valid = min(W, n - start)
            tokens, shape, y, mask = [], [], [], []
            for t in range(W):
                i = start + t
                real = t < valid
                tokens += [i + 1, d + 1, 0] if real else [0, 0, 0]
                shape += [i / 10.0, 1.0] if real else [0.0, 0.0]
                onehot = [0.0] * 3
                if real:
                    onehot[i % 3] = 1.0
                    if multi_label and i % 2 == 0:
                        onehot[(i + 1) % 3] = 1.0
                y += onehot
                mask.append(1.0 if real else 0.0)
            rows.append((doc, "test" if d % 2 else "train", start, valid, tokens, shape, y,
                         mask))
    schema = T.StructType([
        T.StructField("doc_id", T.StringType()), T.StructField("split", T.StringType()),
        T.StructField("start", T.IntegerType()), T.StructField("n_valid", T.IntegerType()),
        T.StructField("token_ids", T.ArrayType(T.IntegerType())),
        T.StructField("shape", T.ArrayType(T.FloatType())),
        T.StructField("y", T.ArrayType(T.FloatType())),
        T.StructField("mask", T.ArrayType(T.FloatType()))])
    df = spark.createDataFrame(rows, schema)
    if not split:
        df = df.drop("split")
    meta = window_metadata(LABELS, W, 2, K, F, multi_label)
    for col in ("token_ids", "shape", "y", "mask"):
        df = df.withMetadata(col, {META_KEY: meta})
    return df


def _network_bytes(tmp_path, multi_label=False, seed=7):
    import tensorflow as tf

    from focalseq.training.network import build_network

    tf.keras.utils.set_random_seed(seed)
    net = build_network(W, K, F, 3, vocab_size=64, embedding_dim=8, hidden_size=8,
                        multi_label=multi_label)
    path = str(tmp_path / f"net-{seed}.keras")
    net.save(path)
    with open(path, "rb") as fh:
        return net, fh.read()


def _expected_lines(net, windows_pdf):
    """{(doc, line_idx): mean probability over the windows covering the line}."""
    sums, counts = {}, {}
    for row in windows_pdf.itertuples():
        tokens = np.asarray(row.token_ids, np.int32).reshape(1, W, K)
        shape = np.asarray(row.shape, np.float32).reshape(1, W, F)
        probs = net.predict({"token_ids": tokens, "shape": shape}, verbose=0)[0]
        for t in range(row.n_valid):
            key = (row.doc_id, row.start + t)
            sums[key] = sums.get(key, 0.0) + probs[t]
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


@pytest.mark.parametrize("arrow_batch", [10000, 3])
def test_transform_averages_overlapping_windows_per_line(spark, tmp_path, arrow_batch):
    net, data = _network_bytes(tmp_path)
    windows = _windows(spark, {"doc_a": 9, "doc_b": 5, "doc_c": 3}).repartition(2)
    model = BiLSTMModel(labels=LABELS, batchSize=2)
    model._network_bytes = data
    with _arrow_batch(spark, arrow_batch):  # 3: a document's windows span Arrow batches
        out = model.transform(windows).toPandas()
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, windows.toPandas()))
    for row in out.itertuples():
        assert row.prediction == LABELS[int(np.argmax(row.probability))]
        assert row.split == ("test" if row.doc_id == "doc_b" else "train")


@pytest.mark.parametrize("arrow_batch", [10000, 3, 1])
def test_grouped_input_gives_the_same_lines_without_a_shuffle(spark, tmp_path, arrow_batch):
    """Each document's windows in one partition (coalesce keeps the written order): the
    Python pass averages every line itself, across Arrow batches too."""
    net, data = _network_bytes(tmp_path)
    windows = _windows(spark, {"doc_a": 9, "doc_b": 5, "doc_c": 3, "doc_d": 12}).coalesce(1)
    model = BiLSTMModel(labels=LABELS, batchSize=2, groupedInput=True)
    model._network_bytes = data
    with _arrow_batch(spark, arrow_batch):
        out = model.transform(windows)
        plan = out._jdf.queryExecution().executedPlan().toString()
        out = out.toPandas()
    assert "Exchange" not in plan
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, windows.toPandas()))


@contextlib.contextmanager
def _arrow_batch(spark, records):
    """Spark's Arrow batch size set to `records` for the block."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key)
    spark.conf.set(key, str(records))
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def _assert_each_line_once_with_its_mean(out, expected):
    assert sorted(zip(out["doc_id"], out["line_idx"])) == sorted(expected)  # each line once
    for row in out.itertuples():
        np.testing.assert_allclose(row.probability, expected[(row.doc_id, row.line_idx)],
                                   atol=1e-5)
        assert row.label == LABELS[row.line_idx % 3]


def _written_windows(spark, tmp_path, docs):
    """`_windows` written as Parquet partitioned by split, each split in one file (as
    the Windower writes: a document's windows together), read back plainly."""
    path = str(tmp_path / "windows")
    _windows(spark, docs).coalesce(1).write.partitionBy("split").parquet(path)
    return path


def _scans_parquet_in_the_jvm(df) -> bool:
    return "FileScan parquet" in df._jdf.queryExecution().executedPlan().toString()


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("arrow_batch", [10000, 3])
def test_python_workers_read_plain_parquet_input_with_the_same_lines(spark, tmp_path, grouped,
                                                                     arrow_batch):
    net, data = _network_bytes(tmp_path)
    docs = {"doc_a": 9, "doc_b": 5, "doc_c": 3, "doc_d": 12}
    path = _written_windows(spark, tmp_path, docs)
    windows = spark.read.parquet(path)
    expected = _expected_lines(net, windows.toPandas())
    model = BiLSTMModel(labels=LABELS, batchSize=2, groupedInput=grouped)
    model._network_bytes = data
    with _arrow_batch(spark, arrow_batch):
        out = model.transform(windows)
        assert not _scans_parquet_in_the_jvm(out)  # the files were read in Python
        out = out.toPandas()
    _assert_each_line_once_with_its_mean(out, expected)
    # The split column, which is not in the files, comes from each file's path.
    assert dict(zip(out["doc_id"], out["split"])) == {
        "doc_a": "train", "doc_b": "test", "doc_c": "train", "doc_d": "test"}
    # Without directRead the JVM scans the same files, with the same result.
    model.setDirectRead(False)
    through_jvm = model.transform(windows)
    assert _scans_parquet_in_the_jvm(through_jvm)
    _assert_each_line_once_with_its_mean(through_jvm.toPandas(), expected)


def test_a_file_python_cannot_read_fails_naming_it_and_the_way_out(spark, tmp_path):
    import glob

    _, data = _network_bytes(tmp_path)
    path = _written_windows(spark, tmp_path, {"doc_a": 9, "doc_b": 5})
    model = BiLSTMModel(labels=LABELS)
    model._network_bytes = data
    out = model.transform(spark.read.parquet(path))  # planned while the files exist
    gone = glob.glob(f"{path}/split=test/*.parquet")[0]
    os.remove(gone)
    with pytest.raises(Exception, match=f"{os.path.basename(gone)}.*pyarrow cannot open "
                                        f"it.*directRead=False"):
        out.collect()


def test_ensemble_reads_plain_parquet_in_python_too(spark, tmp_path):
    from focalseq.stages.ensemble import EnsembleModel

    members, expected = [], []
    windows = spark.read.parquet(_written_windows(spark, tmp_path, {"doc_a": 9, "doc_b": 5}))
    for seed in (7, 8):
        net, data = _network_bytes(tmp_path, seed=seed)
        member = BiLSTMModel(labels=LABELS, batchSize=2)
        member._network_bytes = data
        members.append(member)
        expected.append(_expected_lines(net, windows.toPandas()))
    ensemble = EnsembleModel(members=members)
    out = ensemble.transform(windows)
    assert not _scans_parquet_in_the_jvm(out)
    mean = {k: (expected[0][k] + expected[1][k]) / 2 for k in expected[0]}
    _assert_each_line_once_with_its_mean(out.toPandas(), mean)
    assert _scans_parquet_in_the_jvm(ensemble.setDirectRead(False).transform(windows))


def test_partition_filters_read_in_python_other_filters_through_the_jvm(spark, tmp_path):
    from pyspark.sql import functions as F

    net, data = _network_bytes(tmp_path)
    path = _written_windows(spark, tmp_path, {"doc_a": 9, "doc_b": 5, "doc_c": 3})
    windows = spark.read.parquet(path)
    model = BiLSTMModel(labels=LABELS, batchSize=2)
    model._network_bytes = data
    # A filter on the partition column keeps or drops whole files: read in Python.
    test = windows.filter(windows.split == "test")
    out = model.transform(test)
    assert not _scans_parquet_in_the_jvm(out)
    out = out.toPandas()
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, test.toPandas()))
    assert set(out["doc_id"]) == {"doc_b"} and set(out["split"]) == {"test"}
    # A filter on the rows, or a computed column: Spark must apply it.
    not_c = windows.filter(windows.doc_id != "doc_c")
    out = model.transform(not_c)
    assert _scans_parquet_in_the_jvm(out)
    _assert_each_line_once_with_its_mean(out.toPandas(), _expected_lines(net, not_c.toPandas()))
    mixed = windows.filter((windows.split == "train") & (windows.doc_id != "doc_c"))
    assert _scans_parquet_in_the_jvm(model.transform(mixed))
    sampled = windows.filter((windows.split == "train") & (F.rand(seed=1) < 0.5))
    assert _scans_parquet_in_the_jvm(model.transform(sampled))
    assert _scans_parquet_in_the_jvm(model.transform(
        windows.withColumn("start", F.greatest("start", F.lit(0)))))
    # One split without a filter: its folder read with the base path, in Python.
    one_split = spark.read.option("basePath", path).parquet(f"{path}/split=test")
    out = model.transform(one_split)
    assert not _scans_parquet_in_the_jvm(out)
    out = out.toPandas()
    _assert_each_line_once_with_its_mean(out, _expected_lines(net, test.toPandas()))
    assert set(out["split"]) == {"test"}


def test_grouped_input_with_a_document_split_across_partitions_fails_naming_it(spark, tmp_path):
    _, data = _network_bytes(tmp_path)
    base = _windows(spark, {"doc_a": 12})
    rows = base.orderBy("start").collect()
    # The first windows in one partition, the rest in another; the union drops the
    # columns' metadata, which the aliases put back.
    windows = spark.createDataFrame(rows[:2], base.schema).union(
        spark.createDataFrame(rows[2:], base.schema))
    windows = windows.select([windows[c].alias(c, metadata=base.schema[c].metadata)
                              for c in windows.columns])
    model = BiLSTMModel(labels=LABELS, groupedInput=True)
    model._network_bytes = data
    with pytest.raises(Exception, match="doc_a.*not together in one partition"):
        model.transform(windows).collect()
    model.setGroupedInput(False)
    assert model.transform(windows).count() == 12


def test_log_offsets_shift_the_decision(spark, tmp_path):
    _, data = _network_bytes(tmp_path)
    model = BiLSTMModel(labels=LABELS, logOffsets=[100.0, 0.0, 0.0])
    model._network_bytes = data
    out = model.transform(_windows(spark, {"doc_a": 6})).toPandas()
    assert (out["prediction"] == "Nomenclature").all()
    with pytest.raises(ValueError, match="logOffsets: expected 3 values"):
        model.setLogOffsets([1.0]).transform(_windows(spark, {"doc_a": 6}))


def test_multi_label_transform_uses_thresholds(spark, tmp_path):
    net, data = _network_bytes(tmp_path, multi_label=True)
    windows = _windows(spark, {"doc_a": 7}, multi_label=True, split=False)
    model = BiLSTMModel(labels=LABELS, multiLabel=True, thresholds=[0.0, 1.1, 0.5])
    model._network_bytes = data
    out = model.transform(windows).toPandas()
    expected = _expected_lines(net, windows.toPandas())
    assert "split" not in out.columns
    for row in out.itertuples():
        p = expected[(row.doc_id, row.line_idx)]
        want = ["Nomenclature"] + (["Misc-exposition"] if p[2] >= 0.5 else [])
        assert row.prediction == "|".join(want)
        i = row.line_idx
        truth = {LABELS[i % 3]} | ({LABELS[(i + 1) % 3]} if i % 2 == 0 else set())
        assert set(row.label.split("|")) == truth


def test_model_persistence_round_trip(spark, tmp_path):
    _, data = _network_bytes(tmp_path)
    model = BiLSTMModel(labels=LABELS, focalLabels=["Nomenclature"], runId="r1",
                        logOffsets=[0.5, 0.0, 0.0], batchSize=64)
    model._network_bytes = data
    model.training_summary = {"initial_epoch": 2, "history": [{"epoch": 2, "loss": 0.5}]}
    model.save(str(tmp_path / "model"))
    loaded = BiLSTMModel.load(str(tmp_path / "model"))
    assert loaded.network_bytes == data
    assert loaded.training_summary == model.training_summary
    for param in model.params:
        assert loaded.getOrDefault(param.name) == model.getOrDefault(param), param.name
    windows = _windows(spark, {"doc_a": 6})
    a = model.transform(windows).orderBy("line_idx").toPandas()
    b = loaded.transform(windows).orderBy("line_idx").toPandas()
    np.testing.assert_array_equal(np.stack(a["probability"]), np.stack(b["probability"]))
    assert model.copy().network_bytes == data


def test_model_without_network_says_so():
    with pytest.raises(ValueError, match="no network"):
        BiLSTMModel(labels=LABELS).network_bytes


def test_validation_fraction_holds_out_whole_documents(spark):
    windows = _windows(spark, {f"doc_{i:03d}": 6 for i in range(200)}, split=False)
    est = BiLSTMEstimator(validationFraction=0.3, seed=5)
    parts = windows.select("doc_id", est._split_expr(windows).alias("part")).toPandas()
    per_doc = parts.groupby("doc_id")["part"].nunique()
    assert (per_doc == 1).all()  # never a document on both sides
    share = (parts.groupby("doc_id")["part"].first() == "validation").mean()
    assert 0.15 < share < 0.45  # 200 documents, p = 0.3: about 4.5 standard deviations
    # Another seed holds out other documents.
    other = windows.select("doc_id", BiLSTMEstimator(validationFraction=0.3, seed=6)
                           ._split_expr(windows).alias("part")).toPandas()
    assert not (other.groupby("doc_id")["part"].first() ==
                parts.groupby("doc_id")["part"].first()).all()


def test_split_column_wins_over_validation_fraction(spark):
    windows = _windows(spark, {"doc_a": 6, "doc_b": 6, "doc_c": 6})
    est = BiLSTMEstimator(validationFraction=0.5)
    parts = windows.select("split", est._split_expr(windows).alias("part")).toPandas()
    assert parts["part"].isna().equals(parts["split"] == "test")  # test rows are left out
    assert (parts["part"].dropna() == "train").all()


@contextlib.contextmanager
def _advisory_size(spark, value):
    key = "spark.sql.adaptive.advisoryPartitionSizeInBytes"
    before = spark.conf.get(key)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, before)


@pytest.mark.parametrize("advisory, num_proc, files", [
    # 400 windows of W=4 positions x (K=3 tokens + F=2 shape + 3 labels + 1 mask) x 4 bytes
    # = 144 bytes: 57,600 bytes in all.
    ("64MB", 2, 4),   # far below: the floor of 2 x numProc
    ("10k", 2, 6),    # 57,600 / (10,240 x 2) = 2.8 -> 3 files a worker
    ("5k", 2, 12),    # 57,600 / (5,120 x 2) = 5.6 -> 6 files a worker
    ("10k", 3, 6),    # 57,600 / (10,240 x 3) = 1.9 -> the floor, 2 files a worker
])
def test_the_runs_files_grow_with_the_windows_past_sparks_partition_size(
        spark, advisory, num_proc, files):
    from focalseq.stages.bilstm import _file_count
    from focalseq.stages.windows import read_window_metadata

    windows = _windows(spark, {f"doc_{i:03d}": 6 for i in range(200)}, split=False)
    assert windows.count() == 400  # starts 0 and 2 in each 6-line document
    with _advisory_size(spark, advisory):
        assert _file_count(windows, read_window_metadata(windows), num_proc) == files


@pytest.mark.parametrize("window, tokens, shapes, rows", [
    # 4 bytes x W x (K + F + 3 labels + 1 mask); 2 MiB = 2,097,152 bytes.
    (4, 3, 2, 4096),    # 144 bytes a window: 14,563 fit, Spark's 4,096 is the cap
    (32, 48, 18, 234),  # the SKOL settings: 8,960 bytes, 2,097,152 // 8,960 = 234
    (16, 24, 21, 668),  # benchmarks/scale.py: 3,136 bytes -> 668
])
def test_the_runs_reads_take_parquet_batches_of_about_two_megabytes(window, tokens, shapes,
                                                                     rows):
    from focalseq.stages.bilstm import _read_batch_rows

    dims = {"window": window, "max_tokens": tokens, "n_shape": shapes,
            "labels": ["a", "b", "c"]}
    assert _read_batch_rows(dims) == rows


def test_the_reader_batch_is_lowered_only_while_the_run_reads_then_restored(spark):
    from focalseq.stages.bilstm import _parquet_batch_rows

    key = "spark.sql.parquet.columnarReaderBatchSize"
    assert spark.conf.get(key, None) is None  # not set: Spark's default applies
    with _parquet_batch_rows(spark, 234):
        assert spark.conf.get(key) == "234"
    assert spark.conf.get(key, None) is None
    spark.conf.set(key, "100")  # the user's own, smaller setting wins
    try:
        with _parquet_batch_rows(spark, 234):
            assert spark.conf.get(key) == "100"
        with pytest.raises(RuntimeError, match="boom"):
            with _parquet_batch_rows(spark, 50):
                assert spark.conf.get(key) == "50"
                raise RuntimeError("boom")
        assert spark.conf.get(key) == "100"
    finally:
        spark.conf.unset(key)


def test_each_validation_document_lies_in_one_of_the_runs_files(spark, tmp_path):
    import pyarrow.parquet as pq

    from focalseq.stages.windows import read_window_metadata
    from focalseq.training.run_store import RunStore

    windows = _windows(spark, {f"doc_{i:03d}": 6 for i in range(200)}, split=False)
    est = BiLSTMEstimator(validationFraction=0.5, seed=5)
    store = RunStore(str(tmp_path / "store"))
    with _advisory_size(spark, "5k"):
        counts = est._write_data(store, "r", windows, read_window_metadata(windows))
    assert sum(counts.values()) == 400
    folder = tmp_path / "store" / "r" / "data" / "part=validation"
    files = sorted(folder.glob("*.parquet"))
    assert 4 < len(files) <= 12  # 12 partitions by document hash; an empty one writes none
    seen = {}
    for path in files:
        table = pq.read_table(path, columns=["doc_id", "start"]).to_pandas()
        for doc, starts in table.groupby("doc_id", sort=False)["start"]:
            assert doc not in seen, f"{doc} in {seen.get(doc)} and {path.name}"
            seen[doc] = path.name
            assert list(starts) == [0, 2]  # in order within its file
    assert counts["validation"] == 2 * len(seen)


def test_more_workers_than_local_slots_fail_before_any_job(spark, tmp_path):
    est = BiLSTMEstimator(numProc=3, storePath=str(tmp_path / "store"))
    with pytest.raises(ValueError, match=r"numProc: 3 workers need 3 concurrent Spark tasks"):
        est.fit(_windows(spark, {"doc_a": 6}))
    assert not os.path.exists(tmp_path / "store")


# The run store -----------------------------------------------------------------------


def test_store_writes_atomically_and_appends(tmp_path):
    from focalseq.training.run_store import RunStore

    store = RunStore(str(tmp_path / "s"))
    path = store.path("run", "checkpoints", "state.json")
    store.write_json(path, {"epoch": 1})
    store.write_json(path, {"epoch": 2})
    assert store.checkpoint_state("run") == {"epoch": 2}
    assert store.checkpoint_state("other") is None
    store.append_line(store.progress_path("run"), "a")
    store.append_line(store.progress_path("run"), "b")
    assert store.read_bytes(store.progress_path("run")) == b"a\nb\n"
    names = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert not [n for n in names if ".tmp-" in n]
    assert store.url("run", "data").startswith("file://")
    assert store.checkpoint_weights_path("run", 3).endswith("epoch_0003.weights.h5")
    assert store.checkpoint_optimizer_path("run", 3).endswith("epoch_0003.optimizer.npz")
    with pytest.raises(ValueError, match="storePath"):
        RunStore("")


# Worker pieces that need no Horovod -----------------------------------------------------


def test_warmup_schedule_goes_from_one_worker_rate_to_scaled_rate():
    from focalseq.training.remote import WarmupSchedule

    # 4 workers, base rate 0.01: start at 0.01, reach 0.04 after 10 steps, then hold.
    schedule = WarmupSchedule(peak=0.04, warmup_steps=10, start_fraction=0.25)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(5)) == pytest.approx(0.025)  # 0.01 + 0.5 * 0.03
    assert float(schedule(10)) == pytest.approx(0.04)
    assert float(schedule(1000)) == pytest.approx(0.04)


def _validation_files(folder, docs, rows_per_group):
    """One Parquet file per group of documents, windows sorted by (doc_id, start), as the
    estimator writes the validation part. `docs`: list of {doc_id: n_lines} per file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from focalseq.arrow_columns import list_array
    from focalseq.text.windows import window_starts

    rng = np.random.default_rng(4)
    paths = []
    for f, group in enumerate(docs):
        rows = {k: [] for k in ("doc_id", "start", "n_valid", "token_ids", "shape", "y",
                                "mask")}
        for doc, n in sorted(group.items()):
            labels = rng.integers(-1, 3, n)  # -1: an unlabeled line
            tokens = rng.integers(1, 64, (n, K))
            for s in window_starts(n, W, 2):
                valid = min(W, n - s)
                pad = W - valid
                rows["doc_id"].append(doc)
                rows["start"].append(s)
                rows["n_valid"].append(valid)
                rows["token_ids"].append(np.pad(tokens[s:s + valid], ((0, pad), (0, 0))))
                rows["shape"].append(np.zeros((W, F), np.float32))
                y = np.zeros((W, 3), np.float32)
                y[np.arange(valid)[labels[s:s + valid] >= 0],
                  labels[s:s + valid][labels[s:s + valid] >= 0]] = 1.0
                rows["y"].append(y)
                rows["mask"].append((np.arange(W) < valid).astype(np.float32))
        table = pa.table({
            "doc_id": pa.array(rows["doc_id"]), "start": pa.array(rows["start"], pa.int32()),
            "n_valid": pa.array(rows["n_valid"], pa.int32()),
            **{k: list_array(np.array(rows[k]).reshape(len(rows[k]), -1))
               for k in ("token_ids", "shape", "y", "mask")}})
        path = str(folder / f"part-{f:05d}.parquet")
        pq.write_table(table, path, row_group_size=rows_per_group)
        paths.append(path)
    return paths


def test_validation_shares_sum_to_the_line_level_f1_and_the_whole_loss(tmp_path):
    """Two ranks' shares (one file each, documents cut across row groups) summed give the
    F1 of each line scored once with its windows' mean (worked out here with dicts and
    scikit-learn) and the loss over all windows at once."""
    import fsspec
    import pyarrow.parquet as pq
    from sklearn.metrics import f1_score

    from focalseq.losses import build_loss
    from focalseq.training.remote import Validation
    from focalseq.training.streaming import VALIDATION_COLUMNS, WindowReader

    paths = _validation_files(tmp_path, [{"a": 9, "b": 3}, {"c": 7, "d": 4, "e": 11}], 2)
    net, _ = _network_bytes(tmp_path)
    loss = build_loss("cross_entropy", {}, LABELS)
    dims = {"window": W, "max_tokens": K, "n_shape": F, "labels": LABELS,
            "multi_label": False}
    reader = WindowReader(fsspec.filesystem("file"), dims, VALIDATION_COLUMNS)
    shares = [Validation(net, loss, reader, [p], dims, batch_size=3) for p in paths]
    totals = sum(v.totals() for v in shares)
    record = shares[0].record(totals, ["Nomenclature", "Description"])

    everything = reader.arrays(pq.read_table(paths[0]).select(list(VALIDATION_COLUMNS)))
    other = reader.arrays(pq.read_table(paths[1]).select(list(VALIDATION_COLUMNS)))
    everything = {k: np.concatenate([everything[k], other[k]]) for k in everything}
    out = net.predict({k: everything[k] for k in ("token_ids", "shape")}, verbose=0)
    sums, truth = {}, {}
    for w, (doc, start, valid) in enumerate(zip(everything["doc_id"], everything["start"],
                                                 everything["n_valid"])):
        for i in range(valid):
            key = (doc, start + i)
            sums.setdefault(key, []).append(out[w, i])
            truth[key] = everything["y"][w, i]
    lines = [k for k in sums if truth[k].max() > 0]
    pred = [int(np.argmax(np.mean(sums[k], axis=0))) for k in lines]
    true = [int(np.argmax(truth[k])) for k in lines]
    expected = f1_score(true, pred, labels=[0, 1, 2], average=None, zero_division=0)
    assert record["val_lines"] == len(lines) < sum(len(v) for v in sums.values())
    assert [record[f"val_f1_{lab}"] for lab in LABELS] == pytest.approx(list(expected))
    assert record["val_focal_macro_f1"] == pytest.approx(np.mean(expected[:2]))
    whole = float(loss(everything["y"], out, sample_weight=everything["mask"]))
    assert record["val_loss"] == pytest.approx(whole, rel=1e-5)


def test_peak_rss_is_the_process_high_water_mark():
    import psutil

    from focalseq.training.remote import peak_rss_mb

    before = peak_rss_mb()
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MB, touched
    now = psutil.Process().memory_info().rss / 2 ** 20
    assert peak_rss_mb() >= now - 1
    assert peak_rss_mb() >= before
    del block


def test_optimizer_state_survives_a_checkpoint_round_trip():
    import tensorflow as tf

    from focalseq.training.remote import _load_optimizer, _optimizer_bytes, build_plain_network

    spec = {"dims": {"window": W, "max_tokens": K, "n_shape": F, "labels": LABELS,
                     "multi_label": False},
            "network": {"vocab_size": 64, "embedding_dim": 8, "hidden_size": 8}}
    x = {"token_ids": np.ones((4, W, K), np.int32), "shape": np.ones((4, W, F), np.float32)}
    y = np.eye(3, dtype=np.float32)[np.zeros((4, W), int)]

    def compiled():
        net = build_plain_network(spec)
        net.compile(optimizer=tf.keras.optimizers.legacy.Adam(0.01), loss="categorical_crossentropy")
        return net

    a = compiled()
    a.fit(x, y, epochs=3, verbose=0)
    b = compiled()
    _load_optimizer(b, _optimizer_bytes(a.optimizer))
    assert int(b.optimizer.iterations.numpy()) == 3
    for wa, wb in zip(a.optimizer.get_weights(), b.optimizer.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_log_mlflow_writes_one_epoch_to_a_sqlite_store(tmp_path):
    from mlflow.tracking import MlflowClient

    from focalseq.training.remote import log_mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("units", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment)
    spec = {"tracking_uri": uri, "mlflow_run_id": run.info.run_id}
    record = {"epoch": 2, "epochs": 5, "loss": 0.25, "val_loss": float("nan"),
              "val_f1_Misc-exposition": 0.75, "seconds": 3.5}
    log_mlflow(spec, record, 2)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics == {"train_loss": 0.25, "val_f1_Misc-exposition": 0.75, "epoch_seconds": 3.5}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [2]
    log_mlflow({"tracking_uri": None, "mlflow_run_id": None}, record, 3)  # no run: no-op


# Progress lines ------------------------------------------------------------------------


def test_format_epoch_shows_focal_f1_and_time():
    record = {"epoch": 1, "epochs": 4, "loss": 0.123456, "val_loss": 0.5,
              "val_f1_Nomenclature": 0.8125, "val_f1_Description": 0.5,
              "val_f1_Misc-exposition": 0.99, "seconds": 12.34}
    assert format_epoch(record, ["Nomenclature", "Description"]) == (
        "epoch 2/4 | loss 0.1235 | val_loss 0.5000 | "
        "val F1 Nomenclature 0.812, Description 0.500 | 12.3s")
    assert format_epoch({"epoch": 0, "epochs": 1, "loss": 1.0, "seconds": 0.04}) == \
        "epoch 1/1 | loss 1.0000 | 0.0s"


def test_progress_tail_logs_each_record_once(tmp_path, caplog):
    from focalseq.training.launch import ProgressTail
    from focalseq.training.run_store import RunStore

    store = RunStore(str(tmp_path))
    path = store.progress_path("r")
    store.append_line(path, json.dumps({"epoch": 0, "epochs": 3, "loss": 1.0, "seconds": 1}))
    tail = ProgressTail(store, "r", None, period=3600)  # records before the run: not logged
    caplog.set_level(logging.INFO, logger="focalseq.training.launch")
    with tail:
        store.append_line(path, json.dumps({"epoch": 1, "epochs": 3, "loss": 0.5, "seconds": 1}))
        tail.poll()
        tail.poll()
        store.append_line(path, json.dumps({"epoch": 2, "epochs": 3, "loss": 0.25,
                                            "seconds": 1}))
    lines = [r.getMessage() for r in caplog.records if "| loss" in r.getMessage()]
    # Epochs 1 and 2 took 1 s each: about 1 s left after epoch 2, nothing after the last.
    assert lines == ["run r: epoch 2/3 | loss 0.5000 | 1.0s, about 1s left",
                     "run r: epoch 3/3 | loss 0.2500 | 1.0s"]


def test_cpu_threads_share_the_host():
    from focalseq.training.remote import cpu_threads

    cpus = len(os.sched_getaffinity(0))
    assert cpu_threads(1) == cpus
    assert cpu_threads(cpus) == 1
    assert cpu_threads(4 * cpus) == 1
    assert cpu_threads(2) == max(1, math.floor(cpus / 2))


def test_deduplicated_sparse_gradients_give_the_same_update():
    """Summing an embedding gradient's repeated rows before it is sent changes nothing."""
    import tensorflow as tf

    from focalseq.training.remote import _deduplicating, sum_duplicate_rows

    grad = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
                            tf.constant([4, 0, 4, 4]), tf.constant([6, 2]))
    dedup = sum_duplicate_rows(grad)
    assert sorted(zip(dedup.indices.numpy().tolist(), dedup.values.numpy().tolist())) == \
        [(0, [3.0, 4.0]), (4, [13.0, 16.0])]  # rows of id 4: 1+5+7, 2+6+8

    def trained(optimizer_class):
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((5,), dtype="int32"),
                                     tf.keras.layers.Embedding(10, 3),
                                     tf.keras.layers.GlobalAveragePooling1D(),
                                     tf.keras.layers.Dense(2)])
        model.compile(optimizer=optimizer_class(0.1), loss="mse")
        x = np.array([[1, 1, 2, 0, 0], [3, 3, 3, 1, 0]], np.int32)
        model.fit(x, np.ones((2, 2), np.float32), epochs=3, verbose=0)
        return model.get_weights()

    deduplicating = _deduplicating(tf.keras.optimizers.legacy.Adam)
    assert deduplicating.__name__ == "Adam"
    for a, b in zip(trained(tf.keras.optimizers.legacy.Adam), trained(deduplicating)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
