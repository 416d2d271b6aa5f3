"""Shared helpers of the SKOL benchmarks: corpus location, task config, cached windows.

The corpus is read where it lies (default ``../shared/data/skol`` relative to the
repository root) and never copied; windowed Parquet derived from it is prepared once per
distinct data/features/windows configuration and cached under the run directory.
"""
import hashlib
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "data", "skol")
DEFAULT_CONF = os.path.join(REPO, "conf", "skol.yaml")
DEFAULT_RUN_DIR = os.path.join(REPO, "runs", "quality")
# Folders of the corpus the task uses, relative to the corpus root.
VOLUMES = ("Mycotaxon/Vol054", "Mycotaxon/Vol055", "Mycotaxon/Vol056", "Mycotaxon/Vol057",
           "Mycotaxon/Vol058", "Mycotaxon/Vol117", "Persoonia/Vol016")

# Folds of the generalization benchmark (issue 14): fold name -> data.split.patterns, a
# list of [split, regex] pairs over file paths, the first match wins and files matching
# none are left out. Validation always comes from the training side (never the test
# volume or journal): it chooses the baseline's L2 strength and the networks' offsets.
_MYCOTAXON = ("Vol054", "Vol055", "Vol056", "Vol057", "Vol058", "Vol117")
# Each left-out volume is validated by a neighbouring one.
_LOVO_VALIDATION = {"Vol054": "Vol055", "Vol055": "Vol056", "Vol056": "Vol057",
                    "Vol057": "Vol058", "Vol058": "Vol057", "Vol117": "Vol058"}
FOLDS = {
    # Today's split (conf/skol.yaml): the figures of docs/results.md so far.
    "vol117": [["test", "/Vol117/"], ["validation", "/Persoonia/Vol016/n4"], ["train", ".*"]],
    # Leave one journal out: train on one journal, test on the other.
    "lojo-mycotaxon-to-persoonia": [["test", "/Persoonia/"],
                                    ["validation", "/Mycotaxon/Vol058/"],
                                    ["train", "/Mycotaxon/"]],
    "lojo-persoonia-to-mycotaxon": [["test", "/Mycotaxon/"],
                                    ["validation", "/Persoonia/Vol016/n4"],
                                    ["train", "/Persoonia/"]],
    # Leave one volume out: Persoonia trains too, as in today's split.
    **{f"lovo-{vol}": [["test", f"/Mycotaxon/{vol}/"],
                       ["validation", f"/Mycotaxon/{_LOVO_VALIDATION[vol]}/"],
                       ["train", ".*"]] for vol in _MYCOTAXON},
}
FOLD_GROUPS = {
    "vol117": ["vol117"],
    "lojo": [f for f in FOLDS if f.startswith("lojo-")],
    "lovo": [f for f in FOLDS if f.startswith("lovo-")],
    "all": list(FOLDS),
}


def fold_names(spec: str) -> list:
    """Fold names of a comma-separated list of groups (vol117, lojo, lovo, all) and folds."""
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part in FOLD_GROUPS:
            out += FOLD_GROUPS[part]
        elif part in FOLDS:
            out.append(part)
        else:
            raise ValueError(f"unknown fold or group {part!r}; valid groups: "
                             f"{', '.join(FOLD_GROUPS)}; folds: {', '.join(FOLDS)}")
    return list(dict.fromkeys(out))


def fold_group(fold: str) -> str:
    """The group a fold's figures are averaged in: vol117, lojo or lovo."""
    return fold.split("-", 1)[0]


def split_override(fold: str) -> str:
    """The --set override that gives the config the split of `fold`."""
    return f"data.split.patterns={json.dumps(FOLDS[fold])}"


def corpus_dir(path: str) -> str:
    """The corpus root as an absolute path; exits with a plain message when it is missing."""
    root = os.path.abspath(path)
    missing = [v for v in VOLUMES if not os.path.isdir(os.path.join(root, v))]
    if missing:
        sys.exit(f"SKOL corpus not found: {root} lacks {', '.join(missing)}.\n"
                 f"Pass its location with --data PATH (default: ../shared/data/skol relative "
                 f"to the repository root; see its README.md).")
    return root


def task_config(data: str, run_dir: str, overrides=(), conf: str = DEFAULT_CONF):
    """conf/skol.yaml with the corpus at `data`, outputs under `run_dir`, then `overrides`."""
    from focalseq.config import load_config

    root = corpus_dir(data)
    paths = [os.path.join(root, v, "*.ann") for v in VOLUMES]
    db = os.path.join(os.path.abspath(run_dir), "mlflow.db")
    base = [f"data.paths={json.dumps(paths)}", f"output.dir={os.path.abspath(run_dir)}",
            f"mlflow.tracking_uri=sqlite:///{db}"]
    return load_config(conf, base + list(overrides))


def windows_key(cfg) -> str:
    """Digest of everything the prepared windows depend on."""
    d = cfg.to_dict()
    relevant = {"labels": d["labels"], "multi_label": d["multi_label"], "data": d["data"],
                "features": d["features"], "windows": d["windows"]}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def prepared_windows(spark, cfg, cache_dir: str) -> dict:
    """The manifest of the windows for `cfg`, preparing them on first use only."""
    from focalseq.pipelines.prepare import load_manifest, prepare

    out = os.path.join(os.path.abspath(cache_dir), f"windows-{windows_key(cfg)}")
    if os.path.exists(os.path.join(out, "_manifest.json")):
        return load_manifest(out)
    return prepare(spark, cfg, out)


def corpus_lines(spark, cfg):
    """Every parsed line of the corpus, no split (no features): the logistic baseline's input."""
    from pyspark.sql import functions as F

    from focalseq.pipelines import builders
    from focalseq.stages.parse import list_files

    parsed = builders.parser(cfg).transform(
        list_files(spark, cfg.data.paths, recursive=cfg.data.recursive))
    return parsed.filter(F.col("problem").isNull()).drop("problem", "lines_dropped")


def split_lines(spark, cfg):
    """Parsed lines with the split of `cfg` (lines of files no pattern matches are dropped)."""
    from focalseq.pipelines import builders

    return builders.splitter(cfg).transform(corpus_lines(spark, cfg))


def with_train(cfg, **changes):
    """A validated copy of `cfg` with train.<key> replaced for each keyword."""
    return cfg.with_updates({f"train.{key}": value for key, value in changes.items()})


def flat_params(cfg) -> dict:
    """The config sections that shape a model, flattened for MLflow params."""
    d = cfg.to_dict()
    out = {}
    for section in ("features", "windows", "train"):
        for key, value in d[section].items():
            out[f"{section}.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) \
                else value
    return out
