"""Shared pieces of the throughput benchmarks: the data, a session, numpy windows.

The data is either the synthetic corpus (``--lines`` lines, default about 100k) or the
SKOL corpus (``--data PATH``, every volume, three labels). Windows are prepared once with
`focalseq.pipelines.prepare` (16-line windows, stride 8, 24 hashed tokens per line, as in
conf/default.yaml) and cached under ``--cache``; every window is used, whatever its split.
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINES_PER_DOC = 150


def add_data_args(parser: argparse.ArgumentParser):
    parser.add_argument("--data", default=None,
                        help="SKOL corpus root (e.g. /work/shared/data/skol); default: "
                             "the synthetic corpus")
    parser.add_argument("--lines", type=int, default=100_000,
                        help="synthetic corpus size in lines (default 100000)")
    parser.add_argument("--cache", default=os.path.join(REPO, "runs", "throughput"),
                        help="where prepared windows are cached")


def config(args):
    from focalseq.config import load_config

    if args.data:
        root = os.path.abspath(args.data)
        files = sorted(glob.glob(os.path.join(root, "*", "*", "*.ann")))
        if not files:
            sys.exit(f"--data {root}: no *.ann files under <journal>/<volume>/; the SKOL "
                     "corpus is absent there")
        data = [f"data.source=files", f"data.paths={json.dumps(files)}",
                'data.keep_labels=["Nomenclature", "Description"]']
    else:
        docs = max(1, args.lines // LINES_PER_DOC)
        data = [f"data.synthetic.n_docs={docs}",
                f"data.synthetic.lines_per_doc={LINES_PER_DOC}"]
    return load_config(None, data)


def session(conf: dict = None):
    """local[2]; `conf` entries are added to (or override) the benchmarks' own."""
    from focalseq.pipelines.session import get_spark

    return get_spark("local[2]", "focalseq-throughput",
                     {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
                      **(conf or {})})


def windows(spark, args):
    """(windows DataFrame without `split`, its Parquet folder, config, line count)."""
    from focalseq.pipelines.prepare import load_manifest, prepare

    cfg = config(args)
    d = cfg.to_dict()
    key = hashlib.sha256(json.dumps({k: d[k] for k in ("labels", "data", "features", "windows")},
                                    sort_keys=True).encode()).hexdigest()[:12]
    out = os.path.join(os.path.abspath(args.cache), f"windows-{key}")
    if os.path.exists(os.path.join(out, "_manifest.json")):
        manifest = load_manifest(out)
    else:
        cfg = cfg.with_updates({"output.dir": os.path.join(os.path.abspath(args.cache),
                                                           f"output-{key}")})
        started = time.time()
        manifest = prepare(spark, cfg, out)
        print(f"prepared windows in {time.time() - started:.0f}s -> {out}")
    lines = manifest["report"]["lines_out"]
    return spark.read.parquet(out).drop("split"), out, cfg, lines


def numpy_windows(folder: str, dims: dict) -> dict:
    """All windows of the prepared Parquet as numpy arrays (what an in-memory fit uses)."""
    import numpy as np
    import pyarrow.dataset as ds

    table = ds.dataset(folder, format="parquet", partitioning="hive",
                       exclude_invalid_files=True).to_table(
        columns=["doc_id", "start", "n_valid", "token_ids", "shape", "y", "mask"])
    n = table.num_rows
    W, L = dims["window"], len(dims["labels"])

    def dense(name, *tail):
        col = table.column(name).combine_chunks()
        return np.ascontiguousarray(col.flatten().to_numpy(zero_copy_only=False)) \
            .reshape((n,) + tail)

    return {"token_ids": dense("token_ids", W, -1).astype(np.int32),
            "shape": dense("shape", W, -1).astype(np.float32),
            "y": dense("y", W, L).astype(np.float32), "mask": dense("mask", W).astype(np.float32),
            "doc_id": table.column("doc_id").to_numpy(zero_copy_only=False),
            "start": table.column("start").to_numpy(), "n_valid": table.column("n_valid").to_numpy()}


def network_kwargs(cfg) -> dict:
    t = cfg.train
    return {"vocab_size": cfg.features.vocab_size, "embedding_dim": t.embedding_dim,
            "hidden_size": t.hidden_size, "encoder": t.encoder, "num_layers": t.num_layers,
            "dropout": t.dropout, "recurrent_dropout": t.recurrent_dropout}


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def epoch_timer(times: list, cpu: list = None):
    """A Keras callback appending each epoch's wall seconds to `times` (and this
    process's CPU seconds to `cpu`), from on_epoch_begin to on_epoch_end."""
    import tensorflow as tf

    class EpochTimer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)
            if cpu is not None:
                cpu.append(time.process_time() - self.cpu_started)

    return EpochTimer()
