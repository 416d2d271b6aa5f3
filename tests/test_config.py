"""The configuration check: one pass, every error, each naming the key, value and what is valid.

No Spark: all of this runs before a session exists.
"""
import os
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from focalseq.config import DEFAULTS, ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_YAML = os.path.join(ROOT, "conf", "default.yaml")


def _errors(*overrides, path=DEFAULT_YAML):
    with pytest.raises(ConfigError) as err:
        load_config(path, list(overrides))
    return err.value.errors


def _one_error(override):
    errors = _errors(override)
    assert len(errors) == 1, errors
    return errors[0]


# The bad values of issue 12: each used to pass and fail after Spark had started. ---------

@pytest.mark.parametrize("override, expected", [
    ("train.dropout=1.5", "train.dropout: 1.5 is not in [0, 1)"),
    ("train.recurrent_dropout=-0.1", "train.recurrent_dropout: -0.1 is not in [0, 1)"),
    ("train.token_dropout=2", "train.token_dropout: 2.0 is not in [0, 1)"),
    ("train.dropout=1", "train.dropout: 1.0 is not in [0, 1)"),
    ("train.num_layers=0", "train.num_layers: 0 is not >= 1"),
    ("train.hidden_size=0", "train.hidden_size: 0 is not >= 1"),
    ("train.embedding_dim=-3", "train.embedding_dim: -3 is not >= 1"),
    ("train.ensemble_members=0", "train.ensemble_members: 0 is not >= 1"),
    ("features.max_tokens=0", "features.max_tokens: 0 is not >= 1"),
    ("features.suffix_len=0", "features.suffix_len: 0 is not >= 1"),
    ("features.ngram_n=0", "features.ngram_n: 0 is not >= 1"),
    ("windows.size=0", "windows.size: 0 is not >= 1"),
    ("train.learning_rate=-1", "train.learning_rate: -1.0 is not > 0"),
    ("train.learning_rate=0", "train.learning_rate: 0.0 is not > 0"),
    # id 0 is padding: one id left for every token is the least a hashed space can be.
    ("features.vocab_size=1", "features.vocab_size: 1 is not >= 2"),
])
def test_ranges_name_key_value_and_valid_range(override, expected):
    assert _one_error(override) == expected


def test_fractions_must_cover_splits_and_sum_to_one():
    error = _one_error("data.split.fractions={train: 0.5}")
    assert error.startswith("data.split.fractions: {'train': 0.5} sums to 0.5")
    assert "['train', 'validation', 'test']" in error and "sum to 1" in error
    error = _one_error("data.split.fractions={train: 0.5, dev: 0.5}")
    assert error.startswith("data.split.fractions: unknown split(s) ['dev']")
    error = _one_error("data.split.fractions={train: 1.5, test: -0.5}")
    assert "not a number >= 0" in error


def test_bad_regex_is_quoted_with_the_regex_error():
    error = _one_error('data.split.patterns=[[test, "/Vol(117/"], [train, ".*"]]')
    try:
        re.compile("/Vol(117/")
    except re.error as exc:
        regex_error = str(exc)
    assert error == (f"data.split.patterns: entry 0 has an invalid regex '/Vol(117/': "
                     f"{regex_error}")


def test_pattern_entries_must_be_split_regex_pairs():
    error = _one_error('data.split.patterns=[[dev, "x"], [train]]')
    assert error.startswith("data.split.patterns: entry 0 ['dev', 'x'] is not [split, regex]")
    assert "entry 1 ['train']" in error and "['train', 'validation', 'test']" in error


def test_shape_features_must_be_known_names():
    error = _one_error("features.shape_features=[binomial, bogus]")
    assert error.startswith("features.shape_features: unknown shape feature(s) ['bogus']; "
                            "valid names are [")
    # A few names that the featurizer documents (focalseq/text/features.py).
    assert all(name in error for name in ("'binomial'", "'year'", "'measurement'"))


def test_label_map_values_must_be_labels():
    error = _one_error("data.label_map={a: 1}")
    assert error == ("data.label_map: {'a': 1} maps to values that are not labels; every "
                     "value must be one of ['Nomenclature', 'Description', 'Misc-exposition']")
    assert "data.label_map: {'Taxon': 'Species'}" in _one_error(
        "data.label_map={Taxon: Species}")
    assert load_config(DEFAULT_YAML, ["data.label_map={Taxon: Nomenclature}"]) \
        .data.label_map == {"Taxon": "Nomenclature"}


def test_label_references():
    assert _one_error("focal_labels=[Taxon]") == (
        "focal_labels: ['Taxon'] are not in labels "
        "['Nomenclature', 'Description', 'Misc-exposition']")
    assert _one_error("data.keep_labels=[Nomenclature, Taxon]").startswith(
        "data.keep_labels: ['Taxon'] are not in labels")
    assert _one_error("data.default_label=Other").startswith(
        "data.default_label: 'Other' is not in labels")
    assert _one_error("labels=[A, A]").startswith("labels: ['A', 'A']: expected a non-empty "
                                                  "list of distinct")


def test_choices_list_the_valid_values():
    assert _one_error("train.encoder=rnn") == \
        "train.encoder: 'rnn' is not one of ['mean', 'cnn', 'bilstm']"
    error = _one_error("train.loss=focal_f1")
    assert error.startswith("train.loss: 'focal_f1' is not one of [")
    assert "'soft_f1'" in error and "'focal'" in error


def test_loss_config_errors_are_prefixed_with_the_key():
    error = _one_error("train.loss_config={gamma: 1}")  # default.yaml trains soft_f1
    assert error.startswith("train.loss_config: loss 'soft_f1': unknown parameter 'gamma'")
    assert _one_error("train.loss_config={weight_strategy: loudest}").startswith(
        "train.loss_config: ")
    assert _one_error("train.loss=binary_focal").startswith(
        "train.loss: loss 'binary_focal' is a multi-label (sigmoid) loss")


def test_run_id_and_output_dir():
    assert _one_error("train.run_id=../x").startswith("train.run_id: '../x' is not a valid "
                                                     "run id")
    assert _one_error("output.dir=ftp://host/runs").startswith(
        "output.dir: 'ftp://host/runs' has an unsupported scheme; expected a local path or a "
        "URL starting with one of ['file://', 'hdfs://'")
    for good in ("runs/x", "/abs/runs", "file:///tmp/r", "hdfs://nn:8020/r", "s3a://b/r",
                 "gs://b/r", "abfss://c@a.dfs.core.windows.net/r", "dbfs:/runs"):
        assert load_config(DEFAULT_YAML, [f"output.dir={good}"]).output.dir == good
    assert load_config(DEFAULT_YAML, ["train.run_id=skol-v2.1_a"]).train.run_id == "skol-v2.1_a"


def test_window_stride_at_most_size():
    assert _one_error("windows.stride=17").startswith(
        "windows.stride: 17 is larger than windows.size 16")
    assert load_config(DEFAULT_YAML, ["windows.stride=16"]).windows.stride == 16


def test_edges_of_the_ranges_are_valid():
    cfg = load_config(DEFAULT_YAML, [
        "train.dropout=0", "train.token_dropout=0.999", "features.vocab_size=2",
        "train.num_layers=1", "data.split.fractions={train: 0.8, test: 0.2}",
        "train.learning_rate=1"])
    assert (cfg.train.dropout, cfg.train.token_dropout, cfg.features.vocab_size) == \
        (0.0, 0.999, 2)
    # An integer is a number: it is accepted for a float key and kept as a float.
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)


# Strict types. -------------------------------------------------------------------------

@pytest.mark.parametrize("override, expected", [
    ("train.epochs=zero", "train.epochs: expected an integer, got 'zero'"),
    ("train.epochs=3.0", "train.epochs: expected an integer, got 3.0"),
    ("train.epochs=true", "train.epochs: expected an integer, got True"),
    ("train.dropout=true", "train.dropout: expected a number, got True"),
    ("multi_label=1", "multi_label: expected true or false, got 1"),
    ("train.run_id=2024", "train.run_id: expected a string, got 2024"),
    ("data.paths=x.ann", "data.paths: expected a list, got 'x.ann'"),
    ("train=3", "train: expected a mapping, got 3"),
    ("spark.conf={spark.a: [1]}", "spark.conf: {'spark.a': [1]}: expected a string, number "
                                  "or true/false for each setting"),
])
def test_types_are_strict(override, expected):
    assert _one_error(override) == expected


def test_unknown_key_lists_the_valid_keys_of_its_section():
    error = _one_error("windows.sise=8")
    assert error == "windows.sise: unknown key; valid keys here are " \
                    "['row_group_bytes', 'size', 'stride']"


# One pass, every error. ----------------------------------------------------------------

ISSUE_12 = {
    "train.dropout": "train.dropout=1.5",
    "train.num_layers": "train.num_layers=0",
    "train.learning_rate": "train.learning_rate=-1",
    "train.token_dropout": "train.token_dropout=2",
    "features.vocab_size": "features.vocab_size=1",
    "data.split.fractions": "data.split.fractions={train: 0.5}",
    "data.split.patterns": 'data.split.patterns=[[test, "("]]',
    "features.shape_features": "features.shape_features=[bogus]",
    "data.label_map": "data.label_map={a: 1}",
}


def test_every_error_is_reported_at_once_one_per_line():
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_YAML, list(ISSUE_12.values()))
    errors = err.value.errors
    assert sorted(e.split(":")[0] for e in errors) == sorted(ISSUE_12)
    assert str(err.value).split("\n") == errors
    assert isinstance(err.value, ValueError)


def test_type_errors_and_reference_errors_together():
    errors = _errors("train.epochs=zero", "focal_labels=[Taxon]", "windows.stride=40")
    assert [e.split(":")[0] for e in errors] == ["train.epochs", "focal_labels",
                                                 "windows.stride"]


def test_a_bad_key_is_not_reported_again_through_the_keys_that_read_it():
    # labels is wrong on its own; focal_labels and default_label are not checked against it.
    assert _errors("labels=Nomenclature") == \
        ["labels: expected a list, got 'Nomenclature'"]


# Overrides and files. ------------------------------------------------------------------

def test_override_syntax_errors():
    assert _errors("train.epochs") == \
        ["--set 'train.epochs': expected key.path=value, e.g. train.epochs=3"]
    assert _errors("train.epochs.x=3") == ["--set 'train.epochs.x=3': 'epochs' is not a section"]
    assert _errors("train.epochs=[1")[0].startswith("--set 'train.epochs=[1': not valid YAML")
    with pytest.raises(ConfigError, match="--conf: no such file 'nope.yaml'"):
        load_config("nope.yaml")


def test_overrides_replace_file_values():
    cfg = load_config(DEFAULT_YAML, ["train.epochs=2", "windows.size=20"])
    assert (cfg.train.epochs, cfg.windows.size, cfg.train.batch_size) == (2, 20, 16)


# DEFAULTS and copies. ------------------------------------------------------------------

def test_defaults_cannot_be_changed_in_place():
    with pytest.raises(ValidationError):
        DEFAULTS.train.hidden_size = 3
    cfg = load_config(DEFAULT_YAML)
    with pytest.raises(ValidationError):
        cfg.output.dir = "elsewhere"


def test_with_updates_is_a_validated_copy():
    cfg = load_config(DEFAULT_YAML)
    changed = cfg.with_updates({"train.epochs": 1, "output.dir": "runs/other"})
    assert (changed.train.epochs, changed.output.dir) == (1, "runs/other")
    assert (cfg.train.epochs, cfg.output.dir) == (6, "runs/default")
    with pytest.raises(ConfigError, match=r"train\.epochs: 0 is not >= 1"):
        cfg.with_updates({"train.epochs": 0})


def test_to_dict_round_trips():
    cfg = load_config(os.path.join(ROOT, "conf", "skol.yaml"))
    from focalseq.config import validate_config

    assert validate_config(cfg.to_dict()) == cfg


def test_document_splitter_applies_the_same_split_checks():
    from focalseq.stages.split import DocumentSplitter

    with pytest.raises(ValueError, match=r"^fractions: \{'train': 0.5\} sums to 0.5"):
        DocumentSplitter(fractions={"train": 0.5})
    with pytest.raises(ValueError, match=r"^patterns: entry 0 has an invalid regex '\('"):
        DocumentSplitter(patterns=[["test", "("]])


# The command line. ---------------------------------------------------------------------

def test_cli_exits_2_naming_every_bad_key_without_starting_spark():
    # Run as the user does, in a fresh interpreter; the check that nothing heavy was
    # imported is what "starts no JVM" means here (pyspark is what would launch one).
    code = ("import sys\n"
            "from focalseq.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pyspark', 'tensorflow', 'mlflow', 'horovod', 'py4j'))\n"
            "print('heavy modules:', heavy)\n"
            "sys.exit(rc)\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--conf", DEFAULT_YAML,
         "--set", "train.dropout=1.5", "--set", "train.num_layers=0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "focalseq: configuration error: train.dropout: 1.5 is not in [0, 1)" in proc.stderr
    assert "focalseq: configuration error: train.num_layers: 0 is not >= 1" in proc.stderr
    assert "heavy modules: []" in proc.stdout


def test_console_script_exits_2():
    focalseq = os.path.join(os.path.dirname(sys.executable), "focalseq")
    proc = subprocess.run([focalseq, "run", "--conf", DEFAULT_YAML, "--set",
                           "train.dropout=1.5", "--set", "train.num_layers=0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "train.dropout" in proc.stderr and "train.num_layers" in proc.stderr


# -- multi-label data keys: data.unlabelled and data.synthetic.kind -------------------------

MULTI = ["multi_label=true", "train.loss=asymmetric", "labels=[joy, anger, neutral]",
         "focal_labels=[]", "data.default_label=neutral"]


@pytest.mark.parametrize("overrides, expected", [
    (["data.unlabelled=nothing"],
     "data.unlabelled: 'nothing' is not one of ['default_label', 'none']"),
    (["data.unlabelled=none"],
     "data.unlabelled: 'none' (no label: the empty label set) needs multi_label: true; a "
     "single-label line has exactly one label; valid here: ['default_label']"),
    (MULTI + ["data.default_label=calm"],
     "data.default_label: 'calm' is not in labels ['joy', 'anger', 'neutral']"),
    (["data.synthetic.kind=poems"],
     "data.synthetic.kind: 'poems' is not one of ['taxonomic', 'multilabel', 'binary']"),
    (["data.synthetic.kind=multilabel"],
     "data.synthetic.kind: 'multilabel' writes label sets; set multi_label: true"),
    (["data.synthetic.kind=binary", "labels=[Nomenclature, Misc-exposition]",
      "focal_labels=[Nomenclature]"],
     "data.synthetic.ratio: [1.0, 10.0, 100.0] for kind 'binary' must be 2 numbers "
     "(positive, negative lines), e.g. [1, 10]"),
    (["data.synthetic.kind=binary", "data.synthetic.ratio=[1, 10]"],
     "labels: data.synthetic.kind 'binary' writes two labels [positive, negative], got "
     "['Nomenclature', 'Description', 'Misc-exposition']"),
    (["data.synthetic.ratio=[1, 10]"],
     "data.synthetic.ratio: [1.0, 10.0] for kind 'taxonomic' must be 3 numbers "
     "(Nomenclature, Description, Misc-exposition lines), e.g. [1, 10, 100]"),
])
def test_multi_label_data_keys_name_the_key_and_the_valid_values(overrides, expected):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert error.value.errors == [expected]


def test_unlabelled_defaults_and_the_shipped_multilabel_and_binary_confs():
    assert DEFAULTS.data.unlabelled == "default_label"
    assert DEFAULTS.data.synthetic.kind == "taxonomic"
    # With unlabelled none the default label need not be a label.
    cfg = load_config(None, MULTI + ["data.unlabelled=none", "data.default_label=calm"])
    assert cfg.data.unlabelled == "none"
    root = os.path.join(os.path.dirname(__file__), os.pardir, "conf")
    multi = load_config(os.path.join(root, "multilabel.yaml"))
    assert (multi.multi_label, multi.data.unlabelled, multi.data.synthetic.kind,
            multi.train.tune, len(multi.labels)) == (True, "none", "multilabel",
                                                     "thresholds", 28)
    assert multi.train.loss in ("asymmetric", "binary_focal", "soft_f1")
    binary = load_config(os.path.join(root, "binary.yaml"))
    assert (binary.labels, binary.train.loss, binary.data.synthetic.ratio) == (
        ["Nomenclature", "Misc-exposition"], "focal", [1.0, 10.0])
    assert set(binary.train.loss_config) == {"alpha", "gamma", "label_smoothing"}


def test_the_configuration_file_may_be_a_url(tmp_path):
    """A workflow may pass --conf as a URL of the shared store (dbfs:/, s3://, file:)."""
    path = tmp_path / "my conf.yaml"
    path.write_text("train: {epochs: 3}\n")
    assert load_config(f"file://{path}").train.epochs == 3
    with pytest.raises(ConfigError, match=r"--conf: no such file 'file://.*missing.yaml'"):
        load_config(f"file://{tmp_path}/missing.yaml")


def test_train_collective_reaches_the_estimator():
    from focalseq.pipelines.builders import estimator

    cfg = load_config(None, ["train.collective=allreduce"])
    assert estimator(cfg).getCollective() == "allreduce"
    assert load_config(None).train.collective == "auto"
    with pytest.raises(ConfigError, match=r"train.collective: 'ring' is not one of "
                                          r"\['auto', 'allgather', 'allreduce'\]"):
        load_config(None, ["train.collective=ring"])
