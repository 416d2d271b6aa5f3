"""Binary end to end from the CLI (issue 15, item 4): conf/binary.yaml, shrunk, on the
skewed two-label synthetic corpus (about 1:10), trained with focal loss (alpha per label,
gamma, label smoothing). Checked against figures computed here: the corpus's label counts
and skew read from its files, the focal loss and its settings in the MLflow run, and the
logged test precision, recall and F1 recomputed with scikit-learn from the predicted
Parquet."""
import collections
import glob
import json
import os

import pytest

from focalseq.cli import main
from focalseq.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

POSITIVE, NEGATIVE = "Nomenclature", "Misc-exposition"


def _overrides(tmp_path):
    return [
        "data.synthetic.n_docs=12", "data.synthetic.lines_per_doc=80", "data.synthetic.seed=5",
        'data.split.patterns=[[test, "doc_0000[0-2]"], [validation, "doc_0000[3-5]"], '
        '[train, ".*"]]',
        "features.vocab_size=4096", "features.max_tokens=16", "windows.size=8",
        "windows.stride=4", "train.epochs=4", "train.batch_size=8", "train.hidden_size=16",
        "train.embedding_dim=16", "train.learning_rate=0.01",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", "mlflow.experiment=binary-test",
        f"output.dir={tmp_path}/out"]


def test_binary_focal_run_through_the_cli(tmp_path, spark, monkeypatch):
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.metrics import precision_recall_fscore_support

    from focalseq.pipelines.prepare import load_manifest
    from focalseq.text.yedda import parse_yedda

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder lands here
    conf = os.path.join(os.path.dirname(__file__), os.pardir, "conf", "binary.yaml")
    sets = [x for o in _overrides(tmp_path) for x in ("--set", o)]
    assert main(["run", "--conf", conf, "-q", *sets]) == 0
    cfg = load_config(conf, _overrides(tmp_path))

    # The corpus: two labels, about one positive line in eleven, as its files say.
    corpus = sorted(glob.glob(os.path.join(str(tmp_path), "out", "corpus", "*.ann")))
    assert len(corpus) == 12
    truth, counts = {}, collections.Counter()
    for path in corpus:
        with open(path, encoding="utf-8") as fh:
            lines, problems = parse_yedda(fh.read(), path)
        assert problems == []
        truth[path] = {x.line_no: x.label for x in lines}
        counts.update(x.label for x in lines)
    assert set(counts) == {POSITIVE, NEGATIVE}
    assert 7 < counts[NEGATIVE] / counts[POSITIVE] < 14
    manifest = load_manifest(cfg.path("windows"))
    assert sum(c[POSITIVE] for c in manifest["label_counts"].values()) == counts[POSITIVE]

    # The MLflow run trained the focal loss with the configured alpha, gamma, smoothing.
    client = MlflowClient(cfg.mlflow.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("binary-test").experiment_id])
    params = run.data.params
    assert params["BiLSTMEstimator.loss"] == "focal"
    loss_config = json.loads(params["BiLSTMEstimator.lossConfig"])
    assert loss_config["alpha"] in ({POSITIVE: 0.75, NEGATIVE: 0.25}, [0.75, 0.25])
    assert (loss_config["gamma"], loss_config["label_smoothing"]) == (2.0, 0.05)

    # Logged test figures == scikit-learn's on the predicted Parquet of the test files.
    test_docs = corpus[:3]
    out = tmp_path / "predicted"
    assert main(["predict", "--conf", conf, "-q", *sets, "--input", *test_docs,
                 "--output", str(out), "--format", "parquet"]) == 0
    rows = pd.read_parquet(str(out))
    assert len(rows) == sum(len(truth[p]) for p in test_docs)
    y_true = [truth[d[len("file:"):]][n] for d, n in zip(rows["doc_id"], rows["line_no"])]
    assert list(rows["true_label"]) == y_true
    p, r, f, s = precision_recall_fscore_support(y_true, list(rows["prediction"]),
                                                 labels=[POSITIVE, NEGATIVE], zero_division=0)
    metrics = run.data.metrics
    for j, lab in enumerate((POSITIVE, NEGATIVE)):
        assert metrics[f"test_precision_{lab}"] == pytest.approx(p[j], abs=1e-9)
        assert metrics[f"test_recall_{lab}"] == pytest.approx(r[j], abs=1e-9)
        assert metrics[f"test_f1_{lab}"] == pytest.approx(f[j], abs=1e-9)
        assert metrics[f"test_support_{lab}"] == s[j]
    assert metrics[f"test_f1_{NEGATIVE}"] > 0.9  # the majority label is learned at least
