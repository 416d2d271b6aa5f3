"""Training throughput: the distributed BiLSTMEstimator against an in-memory Keras fit.

    .venv/bin/python benchmarks/train_throughput.py                       # synthetic, ~100k lines
    .venv/bin/python benchmarks/train_throughput.py --data /work/shared/data/skol

Everything is measured in one run, on the same windows and the same network
(`focalseq.training.network.build_network` with conf/default.yaml's sizes, cross-entropy,
Adam):

* in-memory: one process, the windows as numpy arrays, `model.fit(x, y,
  sample_weight=mask, batch_size=B)`, TensorFlow's default threads (all CPUs).
* estimator: `BiLSTMEstimator.fit` on local Spark (local[2]) with 1 or 2 Horovod workers,
  each reading its petastorm shard; `batchSize` is per worker (Horovod's convention; the
  global batch is workers x batchSize and the learning rate is scaled alike).
* estimator on the standalone cluster (`--cluster`, the default): the same fit with 2
  workers from a driver of its own (a child process) on `focalseq.local_cluster`, a
  master and two worker hosts in network namespaces (one core each), the windows and the
  run store read and written as ``file://`` URLs. Where namespaces cannot be made the
  cluster runs on loopback and the row says so.

Windows/second are steady-state: the median over epochs 2..E of windows trained in the
epoch / seconds of the epoch. For the estimator the epoch time is rank 0's
`train_seconds` from the progress records (from the start of the epoch to the end of its
last step, both ranks in lockstep); the per-epoch checkpoint (`seconds`) and the job's
start-up (Spark tasks, TensorFlow import, reading the shard) are printed separately, not
included. For Keras it is the time between on_epoch_begin and on_epoch_end.

On a shared machine the wall-clock figures move with other processes' load (printed
before and after); windows per CPU-second (all processes of a side together, same epochs)
are printed too, as a load-independent view of the overhead of distribution.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A sibling module: `python benchmarks/<name>.py` puts this folder first on sys.path.
import _throughput  # noqa: E402


def in_memory(data, dims, net_kwargs, batch, epochs, lr) -> dict:
    """Steady-state windows/second of a plain Keras fit on numpy arrays."""
    import tensorflow as tf

    from focalseq.losses import build_loss
    from focalseq.training.network import build_network

    tf.keras.utils.set_random_seed(0)
    net = build_network(dims["window"], dims["max_tokens"], dims["n_shape"],
                        len(dims["labels"]), multi_label=dims["multi_label"], **net_kwargs)
    net.compile(optimizer=tf.keras.optimizers.legacy.Adam(lr),
                loss=build_loss("cross_entropy", {}, dims["labels"]))
    times, cpu = [], []
    n = len(data["mask"])
    net.fit({"token_ids": data["token_ids"], "shape": data["shape"]}, data["y"],
            sample_weight=data["mask"], batch_size=batch, epochs=epochs, verbose=0,
            callbacks=[_throughput.epoch_timer(times, cpu)])
    steady = statistics.median(times[1:])
    return {"windows_per_s": n / steady, "epoch_s": steady, "epochs": times,
            "windows_per_cpu_s": n / statistics.median(cpu[1:])}


def estimator(windows, args, workers, batch, store) -> dict:
    """Steady-state windows/second of BiLSTMEstimator.fit from its progress records."""
    from focalseq.stages.bilstm import BiLSTMEstimator

    cfg = args.cfg
    t = cfg.train
    est = BiLSTMEstimator(
        vocabSize=cfg.features.vocab_size, embeddingDim=t.embedding_dim,
        hiddenSize=t.hidden_size, encoder=t.encoder, numLayers=t.num_layers,
        dropout=t.dropout, recurrentDropout=t.recurrent_dropout, epochs=args.epochs,
        batchSize=batch, learningRate=args.lr, loss="cross_entropy", numProc=workers,
        storePath=store, seed=0)
    started = time.perf_counter()
    model = est.fit(windows)
    wall = time.perf_counter() - started
    history = model.training_summary["history"]
    steady = statistics.median(r["train_seconds"] for r in history[1:])
    per_epoch = history[-1]["windows"]
    checkpoint = statistics.median(r["seconds"] - r["train_seconds"] for r in history[1:])
    trained = sum(r["seconds"] for r in history)
    cpu = statistics.median(r["train_cpu_seconds"] for r in history[1:])
    return {"windows_per_s": per_epoch / steady, "epoch_s": steady, "checkpoint_s": checkpoint,
            "windows_per_cpu_s": per_epoch / cpu,
            "startup_s": wall - trained, "wall_s": wall, "windows": per_epoch,
            "epochs": [r["train_seconds"] for r in history]}


CLUSTER_DIR = "/tmp/focalseq-throughput-cluster"


def on_cluster(folder, args, batch) -> dict:
    """The 2-worker estimator on a fresh local standalone cluster, driven by a child
    process (one SparkContext per process); its figures, plus the cluster's mode."""
    import json
    import subprocess
    import sys

    from focalseq.local_cluster import LocalCluster

    cluster = LocalCluster(CLUSTER_DIR)
    state = cluster.start()
    try:
        job = {"spark_conf": state.spark_conf(), "folder": f"file://{folder}",
               "store": f"file://{args.store}-cluster", "batch": batch,
               "epochs": args.epochs, "lr": args.lr, "lines": args.lines, "data": args.data,
               "cache": args.cache}
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--cluster-child",
                               json.dumps(job)], capture_output=True, text=True, timeout=3600)
    finally:
        cluster.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"the cluster run failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["mode"] = state.mode
    return result


def cluster_child(job_json: str) -> None:
    """Runs in the child: the estimator on the cluster; prints its figures as JSON."""
    import json

    from focalseq.pipelines.session import get_spark

    job = json.loads(job_json)
    conf = dict(job["spark_conf"])
    spark = get_spark(conf.pop("spark.master"), "focalseq-throughput-cluster", conf)
    args = argparse.Namespace(epochs=job["epochs"], lr=job["lr"], lines=job["lines"],
                              data=job["data"], cache=job["cache"])
    args.cfg = _throughput.config(args)
    windows = spark.read.parquet(job["folder"]).drop("split")
    result = estimator(windows, args, 2, job["batch"], job["store"])
    spark.stop()
    print(json.dumps(result))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _throughput.add_data_args(p)
    p.add_argument("--batch", type=int, default=32, help="batch size B (default 32)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per measurement (>= 2)")
    p.add_argument("--more-batches", type=int, nargs="*", default=[64, 128],
                   help="further per-process batch sizes at which to measure only in-memory "
                        "vs 2 workers (the cost of a step's allreduce is fixed, so the "
                        "ratio depends on the batch)")
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--store", default="/tmp/focalseq-throughput-store")
    p.add_argument("--no-cluster", dest="cluster", action="store_false",
                   help="skip the run on the local standalone cluster")
    p.add_argument("--cluster-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cluster_child:
        return cluster_child(args.cluster_child)
    if args.epochs < 2:
        p.error("--epochs: need at least 2 (the first epoch is excluded)")

    from focalseq.stages.windows import read_window_metadata

    spark = _throughput.session()
    windows, folder, args.cfg, lines = _throughput.windows(spark, args)
    dims = read_window_metadata(windows)
    data = _throughput.numpy_windows(folder, dims)
    n = len(data["mask"])
    net_kwargs = _throughput.network_kwargs(args.cfg)
    B = args.batch
    print(f"data: {args.data or 'synthetic'}; {lines} lines, {n} windows of {dims['window']} "
          f"lines x {dims['max_tokens']} tokens; network {net_kwargs}")
    print(_throughput.load_average())

    # Interleaved, so that a change in the machine's load hits both sides alike.
    results = {}
    results["mem_B"] = in_memory(data, dims, net_kwargs, B, args.epochs, args.lr)
    results["est2_B"] = estimator(windows, args, 2, B, args.store)
    results["mem_2B"] = in_memory(data, dims, net_kwargs, 2 * B, args.epochs, args.lr)
    results["est1_B"] = estimator(windows, args, 1, B, args.store)
    results["est2_halfB"] = estimator(windows, args, 2, B // 2, args.store)
    print(_throughput.load_average())

    rows = [("in-memory Keras fit, 1 process, batch B", "mem_B"),
            ("in-memory Keras fit, 1 process, batch 2B", "mem_2B"),
            ("estimator, 1 worker x batch B", "est1_B"),
            ("estimator, 2 workers x batch B (global 2B)", "est2_B"),
            ("estimator, 2 workers x batch B/2 (global B)", "est2_halfB")]
    print(f"\nsteady-state training throughput, B = {B}, epochs 2..{args.epochs}")
    print(f"{'':48s} {'windows/s':>10s} {'epoch s':>8s} {'windows/cpu-s':>13s} "
          f"{'ckpt s':>7s} {'startup s':>9s}")
    for name, key in rows:
        r = results[key]
        extra = (f"{r['checkpoint_s']:7.2f} {r['startup_s']:9.1f}" if "checkpoint_s" in r
                 else f"{'':7s} {'':9s}")
        print(f"{name:48s} {r['windows_per_s']:10.0f} {r['epoch_s']:8.2f} "
              f"{r['windows_per_cpu_s']:13.0f} {extra}")
    w = {k: r["windows_per_s"] for k, r in results.items()}
    print("\nratios (goal: distributed >= 0.9 x in-memory)")
    print(f"  2 workers x B  / in-memory B   (same batch per process): "
          f"{w['est2_B'] / w['mem_B']:.2f}")
    print(f"  2 workers x B  / in-memory 2B  (same global batch):      "
          f"{w['est2_B'] / w['mem_2B']:.2f}")
    print(f"  2 workers x B/2 / in-memory B  (same global batch):      "
          f"{w['est2_halfB'] / w['mem_B']:.2f}")
    print(f"  2 workers / 1 worker (batch B each):                    "
          f"{w['est2_B'] / w['est1_B']:.2f}")
    c = {k: r["windows_per_cpu_s"] for k, r in results.items()}
    print("CPU efficiency (windows per CPU-second; independent of other processes' load)")
    print(f"  2 workers x B / in-memory B: {c['est2_B'] / c['mem_B']:.2f}; 2 workers x B / "
          f"in-memory 2B: {c['est2_B'] / c['mem_2B']:.2f}")

    if args.cluster:
        # After the local runs: the cluster's daemons would take the cores they measure.
        mem = in_memory(data, dims, net_kwargs, B, args.epochs, args.lr)
        r = on_cluster(folder, args, B)
        hosts = ("2 worker hosts (network namespaces)" if r["mode"] == "namespaces" else
                 "2 workers on LOOPBACK (no namespaces here: one host)")
        print(f"\nstandalone cluster, {hosts}, 1 core each; epochs 2..{args.epochs}")
        print(f"{'in-memory Keras fit, 1 process, batch B (again)':48s} "
              f"{mem['windows_per_s']:10.0f} {mem['epoch_s']:8.2f}")
        print(f"{'estimator on the cluster, 2 workers x batch B':48s} "
              f"{r['windows_per_s']:10.0f} {r['epoch_s']:8.2f} {r['windows_per_cpu_s']:13.0f} "
              f"{r['checkpoint_s']:7.2f} {r['startup_s']:9.1f}")
        print(f"  cluster 2 workers x B / in-memory B (goal >= 0.9): "
              f"{r['windows_per_s'] / mem['windows_per_s']:.2f}")
        print(_throughput.load_average())

    if args.more_batches:
        print("\nby batch size (per process): in-memory batch b vs 2 workers x batch b")
        print(f"{'b':>5s} {'in-memory w/s':>14s} {'2 workers w/s':>14s} {'ratio':>6s}")
        print(f"{B:5d} {w['mem_B']:14.0f} {w['est2_B']:14.0f} {w['est2_B'] / w['mem_B']:6.2f}")
        for b in args.more_batches:
            mem = in_memory(data, dims, net_kwargs, b, args.epochs, args.lr)["windows_per_s"]
            est = estimator(windows, args, 2, b, args.store)["windows_per_s"]
            print(f"{b:5d} {mem:14.0f} {est:14.0f} {est / mem:6.2f}", flush=True)
        print(_throughput.load_average())
    spark.stop()


if __name__ == "__main__":
    main()
