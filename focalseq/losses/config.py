"""Loss names, their parameters and defaults, and config validation.

Pure Python on purpose: a driver validates a loss config (a stage param) without
importing TensorFlow.
"""
import math
import numbers

SINGLE_LABEL_LOSSES = (
    "cross_entropy",
    "weighted_cross_entropy",
    "focal",
    "soft_f1",
    "adaptive",
    "focal_contrastive",
    "class_balanced",
    "logit_adjusted",
)
MULTI_LABEL_LOSSES = (
    "binary_cross_entropy",
    "binary_focal",
    "asymmetric",
    "soft_f1",
)
LOSS_NAMES = tuple(dict.fromkeys(SINGLE_LABEL_LOSSES + MULTI_LABEL_LOSSES))

WEIGHT_STRATEGIES = ("balanced", "inverse", "aggressive", "sqrt_inverse", "effective_number")
SCHEDULES = ("linear", "step")
CLASS_BALANCED_BASES = ("softmax", "focal")

# Parameters each loss accepts, with their defaults.
LOSS_DEFAULTS = {
    "cross_entropy": {"label_smoothing": 0.0},
    "weighted_cross_entropy": {"class_weights": None, "weight_strategy": None, "beta": 0.999},
    "focal": {"gamma": 2.0, "alpha": None, "label_smoothing": 0.0},
    "soft_f1": {"focal_labels": None, "distributed": True, "cross_entropy_weight": 0.0},
    "adaptive": {
        "class_weights": None,
        "weight_strategy": None,
        "beta": 0.999,
        "gamma": 2.0,
        "alpha": None,
        "schedule": "linear",
        "epochs": None,
        "switch_epoch": None,
    },
    "focal_contrastive": {
        "gamma": 2.0,
        "alpha": None,
        "temperature": 0.1,
        "focal_weight": 0.7,
        "contrastive_weight": 0.3,
    },
    "class_balanced": {"beta": 0.999, "base": "softmax", "gamma": 2.0},
    "logit_adjusted": {"tau": 1.0},
    "binary_cross_entropy": {"label_smoothing": 0.0},
    "binary_focal": {"gamma": 2.0, "alpha": 0.25, "label_smoothing": 0.0},
    "asymmetric": {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},
}

# Losses that need label counts from the training data when built.
NEEDS_COUNTS = ("class_balanced", "logit_adjusted")

# Value a label left out of a per-label `alpha` dict gets.
_ALPHA_FILL = {"focal": 1.0, "adaptive": 1.0, "focal_contrastive": 1.0, "binary_focal": 0.25}


def _fail(loss, field, value, valid):
    raise ValueError(f"loss {loss!r}: invalid {field} {value!r}; valid values: {valid}")


def _number(loss, field, value, low=None, high=None, low_open=False, high_open=False):
    """Returns `value` as a float after checking it is a finite number in range."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    valid = f"a number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(loss, field, value, valid)
    number = float(value)
    if low is not None and (number < low or (low_open and number == low)):
        _fail(loss, field, value, valid)
    if high is not None and (number > high or (high_open and number == high)):
        _fail(loss, field, value, valid)
    return number


def _choice(loss, field, value, choices):
    if value not in choices:
        _fail(loss, field, value, list(choices))
    return value


def _int(loss, field, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        _fail(loss, field, value, f"an integer >= {low}")
    return int(value)


def _per_label(loss, field, value, labels, fill, low, high):
    """Normalises a scalar, per-label list or {label: value} dict.

    Returns a float for a scalar and a list aligned with `labels` otherwise; dict
    entries that are missing get `fill`.
    """
    if isinstance(value, dict):
        unknown = [k for k in value if k not in labels]
        if unknown:
            _fail(loss, f"{field} label", unknown[0], list(labels))
        return [
            _number(loss, f"{field}[{label!r}]", value.get(label, fill), low, high) for label in labels
        ]
    if isinstance(value, (list, tuple)):
        if len(value) != len(labels):
            valid = f"a number, a list of {len(labels)} numbers or a dict keyed by {list(labels)}"
            _fail(loss, field, value, valid)
        return [_number(loss, f"{field}[{i}]", v, low, high) for i, v in enumerate(value)]
    return _number(loss, field, value, low, high)


def _alpha(loss, value, labels):
    if value is None:
        return None
    return _per_label(loss, "alpha", value, labels, _ALPHA_FILL[loss], 0.0, 1.0)


def _class_weights(loss, value, labels):
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(loss, "class_weights", value, f"a dict mapping labels {list(labels)} to weights >= 0")
    weights = _per_label(loss, "class_weights", value, labels, 1.0, 0.0, None)
    return dict(zip(labels, weights))


def _focal_labels(loss, value, labels):
    if value is None:
        return list(labels)
    if not isinstance(value, (list, tuple)) or not value:
        _fail(loss, "focal_labels", value, f"a non-empty list of labels from {list(labels)}")
    for label in value:
        if label not in labels:
            raise ValueError(
                f"loss {loss!r}: focal label {label!r} is not one of the labels; valid values: {list(labels)}"
            )
    if len(set(value)) != len(value):
        _fail(loss, "focal_labels", value, "a list without duplicates")
    return list(value)


def _check_labels(labels):
    if (
        not isinstance(labels, (list, tuple))
        or not labels
        or not all(isinstance(label, str) for label in labels)
        or len(set(labels)) != len(labels)
    ):
        raise ValueError(f"invalid labels {labels!r}; valid values: a non-empty list of distinct strings")


def check_mode(name, multi_label):
    """Raises ValueError when loss `name` does not fit the single/multi-label mode."""
    if multi_label and name not in MULTI_LABEL_LOSSES:
        raise ValueError(
            f"loss {name!r} is a single-label (softmax) loss and cannot be used with multi_label=True; "
            f"valid multi-label losses: {list(MULTI_LABEL_LOSSES)}"
        )
    if not multi_label and name not in SINGLE_LABEL_LOSSES:
        raise ValueError(
            f"loss {name!r} is a multi-label (sigmoid) loss and cannot be used with multi_label=False; "
            f"valid single-label losses: {list(SINGLE_LABEL_LOSSES)}"
        )


def validate_loss_config(name, config, labels, multi_label=False):
    """Checks a loss config and fills in defaults.

    Args:
        name: One of `LOSS_NAMES`.
        config: Dict of the loss's parameters (None or {} for all defaults).
        labels: Label names in the order of the network's output units.
        multi_label: True for sigmoid (multi-hot) outputs, False for softmax.

    Returns:
        A new dict with every parameter of the loss. Per-label values come back
        normalised: `alpha` as a float or a list aligned with `labels`,
        `class_weights` as a dict covering every label (missing ones get 1.0),
        `focal_labels` as a list (all labels by default).

    Raises:
        ValueError: naming the field, the bad value and the valid values.
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss name {name!r}; valid names: {list(LOSS_NAMES)}")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"loss {name!r}: invalid config {config!r}; valid values: a dict of parameters")
    _check_labels(labels)
    labels = list(labels)
    check_mode(name, bool(multi_label))
    if "class_weights" in config and "focal_labels" in config:
        raise ValueError(
            f"loss {name!r}: class_weights and focal_labels are mutually exclusive; "
            "weight labels with class_weights or restrict the loss to focal_labels, not both"
        )
    defaults = LOSS_DEFAULTS[name]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(
            f"loss {name!r}: unknown parameter {unknown[0]!r}; valid parameters: {sorted(defaults)}"
        )
    cfg = {**defaults, **config}
    out = {}
    for field, value in cfg.items():
        if field in ("gamma", "gamma_pos", "gamma_neg"):
            out[field] = _number(name, field, value, low=0.0)
        elif field == "alpha":
            out[field] = _alpha(name, value, labels)
        elif field == "label_smoothing":
            out[field] = _number(name, field, value, 0.0, 1.0)
        elif field == "class_weights":
            out[field] = _class_weights(name, value, labels)
        elif field == "weight_strategy":
            out[field] = None if value is None else _choice(name, field, value, WEIGHT_STRATEGIES)
        elif field == "beta":
            out[field] = _number(name, field, value, 0.0, 1.0, high_open=True)
        elif field == "focal_labels":
            out[field] = _focal_labels(name, value, labels)
        elif field == "distributed":
            if not isinstance(value, bool):
                _fail(name, field, value, [True, False])
            out[field] = value
        elif field == "schedule":
            out[field] = _choice(name, field, value, SCHEDULES)
        elif field == "epochs":
            out[field] = None if value is None else _int(name, field, value, 1)
        elif field == "switch_epoch":
            out[field] = None if value is None else _int(name, field, value, 0)
        elif field == "temperature":
            out[field] = _number(name, field, value, low=0.0, low_open=True)
        elif field in ("focal_weight", "contrastive_weight", "tau", "cross_entropy_weight"):
            out[field] = _number(name, field, value, low=0.0)
        elif field == "base":
            out[field] = _choice(name, field, value, CLASS_BALANCED_BASES)
        elif field == "clip":
            out[field] = _number(name, field, value, 0.0, 1.0, high_open=True)
        else:  # pragma: no cover - LOSS_DEFAULTS and this dispatch must agree
            raise AssertionError(field)
    _check_combinations(name, out)
    return out


def _check_combinations(name, cfg):
    if cfg.get("class_weights") is not None and cfg.get("weight_strategy") is not None:
        raise ValueError(
            f"loss {name!r}: class_weights and weight_strategy are mutually exclusive; "
            f"give explicit class_weights or one weight_strategy of {list(WEIGHT_STRATEGIES)}"
        )
    if name == "weighted_cross_entropy" and cfg["class_weights"] is None and cfg["weight_strategy"] is None:
        raise ValueError(
            f"loss {name!r}: invalid class_weights None with weight_strategy None; valid values: "
            f"a class_weights dict or a weight_strategy of {list(WEIGHT_STRATEGIES)}"
        )
    if name == "adaptive" and cfg["schedule"] == "step" and cfg["switch_epoch"] is None:
        raise ValueError(
            f"loss {name!r}: invalid switch_epoch None for schedule 'step'; valid values: an integer >= 0"
        )
    if name == "focal_contrastive" and cfg["focal_weight"] == 0.0 and cfg["contrastive_weight"] == 0.0:
        raise ValueError(
            f"loss {name!r}: invalid focal_weight 0.0 with contrastive_weight 0.0; "
            "valid values: weights >= 0, at least one of them > 0"
        )
