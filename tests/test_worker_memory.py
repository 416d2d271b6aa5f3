"""A Horovod worker's memory does not grow with its shard (issue 16).

Two real 2-rank fits through BiLSTMEstimator on synthetic windows, one set four times the
other (about 40 MB and 160 MB as numpy arrays, a fifth of each for validation). Each
rank's peak resident memory is measured in the worker process (getrusage) and the
largest reaches the progress record. A worker that loaded its shard whole would peak
well over 100 MB higher on the larger set (its share alone is 64 MB of arrays, plus the
copies made while stacking them); a streaming worker holds a few row groups.
"""
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

W, K, N_SHAPE, LABELS, VOCAB = 16, 32, 4, ["A", "B", "C"], 512
SMALL = 16_000  # windows; about 2.5 kB each as numpy arrays


def _window_set(spark, n_windows):
    """`n_windows` synthetic windows (8 a document, stride 8), a fifth for validation.

    Built in the JVM from row ids, so making them costs little next to the fit.
    """
    from pyspark.sql import functions as F

    from focalseq.stages.windows import META_KEY, window_metadata

    L = len(LABELS)
    doc = (F.col("id") / 8).cast("long")
    rows = spark.range(n_windows).select(
        F.concat(F.lit("d"), doc.cast("string")).alias("doc_id"),
        F.when(F.pmod(doc, 5) == 0, "validation").otherwise("train").alias("split"),
        (F.pmod(F.col("id"), 8) * 8).cast("int").alias("start"),
        F.lit(W).alias("n_valid"),
        F.expr(f"transform(sequence(1, {W * K}), "
               f"i -> cast(pmod(xxhash64(id, i), {VOCAB}) as int))").alias("token_ids"),
        F.expr(f"transform(sequence(1, {W * N_SHAPE}), "
               f"i -> cast(pmod(xxhash64(id, i, 7), 100) / 100.0 as float))").alias("shape"),
        F.expr(f"transform(sequence(0, {W * L - 1}), i -> cast(if(pmod(pmod(id, 8) * 8 + "
               f"div(i, {L}), {L}) = pmod(i, {L}), 1.0, 0.0) as float))").alias("y"),
        F.expr(f"array_repeat(cast(1.0 as float), {W})").alias("mask"))
    meta = window_metadata(LABELS, W, 8, K, N_SHAPE, False)
    for col in ("token_ids", "shape", "y", "mask"):
        rows = rows.withMetadata(col, {META_KEY: meta})
    return rows


def _fit(spark, n_windows, store):
    from focalseq.stages.bilstm import BiLSTMEstimator

    est = BiLSTMEstimator(hiddenSize=8, embeddingDim=8, vocabSize=VOCAB, epochs=1,
                          batchSize=256, learningRate=0.01, loss="cross_entropy",
                          numProc=2, storePath=store, runId=f"memory-{n_windows}", seed=0,
                          rowGroupBytes=512 * 1024)
    return est.fit(_window_set(spark, n_windows)).training_summary


def test_a_workers_peak_memory_is_flat_when_its_shard_grows_fourfold(spark, tmp_path):
    small = _fit(spark, SMALL, str(tmp_path / "store"))
    large = _fit(spark, 4 * SMALL, str(tmp_path / "store"))
    s, b = small["history"][-1], large["history"][-1]
    # The larger run did train on four times the windows and validated on its fifth.
    assert b["windows"] / s["windows"] == pytest.approx(4, rel=0.05)
    assert b["val_lines"] == pytest.approx(4 * s["val_lines"], rel=0.05)
    ratio = b["worker_peak_rss_mb"] / s["worker_peak_rss_mb"]
    assert ratio < 1.15, (f"worker peak memory {s['worker_peak_rss_mb']} MB -> "
                          f"{b['worker_peak_rss_mb']} MB (x{ratio:.2f}) for 4x the windows")
