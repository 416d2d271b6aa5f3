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
from cluster_fixture import cluster_env, netns_processes

BIN = os.path.dirname(sys.executable)
LIMIT = 60.0

pytestmark = [pytest.mark.slow, pytest.mark.horovod]


@pytest.fixture(scope="module")
def prepared(cluster_prepared):
    return cluster_prepared


def _horovod_worker(netns):
    """(pid, rank) of the Horovod worker process in `netns`, or None."""
    for pid, (cmdline, environ) in netns_processes(netns).items():
        if "horovod.spark.task.gloo_exec_fn" in cmdline and "HOROVOD_RANK" in environ:
            return pid, environ["HOROVOD_RANK"]
    return None


def _executor_jvm(netns):
    """(pid, executor id) of the executor JVM in `netns`, or None."""
    for pid, (cmdline, _) in netns_processes(netns).items():
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
        cwd=prepared["driver"], env=cluster_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
