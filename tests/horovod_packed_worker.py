"""Worker body for the 2-process packed-gradient test (sent to workers by value)."""


def rank_gradients(rank):
    """This rank's gradients: a dense kernel and bias, no gradient for one variable, and
    two embeddings' IndexedSlices (with duplicate rows; rank 1 has none for the second)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(rank)
    kernel = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    bias = tf.constant(rng.normal(size=(4,)), tf.float32)
    rows = [2, 5, 2, 9] if rank == 0 else [5, 7]
    emb = tf.IndexedSlices(tf.constant(rng.normal(size=(len(rows), 2)), tf.float32),
                           tf.constant(rows, tf.int64), tf.constant([10, 2], tf.int64))
    rows2 = [1, 3] if rank == 0 else []
    emb2 = tf.IndexedSlices(tf.constant(rng.normal(size=(len(rows2), 3)).reshape(-1, 3),
                                        tf.float32),
                            tf.constant(rows2, tf.int64), tf.constant([6, 3], tf.int64))
    return [kernel, emb, None, bias, emb2], [(3, 4), (10, 2), (5,), (4,), (6, 3)]


def as_dense(grads):
    import tensorflow as tf

    return [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]


def packed_rank():
    """(rank, packed average as dense arrays, Horovod's own average as dense arrays)."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from focalseq.training.packed import average_packed

    hvd.init()
    grads, shapes = rank_gradients(hvd.rank())

    @tf.function
    def packed():
        return average_packed(grads, shapes, lambda t: hvd.allgather(t, name="packed"),
                              hvd.size())

    # What hvd.DistributedOptimizer does: allreduce (average) dense, allgather sparse.
    horovod = []
    for i, g in enumerate(grads):
        if g is None:
            horovod.append(None)
        elif isinstance(g, tf.IndexedSlices):
            values = hvd.allgather(g.values, name=f"v{i}") / hvd.size()
            indices = hvd.allgather(g.indices, name=f"i{i}")
            horovod.append(tf.IndexedSlices(values, indices, g.dense_shape))
        else:
            horovod.append(hvd.allreduce(g, name=f"d{i}"))
    return hvd.rank(), as_dense(packed()), as_dense(horovod)
