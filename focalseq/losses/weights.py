"""Class weights and priors from label counts (NumPy only, no TensorFlow).

With counts n_c for K labels and N = sum_c n_c:

- ``balanced``: w_c = N / (K * n_c), as ``sklearn.utils.class_weight.compute_class_weight
  ("balanced")``; not rescaled (the count-weighted mean of w is already 1).
- ``inverse``: w_c proportional to 1 / n_c.
- ``aggressive``: w_c proportional to 1 / n_c**2.
- ``sqrt_inverse``: w_c proportional to 1 / sqrt(n_c).
- ``effective_number``: w_c proportional to (1 - beta) / (1 - beta**n_c), the inverse
  effective number of samples (Cui et al. 2019, "Class-Balanced Loss Based on
  Effective Number of Samples").

Every strategy except ``balanced`` is rescaled so that the weights' mean over the K
labels is 1 (sum = K). A label with count 0 is given the count of the rarest label
that does occur, so it weighs as much as the rarest seen label, without a division
by zero and without dwarfing the other weights.
"""
import logging

import numpy as np

from focalseq.losses.config import WEIGHT_STRATEGIES

logger = logging.getLogger(__name__)


def counts_vector(label_counts, labels):
    """Returns label counts as a float64 array aligned with `labels`.

    Labels missing from `label_counts` count 0; a label of `label_counts` that is
    not in `labels` is an error.
    """
    if not isinstance(label_counts, dict):
        raise ValueError(f"invalid label_counts {label_counts!r}; valid values: a dict label -> count >= 0")
    unknown = [k for k in label_counts if k not in labels]
    if unknown:
        raise ValueError(f"invalid label_counts label {unknown[0]!r}; valid values: {list(labels)}")
    counts = []
    for label in labels:
        n = label_counts.get(label, 0)
        if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)) or not n >= 0:
            raise ValueError(f"invalid label_counts[{label!r}] {n!r}; valid values: a count >= 0")
        counts.append(float(n))
    counts = np.asarray(counts, dtype=np.float64)
    if not counts.any():
        raise ValueError(f"invalid label_counts {label_counts!r}; valid values: at least one count > 0")
    return counts


def _fill_zero_counts(counts):
    if not np.all(counts >= 0) or not counts.any():
        raise ValueError(
            f"invalid label counts {counts.tolist()!r}; valid values: counts >= 0, at least one > 0"
        )
    return np.where(counts > 0, counts, counts[counts > 0].min())


def strategy_weights(strategy, counts, beta=0.999):
    """Weights for a count array (aligned with the labels), without logging."""
    counts = _fill_zero_counts(np.asarray(counts, dtype=np.float64))
    k = len(counts)
    if strategy == "balanced":
        return counts.sum() / (k * counts)
    if strategy == "inverse":
        raw = 1.0 / counts
    elif strategy == "aggressive":
        raw = 1.0 / counts**2
    elif strategy == "sqrt_inverse":
        raw = 1.0 / np.sqrt(counts)
    elif beta > 0:
        # -expm1(n log beta) = 1 - beta**n, accurate also for beta close to 1.
        raw = (1.0 - beta) / -np.expm1(counts * np.log(beta))
    else:
        raw = np.ones(k)
    return raw * k / raw.sum()


def compute_class_weights(strategy, label_counts, labels, beta=0.999):
    """Per-label weights from label counts; formulas in the module docstring.

    Args:
        strategy: One of `WEIGHT_STRATEGIES`.
        label_counts: {label: number of training lines with that label}.
        labels: Label names in output order.
        beta: Only for ``effective_number``, in [0, 1).

    Returns:
        {label: weight}; mean 1 over labels except for ``balanced``.
    """
    if strategy not in WEIGHT_STRATEGIES:
        raise ValueError(f"unknown weight_strategy {strategy!r}; valid values: {list(WEIGHT_STRATEGIES)}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"invalid beta {beta!r}; valid values: a number in [0, 1)")
    weights = strategy_weights(strategy, counts_vector(label_counts, labels), beta)
    result = {label: float(w) for label, w in zip(labels, weights)}
    logger.info("class weights (%s): %s", strategy, result)
    return result


def class_priors(label_counts, labels):
    """Label priors pi_c = n_c / N aligned with `labels`; zero counts as in the module doc."""
    counts = _fill_zero_counts(counts_vector(label_counts, labels))
    return counts / counts.sum()


def posthoc_logit_adjust(log_probs, priors, tau=1.0):
    """Post-hoc logit adjustment (Menon et al. 2021): log p_c - tau * log pi_c.

    Use on a model trained with plain cross-entropy to predict for a balanced
    error; the result is renormalised to log-probabilities, so its argmax is the
    adjusted prediction and `exp` of it sums to 1 over the last axis.

    Args:
        log_probs: Array (..., K) of log-probabilities (or logits).
        priors: K label priors (any positive scale).
        tau: Adjustment strength >= 0.

    Returns:
        Array of adjusted log-probabilities, same shape as `log_probs`.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    priors = np.asarray(priors, dtype=np.float64)
    if priors.shape != log_probs.shape[-1:] or not np.all(priors > 0):
        raise ValueError(
            f"invalid priors {priors.tolist()!r}; valid values: {log_probs.shape[-1]} positive numbers"
        )
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 0:
        raise ValueError(f"invalid tau {tau!r}; valid values: a number >= 0")
    adjusted = log_probs - tau * np.log(priors)
    top = adjusted.max(axis=-1, keepdims=True)
    return adjusted - top - np.log(np.exp(adjusted - top).sum(axis=-1, keepdims=True))
