"""The BiLSTM line labeler: a per-line token encoder, a BiLSTM over the window's lines,
and a per-line softmax (single-label) or sigmoid (multi-label) head.

Inputs (per window): `token_ids` (lines, max_tokens) int32 with 0 as padding, and
`shape` (lines, n_shape) float32. Output: (lines, n_labels) probabilities; when the loss
needs per-line representations (`focal_contrastive`), the output is the concatenation
[probabilities, L2-normalised representation] and `split_output` separates them.
Custom layers are registered, so saved models load without custom_objects.
"""
import tensorflow as tf

ENCODERS = ("mean", "cnn", "bilstm")


@tf.keras.saving.register_keras_serializable(package="focalseq")
class MaskedMeanPool(tf.keras.layers.Layer):
    """Mean of token embeddings over non-padding tokens: (B, T, K, E) -> (B, T, E)."""

    def call(self, embedded, token_ids):
        mask = tf.cast(tf.not_equal(token_ids, 0), embedded.dtype)[..., None]
        total = tf.reduce_sum(embedded * mask, axis=-2)
        count = tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)
        return total / count


@tf.keras.saving.register_keras_serializable(package="focalseq")
class L2Normalize(tf.keras.layers.Layer):
    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1)


def build_network(window: int, max_tokens: int, n_shape: int, n_labels: int, *,
                  vocab_size: int, embedding_dim: int = 64, encoder: str = "mean",
                  hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.2,
                  recurrent_dropout: float = 0.0, multi_label: bool = False,
                  representation_dim: int = 0) -> tf.keras.Model:
    """Builds the network; `representation_dim` > 0 appends a projection head output."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder: {encoder!r} is not one of {ENCODERS}")
    tokens = tf.keras.Input((window, max_tokens), dtype="int32", name="token_ids")
    shape = tf.keras.Input((window, n_shape), dtype="float32", name="shape")
    embedded = tf.keras.layers.Embedding(vocab_size, embedding_dim, name="token_embedding")(tokens)
    if encoder == "mean":
        line = MaskedMeanPool(name="mean_pool")(embedded, tokens)
    elif encoder == "cnn":
        conv = tf.keras.Sequential([
            tf.keras.layers.Conv1D(embedding_dim, 3, padding="same", activation="relu"),
            tf.keras.layers.GlobalMaxPooling1D(),
        ], name="cnn_encoder")
        line = tf.keras.layers.TimeDistributed(conv, name="line_cnn")(embedded)
    else:
        token_lstm = tf.keras.layers.Bidirectional(
            tf.keras.layers.LSTM(embedding_dim // 2), name="token_bilstm")
        line = tf.keras.layers.TimeDistributed(token_lstm, name="line_bilstm")(embedded)
    x = tf.keras.layers.Concatenate(name="line_features")([line, shape])
    x = tf.keras.layers.Dense(hidden_size, activation="relu", name="line_dense")(x)
    x = tf.keras.layers.Dropout(dropout)(x)
    for i in range(num_layers):
        x = tf.keras.layers.Bidirectional(
            tf.keras.layers.LSTM(hidden_size // 2, return_sequences=True,
                                 recurrent_dropout=recurrent_dropout),
            name=f"window_bilstm_{i}")(x)
        x = tf.keras.layers.Dropout(dropout)(x)
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
