"""Which loss, and with which config, from what a user asked for.

The one place where the familiar arguments (`focal_labels`, `class_weights`,
`weight_strategy`) turn into a loss name and a loss config; the Python API, the
BiLSTM stage and the run config all ask here. Pure Python: no TensorFlow.

Example:
    >>> from focalseq.losses.choice import choose_loss, loss_config_for
    >>> choose_loss(focal_labels=["Nomenclature"])
    'soft_f1'
    >>> loss_config_for("soft_f1", {}, focal_labels=["Nomenclature"])
    {'focal_labels': ['Nomenclature']}
    >>> loss_config_for("weighted_cross_entropy", None, weight_strategy="inverse")
    {'weight_strategy': 'inverse'}
"""
from collections.abc import Mapping

# How each argument is spelled in errors unless the caller says otherwise.
_DEFAULT_NAMES = {
    "loss_config": "loss_config",
    "class_weights": "class_weights",
    "weight_strategy": "weight_strategy",
}


def choose_loss(focal_labels=None, class_weights=None, weight_strategy=None, loss=None) -> str:
    """The loss name the familiar API's arguments ask for.

    `loss` wins when given; otherwise `focal_labels` -> "soft_f1" (mean soft F1
    over those labels), `class_weights` or `weight_strategy` ->
    "weighted_cross_entropy", none of them -> "cross_entropy". The name is not
    checked here; `validate_loss_config` does that with the config.

    Args:
        focal_labels: The labels the run cares about; None: not given.
        class_weights: {label: weight}; None: not given.
        weight_strategy: A name of `WEIGHT_STRATEGIES`; None: not given.
        loss: An explicit loss name; None: chosen from the other arguments.

    Raises:
        ValueError: `class_weights` together with `focal_labels` (one weights
            every label, the other restricts the loss to some), or an empty
            `focal_labels`.
    """
    if class_weights is not None and focal_labels is not None:
        raise ValueError("class_weights and focal_labels are mutually exclusive")
    if focal_labels is not None and not list(focal_labels):
        raise ValueError(
            f"focal_labels: invalid value {focal_labels!r}; valid values: a non-empty list of labels, "
            "or None for no focal labels"
        )
    if loss is not None:
        return loss
    if focal_labels is not None:
        return "soft_f1"
    if class_weights is not None or weight_strategy is not None:
        return "weighted_cross_entropy"
    return "cross_entropy"


def loss_config_for(loss, loss_config, *, focal_labels=(), class_weights=None, weight_strategy=None,
                    names=None) -> dict:
    """`loss_config` plus what the separate class-weight and focal-label arguments add.

    `class_weights` and `weight_strategy` go into the config of any loss (the
    config's validation rejects them where the loss has no such parameter); giving
    one both here and inside `loss_config` is an error, since nothing says which
    was meant. `focal_labels` go into a "soft_f1" config that has none: soft-F1
    restricts itself to them, while other losses use focal labels only for early
    stopping and reports. The result is not validated; pass it to
    `validate_loss_config`.

    Args:
        loss: The loss name.
        loss_config: The explicit config (a dict; None: empty). Not modified.
        focal_labels: The run's focal labels; empty or None: none.
        class_weights: {label: weight}; None: not given.
        weight_strategy: A weight strategy name; None: not given.
        names: How the caller spells "loss_config", "class_weights" and
            "weight_strategy" in errors, e.g. {"class_weights": "classWeights"};
            missing keys keep these spellings.

    Returns:
        A new dict.

    Raises:
        ValueError: `loss_config` is not a dict, or it already sets a key that
            `class_weights` or `weight_strategy` would set; the error names the
            caller's argument.
    """
    names = {**_DEFAULT_NAMES, **(names or {})}
    if loss_config is None:
        loss_config = {}
    if not isinstance(loss_config, Mapping):
        raise ValueError(
            f"{names['loss_config']}: invalid value {loss_config!r}; valid values: a dict of loss parameters"
        )
    config = dict(loss_config)
    for key, value in (("class_weights", class_weights), ("weight_strategy", weight_strategy)):
        if value is None:
            continue
        if key in config:
            raise ValueError(
                f"{names[key]}: {names['loss_config']} already sets {key} ({config[key]!r}); "
                "give it in one place"
            )
        config[key] = dict(value) if isinstance(value, Mapping) else value
    if focal_labels and loss == "soft_f1" and "focal_labels" not in config:
        config["focal_labels"] = list(focal_labels)
    return config
