"""Config validation, class weights and priors: pure Python, no TensorFlow needed."""
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from focalseq.losses import (
    LOSS_NAMES,
    MULTI_LABEL_LOSSES,
    SINGLE_LABEL_LOSSES,
    WEIGHT_STRATEGIES,
    class_priors,
    compute_class_weights,
    posthoc_logit_adjust,
    validate_loss_config,
)

LABELS = ["O", "B", "I"]
COUNTS = {"O": 50, "B": 30, "I": 5}


def test_loss_names():
    assert set(LOSS_NAMES) == {
        "cross_entropy",
        "weighted_cross_entropy",
        "focal",
        "soft_f1",
        "adaptive",
        "focal_contrastive",
        "class_balanced",
        "logit_adjusted",
        "binary_cross_entropy",
        "binary_focal",
        "asymmetric",
    }
    assert "soft_f1" in SINGLE_LABEL_LOSSES and "soft_f1" in MULTI_LABEL_LOSSES


def test_config_helpers_do_not_import_tensorflow():
    code = (
        "import sys, focalseq.losses as L\n"
        "L.validate_loss_config('focal', {'alpha': {'B': 0.5}}, ['O', 'B'])\n"
        "L.compute_class_weights('balanced', {'O': 3, 'B': 1}, ['O', 'B'])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)


def test_defaults_are_filled():
    assert validate_loss_config("focal", None, LABELS) == {"gamma": 2.0, "alpha": None, "label_smoothing": 0.0}
    assert validate_loss_config("binary_focal", {}, LABELS, multi_label=True)["alpha"] == 0.25
    assert validate_loss_config("asymmetric", {}, LABELS, multi_label=True) == {
        "gamma_pos": 0.0,
        "gamma_neg": 4.0,
        "clip": 0.05,
    }
    cfg = validate_loss_config("focal_contrastive", {}, LABELS)
    assert (cfg["focal_weight"], cfg["contrastive_weight"], cfg["temperature"]) == (0.7, 0.3, 0.1)
    assert validate_loss_config("soft_f1", {}, LABELS)["focal_labels"] == LABELS
    assert validate_loss_config("logit_adjusted", {}, LABELS) == {"tau": 1.0}
    assert validate_loss_config("class_balanced", {}, LABELS) == {"beta": 0.999, "base": "softmax", "gamma": 2.0}


def test_per_label_values_are_normalised():
    cfg = validate_loss_config("focal", {"alpha": {"B": 0.5}}, LABELS)
    assert cfg["alpha"] == [1.0, 0.5, 1.0]
    cfg = validate_loss_config("binary_focal", {"alpha": {"I": 0.9}}, LABELS, multi_label=True)
    assert cfg["alpha"] == [0.25, 0.25, 0.9]
    cfg = validate_loss_config("weighted_cross_entropy", {"class_weights": {"I": 3}}, LABELS)
    assert cfg["class_weights"] == {"O": 1.0, "B": 1.0, "I": 3.0}


def _error(name, config, multi_label=False, labels=LABELS):
    with pytest.raises(ValueError) as info:
        validate_loss_config(name, config, labels, multi_label=multi_label)
    return str(info.value)


@pytest.mark.parametrize(
    "name, config, multi_label, expected",
    [
        ("nope", {}, False, ["'nope'", "cross_entropy", "asymmetric", "soft_f1"]),
        ("focal", {"gamma": -1}, False, ["gamma", "-1", "[0.0, inf]"]),
        ("focal", {"alpha": 1.5}, False, ["alpha", "1.5", "[0.0, 1.0]"]),
        ("focal", {"alpha": -0.1}, False, ["alpha", "-0.1", "[0.0, 1.0]"]),
        ("focal", {"alpha": {"B": 2}}, False, ["alpha['B']", "2", "[0.0, 1.0]"]),
        ("focal", {"alpha": [0.5, 1.2, 0.1]}, False, ["alpha[1]", "1.2", "[0.0, 1.0]"]),
        ("focal", {"alpha": [0.5, 0.5]}, False, ["alpha", "[0.5, 0.5]", "a list of 3 numbers"]),
        ("focal", {"alpha": {"X": 0.5}}, False, ["alpha label", "'X'", "['O', 'B', 'I']"]),
        ("binary_focal", {"alpha": 7}, True, ["alpha", "7", "[0.0, 1.0]"]),
        ("soft_f1", {"focal_labels": ["B", "X"]}, False, ["focal label 'X' is not one of the labels", "['O', 'B', 'I']"]),
        ("soft_f1", {"focal_labels": []}, True, ["focal_labels", "[]", "non-empty list"]),
        ("weighted_cross_entropy", {"weight_strategy": "magic"}, False, ["weight_strategy", "'magic'", "'effective_number'", "'sqrt_inverse'"]),
        ("weighted_cross_entropy", {"class_weights": {"B": -1}}, False, ["class_weights['B']", "-1", "[0.0, inf]"]),
        ("weighted_cross_entropy", {"class_weights": {"Q": 1}}, False, ["class_weights label", "'Q'", "['O', 'B', 'I']"]),
        ("weighted_cross_entropy", {"class_weights": [1, 2, 3]}, False, ["class_weights", "[1, 2, 3]", "a dict"]),
        ("weighted_cross_entropy", {}, False, ["class_weights None", "weight_strategy", "'balanced'"]),
        ("weighted_cross_entropy", {"class_weights": {"B": 2}, "weight_strategy": "inverse"}, False, ["mutually exclusive", "weight_strategy"]),
        ("weighted_cross_entropy", {"weight_strategy": "inverse", "beta": 1.0}, False, ["beta", "1.0", "[0.0, 1.0)"]),
        ("cross_entropy", {"label_smoothing": 2}, False, ["label_smoothing", "2", "[0.0, 1.0]"]),
        ("cross_entropy", {"gamma": 2}, False, ["unknown parameter 'gamma'", "label_smoothing"]),
        ("adaptive", {"schedule": "cosine"}, False, ["schedule", "'cosine'", "['linear', 'step']"]),
        ("adaptive", {"schedule": "step"}, False, ["switch_epoch None", "integer >= 0"]),
        ("adaptive", {"epochs": 0}, False, ["epochs", "0", "integer >= 1"]),
        ("focal_contrastive", {"temperature": 0}, False, ["temperature", "0", "(0.0, inf]"]),
        ("focal_contrastive", {"focal_weight": 0, "contrastive_weight": 0}, False, ["focal_weight", "contrastive_weight"]),
        ("class_balanced", {"base": "sigmoid"}, False, ["base", "'sigmoid'", "['softmax', 'focal']"]),
        ("logit_adjusted", {"tau": "big"}, False, ["tau", "'big'", "a number"]),
        ("asymmetric", {"clip": 1.0}, True, ["clip", "1.0", "[0.0, 1.0)"]),
        ("asymmetric", {"gamma_neg": -4}, True, ["gamma_neg", "-4", "[0.0, inf]"]),
        ("soft_f1", {"distributed": "yes"}, False, ["distributed", "'yes'", "[True, False]"]),
        ("soft_f1", {"cross_entropy_weight": -0.5}, True, ["cross_entropy_weight", "-0.5", "[0.0, inf]"]),
        ("focal", {"gamma": True}, False, ["gamma", "True", "a number"]),
    ],
)
def test_bad_config_names_field_value_and_valid_values(name, config, multi_label, expected):
    message = _error(name, config, multi_label)
    for part in expected:
        assert part in message, (part, message)


def test_class_weights_and_focal_labels_are_mutually_exclusive():
    for name in ("soft_f1", "weighted_cross_entropy"):
        message = _error(name, {"class_weights": {"B": 2.0}, "focal_labels": ["B"]})
        assert "class_weights and focal_labels are mutually exclusive" in message


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "adaptive", "logit_adjusted", "focal_contrastive"])
def test_single_label_loss_rejects_multi_label(name):
    message = _error(name, {}, multi_label=True)
    assert name in message and "multi_label=True" in message and "binary_focal" in message


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal", "asymmetric"])
def test_multi_label_loss_rejects_single_label(name):
    message = _error(name, {}, multi_label=False)
    assert name in message and "multi_label=False" in message and "'focal'" in message


def test_soft_f1_accepts_both_modes():
    validate_loss_config("soft_f1", {}, LABELS, multi_label=True)
    validate_loss_config("soft_f1", {}, LABELS, multi_label=False)


@pytest.mark.parametrize("labels", [[], ["a", "a"], "abc", [1, 2]])
def test_bad_labels(labels):
    assert "labels" in _error("focal", {}, labels=labels)


# --- class weights -----------------------------------------------------------


def test_balanced_equals_sklearn():
    counts = {"O": 50, "B": 30, "I": 15, "E": 5}
    labels = list(counts)
    y = np.repeat(labels, list(counts.values()))
    expected = compute_class_weight("balanced", classes=np.array(labels), y=y)
    weights = compute_class_weights("balanced", counts, labels)
    np.testing.assert_allclose([weights[label] for label in labels], expected, rtol=1e-12)
    # By hand: 100 / (4 * 5) for the rarest label.
    assert weights["E"] == pytest.approx(5.0)


def test_rescaled_strategies_by_hand():
    counts = {"O": 50, "B": 30, "I": 5}
    labels = list(counts)
    n = np.array([50.0, 30.0, 5.0])
    for strategy, raw in [
        ("inverse", 1 / n),
        ("aggressive", 1 / n**2),
        ("sqrt_inverse", 1 / np.sqrt(n)),
        ("effective_number", (1 - 0.99) / (1 - 0.99**n)),
    ]:
        weights = compute_class_weights(strategy, counts, labels, beta=0.99)
        got = np.array([weights[label] for label in labels])
        np.testing.assert_allclose(got, raw * 3 / raw.sum(), rtol=1e-10)
        assert got.mean() == pytest.approx(1.0)
        assert got[2] > got[1] > got[0]
    # inverse by hand: 1/50 : 1/30 : 1/5 = 3 : 5 : 30, mean 1 -> times 3/38.
    weights = compute_class_weights("inverse", counts, labels)
    assert weights["O"] == pytest.approx(9 / 38) and weights["I"] == pytest.approx(90 / 38)


def test_effective_number_with_beta_zero_is_uniform():
    weights = compute_class_weights("effective_number", COUNTS, LABELS, beta=0.0)
    assert weights == {"O": 1.0, "B": 1.0, "I": 1.0}


def test_effective_number_large_counts_stay_finite():
    weights = compute_class_weights("effective_number", {"O": 10**9, "B": 1}, ["O", "B"], beta=0.999999)
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
    assert weights["B"] > weights["O"]


@pytest.mark.parametrize("strategy", WEIGHT_STRATEGIES)
def test_zero_count_gets_rarest_seen_weight(strategy):
    counts = {"O": 50, "B": 30, "I": 5, "E": 0}
    labels = list(counts)
    weights = compute_class_weights(strategy, counts, labels)
    assert all(math.isfinite(w) for w in weights.values())
    assert weights["E"] == pytest.approx(weights["I"])
    assert weights["I"] == max(weights.values())


def test_missing_label_counts_as_zero():
    weights = compute_class_weights("inverse", {"O": 50, "B": 30}, LABELS)
    assert weights["I"] == pytest.approx(weights["B"])


def test_weights_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="focalseq.losses.weights"):
        compute_class_weights("balanced", COUNTS, LABELS)
    assert "balanced" in caplog.text and "'I'" in caplog.text


@pytest.mark.parametrize(
    "args, expected",
    [
        (("magic", COUNTS, LABELS), ["weight_strategy", "'magic'", "'balanced'"]),
        (("effective_number", COUNTS, LABELS, 1.5), ["beta", "1.5", "[0, 1)"]),
        (("balanced", {"O": 1, "X": 2}, LABELS), ["label_counts", "'X'", "['O', 'B', 'I']"]),
        (("balanced", {"O": -1}, LABELS), ["label_counts['O']", "-1", ">= 0"]),
        (("balanced", {"O": 0}, LABELS), ["label_counts", "at least one count > 0"]),
    ],
)
def test_bad_weight_arguments(args, expected):
    with pytest.raises(ValueError) as info:
        compute_class_weights(*args)
    for part in expected:
        assert part in str(info.value), (part, str(info.value))


# --- priors and post-hoc adjustment -----------------------------------------


def test_class_priors_by_hand():
    np.testing.assert_allclose(class_priors(COUNTS, LABELS), [50 / 85, 30 / 85, 5 / 85])
    # A zero count is treated like the rarest seen label: counts 4, 2, 2 -> 1/2, 1/4, 1/4.
    np.testing.assert_allclose(class_priors({"O": 4, "B": 2, "I": 0}, LABELS), [0.5, 0.25, 0.25])


def test_posthoc_logit_adjust_by_hand():
    log_probs = np.log(np.array([[0.6, 0.3, 0.1]]))
    priors = [0.8, 0.15, 0.05]
    adjusted = posthoc_logit_adjust(log_probs, priors, tau=1.0)
    # p_c / pi_c = 0.75, 2, 2 -> normalised 0.75/4.75, 2/4.75, 2/4.75.
    np.testing.assert_allclose(np.exp(adjusted), [[0.75 / 4.75, 2 / 4.75, 2 / 4.75]], rtol=1e-12)
    np.testing.assert_allclose(posthoc_logit_adjust(log_probs, priors, tau=0.0), log_probs, atol=1e-12)
    with pytest.raises(ValueError, match="priors"):
        posthoc_logit_adjust(log_probs, [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="tau"):
        posthoc_logit_adjust(log_probs, priors, tau=-1)
