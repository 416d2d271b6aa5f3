"""Run ids mean one training (issue 12, item 4): recorded settings and a live lock.

The store and lock functions are tested directly; one real (1-process Horovod) fit shows
the estimator records its settings, releases its lock, and refuses other settings, a
second live fit, and keeps no lock after a failed fit.
"""
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from focalseq.training.run_lock import RunLock, RunLockedError
from focalseq.training.run_store import RunStore, settings_differences

SETTINGS = {"epochs": 5, "learning_rate": 0.001, "network": {"hidden_size": 8, "skip": False},
            "loss_config": {"gamma": 2.0}, "label_counts": None}


# Settings --------------------------------------------------------------------------------

def test_first_fit_records_the_settings_and_the_same_ones_pass(tmp_path):
    store = RunStore(str(tmp_path))
    store.check_settings("r", SETTINGS)
    with open(tmp_path / "r" / "settings.json") as fh:
        assert json.load(fh) == SETTINGS
    store.check_settings("r", json.loads(json.dumps(SETTINGS)))  # the same: no error


def test_other_settings_are_refused_listing_each_difference(tmp_path):
    store = RunStore(str(tmp_path))
    store.check_settings("r", SETTINGS)
    changed = {**SETTINGS, "epochs": 8, "network": {"hidden_size": 16, "skip": False},
               "label_counts": {"A": 3}, "seed": 1}
    with pytest.raises(ValueError) as info:
        store.check_settings("r", changed)
    message = str(info.value)
    assert message.startswith("runId: run 'r' was trained with other settings")
    assert "differs in 4: epochs: 5 -> 8; label_counts: null -> {\"A\": 3}; " \
           "network.hidden_size: 8 -> 16; seed: (absent) -> 1." in message
    assert "use a new runId (train.run_id)" in message
    with open(tmp_path / "r" / "settings.json") as fh:
        assert json.load(fh) == SETTINGS  # the record is kept


def test_settings_differences_of_nested_and_missing_keys():
    assert settings_differences({"a": {"b": 1, "c": [1, 2]}, "d": "x"},
                                {"a": {"b": 1, "c": [1, 3]}}) == \
        ["a.c: [1, 2] -> [1, 3]", 'd: "x" -> (absent)']
    assert settings_differences(SETTINGS, dict(SETTINGS)) == []


# The lock ----------------------------------------------------------------------------------

def _lock_file(store, run_id):
    with open(store.path(run_id, "lock.json")) as fh:
        return json.load(fh)


def test_a_live_lock_is_refused_naming_the_run_and_its_owner(tmp_path):
    store = RunStore(str(tmp_path))
    with RunLock(store, "busy") as first:
        with pytest.raises(RunLockedError) as info:
            RunLock(store, "busy").acquire()
        assert _lock_file(store, "busy")["owner"] == first.owner
    message = str(info.value)
    assert message.startswith(f"run 'busy' is already being fitted by pid {os.getpid()} on "
                              "host ")
    assert "use a new runId" in message
    assert not os.path.exists(store.path("busy", "lock.json"))


def test_a_lock_held_by_another_process_is_refused(tmp_path):
    store = RunStore(str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from focalseq.training.run_lock import RunLock
        from focalseq.training.run_store import RunStore
        with RunLock(RunStore({str(tmp_path)!r}), "shared"):
            print("locked", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"by pid {holder.pid} on host"):
            RunLock(store, "shared").acquire()
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0
    with RunLock(store, "shared"):  # released when its holder ended
        pass


def test_the_heartbeat_keeps_a_long_fit_locked(tmp_path):
    store = RunStore(str(tmp_path))
    with RunLock(store, "long", stale_after=1.0, heartbeat=0.2):
        first = _lock_file(store, "long")["heartbeat"]
        time.sleep(1.6)  # longer than stale_after: only the heartbeat keeps it fresh
        assert _lock_file(store, "long")["heartbeat"] > first + 1.0
        with pytest.raises(RunLockedError):
            RunLock(store, "long", stale_after=1.0, heartbeat=0.2).acquire()


def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    store = RunStore(str(tmp_path))
    os.makedirs(store.path("dead"))
    dead = {"run_id": "dead", "owner": {"host": "gone", "pid": 4242, "token": "t"},
            "heartbeat": time.time() - 61}  # the default stale time is 60 s
    with open(store.path("dead", "lock.json"), "w") as fh:
        json.dump(dead, fh)
    with caplog.at_level(logging.WARNING, logger="focalseq.training.run_lock"):
        with RunLock(store, "dead") as lock:
            assert _lock_file(store, "dead")["owner"] == lock.owner
    assert "taking over the lock of pid 4242 on host 'gone'" in caplog.text
    assert sorted(os.listdir(store.path("dead"))) == []  # no lock, nothing set aside


def test_an_unreadable_lock_goes_stale_by_its_age(tmp_path):
    store = RunStore(str(tmp_path))
    os.makedirs(store.path("broken"))
    path = store.path("broken", "lock.json")
    with open(path, "w") as fh:
        fh.write("{half")
    with pytest.raises(RunLockedError, match="an unreadable lock file"):
        RunLock(store, "broken").acquire()
    os.utime(path, (time.time() - 120, time.time() - 120))
    with RunLock(store, "broken"):
        pass


@pytest.mark.parametrize("error", [RuntimeError("worker failed"), KeyboardInterrupt()])
def test_the_lock_is_released_when_the_fit_fails(tmp_path, error):
    store = RunStore(str(tmp_path))
    with pytest.raises(type(error)):
        with RunLock(store, "failing"):
            raise error
    assert not os.path.exists(store.path("failing", "lock.json"))
    with RunLock(store, "failing"):
        pass


def test_a_store_without_exclusive_create_locks_by_write_and_read_back():
    store = RunStore(f"memory://runs-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ValueError):  # the premise: fsspec's memory filesystem has no "xb"
        store.fs.open(store.path("x"), "xb")
    with RunLock(store, "obj"):
        with pytest.raises(RunLockedError, match="run 'obj' is already being fitted"):
            RunLock(store, "obj").acquire()
    assert not store.exists(store.path("obj", "lock.json"))


# One real fit ---------------------------------------------------------------------------------

LABELS = ["Nomenclature", "Description", "Misc-exposition"]


@pytest.fixture(scope="module")
def windows(spark, tmp_path_factory):
    """Windows (W=6, stride 3) of a 6-document synthetic corpus, split 2:1 by file name
    (a hashed doc id holds pytest's numbered temp folder: that split would vary by run)."""
    from focalseq.stages.features import LineFeaturizer
    from focalseq.stages.parse import YeddaParser, list_files, split_problems
    from focalseq.stages.split import DocumentSplitter
    from focalseq.stages.windows import Windower
    from focalseq.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("run-ids")
    files = generate_corpus(str(folder / "corpus"), n_docs=6, lines_per_doc=24, seed=1)
    lines, _ = split_problems(YeddaParser().transform(list_files(spark, files)))
    lines = DocumentSplitter(patterns=[["validation", "doc_0000[01]"], ["train", ".*"]]) \
        .transform(lines)
    feats = LineFeaturizer(vocabSize=256, maxTokens=6).transform(lines)
    Windower(labels=LABELS, windowSize=6, stride=3).transform(feats) \
        .write.parquet(str(folder / "windows"))
    return spark.read.parquet(str(folder / "windows"))


def _estimator(store, **overrides):
    from focalseq.stages.bilstm import BiLSTMEstimator

    params = dict(hiddenSize=8, embeddingDim=8, vocabSize=256, epochs=1, batchSize=8,
                  learningRate=0.004,
                  numProc=1, storePath=store, runId="one", focalLabels=["Nomenclature"],
                  seed=5)
    params.update(overrides)
    return BiLSTMEstimator(**params)


@pytest.mark.slow
@pytest.mark.horovod
def test_a_run_id_refuses_other_settings_and_a_second_live_fit(windows, tmp_path):
    store = RunStore(str(tmp_path / "store"))
    # A fit that fails after taking the lock (a label count is missing) leaves no lock.
    with pytest.raises(ValueError, match="labelCounts: no count for"):
        _estimator(store.prefix, runId="failed", labelCounts={"Nomenclature": 1}).fit(windows)
    assert not store.exists(store.path("failed", "lock.json"))

    model = _estimator(store.prefix).fit(windows)
    assert model.training_summary["state"]["epoch"] == 0
    assert sorted(os.listdir(store.path("one"))) == ["checkpoints", "model", "progress.jsonl",
                                                     "settings.json"]  # no lock left
    recorded = store.read_json(store.settings_path("one"))
    assert (recorded["epochs"], recorded["num_proc"], recorded["network"]["hidden_size"]) == \
        (1, 1, 8)
    assert "tracking_uri" not in recorded and "threads_per_worker" not in recorded

    with pytest.raises(ValueError) as info:
        _estimator(store.prefix, epochs=2, learningRate=0.01).fit(windows)
    assert "differs in 2: epochs: 1 -> 2; learning_rate: 0.004 -> 0.01." in str(info.value)
    assert "use a new runId" in str(info.value)
    # The same settings still return the finished model; reporting settings may differ.
    again = _estimator(store.prefix, threadsPerWorker=1).fit(windows)
    assert again.network_bytes == model.network_bytes

    with RunLock(store, "one"):  # another driver's live fit of the run
        with pytest.raises(RunLockedError, match=f"run 'one' is already being fitted by "
                                                 f"pid {os.getpid()}"):
            _estimator(store.prefix).fit(windows)
