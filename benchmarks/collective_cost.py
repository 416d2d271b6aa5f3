"""The inputs of the collective model (focalseq/training/collective_model.py), measured here.

    .venv/bin/python benchmarks/collective_cost.py            # ~2 min

* Gloo latency: 2 ranks (`horovodrun -np 2` on localhost, one thread each,
  HOROVOD_CYCLE_TIME 1 ms as in the estimator), the median time of a 1-float allreduce
  and allgather (and of 4 MB ones), each called inside a tf.function: the model's fixed
  cost of a collective of each kind (o_ar, o_ag). A network's per-hop latency cannot be
  measured on localhost; the projection assumes collective_model.DEFAULT_LATENCY.
* Bytes per step of conf/default.yaml's and conf/skol.yaml's networks: the dense
  gradients, the embedding, and the distinct embedding rows of a step (the mean over
  random batches of the config's batch size, from the synthetic corpus and the SKOL
  corpus's .ann files, hashed as the featurizer does).
* Compute per window: one process, one TensorFlow thread (a worker's share of this
  2-core machine), `fit` at the config's batch size, the median of epochs 2..4.

Then the model's projection at 8, 32 and 128 workers on 10, 25 and 100 Gbit/s networks.
Nothing here runs on more than 2 ranks or on a real network.
"""
import argparse
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A sibling module: `python benchmarks/<name>.py` puts this folder first on sys.path.
import _throughput  # noqa: E402

CONFS = {"default": os.path.join(ROOT, "conf", "default.yaml"),
         "skol": os.path.join(ROOT, "conf", "skol.yaml")}
SKOL_DATA = os.path.join(ROOT, "..", "shared", "data", "skol")
WORKERS = (8, 32, 128)
GBITS = (10, 25, 100)


def _median_call(fn, x, calls: int) -> float:
    for _ in range(20):
        fn(x)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def latency_role(calls: int):
    """Runs under horovodrun: median seconds of tiny and 4 MB collectives."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    allreduce = tf.function(lambda t: hvd.allreduce(t, op=hvd.Sum, name="bench_allreduce"))
    allgather = tf.function(lambda t: hvd.allgather(t, name="bench_allgather"))
    out = {}
    for label, n in (("tiny", 1), ("4MB", 1 << 20)):
        x = tf.ones([n], tf.float32)
        out[f"allreduce_{label}"] = _median_call(allreduce, x, calls)
        out[f"allgather_{label}"] = _median_call(allgather, x, calls)
    if hvd.rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)


def measure_latency(calls: int) -> dict:
    cmd = [os.path.join(os.path.dirname(sys.executable), "horovodrun"), "-np", "2",
           sys.executable, os.path.abspath(__file__), "--role", "latency",
           "--calls", str(calls)]
    env = dict(os.environ, HOROVOD_CYCLE_TIME=os.environ.get("HOROVOD_CYCLE_TIME", "1"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in out.stdout.splitlines():
        if "RESULT " in line:
            return json.loads(line.split("RESULT ", 1)[1])
    sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def _documents(name: str, n_docs: int):
    """Lists of line texts: the synthetic corpus, or the SKOL corpus's files."""
    if name == "default":
        from focalseq.synthetic import generate_document

        rng = random.Random(0)
        return [[text for text, _ in generate_document(rng, 150)] for _ in range(n_docs)]
    from focalseq.text.yedda import decode_bytes, parse_yedda

    files = sorted(glob.glob(os.path.join(SKOL_DATA, "*", "*", "*.ann")))
    if not files:
        sys.exit(f"no SKOL corpus under {SKOL_DATA}")
    random.Random(0).shuffle(files)
    docs = []
    for path in files[:n_docs]:
        with open(path, "rb") as fh:
            text, _ = decode_bytes(fh.read())
        docs.append([line.text for line in parse_yedda(text, path)[0]])
    return docs


def token_windows(cfg, name: str, n_docs: int):
    """(windows of token ids, shape (n, W, K)) of the config's features and windows."""
    import numpy as np

    from focalseq.text.features import TokenConfig, token_ids

    f = cfg.features
    tok = TokenConfig(vocab_size=f.vocab_size, max_tokens=f.max_tokens, words=f.words,
                      suffixes=f.suffixes, suffix_len=f.suffix_len,
                      char_ngrams=f.char_ngrams, ngram_n=f.ngram_n)
    W, S = cfg.windows.size, cfg.windows.stride
    out = []
    for doc in _documents(name, n_docs):
        ids = [token_ids(t, tok) for t in doc]
        for start in range(0, max(1, len(ids) - W + 1), S):
            rows = ids[start:start + W]
            rows += [[0] * f.max_tokens] * (W - len(rows))
            out.append(rows)
    return np.asarray(out, np.int32)


def network_figures(cfg, windows, steps: int) -> dict:
    """Gradient bytes, distinct rows a step, compute seconds per window (one thread)."""
    import numpy as np
    import tensorflow as tf

    from focalseq.losses import build_loss
    from focalseq.text.features import n_shape_features
    from focalseq.training.network import build_network
    from focalseq.training.remote import _deduplicating

    t, b = cfg.train, cfg.train.batch_size
    W, K = windows.shape[1], windows.shape[2]
    F, L = n_shape_features(cfg.features.shape_features or None), len(cfg.labels)
    tf.keras.utils.set_random_seed(0)
    net = build_network(W, K, F, L, vocab_size=cfg.features.vocab_size,
                        embedding_dim=t.embedding_dim, encoder=t.encoder,
                        hidden_size=t.hidden_size, num_layers=t.num_layers,
                        dropout=t.dropout, recurrent_dropout=t.recurrent_dropout,
                        token_dropout=t.token_dropout, skip=t.skip_connection)
    emb = net.get_layer("token_embedding").embeddings
    dense = sum(int(np.prod(v.shape)) for v in net.trainable_variables if v is not emb)
    rng = np.random.default_rng(0)
    batches = [windows[rng.choice(len(windows), b, replace=False)] for _ in range(200)]
    rows = statistics.mean(len(np.unique(x)) for x in batches)
    net.compile(optimizer=_deduplicating(tf.keras.optimizers.legacy.Adam)(0.003),
                loss=build_loss("cross_entropy", {}, list(cfg.labels)))
    n = b * steps
    x = {"token_ids": windows[rng.integers(0, len(windows), n)],
         "shape": rng.random((n, W, F), dtype=np.float32)}
    y = np.eye(L, dtype=np.float32)[rng.integers(0, L, (n, W))]
    times = []
    net.fit(x, y, sample_weight=np.ones((n, W), np.float32), batch_size=b, epochs=4,
            shuffle=False, verbose=0, callbacks=[_throughput.epoch_timer(times)])
    return {"batch": b, "window": W, "max_tokens": K, "dense_values": dense,
            "embedding_rows": int(emb.shape[0]), "embedding_dim": int(emb.shape[1]),
            "rows_per_step": rows, "rows_per_slot": rows / (b * W * K),
            "compute_per_window": statistics.median(times[1:]) / n}


def figures_of(net: dict, lat: dict):
    from focalseq.training.collective_model import Figures

    return Figures(compute_per_window=net["compute_per_window"], batch=net["batch"],
                   dense_bytes=4 * net["dense_values"], sparse_rows=net["rows_per_step"],
                   row_bytes=4 * net["embedding_dim"],
                   embedding_bytes=4 * net["embedding_rows"] * net["embedding_dim"],
                   allreduce_overhead=lat["allreduce_tiny"],
                   allgather_overhead=lat["allgather_tiny"])


def projection(name: str, f) -> None:
    from focalseq.training import collective_model as cm

    print(f"\n{name}: projected efficiency, compute / (compute + communication)")
    print(f"{'Gbit/s':>6s} {'N':>4s} {'allgather':>10s} {'allreduce':>10s} "
          f"{'(sparse_as_dense)':>17s} {'chosen':>10s} {'comm ms ag / ar':>16s}")
    for g in GBITS:
        fg = cm.with_network(f, g)
        for n in WORKERS:
            print(f"{g:6d} {n:4d} {cm.efficiency('allgather', n, fg):10.2f} "
                  f"{cm.efficiency('allreduce', n, fg):10.2f} "
                  f"{str(cm.sparse_as_dense(n, fg)):>17s} {cm.choose_collective(n, fg):>10s} "
                  f"{1e3 * cm.allgather_seconds(n, fg):7.1f} / "
                  f"{1e3 * cm.allreduce_seconds(n, fg):.1f}")
        print(f"{g:6d} switch point (smallest N where the allreduce is cheaper): "
              f"{cm.switch_point(fg)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default=None, help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=300, help="timed calls per collective")
    p.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    p.add_argument("--docs", type=int, default=120, help="documents sampled per corpus")
    p.add_argument("--defaults", action="store_true",
                   help="project with the model's default overheads (what the job uses) "
                        "instead of this run's")
    p.add_argument("--compute-per-window", type=float, default=None,
                   help="also project with this compute (s per window), e.g. one measured "
                        "on a quiet machine")
    args = p.parse_args(argv)
    if args.role == "latency":
        return latency_role(args.calls)

    import tensorflow as tf

    from focalseq.config import load_config
    from focalseq.training import collective_model as cm

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    one, five, _ = os.getloadavg()
    print(f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs")
    lat = measure_latency(args.calls)
    print("\n2 ranks, localhost, Gloo, median of "
          f"{args.calls} calls (ms): " + ", ".join(
              f"{k} {1e3 * v:.3f}" for k, v in lat.items()))
    if args.defaults:
        lat["allreduce_tiny"] = cm.DEFAULT_ALLREDUCE_OVERHEAD
        lat["allgather_tiny"] = cm.DEFAULT_ALLGATHER_OVERHEAD
    source = "the model defaults" if args.defaults else "this run"
    print(f"(projections: o_ar {1e3 * lat['allreduce_tiny']:.2f} ms, o_ag "
          f"{1e3 * lat['allgather_tiny']:.2f} ms ({source}), "
          f"per-hop latency {1e6 * cm.DEFAULT_LATENCY:.0f} us assumed, "
          f"{cm.DEFAULT_ROWS_PER_SLOT} rows a token slot in the job's own estimate)")
    nets = {}
    for name, path in CONFS.items():
        cfg = load_config(path)
        windows = token_windows(cfg, name, args.docs)
        nets[name] = net = network_figures(cfg, windows, args.steps)
        print(f"\n{name} ({os.path.relpath(path, ROOT)}): {len(windows)} windows sampled; "
              + json.dumps({k: round(v, 6) if isinstance(v, float) else v
                            for k, v in net.items()}))
        f = figures_of(net, lat)
        from focalseq.training.collective_model import packed_bytes

        print(f"  bytes per rank per step: packed allgather {packed_bytes(f):,.0f}; "
              f"Horovod allreduce {f.dense_bytes:,.0f} + allgathers "
              f"{f.sparse_rows * (f.row_bytes + 8):,.0f}; sparse_as_dense allreduce "
              f"{f.dense_bytes + f.embedding_bytes:,.0f}; compute per step "
              f"{1e3 * f.compute_per_window * f.batch:.1f} ms")
    for name, net in nets.items():
        projection(name, figures_of(net, lat))
        if args.compute_per_window:
            projection(f"{name}, compute {1e3 * args.compute_per_window:.2f} ms a window",
                       figures_of(dict(net, compute_per_window=args.compute_per_window), lat))
    one, five, _ = os.getloadavg()
    print(f"\nload average {one:.1f} (1 min), {five:.1f} (5 min)")


if __name__ == "__main__":
    main()
