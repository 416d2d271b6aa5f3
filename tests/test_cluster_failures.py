"""Failures on the cluster surface within a minute, the lost rank or executor named first.

A `focalseq train` driver (a separate process, as a user runs it) trains for many epochs
on the `local_cluster`; once rank 0 has logged an epoch, one process on the second worker
host is killed with SIGKILL: (a) a Horovod worker, (b) the executor JVM. The driver must
exit within 60 s with an error whose first line names the lost rank or executor and its
exit status. SIGKILL cannot be caught, so nothing in the killed process helps.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

BIN = os.path.dirname(sys.executable)
LIMIT = 60.0

pytestmark = [pytest.mark.slow, pytest.mark.horovod]


def _env():
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="2",
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


@pytest.fixture(scope="module")
def prepared(local_cluster, tmp_path_factory):
    """A shared folder with prepared windows and a configuration for long training."""
    shared = tmp_path_factory.mktemp("shared")
    driver = tmp_path_factory.mktemp("driver")
    conf = dict(local_cluster.spark_conf())
    master = conf.pop("spark.master")
    cfg = {"data": {"synthetic": {"n_docs": 12, "lines_per_doc": 60, "ratio": [1, 5, 20]}},
           "features": {"vocab_size": 2000},
           "train": {"epochs": 400, "batch_size": 8, "hidden_size": 16, "embedding_dim": 16,
                     "num_proc": 2},
           "output": {"dir": f"file://{shared}/run"},
           "mlflow": {"tracking_uri": f"sqlite:///{shared}/mlflow.db"},
           "spark": {"master": master, "conf": conf}}
    path = os.path.join(shared, "conf.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{shared}/mlflow.db").create_experiment(
        "focalseq", artifact_location=f"file://{shared}/mlartifacts")
    proc = subprocess.run([os.path.join(BIN, "focalseq"), "prepare", "--conf", path, "-q"],
                          cwd=driver, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"conf": path, "shared": str(shared), "driver": str(driver)}


def _processes(netns: str):
    """{pid: (cmdline, environ)} of the processes in a worker's network namespace."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    found = {}
    for pid in map(int, out.stdout.split()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = dict(item.split("=", 1) for item in
                               fh.read().decode(errors="replace").split("\0") if "=" in item)
        except OSError:
            continue
        found[pid] = (cmdline, environ)
    return found


def _horovod_worker(netns):
    """(pid, rank) of the Horovod worker process in `netns`, or None."""
    for pid, (cmdline, environ) in _processes(netns).items():
        if "horovod.spark.task.gloo_exec_fn" in cmdline and "HOROVOD_RANK" in environ:
            return pid, environ["HOROVOD_RANK"]
    return None


def _executor_jvm(netns):
    """(pid, executor id) of the executor JVM in `netns`, or None."""
    for pid, (cmdline, _) in _processes(netns).items():
        if "CoarseGrainedExecutorBackend" in cmdline:
            words = cmdline.split()
            return pid, words[words.index("--executor-id") + 1]
    return None


def _train_and_kill(local_cluster, prepared, run_id, find_victim):
    """Starts training, kills the victim after rank 0's first epoch; (seconds, victim, err)."""
    if local_cluster.mode != "namespaces":
        pytest.skip("needs worker hosts in network namespaces (root and iproute2)")
    netns = local_cluster.workers[-1]["netns"]
    proc = subprocess.Popen(
        [os.path.join(BIN, "focalseq"), "train", "--conf", prepared["conf"], "-q",
         "--set", f"train.run_id={run_id}"],
        cwd=prepared["driver"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    progress = os.path.join(prepared["shared"], "run", "store", run_id, "progress.jsonl")
    victim = None
    try:
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(progress) and os.path.getsize(progress) > 0:
                victim = find_victim(netns)
                if victim is not None:
                    break
            time.sleep(0.2)
        assert victim is not None, f"training never got going: {proc.poll()}"
        os.kill(victim[0], signal.SIGKILL)
        killed = time.time()
        _, err = proc.communicate(timeout=600)
        seconds = time.time() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(os.path.join(prepared["shared"], f"{run_id}.stderr"), "w") as fh:
        fh.write(err)  # the whole driver output, for whoever reads a failure
    assert proc.returncode != 0, "the fit succeeded although a worker was killed"
    return seconds, victim, err


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("RuntimeError: ")]
    assert lines, stderr[-4000:]
    return lines[-1]


def test_killed_horovod_worker_ends_the_fit_naming_its_rank(local_cluster, prepared):
    seconds, (pid, rank), err = _train_and_kill(local_cluster, prepared, "kill-worker",
                                                _horovod_worker)
    print(f"kill -9 of Horovod worker rank {rank} (pid {pid}): fit ended {seconds:.1f}s later")
    line = _error_line(err)
    print(line)
    assert f"failed: rank {rank} exited with status" in line, line
    assert "SIGKILL" in line, line
    assert seconds < LIMIT


def test_killed_executor_ends_the_fit_naming_it(local_cluster, prepared):
    seconds, (pid, executor), err = _train_and_kill(local_cluster, prepared, "kill-executor",
                                                    _executor_jvm)
    print(f"kill -9 of executor {executor} (pid {pid}): fit ended {seconds:.1f}s later")
    line = _error_line(err)
    print(line)
    # Spark's worker saw the JVM die of the signal: exit code 128 + 9.
    assert f"failed: executor {executor} on " in line, line
    assert "exited with code 137 (killed by SIGKILL)" in line, line
    assert seconds < LIMIT
