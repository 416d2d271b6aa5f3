"""Keras loss classes over `focalseq.losses.functions`, and the curriculum callback.

Each class stores its hyperparameters, returns them from `get_config` and is
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


class FocalseqLoss(tf.keras.losses.Loss):
    """Base class: Keras `sample_weight` becomes the pure function's padding mask.

    Keras' own reduction would divide by all lines, padding included; the pure
    functions average over the unmasked lines only.
    """

    loss_name = None
    # True when y_pred must be concat([probabilities, representation]).
    needs_representation = False

    def __init__(self, name=None, **hyperparams):
        super().__init__(name=name or self.loss_name)
        self._hyperparams = hyperparams

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self._name_scope):
            return self._compute(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        return self._compute(y_true, y_pred, None)

    def _compute(self, y_true, y_pred, mask):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, **copy.deepcopy(self._hyperparams)}

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

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("reduction", None)
        return cls(**config)


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

    def __init__(self, label_smoothing=0.0, name=None):
        super().__init__(name=name, label_smoothing=float(label_smoothing))

    def _compute(self, y_true, y_pred, mask):
        return functions.cross_entropy(y_true, y_pred, mask, **self._hyperparams)


@_register
class WeightedCrossEntropyLoss(FocalseqLoss):
    """sum_i m_i w_{y_i} CE_i / sum_i m_i; see `functions.weighted_cross_entropy`.

    Args:
        class_weights: K weights aligned with the output units.
    """

    loss_name = "weighted_cross_entropy"

    def __init__(self, class_weights=None, name=None):
        super().__init__(name=name, class_weights=_as_list(class_weights))

    def _compute(self, y_true, y_pred, mask):
        return functions.weighted_cross_entropy(y_true, y_pred, mask, **self._hyperparams)


@_register
class FocalLoss(FocalseqLoss):
    """Focal loss (Lin et al. 2017), -sum_c alpha_c (1 - p_c)^gamma t_c log p_c.

    Args:
        gamma: Focusing parameter >= 0.
        alpha: None (no balancing), a scalar or K values in [0, 1].
        label_smoothing: s in [0, 1].
    """

    loss_name = "focal"

    def __init__(self, gamma=2.0, alpha=None, label_smoothing=0.0, name=None):
        super().__init__(
            name=name, gamma=float(gamma), alpha=_alpha(alpha), label_smoothing=float(label_smoothing)
        )

    def _compute(self, y_true, y_pred, mask):
        return functions.focal(y_true, y_pred, mask, **self._hyperparams)


@_register
class SoftF1Loss(FocalseqLoss):
    """1 - mean_c soft F1_c over the batch; see `functions.soft_f1`.

    Args:
        label_indices: Output indices the mean runs over; None: all.
        distributed: Sum the F1 counts over Horovod processes when Horovod is
            initialised with more than one process (checked at call time).
    """

    loss_name = "soft_f1"

    def __init__(self, label_indices=None, distributed=True, name=None):
        indices = None if label_indices is None else [int(i) for i in label_indices]
        super().__init__(name=name, label_indices=indices, distributed=bool(distributed))

    def _compute(self, y_true, y_pred, mask):
        return functions.soft_f1(y_true, y_pred, mask, **self._hyperparams)


@_register
class AdaptiveLoss(FocalseqLoss):
    """Curriculum (1 - t) weighted CE + t focal; t is the variable `progress`.

    Schedules: "linear" t = min(1, epoch / max(epochs - 1, 1)), so the first epoch
    is pure weighted CE and the last pure focal; "step" t = 0 before
    `switch_epoch` and 1 from it on. `CurriculumCallback` sets `progress` at the
    start of each epoch. `progress` is not saved with the model.

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
        name=None,
    ):
        if schedule not in ("linear", "step"):
            raise ValueError(f"adaptive: invalid schedule {schedule!r}; valid values: ['linear', 'step']")
        if schedule == "step" and switch_epoch is None:
            raise ValueError(
                "adaptive: invalid switch_epoch None for schedule 'step'; valid values: an integer >= 0"
            )
        super().__init__(
            name=name,
            class_weights=_as_list(class_weights),
            gamma=float(gamma),
            alpha=_alpha(alpha),
            schedule=schedule,
            epochs=epochs,
            switch_epoch=switch_epoch,
        )
        self.progress = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="progress")

    @property
    def epochs(self):
        return self._hyperparams["epochs"]

    def progress_for_epoch(self, epoch, epochs=None):
        """Curriculum position t in [0, 1] at the start of 0-based `epoch`."""
        if self._hyperparams["schedule"] == "step":
            return 0.0 if epoch < self._hyperparams["switch_epoch"] else 1.0
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

    def _compute(self, y_true, y_pred, mask):
        params = {k: self._hyperparams[k] for k in ("class_weights", "gamma", "alpha")}
        return functions.adaptive(y_true, y_pred, mask, progress=self.progress, **params)


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
        name=None,
    ):
        super().__init__(
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
        return self._hyperparams["n_labels"]

    def _compute(self, y_true, y_pred, mask):
        return functions.focal_contrastive(y_true, y_pred, mask, **self._hyperparams)


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

    def __init__(self, label_counts, beta=0.999, base="softmax", gamma=2.0, name=None):
        if base not in ("softmax", "focal"):
            raise ValueError(f"class_balanced: invalid base {base!r}; valid values: ['softmax', 'focal']")
        super().__init__(
            name=name, label_counts=_as_list(label_counts), beta=float(beta), base=base, gamma=float(gamma)
        )

    def _compute(self, y_true, y_pred, mask):
        return functions.class_balanced(y_true, y_pred, mask, **self._hyperparams)


@_register
class LogitAdjustedLoss(FocalseqLoss):
    """Logit-adjusted CE (Menon et al. 2021): CE(softmax(log p + tau log pi)).

    Args:
        priors: K positive label priors aligned with the output units.
        tau: Adjustment strength >= 0.
    """

    loss_name = "logit_adjusted"

    def __init__(self, priors, tau=1.0, name=None):
        super().__init__(name=name, priors=_as_list(priors), tau=float(tau))

    def _compute(self, y_true, y_pred, mask):
        return functions.logit_adjusted(y_true, y_pred, mask, **self._hyperparams)


@_register
class BinaryCrossEntropyLoss(FocalseqLoss):
    """Binary cross-entropy, mean over labels, over unmasked lines."""

    loss_name = "binary_cross_entropy"

    def __init__(self, label_smoothing=0.0, name=None):
        super().__init__(name=name, label_smoothing=float(label_smoothing))

    def _compute(self, y_true, y_pred, mask):
        return functions.binary_cross_entropy(y_true, y_pred, mask, **self._hyperparams)


@_register
class BinaryFocalLoss(FocalseqLoss):
    """Binary focal loss (Lin et al. 2017) with class balancing, as Keras'.

    Args:
        gamma: Focusing parameter >= 0.
        alpha: Positive-class weight in [0, 1] (scalar or K values); None: no balancing.
        label_smoothing: s in [0, 1].
    """

    loss_name = "binary_focal"

    def __init__(self, gamma=2.0, alpha=0.25, label_smoothing=0.0, name=None):
        super().__init__(
            name=name, gamma=float(gamma), alpha=_alpha(alpha), label_smoothing=float(label_smoothing)
        )

    def _compute(self, y_true, y_pred, mask):
        return functions.binary_focal(y_true, y_pred, mask, **self._hyperparams)


@_register
class AsymmetricLoss(FocalseqLoss):
    """Asymmetric loss (Ridnik et al. 2021) for multi-label outputs.

    Args:
        gamma_pos: Focusing on positives.
        gamma_neg: Focusing on negatives.
        clip: Probability shift m of negatives, p_m = max(p - m, 0).
    """

    loss_name = "asymmetric"

    def __init__(self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, name=None):
        super().__init__(name=name, gamma_pos=float(gamma_pos), gamma_neg=float(gamma_neg), clip=float(clip))

    def _compute(self, y_true, y_pred, mask):
        return functions.asymmetric(y_true, y_pred, mask, **self._hyperparams)


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
