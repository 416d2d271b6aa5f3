"""Early stopping across ranks, on the cluster: rank 0 decides, every rank stops with it.

A `focalseq train` driver trains 2 ranks (one per worker host) with patience 1 for up to
`EPOCHS` epochs. Independently of the code under test, the epoch it must stop at is
worked out from the recorded validation figures (the first epoch whose focal macro F1,
the mean of the focal labels' F1, does not beat the best so far by more than the
minimum improvement); training must stop there on both ranks (each rank reports its last
epoch to the driver, which logs them), and the saved network must hold the weights of
the epoch before it (the best), not those of the last epoch trained.
"""
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from cluster_fixture import cluster_env

BIN = os.path.dirname(sys.executable)
RUN_ID = "early-stop"
EPOCHS = 12
MIN_DELTA = 1e-4  # the estimator's minimum improvement
FOCAL = ["Nomenclature", "Description"]  # the default focal labels

pytestmark = [pytest.mark.slow, pytest.mark.horovod]


def _arrays(h5_bytes) -> list:
    """Every array in a Keras weights file, as (shape, bytes)."""
    import h5py

    found = []
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        f.visititems(lambda name, obj: found.append(
            (obj.shape, np.asarray(obj).tobytes())) if isinstance(obj, h5py.Dataset) else None)
    return found


def _holds(checkpoint, model) -> bool:
    """True if every array of `model` is in `checkpoint` (which may hold more)."""
    pool = list(checkpoint)
    for item in model:
        if item not in pool:
            return False
        pool.remove(item)
    return True


def test_patience_stops_both_ranks_at_one_epoch_and_keeps_the_best(local_cluster,
                                                                   cluster_prepared):
    prepared = cluster_prepared
    proc = subprocess.run(
        [os.path.join(BIN, "focalseq"), "train", "--conf", prepared["conf"],
         "--set", f"train.run_id={RUN_ID}", "--set", f"train.epochs={EPOCHS}",
         "--set", "train.early_stopping_patience=1", "--set", "train.restore_best=true"],
        cwd=prepared["driver"], env=cluster_env(), capture_output=True, text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    run = os.path.join(prepared["shared"], "run", "store", RUN_ID)
    with open(os.path.join(run, "progress.jsonl")) as fh:
        records = [json.loads(line) for line in fh if line.strip()]

    # Where patience 1 must stop, from the recorded per-label F1 alone.
    best, expected = -np.inf, None
    for r in records:
        score = float(np.mean([r[f"val_f1_{label}"] for label in FOCAL]))
        if score > best + MIN_DELTA:
            best = score
        else:
            expected = r["epoch"]
            break
    assert expected is not None, "patience never triggered: every epoch improved"
    stopped = records[-1]["epoch"]
    print(f"early stopping: stopped after epoch {stopped + 1} of {EPOCHS}; "
          f"focal F1 by epoch {[round(np.mean([r[f'val_f1_{x}'] for x in FOCAL]), 4) for r in records]}")
    assert stopped == expected < EPOCHS - 1
    assert [r["epoch"] for r in records] == list(range(stopped + 1))
    # Both ranks trained exactly the epochs up to the stop (1-based in the log).
    assert f"last epoch trained by rank: 0 {stopped + 1}, 1 {stopped + 1}" in proc.stderr

    # The saved network holds the best epoch's weights (the epoch before the stop).
    checkpoints = os.path.join(run, "checkpoints")
    with zipfile.ZipFile(os.path.join(run, "model", "network.keras")) as archive:
        model = _arrays(archive.read("model.weights.h5"))
    with open(os.path.join(checkpoints, f"epoch_{stopped - 1:04d}.weights.h5"), "rb") as fh:
        best_epoch = _arrays(fh.read())
    with open(os.path.join(checkpoints, f"epoch_{stopped:04d}.weights.h5"), "rb") as fh:
        last_epoch = _arrays(fh.read())
    assert model and _holds(best_epoch, model)
    assert not _holds(last_epoch, model)
