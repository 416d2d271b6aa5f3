"""The users' "comparing approaches" workflow: standard loss vs weighted
(weight_strategy='inverse') vs soft-F1 over the focal labels, each model kept in Redis.

    python examples/compare_losses.py --files 'data/annotated/*.ann' --redis redis://localhost:6379/0

Without --files it generates a synthetic corpus. It needs a running redis-server (the
project's setup installs one: `redis-server --port 6379 &`).
"""
import argparse
import os
import sys
import tempfile

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
APPROACHES = [
    ("standard", {}),
    ("weighted_inverse", {"weight_strategy": "inverse"}),
    ("soft_f1_focal", {"focal_labels": ["Nomenclature", "Description"]}),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", default=None, help="annotated files or glob")
    parser.add_argument("--redis", default="redis://localhost:6379/0", help="Redis URL")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--small", action="store_true", help="a tiny network (for tests)")
    parser.add_argument("--approaches", default=",".join(name for name, _ in APPROACHES),
                        help="comma-separated, of " + ", ".join(n for n, _ in APPROACHES)
                             + " (default: all)")
    args = parser.parse_args(argv)
    known = dict(APPROACHES)
    chosen = [name.strip() for name in args.approaches.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        parser.error(f"--approaches: {unknown or args.approaches!r} not among {list(known)}")

    import redis

    from focalseq import SkolClassifierV2

    work = args.work_dir or tempfile.mkdtemp(prefix="focalseq-compare-")
    files, split = args.files, {}
    if not files:
        from focalseq.synthetic import generate_corpus

        generate_corpus(os.path.join(work, "corpus"), n_docs=30, lines_per_doc=100,
                        ratio=(1, 5, 20), seed=11)
        files = os.path.join(work, "corpus", "*.ann")
        # Named documents for validation and test, so every split has some.
        split = {"split_patterns": [["test", "doc_0000[0-3]"], ["validation", "doc_0000[4-7]"],
                                    ["train", ".*"]]}
    client = redis.Redis.from_url(args.redis)
    client.ping()  # fail early and clearly when no server listens there

    size = dict(hidden_size=16, embedding_dim=16, window_size=8, prediction_stride=4,
                vocab_size=4096, max_tokens=16) if args.small else \
        dict(hidden_size=64, embedding_dim=48, window_size=16, prediction_stride=8)
    rows = []
    for name in chosen:
        loss_args = known[name]
        clf = SkolClassifierV2(
            input_source="files", file_paths=[files], model_type="rnn", num_layers=1,
            dropout=0.2, epochs=args.epochs, batch_size=16, ensemble_members=1,
            model_storage="redis",
            redis_client=client, redis_key=f"rnn_{name}", work_dir=os.path.join(work, name),
            verbosity=1, **size, **split, **loss_args)
        results = clf.fit()
        rows.append((name, results["test_stats"], results["train_seconds"]))

    print()
    header = f"{'approach':<18}" + "".join(f"{lab[:12] + ' F1':>16}" for lab in LABELS) + \
        f"{'focal macro':>13}{'seconds':>9}  redis key"
    print(header)
    for name, stats, seconds in rows:
        print(f"{name:<18}" + "".join(f"{stats[lab + '_f1']:>16.3f}" for lab in LABELS)
              + f"{stats['focal_macro_f1']:>13.3f}{seconds:>9.1f}  rnn_{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
