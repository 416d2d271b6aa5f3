"""The product on a real Spark standalone cluster of two worker hosts (`local_cluster`):
Horovod ranks on different hosts, and prepare -> train -> evaluate -> predict with every
location a ``file://`` URL of a shared folder, from a driver whose working directory is
none of the workers' and holds none of the outputs.

Each driver is a separate process (the CLI), as a user runs it: one JVM per process, and
the test session's own local-mode Spark stays untouched.
"""
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml
from cluster_fixture import cluster_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

pytestmark = [pytest.mark.slow, pytest.mark.horovod]


def _run(cmd, cwd, timeout=1500):
    proc = subprocess.run(cmd, cwd=cwd, env=cluster_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    return proc.stdout


def _conf(state, shared, **train) -> str:
    """A configuration file in the shared folder: every location a file:// URL."""
    conf = dict(state.spark_conf())
    master = conf.pop("spark.master")
    cfg = {
        # Splits by file name: hashed doc ids (file: URLs under pytest's numbered temp
        # folder) would leave a split empty in some runs.
        "data": {"synthetic": {"n_docs": 16, "lines_per_doc": 60, "ratio": [1, 5, 20]},
                 "split": {"patterns": [["test", "doc_0000[0-2]"],
                                        ["validation", "doc_0000[3-5]"], ["train", ".*"]]}},
        "features": {"vocab_size": 2000},
        "train": {"epochs": 3, "batch_size": 8, "hidden_size": 16, "embedding_dim": 16,
                  "num_proc": 2, **train},
        "output": {"dir": f"file://{shared}/run"},
        "mlflow": {"tracking_uri": f"sqlite:///{shared}/mlflow.db"},
        "spark": {"master": master, "conf": conf},
    }
    path = os.path.join(shared, "conf.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    return path


def _non_blank_lines(path) -> int:
    """Lines a labeller predicts: YEDDA markup is inline, so it never adds or removes one."""
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh.read().split("\n") if line.strip())


def test_horovod_ranks_on_two_hosts_reduce_together(local_cluster, tmp_path):
    out = _run([sys.executable, "-m", "focalseq.local_cluster", "check",
                "--dir", local_cluster.base_dir], cwd=tmp_path, timeout=600)
    ranks = [line.split() for line in out.splitlines() if line.startswith("rank ")]
    # "rank R on HOST: allreduce sum S"; ranks contribute 1 and 2, so each sees 3.
    assert sorted(int(r[1]) for r in ranks) == [0, 1]
    assert [float(r[-1]) for r in ranks] == [3.0, 3.0]
    if local_cluster.mode == "namespaces":
        assert sorted(r[3].rstrip(":") for r in ranks) == sorted(
            w["name"] for w in local_cluster.workers)


def test_pipeline_on_the_cluster_with_file_urls(local_cluster, tmp_path):
    shared, driver = tmp_path / "shared", tmp_path / "driver"
    shared.mkdir()
    driver.mkdir()
    conf = _conf(local_cluster, str(shared))
    _shared_experiment(shared)
    apps_before = {w: set(os.listdir(_work_dir(local_cluster, w)))
                   for w in range(len(local_cluster.workers))}

    out = _run([os.path.join(BIN, "focalseq"), "run", "--conf", conf, "-q"], cwd=driver)
    assert "test (line level):" in out

    run = shared / "run"
    manifest = json.loads((run / "windows" / "_manifest.json").read_text())
    assert manifest["windows_dir"] == f"file://{run}/windows"
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    corpus = sorted(glob.glob(str(run / "corpus" / "*.ann")))
    assert len(corpus) == 16
    assert manifest["report"]["lines_out"] == sum(_non_blank_lines(p) for p in corpus)
    assert (run / "model" / "network.keras").is_file()
    # Both executors (one per worker host) took part in the run's Spark application.
    for w, before in apps_before.items():
        assert set(os.listdir(_work_dir(local_cluster, w))) - before, f"worker {w + 1} idle"

    inputs = f"file://{run}/corpus/doc_0000*.ann"
    expected = sum(_non_blank_lines(p) for p in glob.glob(str(run / "corpus" / "doc_0000*")))
    out = _run([os.path.join(BIN, "focalseq"), "predict", "--conf", conf, "--input", inputs,
                "--output", f"file://{shared}/labelled", "--format", "parquet"], cwd=driver)
    assert f"labelled {expected} lines" in out
    import pyarrow.parquet as pq

    table = pq.read_table(str(shared / "labelled"))
    assert table.num_rows == expected
    assert set(table.column("prediction").to_pylist()) <= {
        "Nomenclature", "Description", "Misc-exposition"}

    out = _run([os.path.join(BIN, "focalseq"), "predict", "--conf", conf, "--input", inputs,
                "--output", f"file://{shared}/yedda", "--format", "yedda"], cwd=driver)
    assert f"labelled {expected} lines" in out
    written = sorted(os.path.basename(p) for p in glob.glob(str(shared / "yedda" / "*.ann")))
    assert written == [f"doc_0000{i}.txt.ann" for i in range(10)]
    # The labelled files keep every line of their inputs.
    assert sum(_non_blank_lines(p) for p in glob.glob(str(shared / "yedda" / "*.ann"))) \
        == expected

    # Nothing of the run landed in the driver's or a worker's own folders.
    for folder in [str(driver)] + [os.path.join(local_cluster.base_dir, f"worker{w + 1}")
                                   for w in range(len(local_cluster.workers))]:
        for name in ("_manifest.json", "network.keras", "doc_00000.txt.ann"):
            assert not glob.glob(os.path.join(folder, "**", name), recursive=True), \
                (folder, name)


def _shared_experiment(shared):
    """The MLflow experiment with its artifacts in the shared folder.

    MLflow's default artifact root for a sqlite store is ./mlruns of the process that
    creates the experiment: the driver's working directory, which this test keeps clean.
    """
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{shared}/mlflow.db").create_experiment(
        "focalseq", artifact_location=f"file://{shared}/mlartifacts")


def _work_dir(state, w):
    return os.path.join(state.base_dir, f"worker{w + 1}", "work")
