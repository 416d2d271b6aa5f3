"""A linear-chain CRF head over a window's lines that outputs per-line marginals.

The head scores a whole label sequence as the sum of each line's emission score and a
learned transition score between consecutive lines' labels (GROBID's segmentation model
and other strong line labellers are CRFs of this kind). Its output is each line's
marginal probability of each label, computed exactly by the forward-backward algorithm,
so it is a drop-in replacement for the per-line softmax: every loss of
`focalseq.losses` (soft-F1, focal, cross-entropy, ...) trains it through the marginals,
and overlapping windows' probabilities are averaged per line as before. Training the
marginals (rather than the sequence likelihood) is the per-position objective of
Kakade et al. (2002); prediction takes the most probable label of each line.

Lines whose inputs are all zero are padding (`focalseq.stages.windows` pads a short
document's window at its end with all-zero rows). They take no part in the chain: the
transition runs from the last real line before them to the next real line after them,
and their own output is the softmax of their emissions.
"""
import tensorflow as tf


def chain_marginals(emissions, transitions, mask):
    """Per-position marginals of a linear-chain CRF.

    Args:
        emissions: (batch, lines, labels) float scores.
        transitions: (labels, labels) float; [i, j] scores label i followed by label j.
        mask: (batch, lines) bool, False for padding positions.

    Returns:
        (batch, lines, labels) probabilities; a masked position gets softmax(emissions).
    """
    steps = emissions.shape[1]
    if steps is None:
        raise ValueError("chain_marginals: the number of lines must be static")
    e = tf.unstack(emissions, axis=1)
    m = [mask_t[:, None] for mask_t in tf.unstack(mask, axis=1)]

    # Forward: alpha[i] scores every labelling of the real lines up to i that ends in
    # each label; the first real line has no predecessor, a padding line passes the last
    # real line's alpha on.
    alpha, seen = [], tf.zeros_like(m[0])
    prev = tf.zeros_like(e[0])
    for i in range(steps):
        moved = tf.reduce_logsumexp(prev[:, :, None] + transitions, axis=1) + e[i]
        prev = tf.where(m[i], tf.where(seen, moved, e[i]), prev)
        seen = tf.logical_or(seen, m[i])
        alpha.append(prev)
    # Backward: beta[i] scores every labelling of the real lines after i, given line i's
    # label; `nxt` is what the next real line sends back (0 when there is none).
    beta, nxt = [None] * steps, tf.zeros_like(e[0])
    transposed = tf.transpose(transitions)
    for i in reversed(range(steps)):
        beta[i] = nxt
        sent = tf.reduce_logsumexp((e[i] + beta[i])[:, :, None] + transposed, axis=1)
        nxt = tf.where(m[i], sent, nxt)
    out = [tf.where(m[i], tf.nn.softmax(alpha[i] + beta[i]), tf.nn.softmax(e[i]))
           for i in range(steps)]
    return tf.stack(out, axis=1)


@tf.keras.saving.register_keras_serializable(package="focalseq")
class ChainCRF(tf.keras.layers.Layer):
    """Emissions (batch, lines, labels) and a line mask -> per-line marginals.

    Computed in float32 whatever the mixed-precision policy (log-sum-exp over long
    chains loses too much in float16).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def build(self, input_shape):
        labels = int(input_shape[-1])
        # Zero transitions start the head as the per-line softmax it replaces.
        self.transitions = self.add_weight(name="transitions", shape=(labels, labels),
                                           initializer="zeros", trainable=True)
        super().build(input_shape)

    def call(self, emissions, mask):
        return chain_marginals(tf.cast(emissions, tf.float32), self.transitions,
                               tf.cast(mask, tf.bool))


@tf.keras.saving.register_keras_serializable(package="focalseq")
class RealLines(tf.keras.layers.Layer):
    """(token_ids (B, T, K), shape (B, T, F)) -> (B, T) bool: False for padding lines,
    whose ids and shape features are all zero."""

    def call(self, token_ids, shape):
        return tf.logical_or(tf.reduce_any(tf.not_equal(token_ids, 0), axis=-1),
                             tf.reduce_any(tf.not_equal(shape, 0.0), axis=-1))
