"""The loss math: hand-worked cases, Keras equality, gradients, ordering, masking."""
import math

import numpy as np
import pytest
import tensorflow as tf

from focalseq.losses import LOSS_NAMES, MULTI_LABEL_LOSSES, SINGLE_LABEL_LOSSES, build_loss
from focalseq.losses import functions as F

log = math.log

# Three real lines and one padding line full of garbage: (batch=1, lines=4, K=3).
P_REAL = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.25, 0.25, 0.5]]
Y_REAL = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
P = np.array([P_REAL + [[1e6, -2.0, 3e4]]], dtype=np.float32)
Y = np.array([Y_REAL + [[5, -3, 7]]], dtype=np.float32)
MASK = np.array([[1, 1, 1, 0]], dtype=np.float32)

# Multi-label: two real lines, one padding line.
PM = np.array([[[0.9, 0.2, 0.6], [0.3, 0.7, 0.01], [4e5, -7.0, 0.5]]], dtype=np.float32)
YM = np.array([[[1, 0, 1], [0, 1, 0], [9, 9, -1]]], dtype=np.float32)
MASKM = np.array([[1, 1, 0]], dtype=np.float32)

LABELS = ["O", "B", "I"]
COUNTS = {"O": 100, "B": 10, "I": 1}


def value(fn, y, p, mask, **kwargs):
    return float(fn(tf.constant(y), tf.constant(p), tf.constant(mask), **kwargs))


# --- hand-worked values -------------------------------------------------------


def test_cross_entropy_by_hand():
    expected = (-log(0.7) - log(0.6) - log(0.5)) / 3
    assert value(F.cross_entropy, Y, P, MASK) == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_label_smoothing_by_hand():
    # s = 0.3, K = 3: target 0.8 on the true label, 0.1 elsewhere.
    lines = [
        -(0.8 * log(0.7) + 0.1 * log(0.2) + 0.1 * log(0.1)),
        -(0.1 * log(0.3) + 0.8 * log(0.6) + 0.1 * log(0.1)),
        -(0.1 * log(0.25) + 0.1 * log(0.25) + 0.8 * log(0.5)),
    ]
    got = value(F.cross_entropy, Y, P, MASK, label_smoothing=0.3)
    assert got == pytest.approx(sum(lines) / 3, rel=1e-5)


def test_weighted_cross_entropy_by_hand():
    # Divided by the 3 unmasked lines, not by the weight sum 1 + 2 + 4.
    expected = (1 * -log(0.7) + 2 * -log(0.6) + 4 * -log(0.5)) / 3
    got = value(F.weighted_cross_entropy, Y, P, MASK, class_weights=[1.0, 2.0, 4.0])
    assert got == pytest.approx(expected, rel=1e-5)


def test_focal_by_hand():
    expected = (0.3**2 * -log(0.7) + 0.4**2 * -log(0.6) + 0.5**2 * -log(0.5)) / 3
    assert value(F.focal, Y, P, MASK, gamma=2.0) == pytest.approx(expected, rel=1e-5)
    alpha = [0.25, 0.5, 1.0]
    expected = (0.25 * 0.3**3 * -log(0.7) + 0.5 * 0.4**3 * -log(0.6) + 1.0 * 0.5**3 * -log(0.5)) / 3
    assert value(F.focal, Y, P, MASK, gamma=3.0, alpha=alpha) == pytest.approx(expected, rel=1e-5)
    # gamma 0 and no alpha: cross-entropy.
    ce = value(F.cross_entropy, Y, P, MASK)
    assert value(F.focal, Y, P, MASK, gamma=0.0) == pytest.approx(ce, rel=1e-6)


def _soft_f1_by_hand(labels):
    # TP = sum p*y, FP = sum p*(1-y), FN = sum (1-p)*y, per column of P_REAL.
    tp = [0.7, 0.6, 0.5]
    fp = [0.3 + 0.25, 0.2 + 0.25, 0.1 + 0.1]
    fn = [0.3, 0.4, 0.5]
    f1 = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in labels]
    return 1 - sum(f1) / len(f1)


def test_soft_f1_by_hand():
    assert _soft_f1_by_hand([0, 1, 2]) == pytest.approx(1 - (1.4 / 2.25 + 1.2 / 2.05 + 1 / 1.7) / 3)
    assert value(F.soft_f1, Y, P, MASK) == pytest.approx(_soft_f1_by_hand([0, 1, 2]), rel=1e-5)
    got = value(F.soft_f1, Y, P, MASK, label_indices=[0, 2])
    assert got == pytest.approx(_soft_f1_by_hand([0, 2]), rel=1e-5)


def test_soft_f1_multi_label_by_hand():
    # Columns of the two real lines of PM / YM.
    tp = [0.9, 0.7, 0.6]
    fp = [0.3, 0.2, 0.01]
    fn = [0.1, 0.3, 0.4]
    expected = 1 - sum(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in range(3)) / 3
    assert value(F.soft_f1, YM, PM, MASKM) == pytest.approx(expected, rel=1e-5)


def test_soft_f1_distributed_without_horovod_is_plain():
    assert value(F.soft_f1, Y, P, MASK, distributed=True) == pytest.approx(value(F.soft_f1, Y, P, MASK))


def test_soft_f1_with_cross_entropy_by_hand():
    # The F1 part over the focal labels only; the cross-entropy over every label.
    ce = (-log(0.7) - log(0.6) - log(0.5)) / 3
    got = value(F.soft_f1, Y, P, MASK, label_indices=[1, 2], cross_entropy_weight=0.5)
    assert got == pytest.approx(_soft_f1_by_hand([1, 2]) + 0.5 * ce, rel=1e-5)
    # Multi-label: binary cross-entropy of the two real lines of PM / YM, mean over labels.
    bce = (-(log(0.9) + log(0.8) + log(0.6)) / 3 - (log(0.7) + log(0.7) + log(0.99)) / 3) / 2
    f1 = value(F.soft_f1, YM, PM, MASKM)
    got = value(F.soft_f1, YM, PM, MASKM, cross_entropy_weight=2.0, multi_label=True)
    assert got == pytest.approx(f1 + 2.0 * bce, rel=1e-5)


def test_soft_f1_cross_entropy_term_gives_the_common_label_a_gradient():
    # Soft F1 over the rare label 1 alone passes no gradient to the common label's
    # output; the added term does. CE of line 0 is -log(p_00 / (p_00 + p_01)) (rows are
    # renormalised as in Keras), so d CE / d p_00 = -(1 / p_00 - 1 / (p_00 + p_01)) / 2 lines
    # = -(2 - 1) / 2 = -0.5.
    y = np.array([[[1, 0], [0, 1]]], dtype=np.float32)
    p = tf.Variable(np.array([[[0.5, 0.5], [0.1, 0.9]]], dtype=np.float32))
    mask = np.array([[1, 1]], dtype=np.float32)
    with tf.GradientTape() as tape:
        loss = F.soft_f1(tf.constant(y), p, tf.constant(mask), label_indices=[1],
                         cross_entropy_weight=1.0)
    grad = tape.gradient(loss, p).numpy()
    with tf.GradientTape() as tape:
        alone = F.soft_f1(tf.constant(y), p, tf.constant(mask), label_indices=[1])
    grad_alone = tape.gradient(alone, p).numpy()
    assert grad[0, 0, 0] == pytest.approx(grad_alone[0, 0, 0] - 0.5, rel=1e-4)
    assert grad_alone[0, 0, 0] == pytest.approx(0.0, abs=1e-6)  # F1 ignores label 0 here


def test_adaptive_by_hand():
    weights = [1.0, 2.0, 4.0]
    wce = (1 * -log(0.7) + 2 * -log(0.6) + 4 * -log(0.5)) / 3
    fl = (0.3**2 * -log(0.7) + 0.4**2 * -log(0.6) + 0.5**2 * -log(0.5)) / 3
    for t in (0.0, 0.25, 1.0):
        got = value(F.adaptive, Y, P, MASK, progress=t, class_weights=weights, gamma=2.0)
        assert got == pytest.approx((1 - t) * wce + t * fl, rel=1e-5)


def test_class_balanced_by_hand():
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in (100, 10, 1)]
    w = [3 * r / sum(raw) for r in raw]
    expected = (w[0] * -log(0.7) + w[1] * -log(0.6) + w[2] * -log(0.5)) / 3
    counts = [100, 10, 1]
    got = value(F.class_balanced, Y, P, MASK, label_counts=counts, beta=beta)
    assert got == pytest.approx(expected, rel=1e-5)
    expected = (w[0] * 0.3**2 * -log(0.7) + w[1] * 0.4**2 * -log(0.6) + w[2] * 0.5**2 * -log(0.5)) / 3
    got = value(F.class_balanced, Y, P, MASK, label_counts=counts, beta=beta, base="focal", gamma=2.0)
    assert got == pytest.approx(expected, rel=1e-5)


def test_logit_adjusted_by_hand():
    pi = [0.5, 0.3, 0.2]
    # softmax(log p + log pi) = p * pi / sum(p * pi).
    lines = []
    for p, c in zip(P_REAL, (0, 1, 2)):
        scores = [p[j] * pi[j] for j in range(3)]
        lines.append(-log(scores[c] / sum(scores)))
    assert lines[0] == pytest.approx(-log(0.35 / 0.43))
    got = value(F.logit_adjusted, Y, P, MASK, priors=pi, tau=1.0)
    assert got == pytest.approx(sum(lines) / 3, rel=1e-5)
    # tau = 2: p * pi^2.
    lines = []
    for p, c in zip(P_REAL, (0, 1, 2)):
        scores = [p[j] * pi[j] ** 2 for j in range(3)]
        lines.append(-log(scores[c] / sum(scores)))
    got = value(F.logit_adjusted, Y, P, MASK, priors=[5, 3, 2], tau=2.0)
    assert got == pytest.approx(sum(lines) / 3, rel=1e-5)
    assert value(F.logit_adjusted, Y, P, MASK, priors=pi, tau=0.0) == pytest.approx(
        value(F.cross_entropy, Y, P, MASK), rel=1e-6
    )


def test_binary_cross_entropy_by_hand():
    line0 = -(log(0.9) + log(0.8) + log(0.6)) / 3
    line1 = -(log(0.7) + log(0.7) + log(0.99)) / 3
    assert value(F.binary_cross_entropy, YM, PM, MASKM) == pytest.approx((line0 + line1) / 2, rel=1e-5)


def test_binary_focal_by_hand():
    a, g = 0.25, 2.0

    def pos(p):
        return a * (1 - p) ** g * -log(p)

    def neg(p):
        return (1 - a) * p**g * -log(1 - p)

    line0 = (pos(0.9) + neg(0.2) + pos(0.6)) / 3
    line1 = (neg(0.3) + pos(0.7) + neg(0.01)) / 3
    got = value(F.binary_focal, YM, PM, MASKM, gamma=g, alpha=a)
    assert got == pytest.approx((line0 + line1) / 2, rel=1e-5)


def test_asymmetric_by_hand():
    m = 0.05

    def pos(p):  # gamma_pos = 0
        return -log(p)

    def neg(p):
        pm = max(p - m, 0.0)
        return -(pm**4) * log(1 - pm)

    line0 = (pos(0.9) + neg(0.2) + pos(0.6)) / 3
    line1 = (neg(0.3) + pos(0.7) + neg(0.01)) / 3  # 0.01 < clip: no loss
    assert neg(0.01) == 0.0
    got = value(F.asymmetric, YM, PM, MASKM, gamma_pos=0.0, gamma_neg=4.0, clip=m)
    assert got == pytest.approx((line0 + line1) / 2, rel=1e-5)
    # gamma_pos = 1, no clipping.
    line0 = (0.1 * -log(0.9) + 0.2**4 * -log(0.8) + 0.4 * -log(0.6)) / 3
    line1 = (0.3**4 * -log(0.7) + 0.3 * -log(0.7) + 0.01**4 * -log(0.99)) / 3
    got = value(F.asymmetric, YM, PM, MASKM, gamma_pos=1.0, gamma_neg=4.0, clip=0.0)
    assert got == pytest.approx((line0 + line1) / 2, rel=1e-5)


# Lines: labels A, A, B with unit representations (1,0), (0,1), (-1,0), then padding.
REPS = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [300.0, -7.0]]], dtype=np.float32)
Y_CON = np.array([[[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]], dtype=np.float32)
MASK_CON = np.array([[1, 1, 1, 0]], dtype=np.float32)


def _supcon_by_hand(t):
    # Similarities: s01 = 0, s02 = -1, s12 = 0. Line 2 has no positive: skipped.
    l0 = -log(math.exp(0 / t) / (math.exp(0 / t) + math.exp(-1 / t)))
    l1 = -log(math.exp(0 / t) / (math.exp(0 / t) + math.exp(0 / t)))
    return (l0 + l1) / 2


def test_supervised_contrastive_by_hand():
    assert _supcon_by_hand(0.5) == pytest.approx((log(1 + math.exp(-2)) + log(2)) / 2)
    for t in (0.5, 0.1):
        got = value(F.supervised_contrastive, Y_CON, REPS, MASK_CON, temperature=t)
        assert got == pytest.approx(_supcon_by_hand(t), rel=1e-5)
    # Unnormalised representations are normalised first.
    got = value(F.supervised_contrastive, Y_CON, 3.0 * REPS, MASK_CON, temperature=0.5)
    assert got == pytest.approx(_supcon_by_hand(0.5), rel=1e-5)


def test_supervised_contrastive_two_positives_by_hand():
    # Four lines: A A A B, reps at angles 0, 90, 180, 270 degrees; T = 1.
    reps = np.array([[[1, 0], [0, 1], [-1, 0], [0, -1]]], dtype=np.float32)
    y = np.array([[[1, 0], [1, 0], [1, 0], [0, 1]]], dtype=np.float32)
    e = math.e
    # Anchor 0: others 1 (s=0), 2 (s=-1), 3 (s=0); positives 1 and 2.
    d0 = 1 + 1 / e + 1
    l0 = -(log(1 / d0) + log((1 / e) / d0)) / 2
    # Anchor 1: others 0 (0), 2 (0), 3 (-1); positives 0 and 2.
    d1 = 1 + 1 + 1 / e
    l1 = -(log(1 / d1) + log(1 / d1)) / 2
    # Anchor 2: like anchor 0 (positives at s = -1 and 0).
    l2 = l0
    got = value(F.supervised_contrastive, y, reps, np.ones((1, 4), np.float32), temperature=1.0)
    assert got == pytest.approx((l0 + l1 + l2) / 3, rel=1e-5)


def test_focal_contrastive_by_hand():
    probs = np.array([[[0.8, 0.1, 0.1], [0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [9.0, 9.0, 9.0]]], np.float32)
    fl = (0.2**2 * -log(0.8) + 0.5**2 * -log(0.5) + 0.4**2 * -log(0.6)) / 3
    y_pred = np.concatenate([probs, REPS], axis=-1)
    got = value(F.focal_contrastive, Y_CON, y_pred, MASK_CON, n_labels=3, temperature=0.5)
    assert got == pytest.approx(0.7 * fl + 0.3 * _supcon_by_hand(0.5), rel=1e-5)
    got = value(
        F.focal_contrastive, Y_CON, y_pred, MASK_CON, temperature=0.5, focal_weight=1.0, contrastive_weight=2.0
    )
    assert got == pytest.approx(fl + 2.0 * _supcon_by_hand(0.5), rel=1e-5)


def test_focal_contrastive_needs_a_representation():
    with pytest.raises(ValueError, match="concat"):
        F.focal_contrastive(tf.constant(Y), tf.constant(P), n_labels=3)


# --- Keras equality -----------------------------------------------------------


def _random_case(seed, shape=(3, 5, 4), multi_label=False):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape).astype(np.float32)
    if multi_label:
        y = (rng.random(shape) < 0.3).astype(np.float32)
    else:
        y = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], size=shape[:-1])]
    mask = (rng.random(shape[:-1]) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    return logits, y, mask


def _keras_masked_mean(keras_loss, y, p, mask):
    per_line = keras_loss(y, p).numpy()
    return float((per_line * mask).sum() / mask.sum())


@pytest.mark.parametrize(
    "alpha, gamma, label_smoothing",
    [(0.25, 2.0, 0.0), (1.0, 0.0, 0.0), (0.5, 3.5, 0.1), ([0.1, 0.4, 0.2, 0.9], 1.0, 0.0)],
)
def test_focal_equals_keras_categorical_focal(alpha, gamma, label_smoothing):
    logits, y, mask = _random_case(1)
    p = tf.nn.softmax(logits)
    keras_loss = tf.keras.losses.CategoricalFocalCrossentropy(
        alpha=alpha, gamma=gamma, label_smoothing=label_smoothing, reduction="none"
    )
    expected = _keras_masked_mean(keras_loss, y, p, mask)
    got = float(F.focal(y, p, mask, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing))
    assert got == pytest.approx(expected, rel=1e-5)
    # Per line: a mask selecting one line at a time.
    per_line = keras_loss(y, p).numpy()
    single = np.zeros_like(mask)
    single[1, 2] = 1.0
    got = float(F.focal(y, p, single, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing))
    assert got == pytest.approx(per_line[1, 2], rel=1e-5)


def test_focal_gradient_equals_keras():
    logits, y, mask = _random_case(2)
    logits = tf.Variable(logits)
    keras_loss = tf.keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, reduction="none")
    with tf.GradientTape(persistent=True) as tape:
        p = tf.nn.softmax(logits)
        ours = F.focal(y, p, mask, gamma=2.0, alpha=0.25)
        theirs = tf.reduce_sum(keras_loss(y, p) * mask) / mask.sum()
    np.testing.assert_allclose(tape.gradient(ours, logits), tape.gradient(theirs, logits), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "alpha, gamma, label_smoothing", [(0.25, 2.0, 0.0), (0.6, 0.0, 0.0), (0.1, 3.0, 0.2), (None, 2.0, 0.0)]
)
def test_binary_focal_equals_keras(alpha, gamma, label_smoothing):
    logits, y, mask = _random_case(3, multi_label=True)
    p = tf.nn.sigmoid(logits)
    keras_loss = tf.keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=alpha is not None,
        alpha=0.25 if alpha is None else alpha,
        gamma=gamma,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    expected = _keras_masked_mean(keras_loss, y, p, mask)
    got = float(F.binary_focal(y, p, mask, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing))
    assert got == pytest.approx(expected, rel=1e-5)


def test_cross_entropies_equal_keras():
    logits, y, mask = _random_case(4)
    p = tf.nn.softmax(logits)
    keras_loss = tf.keras.losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="none")
    expected = _keras_masked_mean(keras_loss, y, p, mask)
    assert float(F.cross_entropy(y, p, mask, label_smoothing=0.1)) == pytest.approx(expected, rel=1e-5)
    logits, y, mask = _random_case(5, multi_label=True)
    p = tf.nn.sigmoid(logits)
    keras_loss = tf.keras.losses.BinaryCrossentropy(label_smoothing=0.1, reduction="none")
    expected = _keras_masked_mean(keras_loss, y, p, mask)
    assert float(F.binary_cross_entropy(y, p, mask, label_smoothing=0.1)) == pytest.approx(expected, rel=1e-5)


# --- every loss through the registry ------------------------------------------

CONFIGS = {
    "cross_entropy": {"label_smoothing": 0.05},
    "weighted_cross_entropy": {"weight_strategy": "balanced"},
    "focal": {"gamma": 2.0, "alpha": {"O": 0.25}},
    "soft_f1": {},
    "adaptive": {"weight_strategy": "inverse", "epochs": 3},
    "focal_contrastive": {},
    "class_balanced": {"base": "focal"},
    "logit_adjusted": {},
    "binary_cross_entropy": {},
    "binary_focal": {},
    "asymmetric": {"gamma_pos": 1.0},
}
CASES = [(name, False) for name in SINGLE_LABEL_LOSSES] + [(name, True) for name in MULTI_LABEL_LOSSES]


def make_loss(name, multi_label):
    loss = build_loss(name, CONFIGS[name], LABELS, COUNTS, multi_label=multi_label)
    if name == "adaptive":
        loss.progress.assign(0.5)  # both parts contribute
    return loss


def model_output(loss, probs, reps=None):
    """What the network emits: probabilities, plus the representation if the loss asks."""
    if not loss.needs_representation:
        return probs
    return tf.concat([probs, tf.math.l2_normalize(reps, axis=-1)], axis=-1)


def test_every_loss_is_covered():
    assert set(CONFIGS) == set(LOSS_NAMES)
    assert {name for name, _ in CASES} == set(LOSS_NAMES)


@pytest.mark.parametrize("name, multi_label", CASES)
def test_gradients_are_finite_and_non_zero(name, multi_label):
    logits, y, mask = _random_case(6, shape=(2, 6, 3), multi_label=multi_label)
    reps = tf.Variable(np.random.default_rng(7).normal(size=(2, 6, 4)).astype(np.float32))
    logits = tf.Variable(logits)
    loss = make_loss(name, multi_label)
    with tf.GradientTape() as tape:
        probs = tf.nn.sigmoid(logits) if multi_label else tf.nn.softmax(logits)
        result = loss(y, model_output(loss, probs, reps), sample_weight=mask)
    grads = tape.gradient(result, [logits, reps])
    assert np.isfinite(float(result)) and float(result) > 0
    g = grads[0].numpy()
    assert np.all(np.isfinite(g))
    assert np.abs(g[mask > 0]).sum() > 0
    assert np.all(g[mask == 0] == 0)
    if loss.needs_representation:
        assert np.all(np.isfinite(grads[1].numpy())) and np.abs(grads[1].numpy()).sum() > 0


def _prediction_sets(multi_label, seed=8):
    """Perfect, random and wrong predictions (and representations) for one batch."""
    rng = np.random.default_rng(seed)
    k = 3
    if multi_label:
        y = np.array([[[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]]], np.float32)
        perfect = 0.97 * y + 0.015
        wrong = 1.0 - perfect
        random = rng.uniform(0.2, 0.8, size=y.shape).astype(np.float32)
    else:
        labels = np.array([[0, 0, 1, 1, 2, 2]])
        y = np.eye(k, dtype=np.float32)[labels]
        perfect = 0.96 * y + 0.02
        wrong = 0.96 * np.eye(k, dtype=np.float32)[(labels + 1) % k] + 0.02
        random = rng.dirichlet(np.ones(k), size=labels.shape).astype(np.float32)
    # Representations: clustered by label, random, and clustered across labels.
    groups = np.argmax(y, axis=-1)
    rep_perfect = np.eye(4, dtype=np.float32)[groups]
    rep_wrong = np.eye(4, dtype=np.float32)[np.array([[0, 1, 0, 1, 0, 1]])]
    rep_random = rng.normal(size=(1, 6, 4)).astype(np.float32)
    return y, [(perfect, rep_perfect), (random, rep_random), (wrong, rep_wrong)]


@pytest.mark.parametrize("name, multi_label", CASES)
def test_perfect_beats_random_beats_wrong(name, multi_label):
    y, predictions = _prediction_sets(multi_label)
    loss = make_loss(name, multi_label)
    values = [float(loss(y, model_output(loss, tf.constant(p), r))) for p, r in predictions]
    assert values[0] < values[1] < values[2], values


def _garbage_padding(y, p, mask, seed):
    """Finite garbage in the padding lines, including rows that break naive arithmetic."""
    rng = np.random.default_rng(seed)
    y2, p2 = y.copy(), p.copy()
    pad = np.argwhere(mask == 0)
    assert len(pad) >= 3
    for i, (b, t) in enumerate(pad):
        y2[b, t] = rng.choice([-5.0, 3.0, 1e30, -1e30], size=y.shape[-1])
        row = [
            np.full(p.shape[-1], 3e38),  # sums overflow to inf
            np.resize([1.0, -1.0, 0.0, 0.0], p.shape[-1]),  # probabilities sum to 0
            rng.choice([1e30, -1e30, 1e6, -3.0, 0.0, 2.0], size=p.shape[-1]),
        ][i % 3]
        p2[b, t] = row
    return y2, p2


@pytest.mark.parametrize("name, multi_label", CASES)
def test_masked_lines_change_neither_value_nor_gradient(name, multi_label):
    logits, y, mask = _random_case(9, shape=(3, 5, 3), multi_label=multi_label)
    loss = make_loss(name, multi_label)
    reps = np.random.default_rng(10).normal(size=(3, 5, 4)).astype(np.float32)
    probs = (tf.nn.sigmoid(logits) if multi_label else tf.nn.softmax(logits)).numpy()
    clean = np.asarray(model_output(loss, probs, reps))
    y_garbage, garbage = _garbage_padding(y, clean, mask, seed=11)

    def value_and_grad(y_true, y_pred):
        y_pred = tf.Variable(y_pred)
        with tf.GradientTape() as tape:
            result = loss(y_true, y_pred, sample_weight=mask)
        return float(result), tape.gradient(result, y_pred).numpy()

    v_clean, g_clean = value_and_grad(y, clean)
    v_garbage, g_garbage = value_and_grad(y_garbage, garbage)
    assert v_garbage == v_clean
    assert np.all(np.isfinite(g_garbage))
    np.testing.assert_array_equal(g_garbage[mask > 0], g_clean[mask > 0])
    assert np.all(g_garbage[mask == 0] == 0)

    # The same as the loss on the unmasked lines alone.
    keep = mask > 0
    alone = float(loss(y[keep][None], clean[keep][None]))
    assert v_clean == pytest.approx(alone, rel=1e-5)


@pytest.mark.parametrize("name, multi_label", CASES)
def test_all_lines_masked_gives_finite_zero_gradient(name, multi_label):
    logits, y, _ = _random_case(12, shape=(2, 3, 3), multi_label=multi_label)
    loss = make_loss(name, multi_label)
    probs = tf.nn.sigmoid(logits) if multi_label else tf.nn.softmax(logits)
    y_pred = tf.Variable(model_output(loss, probs, tf.ones((2, 3, 4))))
    with tf.GradientTape() as tape:
        result = loss(y, y_pred, sample_weight=tf.zeros((2, 3)))
    assert np.isfinite(float(result))
    np.testing.assert_array_equal(tape.gradient(result, y_pred).numpy(), 0.0)


def test_extreme_probabilities_stay_finite():
    y = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    p = tf.Variable(np.array([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]], np.float32))
    for fn in (F.cross_entropy, F.focal, F.logit_adjusted, F.soft_f1):
        kwargs = {"priors": [0.2, 0.3, 0.5]} if fn is F.logit_adjusted else {}
        with tf.GradientTape() as tape:
            result = fn(y, p, **kwargs)
        assert np.isfinite(float(result)) and np.all(np.isfinite(tape.gradient(result, p).numpy()))
    for fn in (F.binary_cross_entropy, F.binary_focal, F.asymmetric):
        with tf.GradientTape() as tape:
            result = fn(y, p)
        assert np.isfinite(float(result)) and np.all(np.isfinite(tape.gradient(result, p).numpy()))


def test_asymmetric_fractional_gamma_has_finite_gradient_below_clip():
    p = tf.Variable([[[0.01, 0.02]]])
    with tf.GradientTape() as tape:
        result = F.asymmetric(tf.zeros((1, 1, 2)), p, gamma_neg=0.5, clip=0.05)
    assert float(result) == 0.0
    np.testing.assert_array_equal(tape.gradient(result, p).numpy(), 0.0)


def test_mask_as_line_weights_and_two_dimensional_inputs():
    p2d, y2d = P[0, :3], Y[0, :3]
    # (lines, K) inputs with a (lines,) mask behave like one batch row.
    assert float(F.cross_entropy(y2d, p2d, np.ones(3, np.float32))) == pytest.approx(
        value(F.cross_entropy, Y, P, MASK), rel=1e-6
    )
    # Non-binary masks weight lines.
    got = float(F.cross_entropy(y2d, p2d, np.array([2.0, 1.0, 1.0], np.float32)))
    assert got == pytest.approx((2 * -log(0.7) - log(0.6) - log(0.5)) / 4, rel=1e-5)
