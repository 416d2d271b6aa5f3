"""All of a step's gradients averaged across Horovod ranks in one collective.

`hvd.DistributedOptimizer` averages dense gradients with an allreduce and sparse ones
(the token embedding's `IndexedSlices`) with two allgathers, values and indices: three
collectives a step, each with its own negotiation round in Horovod's background thread.
On CPU workers sharing a few cores that latency, not the bytes, is most of the cost of a
step (benchmarks/horovod_step_cost.py: about 10 ms a step at batch 32 against a 12.5 ms
step of compute; 4.5 ms this way). Here every rank packs its gradients into one float32
vector

    [rows of each sparse gradient | every dense gradient, flattened |
     for each sparse gradient: its row indices, then its rows]

and a single `allgather` (sizes may differ by rank) hands every rank all the vectors. Each
rank then unpacks them the same way: dense gradients summed and divided by the number of
ranks (an allreduce's average), sparse ones concatenated with their values divided by the
number of ranks and duplicate rows summed (what the two allgathers and Horovod's averaging
give, deduplicated). Row indices travel as float32, exact below 2**24 rows, which
`packable` checks; gradients of other dtypes (mixed precision) keep the usual optimizer.
"""
import tensorflow as tf

MAX_EXACT_ROWS = 1 << 24  # float32 represents every integer below this exactly


def packable(variables) -> bool:
    """True when every variable is float32 and no embedding has 2**24 rows or more."""
    return all(v.dtype == tf.float32 and (v.shape.rank < 1 or v.shape[0] < MAX_EXACT_ROWS)
               for v in variables)


def _pack(grads):
    sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)]
    counts = [tf.cast(tf.shape(grads[i].indices)[0], tf.float32) for i in sparse]
    parts = [tf.stack(counts)] if counts else []
    parts += [tf.reshape(g, [-1]) for g in grads
              if g is not None and not isinstance(g, tf.IndexedSlices)]
    for i in sparse:
        parts.append(tf.cast(grads[i].indices, tf.float32))
        parts.append(tf.reshape(grads[i].values, [-1]))
    return tf.concat(parts, 0), sparse


def average_packed(grads, shapes, allgather, size: int):
    """`grads` (Tensors, IndexedSlices or None) of variables of `shapes` (fully defined)
    averaged over `size` ranks with one call of `allgather` (a 1-D float32 tensor -> the
    concatenation of every rank's)."""
    shapes = [tf.TensorShape(s) for s in shapes]
    packed, sparse = _pack(grads)
    gathered = allgather(packed)
    dense_shapes = [s for g, s in zip(grads, shapes)
                    if g is not None and not isinstance(g, tf.IndexedSlices)]
    dense_size = sum(s.num_elements() for s in dense_shapes)
    widths = [shapes[i][1:].num_elements() for i in sparse]
    dense_sum = tf.zeros([dense_size], tf.float32)
    indices = [[] for _ in sparse]
    values = [[] for _ in sparse]
    offset = tf.constant(0, tf.int64)
    for _ in range(size):
        counts = tf.cast(gathered[offset:offset + len(sparse)], tf.int64)
        offset += len(sparse)
        dense_sum += gathered[offset:offset + dense_size]
        offset += dense_size
        for j, width in enumerate(widths):
            n = counts[j]
            indices[j].append(tf.cast(gathered[offset:offset + n], tf.int64))
            offset += n
            values[j].append(tf.reshape(gathered[offset:offset + n * width], [-1, width]))
            offset += n * width
    dense_parts = iter(tf.split(dense_sum / size, [s.num_elements() for s in dense_shapes])
                       if dense_shapes else [])
    shapes_of = [shapes[i][1:].as_list() for i in sparse]
    out, j = [], 0
    for g, shape in zip(grads, shapes):
        if g is None:
            out.append(None)
        elif isinstance(g, tf.IndexedSlices):
            rows = tf.concat(indices[j], 0)
            vals = tf.reshape(tf.concat(values[j], 0) / size, [-1] + shapes_of[j])
            unique, position = tf.unique(rows)
            summed = tf.math.unsorted_segment_sum(vals, position, tf.shape(unique)[0])
            out.append(tf.IndexedSlices(summed, tf.cast(unique, g.indices.dtype),
                                        g.dense_shape))
            j += 1
        else:
            out.append(tf.reshape(next(dense_parts), shape))
    return out


def one_collective(optimizer_class, hvd):
    """`optimizer_class` whose gradients are averaged over the ranks by `average_packed`.

    `optimizer_class` should already deduplicate its sparse gradients
    (`worker._deduplicating`), so each rank sends every embedding row once.
    """
    import horovod.tensorflow as hvd_tf

    class OneCollective(optimizer_class):
        def _compute_gradients(self, loss, var_list, grad_loss=None, tape=None):
            pairs = super()._compute_gradients(loss, var_list, grad_loss, tape)
            if hvd.size() == 1:
                return pairs
            grads = average_packed([g for g, _ in pairs], [v.shape for _, v in pairs],
                                   lambda t: hvd_tf.allgather(t, name="focalseq_gradients"),
                                   hvd.size())
            return list(zip(grads, [v for _, v in pairs]))

    OneCollective.__name__ = optimizer_class.__name__
    return OneCollective
