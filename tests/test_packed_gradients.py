"""One-collective gradient averaging equals Horovod's allreduce/allgather average."""
import numpy as np
import pytest

import horovod_packed_worker as worker


def _expected():
    """The average of both ranks' gradients as dense arrays, by hand."""
    ranks = [worker.as_dense(worker.rank_gradients(r)[0]) for r in (0, 1)]
    return [None if a is None else (a + b) / 2 for a, b in zip(*ranks)]


def _check(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if e is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("graph", [False, True])
def test_average_of_two_simulated_ranks(graph):
    import tensorflow as tf

    from focalseq.training.packed import _pack, average_packed

    grads0, shapes = worker.rank_gradients(0)
    grads1, _ = worker.rank_gradients(1)
    other, _ = _pack(grads1)

    def run():  # rank 0's view: its own vector, then rank 1's
        return average_packed(grads0, shapes, lambda own: tf.concat([own, other], 0), 2)

    got = tf.function(run)() if graph else run()
    # Sparse gradients stay sparse, each row once.
    emb = got[1]
    assert isinstance(emb, tf.IndexedSlices)
    assert sorted(emb.indices.numpy().tolist()) == [2, 5, 7, 9]
    _check(worker.as_dense(got), _expected())


def test_packable_rejects_what_float32_cannot_carry():
    import tensorflow as tf

    from focalseq.training.packed import packable

    assert packable([tf.Variable(tf.zeros([10, 2])), tf.Variable(tf.zeros([4]))])
    assert not packable([tf.Variable(tf.zeros([4], tf.float16))])
    assert packable([tf.Variable(tf.zeros([(1 << 24) - 1, 1]))])  # 64 MB
    assert not packable([tf.Variable(tf.zeros([1 << 24, 1]))])


@pytest.mark.horovod
@pytest.mark.slow
def test_two_horovod_ranks_get_horovods_average(monkeypatch):
    import horovod.tensorflow  # noqa: F401
    import cloudpickle
    from horovod.runner import run

    # Workers unpickle the worker functions by value (tests/ is not on their path) and
    # import the installed focalseq.
    cloudpickle.register_pickle_by_value(worker)
    monkeypatch.setenv("HOROVOD_STALL_CHECK_TIME_SECONDS", "5")
    monkeypatch.setenv("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "20")
    results = run(worker.packed_rank, np=2, use_gloo=True)
    assert sorted(r[0] for r in results) == [0, 1]
    expected = _expected()
    for _, packed, horovod in results:
        _check(packed, expected)
        _check(horovod, expected)
