"""Loss functions as pure TensorFlow functions.

Every function takes `y_true` and `y_pred` of shape (..., K) (typically (batch,
lines, K)) and an optional `mask` of shape (...) (1 for a real line, 0 for padding;
other non-negative values act as line weights) and returns a scalar. Per-line losses
are averaged over the unmasked lines: sum_i m_i l_i / sum_i m_i (0 when no line is
unmasked). Masked lines are replaced by constants before any arithmetic, so whatever
they hold changes neither the value nor the gradient.

Single-label losses expect softmax probabilities and one-hot targets; multi-label
losses expect sigmoid probabilities and multi-hot targets. Multi-label per-line
losses are means over the K labels, as in Keras.
"""
import numpy as np
import tensorflow as tf

from focalseq.losses.weights import strategy_weights

EPSILON = 1e-7
# Stands in for -inf in masked similarity logits: exp() of it is 0 but it has no
# NaN gradient.
_LARGE_NEGATIVE = -1e9


def _float(x):
    x = tf.convert_to_tensor(x)
    # Half precision cannot hold EPSILON; compute in float32.
    return x if x.dtype in (tf.float32, tf.float64) else tf.cast(x, tf.float32)


def _line_weights(mask, lines_shape, rank, dtype):
    if mask is None:
        return tf.ones(lines_shape, dtype)
    mask = tf.cast(mask, dtype)
    if mask.shape.rank == rank:
        mask = tf.squeeze(mask, axis=-1)
    while mask.shape.rank < rank - 1:
        mask = mask[..., tf.newaxis]
    return tf.broadcast_to(mask, lines_shape)


def _flatten(y_true, y_pred, mask, fill):
    """Returns (y_true, y_pred) as (N, K) with masked lines replaced, and weights (N,)."""
    y_pred = _float(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    rank = y_pred.shape.rank
    weights = _line_weights(mask, tf.shape(y_pred)[:-1], rank, y_pred.dtype)
    k = y_pred.shape[-1] if y_pred.shape[-1] is not None else tf.shape(y_pred)[-1]
    k_true = y_true.shape[-1] if y_true.shape[-1] is not None else tf.shape(y_true)[-1]
    y_pred = tf.reshape(y_pred, [-1, k])
    y_true = tf.reshape(y_true, [-1, k_true])
    weights = tf.reshape(weights, [-1])
    valid = weights > 0
    # Select, never multiply: 0 * garbage can be NaN, and tf.where passes no gradient
    # to the branch it does not take.
    y_pred = tf.where(valid[:, tf.newaxis], y_pred, tf.cast(fill, y_pred.dtype))
    y_true = tf.where(valid[:, tf.newaxis], y_true, tf.zeros_like(y_true))
    weights = tf.where(valid, weights, tf.zeros_like(weights))
    return y_true, y_pred, weights


def _num_labels(x):
    return tf.cast(tf.shape(x)[-1], x.dtype)


def _softmax_inputs(y_true, y_pred, mask):
    y_pred = _float(y_pred)
    k = y_pred.shape[-1]
    fill = 1.0 / k if k else 0.5
    y_true, y_pred, weights = _flatten(y_true, y_pred, mask, fill)
    # As Keras: renormalise so rows sum to 1, then keep log() finite.
    y_pred = y_pred / tf.reduce_sum(y_pred, axis=-1, keepdims=True)
    y_pred = tf.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON)
    return y_true, y_pred, weights


def _sigmoid_inputs(y_true, y_pred, mask):
    y_true, y_pred, weights = _flatten(y_true, y_pred, mask, 0.5)
    return y_true, tf.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON), weights


def _masked_mean(per_line, weights):
    return tf.math.divide_no_nan(tf.reduce_sum(weights * per_line), tf.reduce_sum(weights))


def _per_label(value, dtype):
    """None -> 1, scalar -> scalar, sequence -> (K,) constant."""
    if value is None:
        return tf.constant(1.0, dtype)
    return tf.constant(np.asarray(value, dtype=np.float64), dtype)


def _smooth_categorical(y_true, label_smoothing):
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + label_smoothing / _num_labels(y_true)


def _smooth_binary(y_true, label_smoothing):
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing


def _safe_pow(base, exponent):
    """base**exponent for base >= 0 with a finite gradient at base == 0."""
    positive = base > 0
    safe = tf.where(positive, base, tf.ones_like(base))
    at_zero = 1.0 if exponent == 0 else 0.0
    return tf.where(positive, tf.pow(safe, exponent), tf.fill(tf.shape(base), tf.cast(at_zero, base.dtype)))


def _focal_per_line(y_true, y_pred, gamma, alpha):
    alpha = _per_label(alpha, y_pred.dtype)
    terms = alpha * tf.pow(1.0 - y_pred, gamma) * (-y_true * tf.math.log(y_pred))
    return tf.reduce_sum(terms, axis=-1)


def cross_entropy(y_true, y_pred, mask=None, label_smoothing=0.0):
    """Categorical cross-entropy: l = -sum_c t_c log p_c.

    Args:
        label_smoothing: s in [0, 1]; targets t = y (1 - s) + s / K.
    """
    y_true, y_pred, weights = _softmax_inputs(y_true, y_pred, mask)
    y_true = _smooth_categorical(y_true, label_smoothing)
    return _masked_mean(-tf.reduce_sum(y_true * tf.math.log(y_pred), axis=-1), weights)


def weighted_cross_entropy(y_true, y_pred, mask=None, class_weights=None):
    """Class-weighted cross-entropy: sum_i m_i w_{y_i} CE_i / sum_i m_i.

    Normalised by the number of unmasked lines, not by the sum of the weights, as
    Keras' `class_weight` in `fit`: the weights keep their effect in every batch.

    Args:
        class_weights: K weights aligned with the labels (None: all 1).
    """
    y_true, y_pred, weights = _softmax_inputs(y_true, y_pred, mask)
    line_weight = tf.reduce_sum(y_true * _per_label(class_weights, y_pred.dtype), axis=-1)
    ce = -tf.reduce_sum(y_true * tf.math.log(y_pred), axis=-1)
    return _masked_mean(line_weight * ce, weights)


def focal(y_true, y_pred, mask=None, gamma=2.0, alpha=None, label_smoothing=0.0):
    """Focal loss (Lin et al. 2017): l = -sum_c alpha_c (1 - p_c)^gamma t_c log p_c.

    Equals `tf.keras.losses.CategoricalFocalCrossentropy` per line with the same
    alpha (Keras defaults to alpha=0.25; here None means 1, no balancing).

    Args:
        gamma: Focusing parameter >= 0; 0 gives cross-entropy.
        alpha: None, a scalar or K per-label weights in [0, 1].
        label_smoothing: s in [0, 1]; t = y (1 - s) + s / K.
    """
    y_true, y_pred, weights = _softmax_inputs(y_true, y_pred, mask)
    y_true = _smooth_categorical(y_true, label_smoothing)
    return _masked_mean(_focal_per_line(y_true, y_pred, gamma, alpha), weights)


def _horovod_sum(tensor):
    """Sums `tensor` over Horovod processes; identity without an initialised Horovod."""
    try:
        import horovod.tensorflow as hvd
    except ImportError:
        return tensor
    if not hvd.is_initialized() or hvd.size() <= 1:
        return tensor
    return hvd.allreduce(tensor, op=hvd.Sum)


def soft_f1(y_true, y_pred, mask=None, label_indices=None, distributed=False, eps=EPSILON,
            cross_entropy_weight=0.0, multi_label=False):
    """Soft macro F1 loss: 1 - mean_c 2 TP_c / (2 TP_c + FP_c + FN_c + eps), plus
    `cross_entropy_weight` x the cross-entropy of every label when it is above 0.

    TP_c = sum_i m_i p_ic y_ic, FP_c = sum_i m_i p_ic (1 - y_ic), FN_c = sum_i m_i
    (1 - p_ic) y_ic, over all unmasked lines of the batch; softmax or sigmoid
    probabilities alike. A label absent from the batch has F1 ~ 0.

    Args:
        label_indices: Labels (output indices) the mean runs over; None: all.
        distributed: Sum [TP, FP, FN] over Horovod processes before forming F1,
            so every process gets the global-batch loss; a no-op unless Horovod
            is initialised with more than one process.
        eps: Keeps the ratio finite.
        cross_entropy_weight: w >= 0 of the added per-line term (`cross_entropy`, or
            `binary_cross_entropy` when `multi_label`), as Dice + CE in segmentation:
            the set-level F1 alone can reward labelling every line rare while a small
            batch holds few rare lines; the per-line term keeps each line's gradient.
        multi_label: The outputs are sigmoid (the term is binary cross-entropy).
    """
    f1_loss = _soft_f1_only(y_true, y_pred, mask, label_indices, distributed, eps)
    if not cross_entropy_weight:
        return f1_loss
    per_line = binary_cross_entropy if multi_label else cross_entropy
    return f1_loss + cross_entropy_weight * per_line(y_true, y_pred, mask)


def _soft_f1_only(y_true, y_pred, mask, label_indices, distributed, eps):
    y_true, y_pred, weights = _flatten(y_true, y_pred, mask, 0.0)
    if label_indices is not None:
        y_true = tf.gather(y_true, label_indices, axis=-1)
        y_pred = tf.gather(y_pred, label_indices, axis=-1)
    weights = weights[:, tf.newaxis]
    counts = tf.stack(
        [
            tf.reduce_sum(weights * y_pred * y_true, axis=0),
            tf.reduce_sum(weights * y_pred * (1.0 - y_true), axis=0),
            tf.reduce_sum(weights * (1.0 - y_pred) * y_true, axis=0),
        ]
    )
    if distributed:
        counts = _horovod_sum(counts)
    tp, fp, fn = tf.unstack(counts)
    f1 = 2.0 * tp / (2.0 * tp + fp + fn + eps)
    return 1.0 - tf.reduce_mean(f1)


def adaptive(y_true, y_pred, mask=None, progress=0.0, class_weights=None, gamma=2.0, alpha=None):
    """Curriculum loss: (1 - t) weighted_cross_entropy + t focal, t = `progress` in [0, 1]."""
    t = tf.cast(progress, _float(y_pred).dtype)
    wce = weighted_cross_entropy(y_true, y_pred, mask, class_weights=class_weights)
    fl = focal(y_true, y_pred, mask, gamma=gamma, alpha=alpha)
    return (1.0 - t) * wce + t * fl


def supervised_contrastive(y_true, representations, mask=None, temperature=0.1):
    """Supervised contrastive loss (Khosla et al. 2020, L_out).

    Over the unmasked lines i of the whole batch, with z the L2-normalised
    representations, P(i) the other lines with i's label and A(i) all other lines:
    l_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T)),
    averaged over the anchors that have at least one positive. Memory is
    O((batch * lines)^2).

    Args:
        y_true: One-hot labels (..., K).
        representations: (..., D) line representations.
        temperature: T > 0.
    """
    y_true, z, weights = _flatten(y_true, representations, mask, 0.0)
    z = tf.math.l2_normalize(z, axis=-1)
    valid = weights > 0
    n = tf.shape(z)[0]
    others = tf.logical_and(valid[:, tf.newaxis], valid[tf.newaxis, :])
    others = tf.logical_and(others, tf.logical_not(tf.eye(n, dtype=tf.bool)))
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits = tf.where(others, logits, tf.cast(_LARGE_NEGATIVE, logits.dtype))
    log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    same_label = tf.matmul(y_true, y_true, transpose_b=True) > 0.5
    positives = tf.cast(tf.logical_and(same_label, others), z.dtype)
    n_positives = tf.reduce_sum(positives, axis=1)
    mean_log_prob = tf.math.divide_no_nan(tf.reduce_sum(positives * log_prob, axis=1), n_positives)
    anchor_weights = weights * tf.cast(n_positives > 0, z.dtype)
    return _masked_mean(-mean_log_prob, anchor_weights)


def focal_contrastive(
    y_true,
    y_pred,
    mask=None,
    n_labels=None,
    gamma=2.0,
    alpha=None,
    temperature=0.1,
    focal_weight=0.7,
    contrastive_weight=0.3,
):
    """focal_weight * focal + contrastive_weight * supervised_contrastive.

    `y_pred` is concat([probabilities (K), representation (D)], axis=-1); it is
    split at K = `n_labels` (default: the last dimension of `y_true`).
    """
    y_pred = _float(y_pred)
    n_labels = n_labels or y_true.shape[-1]
    if not n_labels:
        raise ValueError("focal_contrastive: invalid n_labels None; valid values: the number of labels K")
    if y_pred.shape[-1] is not None and y_pred.shape[-1] <= n_labels:
        raise ValueError(
            f"focal_contrastive: invalid y_pred last dimension {y_pred.shape[-1]}; valid values: "
            f"n_labels ({n_labels}) + representation size (> 0), from concat([probs, representation])"
        )
    probs, representations = y_pred[..., :n_labels], y_pred[..., n_labels:]
    loss = focal_weight * focal(y_true, probs, mask, gamma=gamma, alpha=alpha)
    return loss + contrastive_weight * supervised_contrastive(y_true, representations, mask, temperature)


def class_balanced(y_true, y_pred, mask=None, label_counts=None, beta=0.999, base="softmax", gamma=2.0):
    """Class-balanced loss (Cui et al. 2019): w_c = (1 - beta) / (1 - beta^n_c), sum K.

    base "softmax": weighted_cross_entropy with w; base "focal": focal with alpha = w
    (w_{y} (1 - p_y)^gamma (-log p_y) for one-hot targets).

    Args:
        label_counts: K training counts aligned with the labels.
    """
    if label_counts is None:
        raise ValueError("class_balanced: invalid label_counts None; valid values: K counts >= 0")
    class_weights = strategy_weights("effective_number", label_counts, beta)
    if base == "focal":
        return focal(y_true, y_pred, mask, gamma=gamma, alpha=class_weights)
    return weighted_cross_entropy(y_true, y_pred, mask, class_weights=class_weights)


def logit_adjusted(y_true, y_pred, mask=None, priors=None, tau=1.0):
    """Logit-adjusted loss (Menon et al. 2021): CE of softmax(log p + tau log pi).

    log p equals the network's logits up to a per-line constant, which softmax
    ignores, so this is exact on probabilities.

    Args:
        priors: K positive label priors (any scale).
        tau: Adjustment strength >= 0.
    """
    priors_np = None if priors is None else np.asarray(priors, dtype=np.float64)
    if priors_np is None or not np.all(priors_np > 0):
        raise ValueError(f"logit_adjusted: invalid priors {priors!r}; valid values: K positive numbers")
    y_true, y_pred, weights = _softmax_inputs(y_true, y_pred, mask)
    logits = tf.math.log(y_pred) + tf.constant(tau * np.log(priors_np), y_pred.dtype)
    ce = -tf.reduce_sum(y_true * tf.nn.log_softmax(logits, axis=-1), axis=-1)
    return _masked_mean(ce, weights)


def binary_cross_entropy(y_true, y_pred, mask=None, label_smoothing=0.0):
    """Binary cross-entropy: l = -mean_c [t_c log p_c + (1 - t_c) log(1 - p_c)].

    Args:
        label_smoothing: s in [0, 1]; t = y (1 - s) + s / 2.
    """
    y_true, y_pred, weights = _sigmoid_inputs(y_true, y_pred, mask)
    y_true = _smooth_binary(y_true, label_smoothing)
    bce = -(y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))
    return _masked_mean(tf.reduce_mean(bce, axis=-1), weights)


def binary_focal(y_true, y_pred, mask=None, gamma=2.0, alpha=0.25, label_smoothing=0.0):
    """Binary focal loss (Lin et al. 2017): mean_c a_c (1 - p_t)^gamma BCE_c.

    p_t = t p + (1 - t)(1 - p), a = t alpha + (1 - t)(1 - alpha); as
    `tf.keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True)`.

    Args:
        gamma: Focusing parameter >= 0.
        alpha: Positive-class weight in [0, 1], scalar or per label; None: no balancing.
        label_smoothing: s in [0, 1]; t = y (1 - s) + s / 2.
    """
    y_true, y_pred, weights = _sigmoid_inputs(y_true, y_pred, mask)
    y_true = _smooth_binary(y_true, label_smoothing)
    bce = -(y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    loss = tf.pow(1.0 - p_t, gamma) * bce
    if alpha is not None:
        a = _per_label(alpha, y_pred.dtype)
        loss = (y_true * a + (1.0 - y_true) * (1.0 - a)) * loss
    return _masked_mean(tf.reduce_mean(loss, axis=-1), weights)


def asymmetric(y_true, y_pred, mask=None, gamma_pos=0.0, gamma_neg=4.0, clip=0.05):
    """Asymmetric loss (Ridnik et al. 2021), averaged over labels.

    With p_m = max(p - clip, 0): l = -mean_c [y (1 - p)^gamma_pos log p
    + (1 - y) p_m^gamma_neg log(1 - p_m)]. The paper sums over labels; the mean
    keeps the scale of the other multi-label losses.
    """
    y_true, y_pred, weights = _sigmoid_inputs(y_true, y_pred, mask)
    shifted = tf.maximum(y_pred - clip, 0.0) if clip > 0 else y_pred
    positive = y_true * _safe_pow(1.0 - y_pred, gamma_pos) * tf.math.log(y_pred)
    negative = (
        (1.0 - y_true)
        * _safe_pow(shifted, gamma_neg)
        * tf.math.log(tf.maximum(1.0 - shifted, EPSILON))
    )
    return _masked_mean(tf.reduce_mean(-(positive + negative), axis=-1), weights)
