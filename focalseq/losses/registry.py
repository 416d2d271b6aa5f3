"""Turns a validated, label-keyed loss config into loss-class constructor arguments.

Pure Python and NumPy: label names become output indices and per-label lists here,
so the Keras classes only see numbers aligned with the network's output units.
"""
from focalseq.losses.config import NEEDS_COUNTS
from focalseq.losses.weights import class_priors, compute_class_weights, counts_vector


def _require_counts(name, field, value, label_counts):
    if label_counts is None:
        what = f"{field} {value!r}" if field else f"loss {name!r}"
        raise ValueError(
            f"loss {name!r}: {what} needs label_counts; valid values: a dict label -> training count"
        )


def _class_weight_list(name, cfg, labels, label_counts):
    if cfg["class_weights"] is not None:
        return [cfg["class_weights"][label] for label in labels]
    strategy = cfg["weight_strategy"]
    if strategy is None:
        return None
    _require_counts(name, "weight_strategy", strategy, label_counts)
    weights = compute_class_weights(strategy, label_counts, labels, beta=cfg["beta"])
    return [weights[label] for label in labels]


def loss_kwargs(name, cfg, labels, label_counts=None, multi_label=False):
    """Constructor arguments of `keras_losses.LOSS_CLASSES[name]`.

    Args:
        name: Loss name.
        cfg: Output of `validate_loss_config`.
        labels: Label names in output order.
        label_counts: {label: training count}; needed by weight strategies,
            class_balanced and logit_adjusted.
        multi_label: Sigmoid outputs (soft_f1's cross-entropy term is then binary).
    """
    labels = list(labels)
    if name in NEEDS_COUNTS:
        _require_counts(name, None, None, label_counts)
    if name in ("cross_entropy", "binary_cross_entropy"):
        return {"label_smoothing": cfg["label_smoothing"]}
    if name == "weighted_cross_entropy":
        return {"class_weights": _class_weight_list(name, cfg, labels, label_counts)}
    if name in ("focal", "binary_focal"):
        return {k: cfg[k] for k in ("gamma", "alpha", "label_smoothing")}
    if name == "soft_f1":
        indices = [labels.index(label) for label in cfg["focal_labels"]]
        return {
            "label_indices": None if indices == list(range(len(labels))) else indices,
            "distributed": cfg["distributed"],
            "cross_entropy_weight": cfg["cross_entropy_weight"],
            "multi_label": bool(multi_label),
        }
    if name == "adaptive":
        kwargs = {k: cfg[k] for k in ("gamma", "alpha", "schedule", "epochs", "switch_epoch")}
        return {"class_weights": _class_weight_list(name, cfg, labels, label_counts), **kwargs}
    if name == "focal_contrastive":
        keys = ("gamma", "alpha", "temperature", "focal_weight", "contrastive_weight")
        return {"n_labels": len(labels), **{k: cfg[k] for k in keys}}
    if name == "class_balanced":
        counts = counts_vector(label_counts, labels).tolist()
        return {"label_counts": counts, **{k: cfg[k] for k in ("beta", "base", "gamma")}}
    if name == "logit_adjusted":
        return {"priors": class_priors(label_counts, labels).tolist(), "tau": cfg["tau"]}
    if name == "asymmetric":
        return {k: cfg[k] for k in ("gamma_pos", "gamma_neg", "clip")}
    raise AssertionError(name)  # pragma: no cover - LOSS_NAMES and this dispatch must agree
