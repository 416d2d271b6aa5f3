"""The user's surface: every job through the `focalseq` CLI and through spark-submit."""
import json
import os
import subprocess
import sys

import pytest

from focalseq.cli import main
from focalseq.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _env():
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _small_conf(tmp_path) -> str:
    conf = tmp_path / "small.yaml"
    conf.write_text(f"""
labels: [Nomenclature, Description, Misc-exposition]
focal_labels: [Nomenclature, Description]
data:
  source: synthetic
  synthetic: {{n_docs: 16, lines_per_doc: 60, ratio: [1, 5, 20], seed: 3}}
  # By name, not by fraction: the fraction hash is of the file's full path, which moves
  # with pytest's temporary folder, and 16 documents leave a split empty now and then.
  split: {{patterns: [[test, "doc_0000[0-2]"], [validation, "doc_0000[3-5]"], [train, ".*"]]}}
features: {{vocab_size: 4096, max_tokens: 16}}
windows: {{size: 8, stride: 4}}
train: {{loss: soft_f1, epochs: 2, batch_size: 8, hidden_size: 16, embedding_dim: 16}}
mlflow: {{tracking_uri: "sqlite:///{tmp_path}/mlflow.db", experiment: cli-test}}
output: {{dir: "{tmp_path}/out"}}
""")
    return str(conf)


def _run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout


# Configuration errors: before Spark starts, naming key, value and what is valid. ------

@pytest.mark.parametrize("override, expected", [
    ("train.epochs=zero", "train.epochs: expected an integer, got 'zero'"),
    ("train.optimiser=adam", "train.optimiser: unknown key; valid keys here are"),
    ("train.encoder=rnn", "train.encoder: 'rnn' is not one of ['mean', 'cnn', 'bilstm']"),
    ("focal_labels=[Taxon]", "focal_labels: ['Taxon'] are not in labels"),
    ("train.loss=focal_f1", "train.loss: 'focal_f1' is not one of ["),
    ("windows.stride=40", "windows.stride: 40 is larger than windows.size 16"),
])
def test_config_errors_name_the_key(override, expected, capsys):
    assert main(["prepare", "--conf", os.path.join(ROOT, "conf", "default.yaml"),
                 "--set", override]) == 2
    assert expected in capsys.readouterr().err


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError) as err:
        load_config(None, ["train.loss=focal_f1"])
    assert "focal_f1" in str(err.value) and "soft_f1" in str(err.value)


def test_class_weights_with_focal_labels_is_rejected():
    with pytest.raises(ValueError, match="class_weights and focal_labels are mutually exclusive"):
        load_config(None, ["train.loss=soft_f1",
                           'train.loss_config={"class_weights": {"Nomenclature": 5}, '
                           '"focal_labels": ["Nomenclature"]}'])


def test_shipped_configs_load():
    for name in sorted(os.listdir(os.path.join(ROOT, "conf"))):
        if name.endswith(".yaml"):
            load_config(os.path.join(ROOT, "conf", name))


# Every job for real, through both entry points. -------------------------------------

# jobs/<name>.py is `focalseq.cli.main(["<name>", ...])`, as is the `focalseq` console
# script: one pipeline, each job once (prepare and train under spark-submit, evaluate and
# a YEDDA prediction through the console script, a JSON-lines prediction under
# spark-submit again), covers both. `focalseq run` (prepare + train + evaluate in one
# process) runs in tests/test_binary_run.py, tests/test_multilabel_run.py and the
# cluster tests.

@pytest.mark.slow
@pytest.mark.horovod
def test_every_job_through_spark_submit_and_the_console_script(tmp_path):
    conf = _small_conf(tmp_path)
    submit = [os.path.join(BIN, "spark-submit"), "--master", "local[2]"]
    focalseq = os.path.join(BIN, "focalseq")

    def job(name):
        return os.path.join(ROOT, "jobs", f"{name}.py")

    out = _run(submit + [job("prepare"), "--conf", conf, "-q"], tmp_path)
    assert "prepared 16 documents" in out
    manifest = json.loads((tmp_path / "out" / "windows" / "_manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    out = _run(submit + [job("train"), "--conf", conf, "-q"], tmp_path)
    assert "trained run" in out

    out = _run([focalseq, "evaluate", "--conf", conf, "-q"], tmp_path)
    assert "Nomenclature" in out and "focal macro" in out
    assert "mlflow ui --backend-store-uri" in out
    run_id = out.split("MLflow run ")[1].split()[0]
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).data.metrics
    assert "test_f1_Nomenclature" in metrics and "test_f1_Description" in metrics

    from focalseq.text.yedda import count_nonempty_lines, parse_yedda

    corpus = str(tmp_path / "out" / "corpus" / "doc_00000.txt.ann")
    _run([focalseq, "predict", "--conf", conf, "-q", "--input", corpus,
          "--output", str(tmp_path / "pred-yedda"), "--format", "yedda"], tmp_path)
    written = (tmp_path / "pred-yedda" / "doc_00000.txt.ann").read_text()
    lines, problems = parse_yedda(written)
    original, _ = parse_yedda(open(corpus).read())
    assert problems == []
    assert [ln.text for ln in lines] == [ln.text for ln in original]
    assert {ln.label for ln in lines} <= {"Nomenclature", "Description", "Misc-exposition"}

    every = str(tmp_path / "out" / "corpus" / "*.ann")
    _run(submit + [job("predict"), "--conf", conf, "-q", "--input", every,
                   "--output", str(tmp_path / "pred"), "--format", "jsonl"], tmp_path)
    rows = [json.loads(line) for f in (tmp_path / "pred").glob("part-*.json")
            for line in open(f)]
    expected = sum(count_nonempty_lines(p.read_text())
                   for p in (tmp_path / "out" / "corpus").glob("*.ann"))
    assert len(rows) == expected
    assert all(r["prediction"] in ("Nomenclature", "Description", "Misc-exposition")
               for r in rows)
