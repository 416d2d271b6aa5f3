"""Loss choice from the familiar arguments: pure Python, no Spark, no TensorFlow."""
import subprocess
import sys

import pytest

from focalseq.losses import choose_loss, loss_config_for, validate_loss_config

LABELS = ["Nomenclature", "Description", "Misc-exposition"]


# --- choose_loss ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"focal_labels": ["Nomenclature"]}, "soft_f1"),
        ({"class_weights": {"Nomenclature": 10.0}}, "weighted_cross_entropy"),
        ({"class_weights": {}}, "weighted_cross_entropy"),
        ({"weight_strategy": "inverse"}, "weighted_cross_entropy"),
        ({}, "cross_entropy"),
        # An explicit loss wins over what the other arguments would choose.
        ({"focal_labels": ["Nomenclature"], "loss": "focal"}, "focal"),
        ({"weight_strategy": "balanced", "loss": "adaptive"}, "adaptive"),
    ],
)
def test_choose_loss_follows_the_documented_rules(kwargs, expected):
    assert choose_loss(**kwargs) == expected


def test_class_weights_and_focal_labels_are_mutually_exclusive():
    with pytest.raises(ValueError) as err:
        choose_loss(focal_labels=["Nomenclature"], class_weights={"Nomenclature": 10.0})
    assert str(err.value) == "class_weights and focal_labels are mutually exclusive"
    # Even with an explicit loss: the two arguments still contradict each other.
    with pytest.raises(ValueError, match="mutually exclusive"):
        choose_loss(["Nomenclature"], {"Nomenclature": 10.0}, None, "weighted_cross_entropy")


def test_empty_focal_labels_are_rejected_naming_the_value():
    with pytest.raises(ValueError, match=r"focal_labels: invalid value \[\].*non-empty list"):
        choose_loss(focal_labels=[])


# --- loss_config_for ------------------------------------------------------------


def test_nothing_to_add_gives_a_copy_of_the_config():
    given = {"gamma": 1.0}
    config = loss_config_for("focal", given)
    assert config == {"gamma": 1.0} and config is not given
    assert loss_config_for("cross_entropy", None) == {}


def test_class_weights_and_weight_strategy_join_any_loss_config():
    weights = {"Nomenclature": 5.0}
    config = loss_config_for("weighted_cross_entropy", {}, class_weights=weights)
    assert config == {"class_weights": {"Nomenclature": 5.0}}
    weights["Nomenclature"] = 1.0  # the config holds its own copy
    assert config["class_weights"] == {"Nomenclature": 5.0}
    assert loss_config_for("adaptive", {"gamma": 1.0}, weight_strategy="balanced") == {
        "gamma": 1.0,
        "weight_strategy": "balanced",
    }
    # A loss without such a parameter gets it too; its validation names the problem.
    config = loss_config_for("focal", {}, class_weights={"Description": 2.0})
    with pytest.raises(ValueError, match="unknown parameter 'class_weights'"):
        validate_loss_config("focal", config, LABELS)


def test_focal_labels_restrict_soft_f1_only():
    assert loss_config_for("soft_f1", {}, focal_labels=("Description",)) == {"focal_labels": ["Description"]}
    assert loss_config_for("focal", {}, focal_labels=["Description"]) == {}
    # The config's own focal labels win; none given adds none.
    assert loss_config_for("soft_f1", {"focal_labels": ["Nomenclature"]}, focal_labels=["Description"]) == {
        "focal_labels": ["Nomenclature"]
    }
    assert loss_config_for("soft_f1", {}, focal_labels=[]) == {}
    assert loss_config_for("soft_f1", {}, focal_labels=None) == {}


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"class_weights": {"Nomenclature": 2.0}}, "class_weights"),
        ({"weight_strategy": "inverse"}, "weight_strategy"),
    ],
)
def test_a_key_given_twice_is_an_error_naming_the_argument(kwargs, key):
    given = {"class_weights": {"Description": 2.0}, "weight_strategy": "balanced"}
    with pytest.raises(ValueError) as err:
        loss_config_for("weighted_cross_entropy", given, **kwargs)
    assert str(err.value).startswith(f"{key}: loss_config already sets {key} ({given[key]!r})")
    # A caller with other spellings (the BiLSTM stage's params) gets its own names.
    names = {"class_weights": "classWeights", "weight_strategy": "weightStrategy", "loss_config": "lossConfig"}
    with pytest.raises(ValueError, match=f"^{names[key]}: lossConfig already sets {key} "):
        loss_config_for("weighted_cross_entropy", given, names=names, **kwargs)


def test_a_loss_config_that_is_not_a_dict_is_rejected():
    with pytest.raises(ValueError, match=r"loss_config: invalid value \[\('gamma', 1.0\)\].*a dict"):
        loss_config_for("focal", [("gamma", 1.0)])


def test_the_api_rules_end_to_end_give_valid_configs():
    """What the Python API gets for each familiar choice, validated against the labels."""
    cases = [
        ({"focal_labels": ["Nomenclature", "Description"]}, "soft_f1",
         {"focal_labels": ["Nomenclature", "Description"], "distributed": True,
          "cross_entropy_weight": 0.0}),
        ({"class_weights": {"Nomenclature": 20.0}}, "weighted_cross_entropy",
         {"class_weights": {"Nomenclature": 20.0, "Description": 1.0, "Misc-exposition": 1.0},
          "weight_strategy": None, "beta": 0.999}),
        ({"weight_strategy": "inverse"}, "weighted_cross_entropy",
         {"class_weights": None, "weight_strategy": "inverse", "beta": 0.999}),
        ({}, "cross_entropy", {"label_smoothing": 0.0}),
    ]
    for kwargs, name, expected in cases:
        loss = choose_loss(**kwargs)
        assert loss == name
        config = loss_config_for(loss, None, **kwargs)
        assert validate_loss_config(loss, config, LABELS) == expected


def test_loss_choice_imports_no_tensorflow():
    code = "import sys, focalseq.losses.choice; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
