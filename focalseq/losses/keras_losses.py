"""Keras loss classes over `focalseq.losses.functions`, and the curriculum callback.

The shape of Keras 2.15's `LossFunctionWrapper`: `FocalseqLoss` holds a pure
function and the keyword arguments it is called with; each loss class only
declares its function and its arguments with their defaults, and `get_config` is
the base config (`name`, `reduction`) plus those arguments. Every class is
registered with Keras under the package "focalseq", so a model saved with one of
them loads with `tf.keras.models.load_model` without `custom_objects` once this
module is imported (`focalseq.losses.build_loss` imports it).

Per-label parameters are plain lists aligned with the network's output units;
`focalseq.losses.build_loss` turns label-keyed configs into them.
"""
import copy
import logging
import numbers

import tensorflow as tf

from focalseq.losses import functions

logger = logging.getLogger(__name__)

_register = tf.keras.saving.register_keras_serializable(package="focalseq")

_AUTO = tf.keras.losses.Reduction.AUTO
# The pure functions return the mean over unmasked lines; only the reductions that
# mean "average" describe that.
_AVERAGING = (tf.keras.losses.Reduction.AUTO, tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE)


class FocalseqLoss(tf.keras.losses.Loss):
    """Wraps a pure function of `focalseq.losses.functions` as a Keras loss.

    Padding mask: Keras' `sample_weight` becomes the function's `mask` (1 for a
    real line, 0 for padding; other non-negative values weight lines), and the
    loss is the average over the unmasked lines only, sum_i m_i l_i / sum_i m_i.
    Keras' own reduction would divide by all lines, padding included, so it is
    never applied; `reduction` is kept for the Keras config and must be one of
    the averaging ones.

    Subclasses call `super().__init__(fn, reduction=..., name=..., **fn_kwargs)`
    with JSON-valued `fn_kwargs`; Keras' `from_config` (`cls(**config)`) then
    rebuilds them from `get_config`.

    Args:
        fn: `fn(y_true, y_pred, mask=None, **fn_kwargs) -> scalar`.
        reduction: "auto" or "sum_over_batch_size" (both: the masked mean).
        name: The loss name; None: the class's `loss_name`.
        **fn_kwargs: Keyword arguments passed to `fn` on every call.
    """

    loss_name = None
    # True when y_pred must be concat([probabilities, representation]).
    needs_representation = False

    def __init__(self, fn, reduction=_AUTO, name=None, **fn_kwargs):
        if reduction not in _AVERAGING:
            raise ValueError(
                f"{type(self).__name__}: invalid reduction {reduction!r}; valid values: {list(_AVERAGING)} "
                "(the loss is always the mean over unmasked lines)"
            )
        super().__init__(reduction=reduction, name=name or self.loss_name)
        self.fn = fn
        self._fn_kwargs = fn_kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self._name_scope):
            return self.fn(y_true, y_pred, sample_weight, **self._call_kwargs())

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, None, **self._call_kwargs())

    def _call_kwargs(self):
        """Keyword arguments for `fn`; a subclass adds call-time state (a variable)."""
        return self._fn_kwargs

    def get_config(self):
        # Deep copy: a caller editing the returned lists must not change the loss.
        return {**super().get_config(), **copy.deepcopy(self._fn_kwargs)}

    def local_copy(self):
        """A copy that never communicates across Horovod processes.

        Use it where one rank computes the loss alone (e.g. rank-0 validation): a
        distributed `soft_f1` there would hang waiting for the other ranks, or
        collide with their next collective.
        """
        config = self.get_config()
        if "distributed" in config:
            config["distributed"] = False
        return type(self).from_config(config)


def _as_list(value):
    return None if value is None else [float(v) for v in value]


def _alpha(value):
    if value is None:
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    return _as_list(value)


@_register
class CrossEntropyLoss(FocalseqLoss):
    """Categorical cross-entropy over unmasked lines; see `functions.cross_entropy`."""

    loss_name = "cross_entropy"

    def __init__(self, label_smoothing=0.0, reduction=_AUTO, name=None):
        super().__init__(
            functions.cross_entropy, reduction=reduction, name=name, label_smoothing=float(label_smoothing)
        )


@_register
class WeightedCrossEntropyLoss(FocalseqLoss):
    """sum_i m_i w_{y_i} CE_i / sum_i m_i; see `functions.weighted_cross_entropy`.

    Args:
        class_weights: K weights aligned with the output units.
    """

    loss_name = "weighted_cross_entropy"

    def __init__(self, class_weights=None, reduction=_AUTO, name=None):
        super().__init__(
            functions.weighted_cross_entropy,
            reduction=reduction,
            name=name,
            class_weights=_as_list(class_weights),
        )


@_register
class FocalLoss(FocalseqLoss):
    """Focal loss (Lin et al. 2017), -sum_c alpha_c (1 - p_c)^gamma t_c log p_c.

    Args:
        gamma: Focusing parameter >= 0.
        alpha: None (no balancing), a scalar or K values in [0, 1].
        label_smoothing: s in [0, 1].
    """

    loss_name = "focal"

    def __init__(self, gamma=2.0, alpha=None, label_smoothing=0.0, reduction=_AUTO, name=None):
        super().__init__(
            functions.focal,
            reduction=reduction,
            name=name,
            gamma=float(gamma),
            alpha=_alpha(alpha),
            label_smoothing=float(label_smoothing),
        )


@_register
class SoftF1Loss(FocalseqLoss):
    """1 - mean_c soft F1_c over the batch; see `functions.soft_f1`.

    Args:
        label_indices: Output indices the mean runs over; None: all.
        distributed: Sum the F1 counts over Horovod processes when Horovod is
            initialised with more than one process (checked at call time).
        cross_entropy_weight: Weight of the added cross-entropy term; 0: none.
        multi_label: Sigmoid outputs (binary cross-entropy for the added term).
    """

    loss_name = "soft_f1"

    def __init__(self, label_indices=None, distributed=True, cross_entropy_weight=0.0,
                 multi_label=False, reduction=_AUTO, name=None):
        super().__init__(
            functions.soft_f1,
            reduction=reduction,
            name=name,
            label_indices=None if label_indices is None else [int(i) for i in label_indices],
            distributed=bool(distributed),
            cross_entropy_weight=float(cross_entropy_weight),
            multi_label=bool(multi_label),
        )


@_register
class AdaptiveLoss(FocalseqLoss):
    """Curriculum (1 - t) weighted CE + t focal; t is the variable `progress`.

    Schedules: "linear" t = min(1, epoch / max(epochs - 1, 1)), so the first epoch
    is pure weighted CE and the last pure focal; "step" t = 0 before
    `switch_epoch` and 1 from it on. `CurriculumCallback` sets `progress` at the
    start of each epoch. `progress` is not saved with the model; the schedule
    (`schedule`, `epochs`, `switch_epoch`) is, beside the function's arguments.

    Args:
        class_weights: K weights for the weighted CE (None: all 1).
        gamma: Focal focusing parameter.
        alpha: Focal alpha (None, scalar or K values).
        schedule: "linear" or "step".
        epochs: Total epochs for "linear" (else taken from the callback / fit).
        switch_epoch: First focal epoch for "step".
    """

    loss_name = "adaptive"

    def __init__(
        self,
        class_weights=None,
        gamma=2.0,
        alpha=None,
        schedule="linear",
        epochs=None,
        switch_epoch=None,
        reduction=_AUTO,
        name=None,
    ):
        if schedule not in ("linear", "step"):
            raise ValueError(f"adaptive: invalid schedule {schedule!r}; valid values: ['linear', 'step']")
        if schedule == "step" and switch_epoch is None:
            raise ValueError(
                "adaptive: invalid switch_epoch None for schedule 'step'; valid values: an integer >= 0"
            )
        super().__init__(
            functions.adaptive,
            reduction=reduction,
            name=name,
            class_weights=_as_list(class_weights),
            gamma=float(gamma),
            alpha=_alpha(alpha),
        )
        self.schedule = schedule
        self.epochs = epochs
        self.switch_epoch = switch_epoch
        self.progress = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="progress")

    def _call_kwargs(self):
        return {**self._fn_kwargs, "progress": self.progress}

    def get_config(self):
        schedule = {"schedule": self.schedule, "epochs": self.epochs, "switch_epoch": self.switch_epoch}
        return {**super().get_config(), **schedule}

    def progress_for_epoch(self, epoch, epochs=None):
        """Curriculum position t in [0, 1] at the start of 0-based `epoch`."""
        if self.schedule == "step":
            return 0.0 if epoch < self.switch_epoch else 1.0
        epochs = epochs or self.epochs
        if not epochs:
            raise ValueError(
                "adaptive: invalid epochs None for schedule 'linear'; valid values: an integer >= 1"
            )
        return float(min(1.0, max(0.0, epoch / max(epochs - 1, 1))))

    def local_copy(self):
        copy = super().local_copy()
        copy.progress.assign(self.progress)
        return copy

    def set_epoch(self, epoch, epochs=None):
        """Assigns `progress` for `epoch` and returns it."""
        value = self.progress_for_epoch(epoch, epochs)
        self.progress.assign(value)
        return value


@_register
class FocalContrastiveLoss(FocalseqLoss):
    """focal_weight * focal + contrastive_weight * supervised contrastive (Khosla et al. 2020).

    The network's output must be concat([probabilities (n_labels), L2-normalised
    line representation (D)], axis=-1); y_true stays the (n_labels) one-hot.

    Args:
        n_labels: Number of labels K, where y_pred is split.
        gamma, alpha: Focal parameters.
        temperature: Contrastive temperature T > 0.
        focal_weight, contrastive_weight: Mixing weights.
    """

    loss_name = "focal_contrastive"
    needs_representation = True

    def __init__(
        self,
        n_labels,
        gamma=2.0,
        alpha=None,
        temperature=0.1,
        focal_weight=0.7,
        contrastive_weight=0.3,
        reduction=_AUTO,
        name=None,
    ):
        super().__init__(
            functions.focal_contrastive,
            reduction=reduction,
            name=name,
            n_labels=int(n_labels),
            gamma=float(gamma),
            alpha=_alpha(alpha),
            temperature=float(temperature),
            focal_weight=float(focal_weight),
            contrastive_weight=float(contrastive_weight),
        )

    @property
    def n_labels(self):
        return self._fn_kwargs["n_labels"]


@_register
class ClassBalancedLoss(FocalseqLoss):
    """Class-balanced loss (Cui et al. 2019) on softmax CE or focal.

    Args:
        label_counts: K training counts aligned with the output units.
        beta: Effective-number parameter in [0, 1).
        base: "softmax" or "focal".
        gamma: Focal gamma for base "focal".
    """

    loss_name = "class_balanced"

    def __init__(self, label_counts, beta=0.999, base="softmax", gamma=2.0, reduction=_AUTO, name=None):
        if base not in ("softmax", "focal"):
            raise ValueError(f"class_balanced: invalid base {base!r}; valid values: ['softmax', 'focal']")
        super().__init__(
            functions.class_balanced,
            reduction=reduction,
            name=name,
            label_counts=_as_list(label_counts),
            beta=float(beta),
            base=base,
            gamma=float(gamma),
        )


@_register
class LogitAdjustedLoss(FocalseqLoss):
    """Logit-adjusted CE (Menon et al. 2021): CE(softmax(log p + tau log pi)).

    Args:
        priors: K positive label priors aligned with the output units.
        tau: Adjustment strength >= 0.
    """

    loss_name = "logit_adjusted"

    def __init__(self, priors, tau=1.0, reduction=_AUTO, name=None):
        super().__init__(
            functions.logit_adjusted, reduction=reduction, name=name, priors=_as_list(priors), tau=float(tau)
        )


@_register
class BinaryCrossEntropyLoss(FocalseqLoss):
    """Binary cross-entropy, mean over labels, over unmasked lines."""

    loss_name = "binary_cross_entropy"

    def __init__(self, label_smoothing=0.0, reduction=_AUTO, name=None):
        super().__init__(
            functions.binary_cross_entropy,
            reduction=reduction,
            name=name,
            label_smoothing=float(label_smoothing),
        )


@_register
class BinaryFocalLoss(FocalseqLoss):
    """Binary focal loss (Lin et al. 2017) with class balancing, as Keras'.

    Args:
        gamma: Focusing parameter >= 0.
        alpha: Positive-class weight in [0, 1] (scalar or K values); None: no balancing.
        label_smoothing: s in [0, 1].
    """

    loss_name = "binary_focal"

    def __init__(self, gamma=2.0, alpha=0.25, label_smoothing=0.0, reduction=_AUTO, name=None):
        super().__init__(
            functions.binary_focal,
            reduction=reduction,
            name=name,
            gamma=float(gamma),
            alpha=_alpha(alpha),
            label_smoothing=float(label_smoothing),
        )


@_register
class AsymmetricLoss(FocalseqLoss):
    """Asymmetric loss (Ridnik et al. 2021) for multi-label outputs.

    Args:
        gamma_pos: Focusing on positives.
        gamma_neg: Focusing on negatives.
        clip: Probability shift m of negatives, p_m = max(p - m, 0).
    """

    loss_name = "asymmetric"

    def __init__(self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, reduction=_AUTO, name=None):
        super().__init__(
            functions.asymmetric,
            reduction=reduction,
            name=name,
            gamma_pos=float(gamma_pos),
            gamma_neg=float(gamma_neg),
            clip=float(clip),
        )


LOSS_CLASSES = {
    cls.loss_name: cls
    for cls in (
        CrossEntropyLoss,
        WeightedCrossEntropyLoss,
        FocalLoss,
        SoftF1Loss,
        AdaptiveLoss,
        FocalContrastiveLoss,
        ClassBalancedLoss,
        LogitAdjustedLoss,
        BinaryCrossEntropyLoss,
        BinaryFocalLoss,
        AsymmetricLoss,
    )
}


class CurriculumCallback(tf.keras.callbacks.Callback):
    """Sets an `AdaptiveLoss`'s progress from the epoch index at each epoch start.

    The position depends only on the epoch index, so a run resumed with
    `fit(initial_epoch=k)` continues where the interrupted run was.

    Args:
        loss: The AdaptiveLoss; None: the compiled model's loss.
        epochs: Total epochs for the linear schedule; None: the loss's `epochs`,
            else the `epochs` given to `fit`.
    """

    def __init__(self, loss=None, epochs=None):
        super().__init__()
        self._loss = loss
        self._epochs = epochs

    def _adaptive_loss(self):
        loss = self._loss if self._loss is not None else getattr(self.model, "loss", None)
        if not isinstance(loss, AdaptiveLoss):
            raise TypeError(f"CurriculumCallback: invalid loss {loss!r}; valid values: an AdaptiveLoss")
        return loss

    def on_epoch_begin(self, epoch, logs=None):
        loss = self._adaptive_loss()
        epochs = self._epochs or loss.epochs or (self.params or {}).get("epochs")
        value = loss.set_epoch(epoch, epochs)
        logger.info("epoch %d: curriculum progress %.4f", epoch, value)
