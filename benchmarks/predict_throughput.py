"""Prediction throughput: BiLSTMModel.transform against in-memory Keras predict.

    .venv/bin/python benchmarks/predict_throughput.py                     # synthetic, ~1M lines
    .venv/bin/python benchmarks/predict_throughput.py --data /work/shared/data/skol

Both sides run the same network (conf/default.yaml's sizes; its weights do not change the
speed) over the same windows, and both end with one probability vector per line, the
windows that overlap a line averaged:

* transform: `BiLSTMModel.transform(spark.read.parquet(windows))` on local Spark
  (local[2]), written to the "noop" sink so that every line is computed; it includes
  reading the windows' Parquet, the network in each Python worker, the in-batch averaging
  and the groupBy that merges lines whose windows sit in different batches; and again
  with `groupedInput=True` (the inference pipeline's setting), where the Python pass
  averages every line itself and no shuffle follows. Each twice: with the JVM reading
  the Parquet and handing rows over as Arrow (`directRead=False`), and with the Python
  workers reading the files themselves (`directRead=True`, the default).
* in-memory: the windows already in numpy arrays, `model.predict(batch_size=B)` in one
  process (TensorFlow's default threads), then the same averaging with numpy.

Lines/second are the median over ``--repeat`` runs after a first run that loads
TensorFlow and the network in the Spark Python workers (printed separately).
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A sibling module: `python benchmarks/<name>.py` puts this folder first on sys.path.
import _throughput  # noqa: E402


def build(dims, net_kwargs, folder):
    import tensorflow as tf

    from focalseq.training.network import build_network

    tf.keras.utils.set_random_seed(0)
    net = build_network(dims["window"], dims["max_tokens"], dims["n_shape"],
                        len(dims["labels"]), multi_label=dims["multi_label"], **net_kwargs)
    path = os.path.join(folder, "network.keras")
    net.save(path)
    with open(path, "rb") as fh:
        return net, fh.read()


def average_lines(probs, data):
    """Mean probability per (doc_id, line_idx) over the windows covering the line."""
    import numpy as np

    valid = data["n_valid"].astype(np.int64)
    win = np.repeat(np.arange(len(valid)), valid)
    offset = np.arange(len(win)) - np.repeat(np.cumsum(valid) - valid, valid)
    _, doc = np.unique(data["doc_id"], return_inverse=True)
    line = data["start"].astype(np.int64)[win] + offset
    _, index = np.unique(doc[win] * (line.max() + 1) + line, return_inverse=True)
    counts = np.bincount(index)
    p = probs[win, offset]
    return np.stack([np.bincount(index, weights=p[:, j]) / counts
                     for j in range(p.shape[1])], 1)


def in_memory(net, data, batch, repeat) -> dict:
    times, lines = [], 0
    for _ in range(repeat + 1):
        started = time.perf_counter()
        probs = net.predict({"token_ids": data["token_ids"], "shape": data["shape"]},
                            batch_size=batch, verbose=0)
        lines = len(average_lines(probs, data))
        times.append(time.perf_counter() - started)
    return {"lines": lines, "first_s": times[0], "steady_s": statistics.median(times[1:])}


def transform(model, windows, repeat) -> dict:
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        model.transform(windows).write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - started)
    return {"lines": model.transform(windows).count(), "first_s": times[0],
            "steady_s": statistics.median(times[1:])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _throughput.add_data_args(p)
    # A million lines: at 100k the fixed cost of a Spark job (about a second) dominates.
    p.set_defaults(lines=1_000_000)
    p.add_argument("--batch", type=int, default=512, help="windows per network call")
    p.add_argument("--arrow-batch", type=int, default=None,
                   help="spark.sql.execution.arrow.maxRecordsPerBatch (default: Spark's)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs after the first")
    p.add_argument("--work", default="/tmp/focalseq-predict-throughput")
    args = p.parse_args(argv)

    from focalseq.stages.bilstm import BiLSTMModel
    from focalseq.stages.windows import read_window_metadata

    spark = _throughput.session()
    if args.arrow_batch:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.arrow_batch))
    windows, folder, cfg, lines = _throughput.windows(spark, args)
    dims = read_window_metadata(windows)
    data = _throughput.numpy_windows(folder, dims)
    os.makedirs(args.work, exist_ok=True)
    net, network_bytes = build(dims, _throughput.network_kwargs(cfg), args.work)
    model = BiLSTMModel(labels=dims["labels"], batchSize=args.batch)
    model._network_bytes = network_bytes
    print(f"data: {args.data or 'synthetic'}; {lines} lines, {len(data['mask'])} windows "
          f"({dims['window']} lines, stride {dims['stride']}) in "
          f"{windows.rdd.getNumPartitions()} partitions; predict batch {args.batch}, Arrow "
          f"batch {spark.conf.get('spark.sql.execution.arrow.maxRecordsPerBatch')}")
    print(_throughput.load_average())
    # The windows were prepared per file, so each document's windows sit together in
    # one partition: groupedInput=True skips the merge shuffle on trust (and fails if
    # wrong); the default path (Python reads Parquet) finds it out by a look at the keys.
    default = "BiLSTMModel.transform, the default (Python reads Parquet)"
    variants = [("BiLSTMModel.transform, local[2], JVM reads Parquet", False, False),
                ("  the same, groupedInput=True (no shuffle)", True, False),
                (default, False, True),
                ("  the same, groupedInput=True", True, True)]
    runs = []
    for name, grouped, direct in variants:
        variant = model.copy({model.groupedInput: grouped, model.directRead: direct})
        runs.append((name, transform(variant, windows, args.repeat)))
    memory = in_memory(net, data, args.batch, args.repeat)
    print(_throughput.load_average())
    counts = {name: r["lines"] for name, r in runs}
    if set(counts.values()) != {memory["lines"]}:
        sys.exit(f"line counts differ: {counts}, in-memory {memory['lines']}")
    n = memory["lines"]
    print(f"\nprediction throughput over {n} lines (median of {args.repeat} runs)")
    for name, r in runs + [("in-memory model.predict + numpy averaging", memory)]:
        print(f"  {name:52s} {n / r['steady_s']:9.0f} lines/s  ({r['steady_s']:.2f}s; first "
              f"run {r['first_s']:.2f}s)")
    print("ratios transform / in-memory:")
    for name, r in runs:
        print(f"  {name.strip():52s} {memory['steady_s'] / r['steady_s']:.2f}")
    ratio = memory["steady_s"] / dict(runs)[default]["steady_s"]
    print(f"default path: {ratio:.2f} x in-memory (goal >= 0.85: "
          f"{'met' if ratio >= 0.85 else 'NOT met'})")
    spark.stop()


if __name__ == "__main__":
    main()
