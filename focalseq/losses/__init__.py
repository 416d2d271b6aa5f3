"""Imbalance-aware losses for per-line labelling, chosen by name plus a JSON config.

`validate_loss_config`, `compute_class_weights`, the loss choice (`choose_loss`,
`loss_config_for`) and the names need no TensorFlow;
`build_loss` and the Keras classes (`FocalLoss`, ..., `CurriculumCallback`,
importable from here) load it on first use. A model saved with one of these
losses loads without `custom_objects` once `focalseq.losses.keras_losses` is
imported (building any loss imports it).

Example:
    >>> from focalseq.losses import validate_loss_config
    >>> validate_loss_config("focal", {"gamma": 1.0}, ["O", "B"])
    {'gamma': 1.0, 'alpha': None, 'label_smoothing': 0.0}
"""
import importlib

from focalseq.losses.choice import choose_loss, loss_config_for
from focalseq.losses.config import (
    LOSS_DEFAULTS,
    LOSS_NAMES,
    MULTI_LABEL_LOSSES,
    SINGLE_LABEL_LOSSES,
    WEIGHT_STRATEGIES,
    validate_loss_config,
)
from focalseq.losses.registry import loss_kwargs
from focalseq.losses.weights import class_priors, compute_class_weights, posthoc_logit_adjust

_LAZY = {
    name: "focalseq.losses.keras_losses"
    for name in (
        "FocalseqLoss",
        "CrossEntropyLoss",
        "WeightedCrossEntropyLoss",
        "FocalLoss",
        "SoftF1Loss",
        "AdaptiveLoss",
        "FocalContrastiveLoss",
        "ClassBalancedLoss",
        "LogitAdjustedLoss",
        "BinaryCrossEntropyLoss",
        "BinaryFocalLoss",
        "AsymmetricLoss",
        "CurriculumCallback",
        "LOSS_CLASSES",
    )
}

__all__ = [
    "LOSS_DEFAULTS",
    "LOSS_NAMES",
    "MULTI_LABEL_LOSSES",
    "SINGLE_LABEL_LOSSES",
    "WEIGHT_STRATEGIES",
    "build_loss",
    "choose_loss",
    "class_priors",
    "compute_class_weights",
    "loss_config_for",
    "posthoc_logit_adjust",
    "validate_loss_config",
    *_LAZY,
]


def build_loss(name, config, labels, label_counts=None, multi_label=False):
    """Builds the Keras loss `name` from a JSON config.

    Args:
        name: One of `LOSS_NAMES`.
        config: The loss's parameters (see docs/losses.md); None for defaults.
        labels: Label names in the order of the network's output units.
        label_counts: {label: training count}; required by weight_strategy,
            class_balanced and logit_adjusted.
        multi_label: True for sigmoid outputs, False for softmax.

    Returns:
        A `tf.keras.losses.Loss` whose `__call__` treats `sample_weight` as the
        padding mask.

    Raises:
        ValueError: on a bad name, config, mode or missing label_counts.
    """
    cfg = validate_loss_config(name, config, labels, multi_label)
    kwargs = loss_kwargs(name, cfg, labels, label_counts, multi_label)
    keras_losses = importlib.import_module("focalseq.losses.keras_losses")
    return keras_losses.LOSS_CLASSES[name](**kwargs)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
