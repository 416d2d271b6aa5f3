"""What a Horovod step costs on this machine: the training-throughput gap, taken apart.

    .venv/bin/python benchmarks/horovod_step_cost.py            # synthetic windows, ~5 min

The same network, windows and optimizer as benchmarks/train_throughput.py, outside Spark,
each side a fresh process:

* in-memory: one process, TensorFlow's default threads (both cores), `fit` at batch b;
* 2 ranks, no sync: `horovodrun -np 2`, one thread each, every rank fitting half the
  windows with its own optimizer (what data parallelism would give for free);
* 2 ranks, Horovod: the same with `hvd.DistributedOptimizer` (deduplicated sparse
  embedding gradients allgathered, dense ones allreduced: three collectives a step);
* 2 ranks, packed: the estimator's CPU setting, every gradient in one allgather a step
  (`focalseq.training.packed`).

Each at batch 32 and 128 per process, with the token embedding trained (as in the product)
and frozen (no embedding update or allgather: only ~30k dense gradient values to
allreduce). "sync ms/step" is the extra wall time per step of the Horovod and the packed
sides over the no-sync side. HOROVOD_CYCLE_TIME is 1 ms (the estimator's) unless set. Windows/second are the median over epochs 2..E.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fit(folder, dims, net_kwargs, batch, epochs, sync, frozen) -> dict:
    """One process's fit; under horovodrun each rank takes its half of the windows."""
    import numpy as np
    import tensorflow as tf

    import _throughput  # a sibling module: this script's folder is sys.path[0]
    from focalseq.losses import build_loss
    from focalseq.training.network import build_network
    from focalseq.training.remote import _deduplicating

    rank, size, hvd = 0, 1, None
    if sync != "memory":
        import horovod.tensorflow.keras as hvd

        hvd.init()
        rank, size = hvd.rank(), hvd.size()
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    data = _throughput.numpy_windows(folder, dims)
    n = len(data["mask"]) // size
    part = slice(rank * n, rank * n + n)
    tf.keras.utils.set_random_seed(0)
    net = build_network(dims["window"], dims["max_tokens"], dims["n_shape"],
                        len(dims["labels"]), multi_label=dims["multi_label"], **net_kwargs)
    if frozen:
        net.get_layer("token_embedding").trainable = False
    opt = _deduplicating(tf.keras.optimizers.legacy.Adam)(0.003)
    if sync == "horovod":
        opt = hvd.DistributedOptimizer(opt)
    elif sync == "packed":
        from focalseq.training.packed import one_collective

        opt = one_collective(_deduplicating(tf.keras.optimizers.legacy.Adam), hvd)(0.003)
    net.compile(optimizer=opt, loss=build_loss("cross_entropy", {}, dims["labels"]))
    times = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    net.fit({"token_ids": data["token_ids"][part], "shape": data["shape"][part]},
            data["y"][part], sample_weight=data["mask"][part], batch_size=batch,
            epochs=epochs, verbose=0, callbacks=[Timer()])
    steady = statistics.median(times[1:])
    steps = n // batch + (n % batch > 0)
    return {"windows_per_s": float(np.float64(n * size / steady)),
            "step_ms": 1000 * steady / steps}


def run(args, sync, batch, frozen) -> dict:
    """`fit` in a fresh process (two ranks under horovodrun unless in-memory)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--role", sync, "--folder", args.folder,
           "--batch", str(batch), "--epochs", str(args.epochs)] + (["--frozen"] if frozen else [])
    if sync != "memory":
        cmd = [os.path.join(os.path.dirname(sys.executable), "horovodrun"), "-np", "2"] + cmd
    env = dict(os.environ, HOROVOD_CYCLE_TIME=os.environ.get("HOROVOD_CYCLE_TIME", "1"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in out.stdout.splitlines():
        if "RESULT " in line:
            return json.loads(line.split("RESULT ", 1)[1])
    sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default=None, help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    p.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=4, help="epochs per measurement (>= 2)")
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    import _throughput

    _throughput.add_data_args(p)
    args = p.parse_args(argv)

    from focalseq.stages.windows import read_window_metadata

    if args.role:  # a measuring process
        spark_free_dims = json.loads(os.environ["FOCALSEQ_BENCH_DIMS"])
        result = fit(args.folder, spark_free_dims["dims"], spark_free_dims["net"], args.batch,
                     args.epochs, args.role, args.frozen)
        if args.role == "memory" or int(os.environ.get("HOROVOD_RANK", "0")) == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return

    spark = _throughput.session()
    windows, args.folder, cfg, lines = _throughput.windows(spark, args)
    dims = read_window_metadata(windows)
    spark.stop()
    net_kwargs = _throughput.network_kwargs(cfg)
    os.environ["FOCALSEQ_BENCH_DIMS"] = json.dumps({"dims": dims, "net": net_kwargs})
    print(f"data: {args.data or 'synthetic'}; {lines} lines; network {net_kwargs}")
    print(_throughput.load_average())
    print(f"\n{'embedding':10s} {'b':>4s} {'in-memory':>10s} {'2 no sync':>10s} "
          f"{'2 Horovod':>10s} {'2 packed':>10s} {'nosync/mem':>10s} {'Horovod/mem':>11s} "
          f"{'packed/mem':>10s} {'sync ms/step Horovod, packed':>29s}")
    for frozen in (False, True):
        for b in args.batches:
            mem = run(args, "memory", b, frozen)
            free = run(args, "none", b, frozen)
            hvd = run(args, "horovod", b, frozen)
            one = run(args, "packed", b, frozen)
            m = mem["windows_per_s"]
            print(f"{'frozen' if frozen else 'trained':10s} {b:4d} {m:10.0f} "
                  f"{free['windows_per_s']:10.0f} {hvd['windows_per_s']:10.0f} "
                  f"{one['windows_per_s']:10.0f} {free['windows_per_s'] / m:10.2f} "
                  f"{hvd['windows_per_s'] / m:11.2f} {one['windows_per_s'] / m:10.2f} "
                  f"{hvd['step_ms'] - free['step_ms']:20.1f}, "
                  f"{one['step_ms'] - free['step_ms']:.1f}", flush=True)
    print(_throughput.load_average())


if __name__ == "__main__":
    main()
