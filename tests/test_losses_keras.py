"""Keras classes: registry, config round trip, save/load, curriculum callback."""
import numpy as np
import pytest
import tensorflow as tf

import focalseq.losses
from focalseq.losses import build_loss, functions
from focalseq.losses.keras_losses import LOSS_CLASSES, AdaptiveLoss, CurriculumCallback

LABELS = ["O", "B", "I"]
COUNTS = {"O": 100, "B": 10, "I": 1}
LINES, FEATURES, REP_DIM = 4, 5, 3

CONFIGS = {
    "cross_entropy": {"label_smoothing": 0.1},
    "weighted_cross_entropy": {"class_weights": {"B": 2.0, "I": 5.0}},
    "focal": {"gamma": 1.5, "alpha": [0.2, 0.5, 0.9]},
    "soft_f1": {"focal_labels": ["B", "I"]},
    "adaptive": {"weight_strategy": "effective_number", "beta": 0.99, "epochs": 4},
    "focal_contrastive": {"temperature": 0.2},
    "class_balanced": {"beta": 0.99},
    "logit_adjusted": {"tau": 0.5},
    "binary_cross_entropy": {},
    "binary_focal": {"alpha": 0.4},
    "asymmetric": {"gamma_neg": 2.0, "clip": 0.1},
}
CASES = [(name, False) for name in focalseq.losses.SINGLE_LABEL_LOSSES] + [
    (name, True) for name in focalseq.losses.MULTI_LABEL_LOSSES
]


def _data(multi_label, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, LINES, FEATURES)).astype(np.float32)
    if multi_label:
        y = (rng.random((6, LINES, 3)) < 0.4).astype(np.float32)
    else:
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=(6, LINES))]
    mask = np.ones((6, LINES), np.float32)
    mask[:, 2:] = rng.random((6, LINES - 2)) < 0.5
    return x, y, mask


def _model(loss, multi_label):
    activation = "sigmoid" if multi_label else "softmax"
    if not loss.needs_representation:
        model = tf.keras.Sequential(
            [
                tf.keras.Input((LINES, FEATURES)),
                tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(3, activation=activation)),
            ]
        )
    else:
        # The focal_contrastive contract: concat([probabilities, unit-norm representation]).
        inputs = tf.keras.Input((LINES, FEATURES))
        probs = tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(3, activation=activation))(inputs)
        rep = tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(REP_DIM))(inputs)
        rep = tf.keras.layers.UnitNormalization(axis=-1)(rep)
        model = tf.keras.Model(inputs, tf.keras.layers.Concatenate(axis=-1)([probs, rep]))
    model.compile(optimizer=tf.keras.optimizers.legacy.SGD(0.1), loss=loss)
    return model


def test_registry_covers_every_name_with_a_registered_class():
    assert set(LOSS_CLASSES) == set(focalseq.losses.LOSS_NAMES) == set(CONFIGS)
    for name, cls in LOSS_CLASSES.items():
        assert tf.keras.saving.get_registered_object(f"focalseq>{cls.__name__}") is cls
        assert issubclass(cls, tf.keras.losses.Loss)


def test_lazy_exports():
    assert focalseq.losses.FocalLoss is LOSS_CLASSES["focal"]
    assert focalseq.losses.CurriculumCallback is CurriculumCallback
    with pytest.raises(AttributeError):
        focalseq.losses.NoSuchLoss  # noqa: B018


@pytest.mark.parametrize("name, multi_label", CASES)
def test_config_round_trip(name, multi_label):
    loss = build_loss(name, CONFIGS[name], LABELS, COUNTS, multi_label=multi_label)
    config = loss.get_config()
    assert config["name"] == name
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def test_local_copy_never_communicates():
    loss = build_loss("soft_f1", {"focal_labels": ["B"]}, LABELS)
    local = loss.local_copy()
    assert loss.get_config()["distributed"] is True
    assert local.get_config() == {**loss.get_config(), "distributed": False}
    adaptive = build_loss("adaptive", {}, LABELS)
    adaptive.progress.assign(0.75)
    assert float(adaptive.local_copy().progress.numpy()) == 0.75
    focal = build_loss("focal", {"gamma": 1.0}, LABELS)
    assert focal.local_copy().get_config() == focal.get_config()


def test_build_resolves_label_keyed_configs():
    loss = build_loss("weighted_cross_entropy", CONFIGS["weighted_cross_entropy"], LABELS)
    assert loss.get_config()["class_weights"] == [1.0, 2.0, 5.0]
    loss = build_loss("soft_f1", {"focal_labels": ["I", "B"]}, LABELS)
    assert loss.get_config()["label_indices"] == [2, 1]
    assert build_loss("soft_f1", {}, LABELS).get_config()["label_indices"] is None
    loss = build_loss("weighted_cross_entropy", {"weight_strategy": "balanced"}, LABELS, COUNTS)
    np.testing.assert_allclose(loss.get_config()["class_weights"], [111 / 300, 111 / 30, 111 / 3])
    loss = build_loss("logit_adjusted", {}, LABELS, COUNTS)
    np.testing.assert_allclose(loss.get_config()["priors"], [100 / 111, 10 / 111, 1 / 111])
    loss = build_loss("focal_contrastive", {}, LABELS)
    assert loss.needs_representation and loss.n_labels == 3


@pytest.mark.parametrize(
    "name, config",
    [
        ("weighted_cross_entropy", {"weight_strategy": "balanced"}),
        ("adaptive", {"weight_strategy": "sqrt_inverse"}),
        ("class_balanced", {}),
        ("logit_adjusted", {}),
    ],
)
def test_build_without_counts_raises(name, config):
    with pytest.raises(ValueError, match="needs label_counts"):
        build_loss(name, config, LABELS)


def test_build_rejects_mode_mismatch_and_bad_counts():
    with pytest.raises(ValueError, match="multi_label=True"):
        build_loss("focal", {}, LABELS, multi_label=True)
    with pytest.raises(ValueError, match="multi_label=False"):
        build_loss("asymmetric", {}, LABELS)
    with pytest.raises(ValueError, match="'X'"):
        build_loss("logit_adjusted", {}, LABELS, {"O": 3, "X": 1})


@pytest.mark.parametrize("name, multi_label", CASES)
def test_keras_fit_evaluate_save_load_without_custom_objects(name, multi_label, tmp_path):
    tf.keras.utils.set_random_seed(0)
    x, y, mask = _data(multi_label)
    loss = build_loss(name, CONFIGS[name], LABELS, COUNTS, multi_label=multi_label)
    model = _model(loss, multi_label)
    model.fit(x, y, sample_weight=mask, batch_size=len(x), epochs=1, verbose=0)
    evaluated = model.evaluate(x, y, sample_weight=mask, batch_size=len(x), verbose=0)

    # Keras passes sample_weight through as the mask: the loss averages unmasked lines.
    direct = float(loss(y, model.predict(x, verbose=0), sample_weight=mask))
    assert evaluated == pytest.approx(direct, rel=1e-5)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    if name == "adaptive":
        loaded.loss.progress.assign(loss.progress)  # not saved with the model
    assert loaded.evaluate(x, y, sample_weight=mask, batch_size=len(x), verbose=0) == pytest.approx(
        evaluated, rel=1e-6
    )


# --- the LossFunctionWrapper shape ----------------------------------------------

# Each class's fn arguments (its __init__ arguments except reduction and name), by
# name; the schedule of `adaptive` is configuration too.
HYPERPARAMETERS = {
    "cross_entropy": {"label_smoothing"},
    "weighted_cross_entropy": {"class_weights"},
    "focal": {"gamma", "alpha", "label_smoothing"},
    "soft_f1": {"label_indices", "distributed", "cross_entropy_weight", "multi_label"},
    "adaptive": {"class_weights", "gamma", "alpha", "schedule", "epochs", "switch_epoch"},
    "focal_contrastive": {"n_labels", "gamma", "alpha", "temperature", "focal_weight", "contrastive_weight"},
    "class_balanced": {"label_counts", "beta", "base", "gamma"},
    "logit_adjusted": {"priors", "tau"},
    "binary_cross_entropy": {"label_smoothing"},
    "binary_focal": {"gamma", "alpha", "label_smoothing"},
    "asymmetric": {"gamma_pos", "gamma_neg", "clip"},
}


def _outputs(loss, multi_label, seed=3):
    """Fixed network outputs (probabilities, plus a representation if the loss asks)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(6, LINES, 3)).astype(np.float32)
    probs = tf.nn.sigmoid(logits) if multi_label else tf.nn.softmax(logits)
    if loss.needs_representation:
        rep = tf.math.l2_normalize(rng.normal(size=(6, LINES, REP_DIM)).astype(np.float32), axis=-1)
        probs = tf.concat([probs, rep], axis=-1)
    return probs


@pytest.mark.parametrize("name, multi_label", CASES)
def test_get_config_is_the_base_config_plus_every_hyperparameter(name, multi_label):
    loss = build_loss(name, CONFIGS[name], LABELS, COUNTS, multi_label=multi_label)
    config = loss.get_config()
    assert set(config) == {"name", "reduction"} | HYPERPARAMETERS[name]
    assert config["name"] == name and config["reduction"] == "auto"


def test_get_config_holds_the_declared_values():
    loss = LOSS_CLASSES["focal"](gamma=1, alpha=[0.2, 0.5, 0.9])
    assert loss.get_config() == {
        "name": "focal",
        "reduction": "auto",
        "gamma": 1.0,
        "alpha": [0.2, 0.5, 0.9],
        "label_smoothing": 0.0,
    }
    # The returned config is a copy: editing it leaves the loss alone.
    loss.get_config()["alpha"][0] = 1.0
    assert loss.get_config()["alpha"] == [0.2, 0.5, 0.9]


@pytest.mark.parametrize("name, multi_label", CASES)
def test_serialized_and_saved_losses_return_the_same_value(name, multi_label, tmp_path):
    _, y, mask = _data(multi_label)
    loss = build_loss(name, CONFIGS[name], LABELS, COUNTS, multi_label=multi_label)
    if name == "adaptive":
        loss.progress.assign(0.5)  # both parts count
    y_pred = _outputs(loss, multi_label)
    expected = float(loss(y, y_pred, sample_weight=mask))

    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    model = _model(loss, multi_label)
    model.save(str(tmp_path / "tiny.keras"))
    loaded = tf.keras.models.load_model(str(tmp_path / "tiny.keras")).loss
    for clone in (restored, loaded):
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        if name == "adaptive":
            assert float(clone.progress.numpy()) == 0.0  # not saved; the callback sets it
            clone.progress.assign(0.5)
        assert float(clone(y, y_pred, sample_weight=mask)) == pytest.approx(expected, rel=1e-6)


def test_restored_focal_loss_matches_the_formula():
    # Two lines, one padding line; gamma 1, alpha 0.5 on every label.
    y = np.array([[[1, 0, 0], [0, 0, 1], [0, 1, 0]]], np.float32)
    p = np.array([[[0.8, 0.1, 0.1], [0.2, 0.4, 0.4], [0.1, 0.8, 0.1]]], np.float32)
    mask = np.array([[1, 1, 0]], np.float32)
    expected = (0.5 * 0.2 * -np.log(0.8) + 0.5 * 0.6 * -np.log(0.4)) / 2
    loss = build_loss("focal", {"gamma": 1.0, "alpha": 0.5}, LABELS)
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert float(restored(y, p, sample_weight=mask)) == pytest.approx(expected, rel=1e-5)


def test_configs_saved_without_reduction_still_load():
    # The shape of a config written before `reduction` was part of it.
    old = {"name": "focal", "gamma": 1.5, "alpha": None, "label_smoothing": 0.0}
    loss = LOSS_CLASSES["focal"].from_config(old)
    assert loss.get_config() == {**old, "reduction": "auto"}


def test_only_averaging_reductions_are_accepted():
    y = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    p = np.array([[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]], np.float32)
    average = LOSS_CLASSES["cross_entropy"](reduction="sum_over_batch_size")
    assert float(average(y, p)) == pytest.approx(-np.log(0.5), rel=1e-6)
    for reduction in ("sum", "none"):
        with pytest.raises(ValueError, match=f"invalid reduction '{reduction}'.*auto"):
            LOSS_CLASSES["cross_entropy"](reduction=reduction)


# --- curriculum -----------------------------------------------------------------


def test_progress_for_epoch_schedules():
    linear = AdaptiveLoss(epochs=5)
    assert [linear.progress_for_epoch(e) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert AdaptiveLoss().progress_for_epoch(1, epochs=3) == 0.5
    assert AdaptiveLoss(epochs=1).progress_for_epoch(0) == 0.0
    step = AdaptiveLoss(schedule="step", switch_epoch=2)
    assert [step.progress_for_epoch(e) for e in range(4)] == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="epochs"):
        AdaptiveLoss().progress_for_epoch(1)
    with pytest.raises(ValueError, match="switch_epoch"):
        AdaptiveLoss(schedule="step")


def test_adaptive_loss_follows_its_progress_variable():
    x, y, mask = _data(False)
    probs = tf.nn.softmax(tf.random.stateless_normal((6, LINES, 3), seed=(1, 2)))
    loss = AdaptiveLoss(class_weights=[1.0, 2.0, 3.0], gamma=2.0)
    wce = float(functions.weighted_cross_entropy(y, probs, mask, class_weights=[1.0, 2.0, 3.0]))
    fl = float(functions.focal(y, probs, mask, gamma=2.0))
    traced = tf.function(lambda: loss(y, probs, sample_weight=mask))
    for t in (0.0, 0.3, 1.0):
        loss.progress.assign(t)
        assert float(traced()) == pytest.approx((1 - t) * wce + t * fl, rel=1e-5)


class _Recorder(tf.keras.callbacks.Callback):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss
        self.seen = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.seen[epoch] = float(self.loss.progress.numpy())


def _run(epochs, initial_epoch=0, callback_epochs=None, loss_config=None):
    x, y, mask = _data(False)
    loss = build_loss("adaptive", loss_config or {"weight_strategy": "balanced"}, LABELS, COUNTS)
    model = _model(loss, False)
    recorder = _Recorder(loss)
    model.fit(
        x,
        y,
        sample_weight=mask,
        batch_size=len(x),
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[CurriculumCallback(loss, callback_epochs), recorder],
        verbose=0,
    )
    return recorder.seen


def test_curriculum_callback_and_resume():
    full = _run(epochs=5)
    assert full == {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0}
    resumed = _run(epochs=5, initial_epoch=3)
    assert resumed == {3: full[3], 4: full[4]}
    # Explicit epochs on the callback win over fit's.
    assert _run(epochs=2, callback_epochs=3) == {0: 0.0, 1: 0.5}
    assert _run(epochs=4, initial_epoch=2, loss_config={"schedule": "step", "switch_epoch": 3}) == {2: 0.0, 3: 1.0}


def test_curriculum_callback_finds_the_compiled_loss_and_rejects_others():
    x, y, mask = _data(False)
    loss = AdaptiveLoss(epochs=3)
    model = _model(loss, False)
    model.fit(x, y, epochs=2, initial_epoch=1, callbacks=[CurriculumCallback()], verbose=0)
    assert float(loss.progress.numpy()) == 0.5
    model = _model(build_loss("focal", {}, LABELS), False)
    with pytest.raises(TypeError, match="AdaptiveLoss"):
        model.fit(x, y, epochs=1, callbacks=[CurriculumCallback()], verbose=0)
