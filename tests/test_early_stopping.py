"""Early stopping across ranks, on the cluster: rank 0 decides, every rank stops with it.

A `focalseq train` driver trains 2 ranks (one per worker host) with patience 2 for up to
`EPOCHS` epochs. Independently of the code under test, the epoch it must stop at and the
best epoch are worked out from the recorded validation figures (the focal macro F1, the
mean of the focal labels' F1; an epoch improves when it beats the best so far by more
than the minimum improvement; training stops at the second epoch in a row that does
not); training must stop there on both ranks (each rank reports its last epoch to the
driver, which logs them), and the saved network must hold the best epoch's weights, not
those of the epochs after it.
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
EPOCHS = 20
PATIENCE = 2
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
         "--set", f"train.early_stopping_patience={PATIENCE}",
         "--set", "train.restore_best=true",
         # Small batches and a quick rate, so that the focal F1 rises before it stalls:
         # the stop follows a real best epoch, not epochs of nothing learned.
         "--set", "train.batch_size=2", "--set", "train.learning_rate=0.02"],
        cwd=prepared["driver"], env=cluster_env(), capture_output=True, text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    run = os.path.join(prepared["shared"], "run", "store", RUN_ID)
    with open(os.path.join(run, "progress.jsonl")) as fh:
        records = [json.loads(line) for line in fh if line.strip()]

    # Where patience must stop and which epoch is the best, from the recorded per-label
    # F1 alone: the first epoch that is the PATIENCE-th in a row not to beat the best so
    # far by more than the minimum improvement.
    scores = [float(np.mean([r[f"val_f1_{label}"] for label in FOCAL])) for r in records]
    best, best_epoch, expected = -np.inf, None, None
    for epoch, score in enumerate(scores):
        if score > best + MIN_DELTA:
            best, best_epoch = score, epoch
        elif epoch - best_epoch >= PATIENCE:
            expected = epoch
            break
    print(f"early stopping: stopped after epoch {len(records)} of {EPOCHS}; best epoch "
          f"{best_epoch + 1}; focal F1 by epoch {[round(x, 4) for x in scores]}")
    assert expected is not None, "patience never triggered: the F1 kept improving"
    assert best > 0, "nothing was learned before the stop"
    stopped = records[-1]["epoch"]
    assert stopped == expected < EPOCHS - 1
    assert [r["epoch"] for r in records] == list(range(stopped + 1))
    # Both ranks trained exactly the epochs up to the stop (1-based in the log).
    assert f"last epoch trained by rank: 0 {stopped + 1}, 1 {stopped + 1}" in proc.stderr

    # The saved network holds the best epoch's weights (kept as best.weights.h5 when it
    # is met), not those of either epoch after it, whose checkpoints the store keeps.
    checkpoints = os.path.join(run, "checkpoints")
    with zipfile.ZipFile(os.path.join(run, "model", "network.keras")) as archive:
        model = _arrays(archive.read("model.weights.h5"))
    with open(os.path.join(checkpoints, "best.weights.h5"), "rb") as fh:
        assert model and _holds(_arrays(fh.read()), model)
    assert stopped - best_epoch == PATIENCE
    for epoch in range(best_epoch + 1, stopped + 1):
        with open(os.path.join(checkpoints, f"epoch_{epoch:04d}.weights.h5"), "rb") as fh:
            assert not _holds(_arrays(fh.read()), model), epoch
