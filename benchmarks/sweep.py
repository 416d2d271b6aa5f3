"""Fast single-process loop for ablations on the SKOL split (the evidence behind conf/skol.yaml).

Reads the same windowed Parquet as benchmarks/quality.py (prepared once per feature/window
config with the Spark stages), then trains the same network (focalseq.training.network) with
the same loss (focalseq.losses) in ONE process, no Spark or Horovod: the batch is
train.batch_size x train.num_proc and the learning rate train.learning_rate x train.num_proc,
as the Horovod workers use them. After every epoch it prints line-level F1 on validation and
test (overlapping windows averaged, as BiLSTMModel does), so one run shows both the epoch a
validation-based early stop would keep and the last epoch. Results are appended to
<run-dir>/sweep.jsonl; numbers for docs/results.md tables come from there.

Usage, from the repository root:

    .venv/bin/python benchmarks/sweep.py --name tokdrop --seeds 0 1 --set train.token_dropout=0.3
"""
import argparse
import glob
import json
import os
import sys
import time

# A sibling module: `python benchmarks/<name>.py` puts this folder first on sys.path.
import _skol

COLUMNS = ("doc_id", "start", "n_valid", "token_ids", "shape", "y", "mask")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", help="label of this variant in sweep.jsonl")
    p.add_argument("--summary", action="store_true",
                   help="print the markdown table of every variant in sweep.jsonl and exit")
    p.add_argument("--data", default=_skol.DEFAULT_DATA)
    p.add_argument("--run-dir", default=_skol.DEFAULT_RUN_DIR)
    p.add_argument("--conf", default=_skol.DEFAULT_CONF)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    return p.parse_args(argv)


def load_split(windows_dir: str, split: str, manifest: dict) -> dict:
    """One split of the prepared windows as dense arrays."""
    import numpy as np
    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(windows_dir, f"split={split}", "*.parquet")))
    table = pq.ParquetDataset(files).read(columns=list(COLUMNS)).to_pandas()
    n = len(table)
    W = manifest["window"]["size"]
    dims = {"token_ids": (W, manifest["features"]["max_tokens"]),
            "shape": (W, manifest["features"]["n_shape"]), "y": (W, len(manifest["labels"])),
            "mask": (W,)}
    out = {k: table[k].to_numpy() for k in ("doc_id", "start", "n_valid")}
    for key, shape in dims.items():
        dtype = np.int32 if key == "token_ids" else np.float32
        out[key] = np.stack(table[key].to_numpy()).reshape((n,) + shape).astype(dtype)
    return out


def line_level(data: dict, probs):
    """(per-line probabilities, per-line true index), overlapping windows averaged."""
    import numpy as np

    sums, counts, truth = {}, {}, {}
    for i, (doc, start, valid) in enumerate(zip(data["doc_id"], data["start"], data["n_valid"])):
        for r in range(int(valid)):
            key = (doc, int(start) + r)
            sums[key] = sums.get(key, 0.0) + probs[i, r]
            counts[key] = counts.get(key, 0) + 1
            truth[key] = int(np.argmax(data["y"][i, r]))
    keys = sorted(sums)
    return (np.array([sums[k] / counts[k] for k in keys]), np.array([truth[k] for k in keys]))


def f1_scores(probs, truth, n_labels) -> list:
    pred = probs.argmax(1)
    scores = []
    for j in range(n_labels):
        tp = int(((pred == j) & (truth == j)).sum())
        denom = int((pred == j).sum() + (truth == j).sum())
        scores.append(2 * tp / denom if denom else 0.0)
    return scores


def train_one(cfg, manifest, data, seed: int) -> list:
    import numpy as np
    import tensorflow as tf

    from focalseq.losses import build_loss
    from focalseq.training.network import build_network

    t = cfg.train
    labels = manifest["labels"]
    tf.keras.utils.set_random_seed(seed)
    loss_config = dict(t.loss_config)
    if t.loss == "soft_f1":
        loss_config.setdefault("focal_labels", cfg.focal_labels)
        loss_config["distributed"] = False
    loss = build_loss(t.loss, loss_config, labels,
                      label_counts=manifest["label_counts"]["train"])
    rep = 64 if getattr(loss, "needs_representation", False) else 0
    model = build_network(
        manifest["window"]["size"], manifest["features"]["max_tokens"],
        manifest["features"]["n_shape"], len(labels), vocab_size=cfg.features.vocab_size,
        embedding_dim=t.embedding_dim, encoder=t.encoder, hidden_size=t.hidden_size,
        num_layers=t.num_layers, dropout=t.dropout, recurrent_dropout=t.recurrent_dropout,
        token_dropout=t.token_dropout, skip=t.skip_connection, representation_dim=rep)
    train = data["train"]
    batch = t.batch_size * t.num_proc
    steps = int(np.ceil(len(train["mask"]) / batch))
    lr = t.learning_rate * t.num_proc
    if t.lr_decay == "cosine":  # as the worker's schedule (no warm-up here)
        lr = tf.keras.optimizers.schedules.CosineDecay(lr, t.epochs * steps)
    model.compile(optimizer=tf.keras.optimizers.legacy.Adam(lr), loss=loss)
    inputs = {"token_ids": train["token_ids"], "shape": train["shape"]}
    ds = (tf.data.Dataset.from_tensor_slices((inputs, train["y"], train["mask"]))
          .shuffle(len(train["mask"]), seed=seed).batch(batch).prefetch(2))
    history = []
    for epoch in range(t.epochs):
        started = time.time()
        fit = model.fit(ds, epochs=1, verbose=0)
        record = {"epoch": epoch + 1, "loss": float(fit.history["loss"][0]),
                  "seconds": round(time.time() - started, 1)}
        for split in ("validation", "test"):
            d = data[split]
            out = model.predict({"token_ids": d["token_ids"], "shape": d["shape"]},
                                batch_size=256, verbose=0)[..., :len(labels)]
            probs, truth = line_level(d, out)
            for lab, f1 in zip(labels, f1_scores(probs, truth, len(labels))):
                record[f"{split}_f1_{lab}"] = f1
            record[f"{split}_focal_macro_f1"] = float(np.mean(
                [record[f"{split}_f1_{lab}"] for lab in cfg.focal_labels]))
        history.append(record)
        short = " ".join(f"{lab[:4]} {record[f'test_f1_{lab}']:.3f}" for lab in labels)
        print(f"  seed {seed} epoch {epoch + 1}: loss {record['loss']:.4f} val macro "
              f"{record['validation_focal_macro_f1']:.3f} | test {short} macro "
              f"{record['test_focal_macro_f1']:.3f} ({record['seconds']:.0f}s)", flush=True)
    return history


def summary(path: str, labels=("Nomenclature", "Description", "Misc-exposition")) -> str:
    """Markdown: per variant, test F1 at the last epoch (mean ± sd over seeds) and the
    focal macro-F1 at the epoch a validation-based early stop would have kept."""
    import statistics

    runs = {}
    with open(path) as fh:
        for line in fh:
            record = json.loads(line)
            runs.setdefault(record["name"], {})[record["seed"]] = record  # last run wins

    def cell(values):
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"

    short = [lab[:4] if "-" not in lab else "ME" for lab in labels]
    rows = ["| variant | overrides | seeds | " + " | ".join(f"{s} F1" for s in short)
            + " | macro F1 N+D (last epoch) | macro F1 N+D (best-validation epoch) |",
            "|" + " --- |" * (len(labels) + 5)]
    for name, by_seed in runs.items():
        records = [by_seed[k] for k in sorted(by_seed)]
        last = [r["history"][-1] for r in records]
        best = [max(r["history"], key=lambda h: h["validation_focal_macro_f1"])
                for r in records]
        cells = [cell([h[f"test_f1_{lab}"] for h in last]) for lab in labels]
        overrides = ", ".join(records[0]["overrides"]) or "(conf/skol.yaml)"
        rows.append(f"| {name} | {overrides} | {len(records)} | " + " | ".join(cells)
                    + f" | {cell([h['test_focal_macro_f1'] for h in last])}"
                    + f" | {cell([h['test_focal_macro_f1'] for h in best])} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.summary:
        print(summary(os.path.join(args.run_dir, "sweep.jsonl")))
        return 0
    if not args.name:
        sys.exit("--name is required to run a variant")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cfg = _skol.task_config(args.data, args.run_dir, args.overrides, conf=args.conf)
    from focalseq.pipelines.session import get_spark

    cache = os.path.join(args.run_dir, "cache")
    path = os.path.join(os.path.abspath(cache), f"windows-{_skol.windows_key(cfg)}")
    if not os.path.exists(os.path.join(path, "_manifest.json")):
        spark = get_spark(cfg.spark.master, "focalseq-sweep", cfg.spark.conf)
        _skol.prepared_windows(spark, cfg, cache)
        spark.stop()
    from focalseq.pipelines.prepare import load_manifest

    manifest = load_manifest(path)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    data = {s: load_split(path, s, manifest) for s in ("train", "validation", "test")}
    out = os.path.join(args.run_dir, "sweep.jsonl")
    for seed in args.seeds:
        history = train_one(cfg, manifest, data, seed)
        best = max(history, key=lambda r: r["validation_focal_macro_f1"])
        with open(out, "a") as fh:
            fh.write(json.dumps({"name": args.name, "seed": seed, "overrides": args.overrides,
                                 "windows": path,
                                 "history": history}) + "\n")
        print(f"{args.name} seed {seed}: last epoch test macro "
              f"{history[-1]['test_focal_macro_f1']:.3f}; best-validation epoch "
              f"{best['epoch']} test macro {best['test_focal_macro_f1']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
