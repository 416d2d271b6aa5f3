"""The familiar Python API: each loss choice and storage choice, and the documented rules."""
import os

import pytest

from focalseq import FocalSeqClassifier, SkolClassifierV2

LABELS = ["Nomenclature", "Description", "Misc-exposition"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from focalseq.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("api-corpus")
    generate_corpus(str(folder), n_docs=16, lines_per_doc=60, ratio=(1, 5, 20), seed=7)
    return str(folder / "*.ann")


def _small(corpus, tmp_path, **kwargs):
    options = dict(input_source="files", file_paths=[corpus], window_size=8,
                   prediction_stride=4, hidden_size=16, embedding_dim=16, num_layers=1,
                   epochs=2, batch_size=8, vocab_size=4096, max_tokens=16,
                   ensemble_members=1, work_dir=str(tmp_path / "work"),
                   # By name: a fraction split of 16 documents hashed by their temporary
                   # paths leaves the test split empty now and then.
                   split_patterns=[["test", "doc_0000[0-1]"], ["validation", "doc_0000[2-3]"],
                                   ["train", ".*"]])
    options.update(kwargs)
    return SkolClassifierV2(**options)


# The documented rules (no Spark needed). ------------------------------------------------

def test_the_familiar_name_is_the_product_class():
    assert SkolClassifierV2 is FocalSeqClassifier


def test_defaults_are_the_best_settings_of_conf_skol_yaml(tmp_path):
    """The API's defaults and conf/skol.yaml (the quality benchmark's winner) agree."""
    from focalseq.config import load_config

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skol = load_config(os.path.join(repo, "conf", "skol.yaml")).to_dict()
    api = SkolClassifierV2(file_paths=["x/*.ann"], focal_labels=["Nomenclature", "Description"],
                           work_dir=str(tmp_path)).config.to_dict()
    for section, keys in {
            "features": ["vocab_size", "max_tokens", "words", "suffixes", "char_ngrams",
                         "ngram_n", "shape_features"],
            "windows": ["size", "stride"],
            "train": ["loss", "epochs", "batch_size", "learning_rate", "lr_decay",
                      "hidden_size", "num_layers", "embedding_dim", "encoder", "head", "dropout",
                      "token_dropout", "early_stopping_patience", "restore_best",
                      "ensemble_members", "num_proc"]}.items():
        for key in keys:
            assert api[section][key] == skol[section][key], f"{section}.{key}"


def test_class_weights_and_focal_labels_are_mutually_exclusive(tmp_path):
    with pytest.raises(ValueError) as err:
        _small("x/*.ann", tmp_path, focal_labels=["Nomenclature"],
               class_weights={"Nomenclature": 10.0})
    assert str(err.value) == "class_weights and focal_labels are mutually exclusive"


def test_focal_labels_need_the_rnn(tmp_path):
    with pytest.raises(ValueError, match="focal_labels.*model_type='rnn'.*logistic"):
        _small("x/*.ann", tmp_path, model_type="logistic", focal_labels=["Nomenclature"])


@pytest.mark.parametrize("kwargs, expected", [
    ({"focal_labels": ["Nomenclature", "Description"]},
     "[BiLSTM] Using mean F1 loss for focal labels:\n  Nomenclature\n  Description"),
    ({"class_weights": {"Nomenclature": 20.0, "Description": 5.0}},
     "[BiLSTM] Using weighted cross-entropy loss with class weights:\n"
     "  Nomenclature: 20.0\n  Description: 5.0"),
    ({"weight_strategy": "inverse"},
     "[BiLSTM] Using weighted cross-entropy loss with class weights by strategy: inverse"),
    ({"focal_labels": ["Nomenclature"], "loss_config": {"cross_entropy_weight": 0.5}},
     "[BiLSTM] Using mean F1 loss for focal labels:\n  Nomenclature\n"
     "  plus cross-entropy x 0.5"),
    ({}, "[BiLSTM] Using standard cross-entropy loss"),
])
def test_verbosity_1_says_which_loss_and_labels(kwargs, expected, tmp_path):
    # What fit prints first at verbosity 1 (the users' documented lines:
    # tests/test_familiar_api.py).
    assert _small("x/*.ann", tmp_path, verbosity=1, **kwargs).describe_loss() == expected


def test_bad_choices_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="model_type: 'svm' is not one of"):
        _small("x/*.ann", tmp_path, model_type="svm")
    with pytest.raises(ValueError, match="model_storage='redis' needs redis_client"):
        _small("x/*.ann", tmp_path, model_storage="redis")
    with pytest.raises(ValueError, match="weight_strategy"):
        _small("x/*.ann", tmp_path, weight_strategy="loudest")
    with pytest.raises(ValueError, match="focal_labels.*Taxon"):
        _small("x/*.ann", tmp_path, focal_labels=["Taxon"])


# Real fits: every loss choice, every storage choice. -------------------------------------

def _check_stats(results):
    stats = results["test_stats"]
    for label in LABELS:
        for name in ("precision", "recall", "f1", "support"):
            assert f"{label}_{name}" in stats
    assert stats["Description_support"] > 0
    # Trained for real: the rare labels are found far above a majority predictor's 0.
    assert stats["Description_f1"] > 0.3


def _same_predictions(a, b):
    rows_a = sorted((r["doc_id"], r["line_no"], r["prediction"]) for r in a.collect())
    rows_b = sorted((r["doc_id"], r["line_no"], r["prediction"]) for r in b.collect())
    assert rows_a == rows_b and len(rows_a) > 0


# Redis storage (fit, a new classifier loading the model back, the same predictions):
# tests/test_familiar_api.py::test_comparing_approaches_example_with_redis.


@pytest.mark.slow
@pytest.mark.horovod
def test_class_weights_with_disk_storage(spark, corpus, tmp_path):
    path = str(tmp_path / "model")
    clf = _small(corpus, tmp_path, spark=spark, class_weights={"Nomenclature": 10.0,
                                                               "Description": 3.0},
                 model_storage="disk", model_path=path)
    _check_stats(clf.fit())
    assert os.path.isdir(path)
    reloaded = _small(corpus, tmp_path, spark=spark, model_storage="disk", model_path=path)
    one = corpus.replace("*.ann", "doc_00002.txt.ann")
    _same_predictions(clf.predict([one]), reloaded.predict([one]))


@pytest.mark.slow
@pytest.mark.horovod
def test_weight_strategy_with_mlflow_storage(spark, corpus, tmp_path):
    from mlflow.tracking import MlflowClient

    clf = _small(corpus, tmp_path, spark=spark, weight_strategy="inverse",
                 model_storage="mlflow")
    results = clf.fit()
    _check_stats(results)
    assert results["model_location"].startswith(("runs:/", "models:/"))
    client = MlflowClient(clf.config.mlflow.tracking_uri)
    metrics = client.get_run(results["mlflow_run_id"]).data.metrics
    assert metrics["test_f1_Description"] == pytest.approx(results["test_stats"]["Description_f1"])


@pytest.mark.slow
@pytest.mark.horovod
def test_logistic_baseline(spark, corpus, tmp_path):
    # The standard (cross-entropy) RNN runs in tests/test_familiar_api.py (comparing
    # approaches).
    logistic = _small(corpus, tmp_path / "lr", spark=spark, model_type="logistic",
                      weight_strategy="balanced")
    _check_stats(logistic.fit())
    preds = logistic.predict([corpus])
    assert set(r["prediction"] for r in preds.select("prediction").distinct().collect()) <= \
        set(LABELS)
