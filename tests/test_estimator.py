"""BiLSTMEstimator with real 2-process Horovod (Gloo) jobs on local Spark.

One model is trained per module, the fault-tolerant way: the first fit fails on purpose
(rank 1 raises after epoch 0's checkpoint), the second fit with the same run id resumes
at epoch 1 and finishes. Every test below reads that one run: the failure, the resume,
the learning, the progress log, the MLflow metrics, the store, the saved model.
"""
import glob
import logging
import os
import re
import signal
import tempfile
import threading
import time

import numpy as np
import pytest
from faults import injected_fault

LABELS = ["Nomenclature", "Description", "Misc-exposition"]
FOCAL = ["Nomenclature", "Description"]
EPOCHS = 4
FAULT_EPOCH = 0
RUN_ID = "resumed-run"
VOCAB = 4096

pytestmark = [pytest.mark.slow, pytest.mark.horovod]


@pytest.fixture(scope="module")
def windows(spark, tmp_path_factory):
    """Windows (W=8, stride 4) of a 30-document synthetic corpus, 8 documents validation.

    Split by file name, not by a hash of the doc id: the id holds pytest's numbered temp
    folder, so a hashed split changes from run to run (and once left 16 Nomenclature lines
    in validation)."""
    from focalseq.stages.features import LineFeaturizer
    from focalseq.stages.parse import YeddaParser, list_files, split_problems
    from focalseq.stages.split import DocumentSplitter
    from focalseq.stages.windows import Windower
    from focalseq.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("estimator-data")
    files = generate_corpus(str(folder / "corpus"), n_docs=30, lines_per_doc=100,
                            ratio=(1, 5, 20), noise=0.0, seed=0)
    lines, _ = split_problems(YeddaParser().transform(list_files(spark, files)))
    lines = DocumentSplitter(patterns=[["validation", "doc_0000[0-7]"], ["train", ".*"]]) \
        .transform(lines)
    feats = LineFeaturizer(vocabSize=VOCAB, maxTokens=12).transform(lines)
    Windower(labels=LABELS, windowSize=8, stride=4).transform(feats) \
        .write.parquet(str(folder / "windows"))
    return spark.read.parquet(str(folder / "windows"))


def _estimator(store, **overrides):
    from focalseq.stages.bilstm import BiLSTMEstimator

    params = dict(hiddenSize=32, embeddingDim=32, vocabSize=VOCAB, epochs=EPOCHS,
                  batchSize=16, learningRate=0.004, loss="weighted_cross_entropy",
                  weightStrategy="sqrt_inverse", focalLabels=FOCAL, numProc=2,
                  storePath=store, runId=RUN_ID, seed=3)
    params.update(overrides)
    return BiLSTMEstimator(**params)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def trained(windows, tmp_path_factory):
    """The interrupted-then-resumed run: failure, state after it, model, logs, MLflow."""
    import mlflow

    from focalseq.training.run_store import RunStore

    folder = tmp_path_factory.mktemp("estimator-run")
    store = str(folder / "store")
    tracking = f"sqlite:///{folder}/mlflow.db"
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking)
    experiment = mlflow.MlflowClient().create_experiment(
        "estimator", artifact_location=(folder / "artifacts").as_uri())
    logs = _Lines()
    driver_log = logging.getLogger("focalseq")  # the estimator's and the launcher's lines
    old_level = driver_log.level
    driver_log.setLevel(logging.INFO)
    driver_log.addHandler(logs)
    est = _estimator(store)
    failure = None
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            try:
                with injected_fault(rank=1, epoch=FAULT_EPOCH):
                    est.fit(windows)
            except RuntimeError as exc:
                failure = exc
            state_after_failure = RunStore(store).checkpoint_state(RUN_ID)
            lines_after_failure = list(logs.lines)
            temp_before = set(os.listdir(tempfile.gettempdir()))
            model = est.fit(windows)
            temp_after = set(os.listdir(tempfile.gettempdir()))
    finally:
        driver_log.removeHandler(logs)
        driver_log.setLevel(old_level)
        mlflow.set_tracking_uri(previous_uri)
    return {"estimator": est, "model": model, "failure": failure, "store": store,
            "state_after_failure": state_after_failure, "tracking": tracking,
            "mlflow_run_id": run.info.run_id, "logs": logs.lines,
            "lines_after_failure": lines_after_failure,
            "new_temp": temp_after - temp_before, "folder": folder}


def test_worker_exception_reaches_the_driver_with_its_traceback(trained):
    failure = trained["failure"]
    assert failure is not None, "the fit with an injected fault did not raise"
    message = str(failure)
    assert f"injected fault on rank 1 after epoch {FAULT_EPOCH}" in message
    # The failing worker's own traceback comes first, named by its rank.
    assert message.index("--- worker rank 1 ---") < message.index("injected fault")
    assert "train_worker" in message and "Traceback" in message
    # Rank 0 had checkpointed the epoch before rank 1 raised.
    assert trained["state_after_failure"]["epoch"] == FAULT_EPOCH


def test_restart_with_the_same_run_id_resumes_at_the_next_epoch(trained):
    summary = trained["model"].training_summary
    assert summary["initial_epoch"] == FAULT_EPOCH + 1
    # Each epoch was trained exactly once across the two fits.
    assert [r["epoch"] for r in summary["history"]] == list(range(EPOCHS))
    assert summary["state"]["epoch"] == EPOCHS - 1


def test_training_reduces_the_loss(trained):
    history = trained["model"].training_summary["history"]
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.5 * losses[0]
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_clear_f1_on_the_rare_labels(trained, windows):
    from sklearn.metrics import f1_score

    out = trained["model"].transform(windows.filter(windows.split == "validation"))
    frame = out.select("label", "prediction").toPandas()
    scores = f1_score(frame["label"], frame["prediction"], labels=LABELS, average=None)
    by_label = dict(zip(LABELS, scores))
    assert (frame["label"] == "Nomenclature").sum() >= 20  # rare, but present
    # Always predicting the majority label would score 0 on both.
    assert by_label["Nomenclature"] > 0.8
    assert by_label["Description"] > 0.8


def test_one_driver_line_per_epoch_with_focal_f1(trained):
    epoch_lines = [line for line in trained["logs"] if " | loss " in line]
    # The failed fit logged epoch 1; the resumed fit logged epochs 2..EPOCHS, once each.
    assert len([line for line in trained["lines_after_failure"] if " | loss " in line]) == 1
    assert [line.split("epoch ")[1].split(" |")[0] for line in epoch_lines] == \
        [f"{e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    for line in epoch_lines:
        assert "val_loss" in line and "val F1 Nomenclature" in line and "Description" in line
        assert "Misc-exposition" not in line  # only the focal labels
        # The epoch's time, then the run's time left (none after the last epoch).
        epoch = int(line.split("epoch ")[1].split("/")[0])
        left = r"(, about \d+s left)?" if epoch < EPOCHS else ""
        assert re.search(r"\| \d+\.\ds" + left + "$", line.rstrip()), line


def test_rank0_metrics_reach_the_active_mlflow_run(trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trained["tracking"])
    history = trained["model"].training_summary["history"]
    for key, field in (("train_loss", "loss"), ("val_loss", "val_loss"),
                       ("val_f1_Nomenclature", "val_f1_Nomenclature")):
        logged = sorted(client.get_metric_history(trained["mlflow_run_id"], key),
                        key=lambda m: m.step)
        assert [m.step for m in logged] == list(range(EPOCHS)), key
        assert [m.value for m in logged] == pytest.approx([r[field] for r in history]), key


def test_store_keeps_checkpoints_and_model_and_drops_temporary_files(trained):
    run_dir = os.path.join(trained["store"], RUN_ID)
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "model", "progress.jsonl",
                                           "settings.json"]
    checkpoints = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    last, before = EPOCHS - 1, EPOCHS - 2
    assert checkpoints == sorted([
        "best.weights.h5", "state.json",
        f"epoch_{before:04d}.optimizer.npz", f"epoch_{before:04d}.weights.h5",
        f"epoch_{last:04d}.optimizer.npz", f"epoch_{last:04d}.weights.h5"])
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(trained["store"])
                 for f in files if ".tmp-" in f]
    assert leftovers == []
    # Workers' scratch folders carry the run id; none survives the fit.
    assert [name for name in trained["new_temp"] if RUN_ID in name] == []


def test_fit_again_after_the_end_returns_the_finished_model(trained, windows):
    started = time.time()
    again = _estimator(trained["store"]).fit(windows)
    assert again.network_bytes == trained["model"].network_bytes
    assert again.training_summary["initial_epoch"] == EPOCHS
    assert time.time() - started < 120  # no Horovod job: a generous bound, not a benchmark


def test_save_load_transform_give_the_same_predictions(trained, windows, tmp_path):
    from focalseq.stages.bilstm import BiLSTMModel

    model = trained["model"]
    path = str(tmp_path / "model")
    model.save(path)
    loaded = BiLSTMModel.load(path)
    assert loaded.getLabels() == LABELS and loaded.getRunId() == RUN_ID
    assert loaded.training_summary["initial_epoch"] == FAULT_EPOCH + 1

    sample = windows.filter(windows.split == "validation")
    keys = ["doc_id", "split", "line_idx"]
    a = model.transform(sample).orderBy(*keys).toPandas()
    b = loaded.transform(sample).orderBy(*keys).toPandas()
    assert len(a) == len(b) > 0
    assert (a[keys].values == b[keys].values).all()
    np.testing.assert_allclose(np.stack(a["probability"]), np.stack(b["probability"]),
                               rtol=0, atol=1e-6)
    assert (a["prediction"] == b["prediction"]).all()


def test_the_saved_network_loads_without_custom_objects(trained, tmp_path):
    import tensorflow as tf

    import focalseq.training.network  # noqa: F401  (registers the layers, nothing more)

    path = tmp_path / "network.keras"
    path.write_bytes(trained["model"].network_bytes)
    net = tf.keras.models.load_model(str(path), compile=False)
    assert net.output_shape[-1] == len(LABELS)


def _horovod_workers():
    """This test process's Horovod worker processes (run by its Spark executors)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "gloo_exec_fn" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_interrupting_the_driver_stops_the_workers(spark, windows, tmp_path):
    from focalseq.training.run_store import RunStore

    store = RunStore(str(tmp_path / "store"))
    est = _estimator(store.prefix, runId="interrupted", epochs=500)
    seen_workers = []

    def interrupt_after_first_epoch():
        deadline = time.time() + 300
        while time.time() < deadline:
            if store.exists(store.progress_path("interrupted")):
                seen_workers.extend(_horovod_workers())
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.5)

    scratch = os.path.join(tempfile.gettempdir(), "focalseq-interrupted-*")
    scratch_before = set(glob.glob(scratch))
    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=interrupt_after_first_epoch, daemon=True)
    thread.start()
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        est.fit(windows)
    thread.join()
    assert len(seen_workers) >= 2  # a worker per rank (with their shells) were running
    deadline = time.time() + 60
    while _horovod_workers() and time.time() < deadline:
        time.sleep(0.5)
    assert _horovod_workers() == []
    assert not any(p.is_running() and p.status() != "zombie" for p in seen_workers)
    # The stopped workers removed their scratch folders.
    assert set(glob.glob(scratch)) - scratch_before == set()
    # Horovod cancelled its Spark job group, and Ctrl-C works again afterwards.
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
    assert signal.getsignal(signal.SIGINT) is before
    state = store.checkpoint_state("interrupted")
    assert state is not None and state["epoch"] < 499


def test_the_epochs_validation_f1_is_the_evaluators_line_level_f1(windows, tmp_path):
    """Each rank scores its documents, lines averaged over their windows, counts summed:
    the last epoch's recorded F1s equal PerLabelEvaluator's on the model's predictions
    of the validation split (restoreBest off: the model is the last epoch's)."""
    from focalseq.stages.evaluation import PerLabelEvaluator

    # A quarter of the other tests' learning rate: the synthetic corpus is easy, and at
    # 0.004 two epochs sometimes labelled every line right, which leaves nothing to compare.
    model = _estimator(str(tmp_path / "store"), runId="line-f1", epochs=2,
                       learningRate=0.001, restoreBest=False).fit(windows)
    last = model.training_summary["history"][-1]
    assert last["epoch"] == 1
    predictions = model.transform(windows.filter(windows.split == "validation"))
    report = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, numBins=0).report(predictions)
    assert last["val_lines"] == report["n"]
    for label in LABELS:
        assert last[f"val_f1_{label}"] == pytest.approx(report["per_label"][label]["f1"],
                                                        abs=1e-6), label
    assert last["val_focal_macro_f1"] == pytest.approx(report["focal_macro_f1"], abs=1e-6)
    # Not a trivial agreement: some label is neither always nor never right.
    assert any(0.05 < report["per_label"][label]["f1"] < 0.999 for label in LABELS)


def test_a_crf_head_trains_through_horovod_and_scores_lines_as_the_evaluator(windows,
                                                                              tmp_path):
    """head='crf' with the focal soft-F1 loss: the ranks train the transitions too, the
    model's probabilities are per-line marginals, and its epoch F1 is the evaluator's."""
    import numpy as np
    import tensorflow as tf

    import focalseq.training.network  # noqa: F401  (registers the layers, the CRF's too)
    from focalseq.stages.evaluation import PerLabelEvaluator

    model = _estimator(str(tmp_path / "store"), runId="crf", epochs=2, head="crf",
                       loss="soft_f1", weightStrategy="", restoreBest=False).fit(windows)
    path = tmp_path / "network.keras"
    path.write_bytes(model.network_bytes)
    # It loads without custom_objects.
    transitions = tf.keras.models.load_model(str(path), compile=False) \
        .get_layer("chain_crf").transitions.numpy()
    assert np.abs(transitions).max() > 1e-3  # trained away from their zero start
    predictions = model.transform(windows.filter(windows.split == "validation"))
    sums = [sum(r["probability"]) for r in predictions.select("probability").collect()]
    assert sums and np.allclose(sums, 1.0, atol=1e-4)
    report = PerLabelEvaluator(labels=LABELS, focalLabels=FOCAL, numBins=0).report(predictions)
    last = model.training_summary["history"][-1]
    assert last["val_lines"] == report["n"]
    for label in LABELS:
        assert last[f"val_f1_{label}"] == pytest.approx(report["per_label"][label]["f1"],
                                                        abs=1e-6), label
    # Trained for real: the rare Description lines are found far above chance.
    assert report["per_label"]["Description"]["f1"] > 0.5


def test_a_crf_head_on_multi_label_windows_is_refused_before_training():
    from focalseq.stages.bilstm import BiLSTMEstimator

    with pytest.raises(ValueError, match="head: 'crf'.*multi-label"):
        BiLSTMEstimator(head="crf").validate(LABELS, multi_label=True)
    with pytest.raises(ValueError, match="head: 'chain' is not one of"):
        BiLSTMEstimator(head="chain").validate(LABELS)
