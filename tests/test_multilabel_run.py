"""Multi-label end to end from YEDDA files through the CLI (issue 15, item 3).

The test writes its own YEDDA corpus (label sets as ``#a|b*]``, lines with no label as
plain text) from the GoEmotions-like line generator, so every line's true set is known
without the parser. `focalseq run` then prepares, trains (sigmoid head, asymmetric loss),
tunes per-label thresholds, evaluates into a real MLflow store (SQLite); `focalseq
predict` writes Parquet and YEDDA. Checked against figures computed here: the lines with
no label per split, the per-label, micro, macro and examples-based F1 recomputed with
scikit-learn from the predicted Parquet, and the YEDDA output parsed back to the same
sets.
"""
import collections
import json
import os
import random

import pytest

from focalseq.cli import main
from focalseq.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

LABELS = ["neutral", "admiration", "approval", "gratitude", "joy", "anger", "fear", "pride"]
SPLIT_OF = {**{i: "test" for i in range(3)}, **{i: "validation" for i in range(3, 6)}}


def _write_corpus(folder):
    """12 documents of 50 lines; returns {path: [(line_no, set of labels)]}."""
    from focalseq.synthetic_multilabel import generate_lines

    os.makedirs(folder)
    truth = {}
    rng = random.Random(7)
    for i in range(12):
        lines = generate_lines(rng, 50, LABELS, noise=0.05)
        path = os.path.join(folder, f"doc_{i:05d}.ann")
        with open(path, "w", encoding="utf-8") as fh:
            for text, labels in lines:
                fh.write(f"[@{text}#{'|'.join(labels)}*]\n" if labels else f"{text}\n")
        truth[path] = [(n, set(labels)) for n, (_, labels) in enumerate(lines, start=1)]
    return truth


def _conf(tmp_path, corpus):
    conf = tmp_path / "multilabel.yaml"
    conf.write_text(f"""
multi_label: true
labels: {json.dumps(LABELS)}
focal_labels: []
data:
  source: files
  paths: ["{corpus}/*.ann"]
  unlabelled: none
  default_label: neutral
  split: {{patterns: [[test, "doc_0000[0-2]"], [validation, "doc_0000[3-5]"], [train, ".*"]]}}
features: {{vocab_size: 4096, max_tokens: 16}}
windows: {{size: 8, stride: 4}}
train: {{loss: asymmetric, tune: thresholds, epochs: 15, learning_rate: 0.01, batch_size: 8,
         hidden_size: 16, embedding_dim: 16}}
mlflow: {{tracking_uri: "sqlite:///{tmp_path}/mlflow.db", experiment: multilabel-test}}
output: {{dir: "{tmp_path}/out"}}
""")
    return str(conf)


def _sets(value):
    return {x for x in (value or "").split("|") if x}


def test_multilabel_from_yedda_files_through_the_cli(tmp_path, spark, capsys, monkeypatch):
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    from focalseq.pipelines.prepare import load_manifest
    from focalseq.text.yedda import LabelMap, parse_yedda

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder lands here
    truth = _write_corpus(str(tmp_path / "corpus"))
    conf = _conf(tmp_path, tmp_path / "corpus")
    cfg = load_config(conf)

    assert main(["run", "--conf", conf, "-q"]) == 0
    printed = capsys.readouterr().out

    # Lines with no label exist and are counted, per split and per label, as written.
    expected_empty, expected_counts = collections.Counter(), {}
    for path, lines in truth.items():
        split = SPLIT_OF.get(int(path[-9:-4]), "train")
        counts = expected_counts.setdefault(split, dict.fromkeys(LABELS, 0))
        for _, labels in lines:
            expected_empty[split] += not labels
            for lab in labels:
                counts[lab] += 1
    assert all(expected_empty[s] > 0 for s in ("train", "validation", "test"))
    manifest = load_manifest(cfg.path("windows"))
    assert manifest["lines_without_label"] == dict(expected_empty)
    assert manifest["label_counts"] == expected_counts
    assert manifest["report"]["problems"] == 0
    assert f"{expected_empty['test']} lines with no label" in printed

    # The MLflow run holds per-label and averaged F1 of the test split.
    client = MlflowClient(cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("multilabel-test").experiment_id
    (run,) = client.search_runs([experiment])
    metrics = run.data.metrics
    report = json.loads(open(client.download_artifacts(
        run.info.run_id, "reports/test_classification_report.json", str(tmp_path))).read())
    assert report["n"] == sum(len(truth[p]) for p in truth if SPLIT_OF.get(int(p[-9:-4])) ==
                              "test")
    assert report["n_empty_true"] == expected_empty["test"]
    tuning = json.loads(open(client.download_artifacts(
        run.info.run_id, "reports/validation_thresholds.json", str(tmp_path))).read())
    assert tuning["kept"] in ("tuned", "untuned")

    # Predict the test documents to Parquet; recompute every figure with scikit-learn.
    test_docs = sorted(p for p in truth if SPLIT_OF.get(int(p[-9:-4])) == "test")
    parquet = tmp_path / "predicted"
    assert main(["predict", "--conf", conf, "-q", "--input", *test_docs,
                 "--output", str(parquet), "--format", "parquet"]) == 0
    rows = pd.read_parquet(str(parquet)).sort_values(["doc_id", "line_no"])
    assert len(rows) == report["n"]
    true_sets, pred_sets = [], []
    for row in rows.itertuples():
        path = row.doc_id[len("file:"):] if row.doc_id.startswith("file:") else row.doc_id
        expected = dict(truth[path])[row.line_no]
        assert _sets(row.true_label) == expected  # the files' sets, read back by the parser
        true_sets.append(expected)
        pred_sets.append(_sets(row.prediction))
    binarizer = MultiLabelBinarizer(classes=LABELS)
    y_true, y_pred = binarizer.fit_transform(true_sets), binarizer.transform(pred_sets)
    per_label = f1_score(y_true, y_pred, average=None, zero_division=0)
    for lab, f1 in zip(LABELS, per_label):
        assert metrics[f"test_f1_{lab}"] == pytest.approx(f1, abs=1e-9), lab
        assert metrics[f"test_support_{lab}"] == y_true[:, LABELS.index(lab)].sum()
    assert metrics["test_micro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="micro", zero_division=0), abs=1e-9)
    assert metrics["test_macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-9)
    # Examples-based F1: a line with both sets empty scores 1 (zero_division=1).
    assert metrics["test_examples_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="samples", zero_division=1), abs=1e-9)
    assert metrics["test_micro_f1"] > 0.3  # it learned something: cue words decide

    # YEDDA output: sets joined by '|', no label outside spans; parsed back, the same sets.
    yedda = tmp_path / "predicted_yedda"
    assert main(["predict", "--conf", conf, "-q", "--input", *test_docs,
                 "--output", str(yedda), "--format", "yedda"]) == 0
    label_map = LabelMap(default="neutral", multi_label=True, unlabelled="none")
    predicted = {(os.path.basename(r.doc_id), r.line_no): _sets(r.prediction)
                 for r in rows.itertuples()}
    n_read = 0
    for path in test_docs:
        name = os.path.basename(path)
        text = (yedda / name).read_text(encoding="utf-8")
        lines, problems = parse_yedda(text, name)
        assert problems == []
        for line in lines:
            assert _sets(label_map.map(line.label)) == predicted[(name, line.line_no)]
            n_read += 1
    assert n_read == len(rows)
    written = "".join((yedda / os.path.basename(p)).read_text() for p in test_docs)
    assert ("|" in written) == any(len(s) > 1 for s in predicted.values())
