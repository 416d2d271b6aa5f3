"""Worker body for the 2-process soft-F1 Horovod test (sent to workers by value)."""


def _local_batch(global_x, global_y, global_mask, rank, size):
    per_rank = global_x.shape[0] // size
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    return global_x[part], global_y[part], global_mask[part]


def soft_f1_rank(global_x, global_y, global_mask, weights, multi_label):
    """Local loss and gradient on this rank's slice of the global batch.

    Returns (rank, eager loss, eager grad, averaged grad, graph loss, averaged graph
    grad, rank-0-only local loss or None): the averaged gradient is what
    hvd.DistributedOptimizer applies.
    """
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from focalseq.losses.keras_losses import SoftF1Loss

    hvd.init()
    x, y, mask = _local_batch(global_x, global_y, global_mask, hvd.rank(), hvd.size())
    kernel = tf.Variable(weights)
    loss_obj = SoftF1Loss(label_indices=[0, 2])
    activation = tf.nn.sigmoid if multi_label else tf.nn.softmax

    def loss_and_grad():
        with tf.GradientTape() as tape:
            probs = activation(tf.einsum("blf,fk->blk", x, kernel))
            loss = loss_obj(y, probs, sample_weight=mask)
        return loss, tape.gradient(loss, kernel)

    loss, grad = loss_and_grad()
    averaged = hvd.allreduce(grad, op=hvd.Average)
    graph_loss, graph_grad = tf.function(loss_and_grad, autograph=False)()
    graph_averaged = hvd.allreduce(graph_grad, op=hvd.Average)
    # Rank 0 alone, as in rank-0 validation: must not wait for rank 1.
    rank0_only = None
    if hvd.rank() == 0:
        rank0_only = float(loss_obj.local_copy()(y, activation(tf.einsum("blf,fk->blk", x, kernel)), mask))
    hvd.allreduce(tf.constant(0.0), name="after_rank0_only")  # fails if rank 0 communicated
    return (
        hvd.rank(),
        float(loss),
        grad.numpy(),
        averaged.numpy(),
        float(graph_loss),
        graph_averaged.numpy(),
        rank0_only,
    )
