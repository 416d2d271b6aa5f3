"""A Horovod worker's resident memory over training steps, by gradient collective.

    .venv/bin/python benchmarks/worker_memory.py                  # ~15 min, both collectives
    .venv/bin/python benchmarks/worker_memory.py --collective allgather \
        --env TF_CPU_ALLOCATOR_USE_BFC=true                       # TensorFlow's allocator

Two ranks (`horovod.runner.run`, Gloo, one thread each) train the estimator's network
(`focalseq.training.remote._build_model`: the same optimizer and gradient averaging as a
fit) on synthetic windowed Parquet streamed as a fit streams it
(`focalseq.training.streaming`), several epochs, with a fit's Horovod and thread
settings (`remote._init_horovod`), and each rank prints its VmRSS and VmHWM
after every epoch. Memory that is flat in corpus size must also be flat in the number of
steps: a worker of a 10x larger corpus trains 10x more steps per epoch
(benchmarks/scale.py). The last line gives each variant's growth of the high-water mark
per 1,000 steps after the first epoch, the larger rank's.

`--env KEY=VALUE` sets a variable in the ranks' environment before TensorFlow allocates:
`--env TF_CPU_ALLOCATOR_USE_BFC=true` gives TensorFlow's CPU tensors to its own pooling
allocator instead of glibc's malloc (docs/training.md). `--mmap-threshold BYTES` fixes
glibc's mmap threshold in the ranks (mallopt M_MMAP_THRESHOLD), which glibc otherwise
raises to the largest block freed so far: experiments on where the growth comes from.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DIMS = {"window": 16, "max_tokens": 24, "n_shape": 21, "labels": ["a", "b", "c"],
        "multi_label": False}
BATCH = 32


def write_windows(folder: str, windows: int, seed: int = 0) -> None:
    """`windows` synthetic windows of DIMS's shape, 4 files of ~4 MB row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from focalseq.arrow_columns import list_array

    W, K, F, L = DIMS["window"], DIMS["max_tokens"], DIMS["n_shape"], len(DIMS["labels"])
    rng = np.random.default_rng(seed)
    per_file = windows // 4
    for f in range(4):
        y = np.eye(L, dtype=np.float32)[rng.integers(0, L, (per_file, W))]
        # Word ids as text has them (Zipf-distributed: a batch repeats its common words),
        # so a step's sparse embedding gradient has the size a real batch gives it.
        token_ids = np.minimum(rng.zipf(1.3, (per_file, W * K)), 32767)
        table = pa.table({
            "token_ids": list_array(token_ids.astype(np.int32)),
            "shape": list_array(rng.random((per_file, W * F), dtype=np.float32)),
            "y": list_array(y.reshape(per_file, -1)),
            "mask": list_array(np.ones((per_file, W), np.float32))})
        pq.write_table(table, os.path.join(folder, f"part-{f}.parquet"), row_group_size=1300)


def rank_main(folder: str, collective: str, epochs: int, mmap_threshold: int, env: dict):
    """One rank: train `epochs` epochs, return [(epoch, seconds, rss MB, hwm MB)]."""
    os.environ.update(env)  # before TensorFlow allocates anything
    if mmap_threshold:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, int(mmap_threshold))  # M_MMAP_THRESHOLD
    import fsspec
    import tensorflow as tf

    from focalseq.training import remote, streaming

    spec = {"dims": DIMS, "network": {"vocab_size": 32768, "embedding_dim": 48,
                                      "hidden_size": 64},
            "loss": "cross_entropy", "loss_config": {}, "label_counts": None,
            "learning_rate": 0.003, "warmup_epochs": 0, "epochs": epochs, "lr_decay": None,
            "optimizer": "adam", "collective": collective, "batch_size": BATCH,
            "clipnorm": None, "seed": 0, "threads_per_worker": 1}
    hvd = remote._init_horovod(spec)  # a fit's own Horovod and thread settings
    fs = fsspec.filesystem("file")
    groups = streaming.row_groups(fs, streaming.parquet_files(fs, folder))
    steps, batch = streaming.equal_steps(groups, hvd.size(), BATCH)
    model, _ = remote._build_model(hvd, spec, steps)
    batches = streaming.training_batches(
        streaming.WindowReader(fs, DIMS), streaming.shard(groups, hvd.rank(), hvd.size()),
        batch, steps, 0, hvd.rank())
    records = []

    class Record(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            status = {line.split(":")[0]: int(line.split()[1]) / 1024
                      for line in open("/proc/self/status")
                      if line.startswith(("VmRSS", "VmHWM"))}
            records.append((epoch, time.perf_counter() - self.start, status["VmRSS"],
                            status["VmHWM"]))

    model.fit(remote._train_dataset(batches, batch, DIMS), epochs=epochs,
              steps_per_epoch=steps, verbose=0, callbacks=[Record()])
    return {"rank": hvd.rank(), "steps": steps, "records": records}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--collective", choices=["allgather", "allreduce", "both"], default="both")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--windows", type=int, default=52_000, help="synthetic training windows")
    p.add_argument("--mmap-threshold", type=int, default=0,
                   help="fix glibc's mmap threshold in the ranks (bytes; 0: glibc's own)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for the ranks (e.g. TF_CPU_ALLOCATOR_USE_BFC="
                        "true); repeatable")
    args = p.parse_args(argv)
    bad = [kv for kv in args.env if "=" not in kv or kv.startswith("=")]
    if bad:
        p.error(f"--env {bad[0]!r}: expected KEY=VALUE, e.g. TF_CPU_ALLOCATOR_USE_BFC=true")
    env = dict(kv.split("=", 1) for kv in args.env)
    from horovod.runner import run

    variants = ["allgather", "allreduce"] if args.collective == "both" else [args.collective]
    summary = []
    with tempfile.TemporaryDirectory(prefix="worker-memory-") as folder:
        write_windows(folder, args.windows)
        for collective in variants:
            name = collective + (f", mmap threshold {args.mmap_threshold:,}"
                                 if args.mmap_threshold else "") \
                + "".join(f", {kv}" for kv in args.env)
            print(f"== {name}: 2 ranks, {args.epochs} epochs", flush=True)
            results = run(rank_main, args=(folder, collective, args.epochs,
                                           args.mmap_threshold, env), np=2, use_gloo=True)
            growth = []
            for r in sorted(results, key=lambda r: r["rank"]):
                for epoch, seconds, rss, hwm in r["records"]:
                    print(f"  rank {r['rank']} epoch {epoch + 1}: {r['steps']} steps "
                          f"{seconds:6.1f} s  RSS {rss:6.0f} MB  peak {hwm:6.0f} MB")
                first, last = r["records"][0], r["records"][-1]
                growth.append((last[3] - first[3]) / ((len(r["records"]) - 1) * r["steps"])
                              * 1000 if len(r["records"]) > 1 else 0.0)
            summary.append(f"{name} {max(growth):+.1f} MB")
    print("worker memory per 1,000 steps after epoch 1: " + "; ".join(summary))


if __name__ == "__main__":
    sys.exit(main())
