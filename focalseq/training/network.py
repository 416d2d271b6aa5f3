"""The BiLSTM line labeler: a per-line token encoder, a BiLSTM over the window's lines,
and a per-line softmax (single-label) or sigmoid (multi-label) head, or a linear-chain CRF
over the window's lines (single-label; `focalseq.training.chain_crf`).

Inputs (per window): `token_ids` (lines, max_tokens) int32 with 0 as padding, and
`shape` (lines, n_shape) float32. Output: (lines, n_labels) probabilities; when the loss
needs per-line representations (`focal_contrastive`), the output is the concatenation
[probabilities, L2-normalised representation] and `split_output` separates them.

Token encoders (padding ids never change a line's encoding):

* ``mean``: masked mean of the token embeddings (a fastText-style bag of tokens).
* ``cnn``: token convolutions (width 3) followed by a masked max over positions.
* ``bilstm``: a BiLSTM over the line's tokens, padding masked.

Custom layers (the CRF's too) are registered when this module is imported, so saved
models load without custom_objects.
"""
import tensorflow as tf

from focalseq.config import CHOICES
from focalseq.training.chain_crf import ChainCRF, RealLines

ENCODERS = ("mean", "cnn", "bilstm")
HEADS = CHOICES["train.head"]


def _token_mask(token_ids, dtype):
    return tf.cast(tf.not_equal(token_ids, 0), dtype)[..., None]


@tf.keras.saving.register_keras_serializable(package="focalseq")
class MaskedMeanPool(tf.keras.layers.Layer):
    """Mean of token embeddings over non-padding tokens: (B, T, K, E) -> (B, T, E)."""

    def call(self, embedded, token_ids):
        mask = _token_mask(token_ids, embedded.dtype)
        total = tf.reduce_sum(embedded * mask, axis=-2)
        count = tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)
        return total / count


@tf.keras.saving.register_keras_serializable(package="focalseq")
class ZeroPadding(tf.keras.layers.Layer):
    """Zeroes the embeddings of padding tokens: (B, T, K, E) -> (B, T, K, E)."""

    def call(self, embedded, token_ids):
        return embedded * _token_mask(token_ids, embedded.dtype)


@tf.keras.saving.register_keras_serializable(package="focalseq")
class MaskedMaxPool(tf.keras.layers.Layer):
    """Max over non-padding tokens: (B, T, K, E) -> (B, T, E); 0 for a line with none."""

    def call(self, features, token_ids):
        mask = _token_mask(token_ids, features.dtype)
        lowest = tf.reduce_min(features) - 1.0
        pooled = tf.reduce_max(features * mask + lowest * (1.0 - mask), axis=-2)
        return pooled * tf.cast(tf.reduce_max(mask, axis=-2) > 0, features.dtype)


@tf.keras.saving.register_keras_serializable(package="focalseq")
class TokenDropout(tf.keras.layers.Layer):
    """Training only: each token id becomes padding (0) with probability `rate`.

    Whole tokens vanish, so the network cannot lean on any single word of a line; this
    is what regularises a hashed bag of words best (the lines of the test journal use
    other words for the same things).
    """

    def __init__(self, rate: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed

    def call(self, token_ids, training=None):
        if not training or self.rate <= 0.0:
            return token_ids
        keep = tf.random.uniform(tf.shape(token_ids), seed=self.seed) >= self.rate
        return tf.where(keep, token_ids, tf.zeros_like(token_ids))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@tf.keras.saving.register_keras_serializable(package="focalseq")
class FoldLines(tf.keras.layers.Layer):
    """(B, T, K, ...) -> (B * T, K, ...): runs a token-level layer once per line."""

    def call(self, x):
        shape = tf.shape(x)
        return tf.reshape(x, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


@tf.keras.saving.register_keras_serializable(package="focalseq")
class UnfoldLines(tf.keras.layers.Layer):
    """(B * T, ...) -> (B, T, ...) for a window of `lines` lines."""

    def __init__(self, lines: int, **kwargs):
        super().__init__(**kwargs)
        self.lines = int(lines)

    def call(self, x):
        shape = tf.shape(x)
        return tf.reshape(x, tf.concat([[-1, self.lines], shape[1:]], 0))

    def get_config(self):
        return {**super().get_config(), "lines": self.lines}


@tf.keras.saving.register_keras_serializable(package="focalseq")
class L2Normalize(tf.keras.layers.Layer):
    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1)


def _encode_lines(encoder, embedded, tokens, window, embedding_dim):
    if encoder == "mean":
        return MaskedMeanPool(name="mean_pool")(embedded, tokens)
    if encoder == "cnn":
        conv = tf.keras.layers.Conv1D(embedding_dim, 3, padding="same", activation="relu",
                                      name="token_conv")
        # Conv1D takes (batch, steps, channels): fold lines into the batch and back.
        # Padding embeddings are zeroed first, so a convolution at a line's last tokens
        # sees the same zeros whatever the padding; Conv1D takes (batch, steps, channels).
        embedded = ZeroPadding(name="zero_padding")(embedded, tokens)
        folded = conv(FoldLines(name="fold_conv")(embedded))
        features = UnfoldLines(window, name="unfold_conv")(folded)
        return MaskedMaxPool(name="max_pool")(features, tokens)
    flat = FoldLines(name="fold_tokens")(embedded)
    flat_ids = FoldLines(name="fold_ids")(tokens)
    token_lstm = tf.keras.layers.Bidirectional(
        tf.keras.layers.LSTM(max(1, embedding_dim // 2)), name="token_bilstm")
    encoded = token_lstm(flat, mask=tf.not_equal(flat_ids, 0))
    return UnfoldLines(window, name="unfold_tokens")(encoded)


def build_network(window: int, max_tokens: int, n_shape: int, n_labels: int, *,
                  vocab_size: int, embedding_dim: int = 64, encoder: str = "mean",
                  hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.2,
                  recurrent_dropout: float = 0.0, multi_label: bool = False,
                  representation_dim: int = 0, token_dropout: float = 0.0,
                  skip: bool = False, head: str = "softmax") -> tf.keras.Model:
    """Builds the network.

    Args:
        window, max_tokens, n_shape, n_labels: input and output sizes.
        vocab_size: hashed token space (ids in [0, vocab_size)).
        embedding_dim: token embedding size.
        encoder: per-line token encoder, one of `ENCODERS`.
        hidden_size: width of the line projection and of the window BiLSTM (both
            directions together).
        num_layers: stacked BiLSTM layers over the window's lines.
        dropout: dropout after the line projection and after each BiLSTM layer.
        recurrent_dropout: LSTM recurrent dropout.
        multi_label: sigmoid head instead of softmax.
        representation_dim: > 0 appends an L2-normalised projection to the output.
        token_dropout: probability of dropping each token id while training.
        skip: the head also sees each line's own projection, not only the BiLSTM state.
        head: `HEADS`: softmax (sigmoid when multi_label) per line, or crf, a linear
            chain over the window's lines whose output is each line's marginals.

    Raises:
        ValueError: on an unknown encoder or head, a crf head on multi-label windows, or
            an out-of-range size or rate.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder: {encoder!r} is not one of {ENCODERS}")
    if head not in HEADS:
        raise ValueError(f"head: {head!r} is not one of {HEADS}")
    if head == "crf" and multi_label:
        raise ValueError("head: 'crf' labels each line with one label; multi-label windows "
                         "need head 'softmax' (a sigmoid per label)")
    for name, value in (("window", window), ("max_tokens", max_tokens),
                        ("n_labels", n_labels), ("embedding_dim", embedding_dim),
                        ("hidden_size", hidden_size), ("vocab_size", vocab_size)):
        if value < 1:
            raise ValueError(f"{name}: must be >= 1, got {value}")
    for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout),
                        ("token_dropout", token_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: must be in [0, 1), got {value}")
    tokens = tf.keras.Input((window, max_tokens), dtype="int32", name="token_ids")
    shape = tf.keras.Input((window, n_shape), dtype="float32", name="shape")
    kept = TokenDropout(token_dropout, name="token_dropout")(tokens) if token_dropout else tokens
    embedded = tf.keras.layers.Embedding(vocab_size, embedding_dim, name="token_embedding")(kept)
    line = _encode_lines(encoder, embedded, kept, window, embedding_dim)
    x = tf.keras.layers.Concatenate(name="line_features")([line, shape])
    x = tf.keras.layers.Dense(hidden_size, activation="relu", name="line_dense")(x)
    x = tf.keras.layers.Dropout(dropout)(x)
    projected = x
    for i in range(num_layers):
        x = tf.keras.layers.Bidirectional(
            tf.keras.layers.LSTM(max(1, hidden_size // 2), return_sequences=True,
                                 recurrent_dropout=recurrent_dropout),
            name=f"window_bilstm_{i}")(x)
        x = tf.keras.layers.Dropout(dropout)(x)
    if skip:
        x = tf.keras.layers.Concatenate(name="context_and_line")([x, projected])
    if head == "crf":
        emissions = tf.keras.layers.Dense(n_labels, name="labels")(x)
        probs = ChainCRF(name="chain_crf")(emissions, RealLines(name="real_lines")(tokens,
                                                                                   shape))
    else:
        activation = "sigmoid" if multi_label else "softmax"
        probs = tf.keras.layers.Dense(n_labels, activation=activation, name="labels")(x)
    outputs = probs
    if representation_dim > 0:
        rep = tf.keras.layers.Dense(representation_dim, name="projection")(x)
        rep = L2Normalize(name="representation")(rep)
        outputs = tf.keras.layers.Concatenate(name="probs_and_representation")([probs, rep])
    return tf.keras.Model([tokens, shape], outputs, name="focalseq_bilstm")


def split_output(output, n_labels: int):
    """Probabilities from a network output (drops a representation head if present)."""
    return output[..., :n_labels]
