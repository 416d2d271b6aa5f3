"""`focalseq <command> --conf conf/x.yaml [--set key=value ...]`.

Commands follow the data flow: prepare (files -> windowed Parquet), train (Parquet ->
model), evaluate (model -> per-label metrics in MLflow), predict (files -> labels), and
run (all of them in one MLflow run). The same entry points back `jobs/*.py` for
spark-submit.
"""
import argparse
import logging
import os
import sys
import warnings

COMMANDS = ("prepare", "train", "evaluate", "predict", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="focalseq", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--conf", default=None, help="YAML configuration (default: built-in)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a configuration key, e.g. train.epochs=3")
        p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
        if name == "evaluate":
            p.add_argument("--split", default="test", choices=["train", "validation", "test"])
        if name == "predict":
            p.add_argument("--input", nargs="+", required=True, help="files or globs to label")
            p.add_argument("--output", required=True, help="output directory")
            p.add_argument("--format", default=None, choices=["parquet", "jsonl", "yedda"])
            p.add_argument("--plain", action="store_true", help="inputs carry no annotations")
            p.add_argument("--overwrite", action="store_true",
                           help="replace OUTPUT if an earlier focalseq output is there (a "
                                "folder focalseq did not write is never replaced); same as "
                                "output.mode: overwrite")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.quiet)
    # Only the configuration's own light imports (no Spark, TensorFlow or MLflow) run
    # before it is checked: a bad value fails in well under a second.
    from focalseq.config import ConfigError, load_config

    try:
        cfg = load_config(args.conf, args.set)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"focalseq: configuration error: {line}", file=sys.stderr)
        return 2
    from focalseq.fileio import OutputExistsError
    from focalseq.pipelines import commands

    try:
        return getattr(commands, f"cmd_{args.command}")(cfg, args)
    except OutputExistsError as exc:
        # A user's mistake, like a configuration error: said plainly, exit code 2.
        print(f"focalseq: error: {exc}", file=sys.stderr)
        return 2


def _configure_logging(quiet: bool):
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("py4j", "petastorm", "tensorflow", "absl", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)


if __name__ == "__main__":
    sys.exit(main())
