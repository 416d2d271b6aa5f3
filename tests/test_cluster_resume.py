"""A killed driver on the cluster: the cluster lets go of it, and a rerun resumes.

A `focalseq train` driver (a separate process) is killed with SIGKILL once rank 0 has
checkpointed two epochs. The standalone master must then end the dead application: its
executors and their Horovod workers disappear from both worker hosts and the master
lists no running application, so nothing of the dead run keeps writing to it. A second
driver with the same `train.run_id` then resumes at the epoch after the last complete
one (none trained twice, by the run's progress log and by its MLflow run) and finishes
with a complete model.

Before the rerun, each worker host's temp directory gets three folders: the scratch
folder of a worker process killed with SIGKILL (made by focalseq's own code inside the
worker's namespace, under its host name), one of a process still alive, and a folder
focalseq did not make. The rerun's workers remove the first only.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest
from cluster_fixture import cluster_env, netns_processes

BIN = os.path.dirname(sys.executable)
RUN_ID = "kill-driver"
EPOCHS = 6
LIMIT = 60.0

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

# Made inside a worker's namespaces: a scratch folder as a training worker makes it, its
# path on stdout, then the process waits to be killed (or not).
_SCRATCH_OWNER = ("import sys, time; from focalseq.training.scratch import make_scratch; "
                  "print(make_scratch(sys.argv[1]), flush=True); time.sleep(600)")


def _train_cmd(prepared):
    return [os.path.join(BIN, "focalseq"), "train", "--conf", prepared["conf"],
            "--set", f"train.run_id={RUN_ID}", "--set", f"train.epochs={EPOCHS}"]


def _records(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _cluster_processes(state):
    """Executor JVMs and Horovod workers on the worker hosts: [(host, pid, what)]."""
    found = []
    for w in state.workers:
        for pid, (cmdline, _) in netns_processes(w["netns"]).items():
            if "CoarseGrainedExecutorBackend" in cmdline:
                found.append((w["name"], pid, "executor"))
            elif "horovod.spark.task.gloo_exec_fn" in cmdline:
                found.append((w["name"], pid, "horovod worker"))
    return found


def _active_apps(state):
    with urllib.request.urlopen(state.master_ui, timeout=5) as resp:
        return json.loads(resp.read())["activeapps"]


def _scratch_owner(worker, tmpdir):
    """A process in `worker`'s namespaces that made a scratch folder: (Popen, folder)."""
    cmd = ["ip", "netns", "exec", worker["netns"], "unshare", "--uts", "sh", "-c",
           f'hostname {worker["name"]} && exec "$0" "$@"', sys.executable, "-c",
           _SCRATCH_OWNER, "planted"]
    proc = subprocess.Popen(cmd, env=dict(cluster_env(), TMPDIR=tmpdir),
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_killed_driver_lets_go_of_the_cluster_and_the_rerun_resumes(local_cluster,
                                                                    cluster_prepared):
    if local_cluster.mode != "namespaces":
        pytest.skip("needs worker hosts in network namespaces (root and iproute2)")
    prepared = cluster_prepared
    run = os.path.join(prepared["shared"], "run", "store", RUN_ID)
    progress = os.path.join(run, "progress.jsonl")
    driver = subprocess.Popen(_train_cmd(prepared) + ["-q"], cwd=prepared["driver"],
                              env=cluster_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and driver.poll() is None and len(_records(progress)) < 2:
            time.sleep(0.2)
        assert len(_records(progress)) >= 2, f"training never got going: {driver.poll()}"
        running = _cluster_processes(local_cluster)
        assert {what for _, _, what in running} == {"executor", "horovod worker"}, running
        os.kill(driver.pid, signal.SIGKILL)
        killed = time.time()
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    # The master ends the dead application: its executors and their workers go away.
    left, apps = running, None
    while time.time() - killed < 120:
        left, apps = _cluster_processes(local_cluster), _active_apps(local_cluster)
        if not left and not apps:
            break
        time.sleep(0.5)
    seconds = time.time() - killed
    print(f"kill -9 of the driver: application and its {len(running)} executor/Horovod "
          f"processes gone {seconds:.1f}s later")
    assert not left and not apps, (left, apps)
    assert seconds < LIMIT

    with open(os.path.join(run, "checkpoints", "state.json")) as fh:
        last = json.load(fh)["epoch"]
    before = _records(progress)
    assert last >= 1 and [r["epoch"] for r in before] == list(range(last + 1))

    planted = {}
    for i, w in enumerate(local_cluster.workers):
        tmpdir = os.path.join(local_cluster.base_dir, f"worker{i + 1}", "tmp")
        dead, dead_folder = _scratch_owner(w, tmpdir)
        dead.kill()
        dead.wait()
        live, live_folder = _scratch_owner(w, tmpdir)
        foreign = os.path.join(tmpdir, "focalseq-scratch-not-made-by-focalseq")
        os.makedirs(foreign, exist_ok=True)
        planted[w["name"]] = (dead_folder, live_folder, foreign, live)
        assert os.path.isdir(dead_folder) and os.path.isdir(live_folder)

    try:
        started = time.time()
        proc = subprocess.run(_train_cmd(prepared), cwd=prepared["driver"], env=cluster_env(),
                              capture_output=True, text=True, timeout=900)
        print(f"rerun: {time.time() - started:.1f}s")
        assert proc.returncode == 0, proc.stderr[-6000:]
        for name, (dead_folder, live_folder, foreign, _) in planted.items():
            assert not os.path.exists(dead_folder), (name, "stale scratch left")
            assert os.path.isdir(live_folder), (name, "a live worker's scratch removed")
            assert os.path.isdir(foreign), (name, "a folder focalseq did not make removed")
    finally:
        for _, live_folder, foreign, live in planted.values():
            live.kill()
            live.wait()
            subprocess.run(["rm", "-rf", live_folder, foreign])

    # The rerun trained the epochs after the last complete one, each once, to the end.
    after = _records(progress)[len(before):]
    assert [r["epoch"] for r in after] == list(range(last + 1, EPOCHS))
    with open(os.path.join(run, "checkpoints", "state.json")) as fh:
        assert json.load(fh)["epoch"] == EPOCHS - 1
    with zipfile.ZipFile(os.path.join(run, "model", "network.keras")) as archive:
        assert archive.testzip() is None
        assert {"config.json", "model.weights.h5"} <= set(archive.namelist())
    assert "the ranks stopped at different epochs" not in proc.stderr
    assert f"last epoch trained by rank: 0 {EPOCHS}, 1 {EPOCHS}" in proc.stderr

    # MLflow: the rerun's run holds the same epochs (the killed driver's run the others).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{prepared['shared']}/mlflow.db")
    rerun_id = proc.stdout.split("MLflow run ")[1].split()[0]
    steps = sorted(m.step for m in client.get_metric_history(rerun_id, "train_loss"))
    assert steps == list(range(last + 1, EPOCHS))
