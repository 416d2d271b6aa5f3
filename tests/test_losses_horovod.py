"""Soft-F1 under a real 2-process Horovod (Gloo) run equals the single-process global batch."""
import numpy as np
import pytest

import horovod.tensorflow  # noqa: F401  (the stack requires it: a missing one fails, not skips)

import horovod_soft_f1_worker  # noqa: E402


def _global_batch(multi_label, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 6, 5)).astype(np.float32)
    if multi_label:
        y = (rng.random((4, 6, 3)) < 0.4).astype(np.float32)
    else:
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=(4, 6))]
    mask = (rng.random((4, 6)) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    kernel = rng.normal(size=(5, 3)).astype(np.float32)
    return x, y, mask, kernel


def _single_process(x, y, mask, kernel, multi_label):
    import tensorflow as tf

    from focalseq.losses.keras_losses import SoftF1Loss

    kernel = tf.Variable(kernel)
    activation = tf.nn.sigmoid if multi_label else tf.nn.softmax
    with tf.GradientTape() as tape:
        probs = activation(tf.einsum("blf,fk->blk", x, kernel))
        loss = SoftF1Loss(label_indices=[0, 2])(y, probs, sample_weight=mask)
    return float(loss), tape.gradient(loss, kernel).numpy()


@pytest.mark.horovod
@pytest.mark.slow
@pytest.mark.parametrize("multi_label", [False, True])
def test_soft_f1_two_workers_equal_global_batch(multi_label, monkeypatch):
    import cloudpickle
    from horovod.runner import run

    # Workers unpickle the worker function by value (tests/ is not on their path) and
    # import the installed focalseq.
    cloudpickle.register_pickle_by_value(horovod_soft_f1_worker)
    # A collective that only one rank enters fails the job instead of hanging the test.
    monkeypatch.setenv("HOROVOD_STALL_CHECK_TIME_SECONDS", "5")
    monkeypatch.setenv("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "20")

    x, y, mask, kernel = _global_batch(multi_label, seed=3)
    results = run(
        horovod_soft_f1_worker.soft_f1_rank,
        args=(x, y, mask, kernel, multi_label),
        np=2,
        use_gloo=True,
    )
    expected_loss, expected_grad = _single_process(x, y, mask, kernel, multi_label)

    assert sorted(r[0] for r in results) == [0, 1]
    for _, loss, _, averaged_grad, graph_loss, graph_averaged_grad, _ in results:
        assert loss == pytest.approx(expected_loss, abs=1e-5)
        assert graph_loss == pytest.approx(expected_loss, abs=1e-5)
        # What hvd.DistributedOptimizer applies: the average of the ranks' local gradients.
        np.testing.assert_allclose(averaged_grad, expected_grad, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(graph_averaged_grad, expected_grad, rtol=1e-4, atol=1e-6)
    # Each rank's own gradient covers only its half of the batch.
    rank0 = next(r for r in results if r[0] == 0)
    assert not np.allclose(rank0[2], expected_grad)
    # local_copy() on rank 0 alone: its half of the batch, no communication.
    half = x.shape[0] // 2
    expected_half, _ = _single_process(x[:half], y[:half], mask[:half], kernel, multi_label)
    assert rank0[6] == pytest.approx(expected_half, abs=1e-5)
    assert rank0[6] != pytest.approx(expected_loss, abs=1e-4)
