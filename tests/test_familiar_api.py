"""The users' focal-F1 documentation, example by example, and the output it shows.

The examples below are the documentation's code as its users know it (the older
classifier's "Focal F1 Loss for RNN Models" page), copied here because tests must not
read anything outside the repository. Each runs unchanged but for its import: where the
documentation says ``from skol_classifier.classifier_v2 import SkolClassifierV2``, the
test binds `SkolClassifierV2` to focalseq's class with test-only settings added (a
synthetic corpus instead of ``data/annotated/*.ann``, one epoch, one network, a small
hashed vocabulary, a fixed split); every argument the example passes is kept. The
Redis examples talk to a real redis-server (tests/redis_server.py) wherever the example
says localhost:6379.

The printed output is compared line by line with the documented text: exactly where the
documentation shows words, with a number pattern where it shows figures of its own run.
"""
import contextlib
import io
import re
import textwrap
import types

import pytest

import focalseq

# -- the documentation's text ---------------------------------------------------------------

BASIC_EXAMPLE = '''
classifier = SkolClassifierV2(
    spark=spark,
    input_source='files',
    file_paths=['data/annotated/*.ann'],
    model_type='rnn',
    window_size=15,
    hidden_size=128,
    num_layers=2,
    epochs=6,
    focal_labels=['Nomenclature', 'Description'],  # Only optimize for these labels
    verbosity=1
)

results = classifier.fit()
'''

# "Output shows:" under the basic example.
BASIC_OUTPUT = """\
[BiLSTM] Using mean F1 loss for focal labels:
  Nomenclature
  Description"""

COMPARING_EXAMPLE = '''
import redis
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("F1 Loss Comparison").getOrCreate()
redis_client = redis.Redis(host='localhost', port=6379, decode_responses=False)

annotated_files = ['data/annotated/*.ann']

# Common config
base_config = {
    'spark': spark,
    'input_source': 'files',
    'file_paths': annotated_files,
    'model_type': 'rnn',
    'window_size': 15,
    'hidden_size': 128,
    'num_layers': 2,
    'epochs': 6,
    'batch_size': 32,
    'verbosity': 1
}

# 1. Standard loss (baseline)
print("\\n=== Standard Cross-Entropy ===")
classifier1 = SkolClassifierV2(
    model_storage='redis',
    redis_client=redis_client,
    redis_key='rnn_standard',
    **base_config
)
results1 = classifier1.fit()
print(f"Nomenclature F1: {results1['test_stats']['Nomenclature_f1']:.4f}")
print(f"Description F1: {results1['test_stats']['Description_f1']:.4f}")

# 2. Weighted cross-entropy
print("\\n=== Weighted Cross-Entropy ===")
classifier2 = SkolClassifierV2(
    model_storage='redis',
    redis_client=redis_client,
    redis_key='rnn_weighted',
    weight_strategy='inverse',  # Automatic weights
    **base_config
)
results2 = classifier2.fit()
print(f"Nomenclature F1: {results2['test_stats']['Nomenclature_f1']:.4f}")
print(f"Description F1: {results2['test_stats']['Description_f1']:.4f}")

# 3. Focal F1 loss
print("\\n=== Focal F1 Loss ===")
classifier3 = SkolClassifierV2(
    model_storage='redis',
    redis_client=redis_client,
    redis_key='rnn_focal_f1',
    focal_labels=['Nomenclature', 'Description'],  # Optimize F1 for these only
    **base_config
)
results3 = classifier3.fit()
print(f"Nomenclature F1: {results3['test_stats']['Nomenclature_f1']:.4f}")
print(f"Description F1: {results3['test_stats']['Description_f1']:.4f}")

# Compare results
print("\\n=== Comparison ===")
print(f"Nomenclature F1 improvement:")
print(f"  Weighted: +{(results2['test_stats']['Nomenclature_f1'] - results1['test_stats']['Nomenclature_f1'])*100:.1f}%")
print(f"  Focal F1: +{(results3['test_stats']['Nomenclature_f1'] - results1['test_stats']['Nomenclature_f1'])*100:.1f}%")
'''

CUSTOM_PARAMETERS_EXAMPLE = '''
classifier = SkolClassifierV2(
    spark=spark,
    input_source='files',
    file_paths=annotated_files,
    model_type='rnn',

    # Architecture
    window_size=20,        # Larger context window
    hidden_size=256,       # More capacity
    num_layers=3,          # Deeper network
    dropout=0.4,           # Higher dropout for regularization

    # Training
    epochs=10,             # More training
    batch_size=16,         # Smaller batches

    # Focal F1 loss
    focal_labels=['Nomenclature', 'Description'],

    verbosity=2
)

results = classifier.fit()
'''

MODEL_PARAMS_EXAMPLE = '''
# Alternative: pass focal_labels via model_params
classifier = SkolClassifierV2(
    spark=spark,
    input_source='files',
    file_paths=annotated_files,
    model_type='rnn',
    focal_labels=['Nomenclature', 'Description'],  # Direct parameter (recommended)
    verbosity=1
)

# OR (equivalent):
classifier = SkolClassifierV2(
    spark=spark,
    input_source='files',
    file_paths=annotated_files,
    model_type='rnn',
    **{'focal_labels': ['Nomenclature', 'Description']}  # Via model_params
)
'''

# "Restrictions": each example is an error case, then the case that is accepted.
EXCLUSIVE_ERROR = '''
classifier = SkolClassifierV2(
    spark=spark,
    model_type='rnn',
    class_weights={'Nomenclature': 100.0, 'Misc': 0.1},  # \N{CROSS MARK}
    focal_labels=['Nomenclature', 'Description']          # \N{CROSS MARK}
)
'''
EXCLUSIVE_ERROR_MESSAGE = "class_weights and focal_labels are mutually exclusive"
EXCLUSIVE_OK = '''
classifier = SkolClassifierV2(
    spark=spark,
    model_type='rnn',
    focal_labels=['Nomenclature', 'Description']  # \N{WHITE HEAVY CHECK MARK}
)
'''
RNN_ONLY_ERROR = '''
classifier = SkolClassifierV2(
    spark=spark,
    model_type='logistic',                          # \N{CROSS MARK} Not RNN
    focal_labels=['Nomenclature', 'Description']    # Only works with RNN
)
'''
RNN_ONLY_OK = '''
classifier = SkolClassifierV2(
    spark=spark,
    model_type='rnn',                               # \N{WHITE HEAVY CHECK MARK} RNN
    focal_labels=['Nomenclature', 'Description']
)
'''

# "What to Expect During Training": the epoch lines and the test block. The older
# classifier's line "[RNN Fit] Rebuilding model to apply focal F1 loss..." told of a
# rebuild that focalseq does not do (its loss is chosen before the network is built),
# so it is not printed; Keras's step counter ("432/432") and accuracy are not part of
# focalseq's per-epoch record, whose validation loss and focal F1 are shown instead.
DOCUMENTED_EPOCH = ("Epoch 1/6", "432/432 - 45s - loss: 0.6234 - accuracy: 0.7521")
DOCUMENTED_TEST_RESULTS = """\
Test Results:
  Nomenclature_precision: 0.5234
  Nomenclature_recall: 0.4821
  Nomenclature_f1: 0.5019        \N{LEFTWARDS ARROW} Directly optimized!
  Description_precision: 0.7012
  Description_recall: 0.6834
  Description_f1: 0.6922          \N{LEFTWARDS ARROW} Directly optimized!
  Misc_precision: 0.8934
  Misc_recall: 0.9123
  Misc_f1: 0.9027                 \N{LEFTWARDS ARROW} Not optimized (may be worse)"""

FIGURE = r"\d+\.\d{4}"


def documented_test_lines(default_label="Misc-exposition"):
    """The documented test block as patterns: its words exact, its figures any figure,
    the annotations ("<- Directly optimized!") dropped, and the documentation's short
    name Misc spelled as focalseq's default label."""
    patterns = []
    for line in DOCUMENTED_TEST_RESULTS.splitlines():
        line = line.split("\N{LEFTWARDS ARROW}")[0].rstrip().replace("Misc_", default_label + "_")
        figure = re.match(r"^(\s+\w[\w-]*: )\d\.\d{4}$", line)
        patterns.append("^" + (re.escape(figure.group(1)) + FIGURE if figure
                               else re.escape(line)) + "$")
    return patterns


def documented_epoch_pattern(focal_labels):
    """The documented Keras line without its step counter and accuracy, then focalseq's
    validation loss and the focal labels' validation F1."""
    seconds, loss = DOCUMENTED_EPOCH[1].split(" - ")[1:3]
    assert (seconds, loss.split(":")[0]) == ("45s", "loss")
    return ("^" + r"\d+s - loss: " + FIGURE + " - val_loss: " + FIGURE
            + "".join(f" - val_{lab}_f1: " + FIGURE for lab in focal_labels) + "$")


def match_block(lines, start, patterns):
    for offset, pattern in enumerate(patterns):
        assert re.match(pattern, lines[start + offset]), (pattern, lines[start + offset])


# -- running the examples ---------------------------------------------------------------------

LABELS = ["Nomenclature", "Description", "Misc-exposition"]


def familiar_class(corpus, work_dir, runs):
    """`SkolClassifierV2` as the tests import it: focalseq's class plus the test-only
    settings (see the module docstring); `runs` collects every classifier made."""
    def make(**kwargs):
        kwargs.update(
            file_paths=[corpus], epochs=1, ensemble_members=1, vocab_size=4096,
            work_dir=str(work_dir / f"classifier{len(runs)}"),
            split_patterns=[["test", "doc_0000[0-1]"], ["validation", "doc_0000[2-3]"],
                            ["train", ".*"]])
        classifier = focalseq.SkolClassifierV2(**kwargs)
        runs.append(classifier)
        return classifier
    return make


def run_example(code, namespace):
    """Runs a documented example; returns what it printed, line by line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(textwrap.dedent(code), "<documented example>", "exec"), namespace)
    return out.getvalue().splitlines()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from focalseq.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("familiar-corpus")
    generate_corpus(str(folder), n_docs=14, lines_per_doc=50, ratio=(1, 5, 20), seed=3)
    return str(folder / "*.ann")


# -- construction only: no Spark ------------------------------------------------------------

def constructing_namespace():
    # These examples only build classifiers; the session they pass is never used.
    return {"SkolClassifierV2": focalseq.SkolClassifierV2, "spark": None,
            "annotated_files": ["data/annotated/*.ann"]}


def test_restrictions_exclusive_weights_and_focal_labels():
    namespace = constructing_namespace()
    with pytest.raises(ValueError) as error:
        run_example(EXCLUSIVE_ERROR, namespace)
    assert str(error.value) == EXCLUSIVE_ERROR_MESSAGE
    run_example(EXCLUSIVE_OK, namespace)
    assert namespace["classifier"].config.focal_labels == ["Nomenclature", "Description"]
    assert namespace["classifier"].loss_name == "soft_f1"


def test_restrictions_focal_labels_need_the_rnn():
    namespace = constructing_namespace()
    with pytest.raises(ValueError, match=r"focal_labels: .*model_type='rnn'.*'logistic'"):
        run_example(RNN_ONLY_ERROR, namespace)
    run_example(RNN_ONLY_OK, namespace)
    assert namespace["classifier"].model_type == "rnn"


def test_focal_labels_via_model_params_is_the_same_classifier():
    namespace = constructing_namespace()
    code = textwrap.dedent(MODEL_PARAMS_EXAMPLE)
    first, second = code.split("# OR (equivalent):")
    run_example(first, namespace)
    direct = namespace["classifier"]
    run_example(second, namespace)
    via_params = namespace["classifier"]
    assert direct.loss_name == via_params.loss_name == "soft_f1"
    assert direct.config.train.loss_config == via_params.config.train.loss_config
    assert direct.config.focal_labels == via_params.config.focal_labels \
        == ["Nomenclature", "Description"]


def test_basic_example_window_15_builds_with_the_stride_following_it():
    """The issue's failure: window_size=15 without prediction_stride used to fail with
    `windows.stride: 16 is larger than windows.size 15`."""
    namespace = constructing_namespace()
    code = BASIC_EXAMPLE.replace("results = classifier.fit()", "")
    run_example(code, namespace)
    windows = namespace["classifier"].config.windows
    assert (windows.size, windows.stride) == (15, 7)  # half a window, as skol.yaml's 32/16
    assert namespace["classifier"].prediction_stride is None


def test_prediction_stride_is_the_prediction_windows_only(tmp_path):
    clf = focalseq.SkolClassifierV2(file_paths=["x/*.ann"], window_size=12,
                                    prediction_stride=3, work_dir=str(tmp_path))
    assert (clf.config.windows.size, clf.config.windows.stride) == (12, 6)  # training
    assert clf.prediction_stride == 3
    with pytest.raises(ValueError, match=r"prediction_stride: 13 is not in \[1, 12\]"):
        focalseq.SkolClassifierV2(file_paths=["x/*.ann"], window_size=12,
                                  prediction_stride=13, work_dir=str(tmp_path))


def test_verbosity_1_loss_lines_are_the_documented_lines():
    namespace = constructing_namespace()
    run_example(BASIC_EXAMPLE.replace("results = classifier.fit()", ""), namespace)
    assert namespace["classifier"].describe_loss().splitlines() == BASIC_OUTPUT.splitlines()


@pytest.mark.parametrize("kwargs, expected", [
    ({"class_weights": {"Nomenclature": 20.0, "Description": 5.0}},
     ["[BiLSTM] Using weighted cross-entropy loss with class weights:",
      "  Nomenclature: 20.0", "  Description: 5.0"]),
    ({"weight_strategy": "inverse"},
     ["[BiLSTM] Using weighted cross-entropy loss with class weights by strategy: inverse"]),
    ({}, ["[BiLSTM] Using standard cross-entropy loss"]),
    ({"model_type": "logistic", "weight_strategy": "balanced"},
     ["[Logistic] Using logistic regression with class weights by strategy: balanced"]),
])
def test_verbosity_1_other_losses_in_the_same_style(kwargs, expected, tmp_path):
    clf = focalseq.SkolClassifierV2(file_paths=["x/*.ann"], work_dir=str(tmp_path), **kwargs)
    assert clf.describe_loss().splitlines() == expected


def test_fit_without_files_says_so(tmp_path):
    clf = focalseq.SkolClassifierV2(model_type="rnn", work_dir=str(tmp_path))
    with pytest.raises(ValueError, match="fit: file_paths: expected at least one"):
        clf.fit()


def test_the_documented_patterns_match_the_documented_text():
    """The patterns accept the documentation's own lines (with its label Misc)."""
    doc = [line.split("\N{LEFTWARDS ARROW}")[0].rstrip()
           for line in DOCUMENTED_TEST_RESULTS.splitlines()]
    match_block(doc, 0, documented_test_lines(default_label="Misc"))
    keras = DOCUMENTED_EPOCH[1].replace("432/432 - ", "").replace(
        "accuracy: 0.7521", "val_loss: 0.6000 - val_Nomenclature_f1: 0.5019")
    assert re.match(documented_epoch_pattern(["Nomenclature"]), keras)


# -- the examples that train: Spark and Horovod ------------------------------------------------

@pytest.mark.slow
@pytest.mark.horovod
def test_basic_example_prints_the_documented_output(spark, corpus, tmp_path):
    runs = []
    namespace = {"SkolClassifierV2": familiar_class(corpus, tmp_path, runs), "spark": spark}
    lines = run_example(BASIC_EXAMPLE, namespace)
    assert lines[:3] == BASIC_OUTPUT.splitlines()
    start = lines.index("Test Results:")
    match_block(lines, start, documented_test_lines())
    assert len(lines) == start + len(documented_test_lines())
    stats = namespace["results"]["test_stats"]
    assert f"  Nomenclature_f1: {stats['Nomenclature_f1']:.4f}" in lines
    assert runs[0].config.windows.size == 15 and runs[0].config.train.hidden_size == 128


@pytest.mark.slow
@pytest.mark.horovod
def test_custom_parameters_example_prints_epochs_at_verbosity_2(spark, corpus, tmp_path):
    runs = []
    namespace = {"SkolClassifierV2": familiar_class(corpus, tmp_path, runs), "spark": spark,
                 "annotated_files": ["data/annotated/*.ann"]}
    lines = run_example(CUSTOM_PARAMETERS_EXAMPLE, namespace)
    assert lines[:3] == BASIC_OUTPUT.splitlines()
    epochs = runs[0].config.train.epochs  # 1 here; the documentation's 10
    first = lines.index("Epoch 1/1")
    assert first > 3 and lines[first - 1] == ""
    for epoch in range(epochs):
        assert lines[first + 2 * epoch] == f"Epoch {epoch + 1}/{epochs}"
        assert re.match(documented_epoch_pattern(["Nomenclature", "Description"]),
                        lines[first + 2 * epoch + 1]), lines[first + 2 * epoch + 1]
    match_block(lines, lines.index("Test Results:"), documented_test_lines())
    cfg = runs[0].config
    assert (cfg.windows.size, cfg.windows.stride, cfg.train.hidden_size,
            cfg.train.num_layers, cfg.train.dropout, cfg.train.batch_size) == \
        (20, 10, 256, 3, 0.4, 16)


@pytest.mark.slow
@pytest.mark.horovod
def test_comparing_approaches_example_with_redis(spark, corpus, tmp_path, redis_server):
    # `spark` first: the example's SparkSession.builder...getOrCreate() gets the tests'
    # session.
    import redis as redis_py

    def client(host=None, port=None, **options):
        # The example's localhost:6379 is the test's redis-server.
        return redis_py.Redis(host=redis_server["host"], port=redis_server["port"], **options)

    runs = []
    # The example's own `import redis` is the one line replaced (its import, like the
    # classifier's): `redis.Redis` here reaches the test's server.
    namespace = {"SkolClassifierV2": familiar_class(corpus, tmp_path, runs),
                 "redis": types.SimpleNamespace(Redis=client)}
    lines = run_example(COMPARING_EXAMPLE.replace("import redis\n", "", 1), namespace)

    headers = ["=== Standard Cross-Entropy ===", "=== Weighted Cross-Entropy ===",
               "=== Focal F1 Loss ==="]
    loss_lines = [["[BiLSTM] Using standard cross-entropy loss"],
                  ["[BiLSTM] Using weighted cross-entropy loss with class weights by "
                   "strategy: inverse"],
                  BASIC_OUTPUT.splitlines()]
    for header, loss in zip(headers, loss_lines):
        at = lines.index(header)
        assert lines[at - 1] == ""
        assert lines[at + 1:at + 1 + len(loss)] == loss
        tests = lines.index("Test Results:", at)
        match_block(lines, tests, documented_test_lines())
        after = tests + len(documented_test_lines())
        assert re.match(r"^Nomenclature F1: " + FIGURE + "$", lines[after])
        assert re.match(r"^Description F1: " + FIGURE + "$", lines[after + 1])
    assert lines[-4:-2] == ["=== Comparison ===", "Nomenclature F1 improvement:"]
    assert re.match(r"^  Weighted: \+-?\d+\.\d%$", lines[-2])
    assert re.match(r"^  Focal F1: \+-?\d+\.\d%$", lines[-1])
    results1, results3 = namespace["results1"], namespace["results3"]
    expected = (results3["test_stats"]["Nomenclature_f1"]
                - results1["test_stats"]["Nomenclature_f1"]) * 100
    assert lines[-1] == f"  Focal F1: +{expected:.1f}%"
    # Each model is in Redis under the example's key and loads back.
    stored = redis_py.Redis(host=redis_server["host"], port=redis_server["port"])
    assert sorted(k.decode() for k in stored.keys("rnn_*")) == \
        ["rnn_focal_f1", "rnn_standard", "rnn_weighted"]
    assert [r.loss_name for r in runs] == ["cross_entropy", "weighted_cross_entropy",
                                           "soft_f1"]
    # A new classifier with the same Redis key loads the focal-F1 model back, and it
    # labels a document as the one that was trained.
    reloaded = familiar_class(corpus, tmp_path / "reloaded", [])(
        model_storage="redis", redis_client=stored, redis_key="rnn_focal_f1",
        **namespace["base_config"])
    reloaded.load_model()
    one = corpus.replace("*.ann", "doc_00001.txt.ann")

    def labels(frame):
        return sorted((r["doc_id"], r["line_no"], r["prediction"]) for r in frame.collect())

    expected_rows = labels(namespace["classifier3"].predict([one]))
    assert expected_rows and labels(reloaded.predict([one])) == expected_rows


def test_the_default_mlflow_store_follows_the_work_dir(tmp_path, monkeypatch):
    """Local work_dir: a SQLite file inside it, by absolute path (the store does not move
    with the working directory); DBFS: the workspace's tracking; other URLs, where SQLite
    cannot live: the configuration's default."""
    from focalseq.config import DEFAULTS
    from focalseq.pipelines.classifier import _tracking_uri_in

    monkeypatch.chdir(tmp_path)
    assert _tracking_uri_in("work") == f"sqlite:///{tmp_path}/work/mlflow.db"
    assert _tracking_uri_in(f"file://{tmp_path}/w") == f"sqlite:///{tmp_path}/w/mlflow.db"
    assert _tracking_uri_in("dbfs:/focalseq/q") == "databricks"
    assert _tracking_uri_in("/dbfs/focalseq/q") == "databricks"
    assert _tracking_uri_in("hdfs://namenode/runs") == DEFAULTS.mlflow.tracking_uri
