"""The familiar Python API: one object that prepares, trains, evaluates, stores, predicts.

Users of the older single-machine classifier keep their code; only the import changes:

    from focalseq import SkolClassifierV2
    classifier = SkolClassifierV2(
        spark=spark, input_source="files", file_paths=["data/annotated/*.ann"],
        model_type="rnn", window_size=15, hidden_size=128,
        num_layers=2, dropout=0.3, epochs=6, batch_size=32,
        focal_labels=["Nomenclature", "Description"],
        model_storage="redis", redis_client=redis_client, redis_key="rnn_focal_f1",
        verbosity=1)
    results = classifier.fit()
    print(results["test_stats"]["Nomenclature_f1"])

Loss choice follows the documented rules: `focal_labels` -> soft-F1 over those labels;
`class_weights` -> weighted cross-entropy with those weights; `weight_strategy` ->
weighted cross-entropy with computed weights; none of them -> cross-entropy; `loss`
names any loss of focalseq.losses explicitly. The rules live in focalseq.losses.choice.
Underneath it is the same Spark ML pipeline the jobs run (focalseq.pipelines).

With `verbosity=1`, `fit` prints what its users' documentation shows: the loss and its
labels (`[BiLSTM] Using mean F1 loss for focal labels:`, one label a line), the tuned
decision rule when `tune` is set, and the test results (`Test Results:`, then
`  <Label>_precision: 0.5234` ...); `verbosity=2` adds Keras-style lines per epoch
(`Epoch 1/6`, then `12s - loss: 0.6234 - val_loss: 0.5821 - val_Nomenclature_f1: 0.5019`
...). Output goes to stdout with `print`, as the older classifier's did; the library
underneath logs through `logging`.
"""
import contextlib
import functools
import logging
import posixpath
import tempfile
import time

from focalseq.config import DEFAULTS, Config, load_config, packaged_conf
from focalseq.losses.choice import choose_loss, loss_config_for

logger = logging.getLogger(__name__)

MODEL_TYPES = ("rnn", "logistic")
# The sections of conf/skol.yaml the API takes its defaults from (see `api_defaults`).
MODEL_SECTIONS = ("features", "windows", "train")
INPUT_SOURCES = ("files",)
STORAGES = (None, "disk", "mlflow", "redis")
TUNE_METHODS = ("none", "offsets", "thresholds", "logit_adjust")


class FocalSeqClassifier:
    """Line classifier over annotated files; see the module docstring for an example.

    Args:
        spark: a SparkSession (None: a local one).
        input_source: "files" (annotated YEDDA files).
        file_paths: paths or globs on any filesystem Spark reads; needed by `fit` only
            (a classifier that loads a stored model and predicts needs none).
        model_type: "rnn" (the Horovod BiLSTM) or "logistic" (Spark ML baseline).
        focal_labels / class_weights / weight_strategy / loss / loss_config: the loss.
        model_storage: None, "disk" (model_path), "mlflow" (logged into the fit's run;
            model_path may name a model URI to load), or "redis" (redis_client +
            redis_key).
        window_size: lines per window; the training stride follows it (half a window,
            as conf/skol.yaml's 32/16).
        prediction_stride: the stride of the windows at prediction only (predict, the
            stored model); None: the training stride. At most window_size.
        tune: after training, the decision rule fitted on the validation split and
            stored with the model: "offsets", "thresholds" (multi-label),
            "logit_adjust" or "none" (train.tune, focalseq.pipelines.tune).
        verbosity: 0 silent, 1 the loss, tuning and test results, 2 also each epoch.
        ensemble_members: networks trained (seeds seed*K .. seed*K+K-1) whose
            probabilities are averaged; 3 by default, the best setting on the SKOL
            benchmark; 1 trains a single network in a third of the time.
        The remaining keywords (learning_rate, num_workers, embedding_dim, encoder, head,
        max_tokens, char_ngrams, token_dropout, lr_decay, shape_features, labels,
        keep_labels, split_fractions, split_patterns, ...) map onto the configuration
        keys of the same names (focalseq/config.py).

    A keyword left None takes the value of `api_defaults()`: the network, feature and
    window settings of conf/skol.yaml, everything else (labels, split, MLflow experiment)
    from `focalseq.config.DEFAULTS`.
    """

    def __init__(self, spark=None, input_source="files", file_paths=None, model_type="rnn",
                 window_size=None, prediction_stride=None, hidden_size=None, num_layers=None,
                 dropout=None, epochs=None, batch_size=None, focal_labels=None,
                 class_weights=None, weight_strategy=None, loss=None, loss_config=None,
                 model_storage=None, model_path=None, redis_client=None, redis_key=None,
                 verbosity=0, labels=None, keep_labels=None, default_label=None,
                 learning_rate=None, num_workers=None, embedding_dim=None, encoder=None,
                 seed=None, split_fractions=None, split_patterns=None, work_dir=None,
                 tracking_uri=None, experiment=None, vocab_size=None, max_tokens=None,
                 early_stopping_patience=None, char_ngrams=None, token_dropout=None,
                 lr_decay=None, ensemble_members=None, shape_features=None, tune=None,
                 head=None):
        loss_name = choose_loss(focal_labels, class_weights, weight_strategy, loss)
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type: {model_type!r} is not one of {list(MODEL_TYPES)}")
        if focal_labels is not None and model_type != "rnn":
            raise ValueError(f"focal_labels: the soft-F1 loss over focal labels needs "
                             f"model_type='rnn', got model_type={model_type!r}")
        if input_source not in INPUT_SOURCES:
            raise ValueError(f"input_source: {input_source!r} is not one of {list(INPUT_SOURCES)}")
        if model_storage not in STORAGES:
            raise ValueError(f"model_storage: {model_storage!r} is not one of {list(STORAGES)}")
        if model_storage == "redis" and (redis_client is None or not redis_key):
            raise ValueError("model_storage='redis' needs redis_client and redis_key")
        if model_storage == "disk" and not model_path:
            raise ValueError("model_storage='disk' needs model_path")
        if tune is not None and tune not in TUNE_METHODS:
            raise ValueError(f"tune: {tune!r} is not one of {list(TUNE_METHODS)}")
        size = window_size if window_size is not None else api_defaults().windows.size
        if prediction_stride is not None and not 1 <= prediction_stride <= size:
            raise ValueError(f"prediction_stride: {prediction_stride!r} is not in [1, {size}] "
                             f"(window_size {size}); a larger stride would skip lines")
        self.spark = spark
        self.model_type = model_type
        self.file_paths = [file_paths] if isinstance(file_paths, str) else list(file_paths or [])
        self.prediction_stride = prediction_stride
        self.model_storage, self.model_path = model_storage, model_path
        self.redis_client, self.redis_key = redis_client, redis_key
        self.verbosity = verbosity
        self.class_weights, self.weight_strategy = class_weights, weight_strategy
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="focalseq-")
        self.loss_name = loss_name
        loss_config = loss_config_for(loss_name, loss_config, focal_labels=focal_labels,
                                      class_weights=class_weights, weight_strategy=weight_strategy)
        labels = list(labels) if labels is not None else list(DEFAULTS.labels)
        if default_label is None:
            default_label = DEFAULTS.data.default_label
        focal = list(focal_labels) if focal_labels else [lab for lab in labels if lab != default_label]
        defaults = api_defaults().to_dict()
        overrides = {f"{section}.{key}": value for section in MODEL_SECTIONS
                     for key, value in defaults[section].items()}
        given = {
            "features.vocab_size": vocab_size, "features.max_tokens": max_tokens,
            "features.char_ngrams": char_ngrams,
            "features.shape_features": None if shape_features is None else list(shape_features),
            # The training stride follows the window (None: skol.yaml's pair stays).
            "windows.size": window_size,
            "windows.stride": None if window_size is None else max(1, window_size // 2),
            "train.epochs": epochs, "train.batch_size": batch_size,
            "train.learning_rate": learning_rate, "train.hidden_size": hidden_size,
            "train.num_layers": num_layers, "train.dropout": dropout,
            "train.embedding_dim": embedding_dim, "train.encoder": encoder, "train.head": head,
            "train.num_proc": num_workers, "train.seed": seed,
            "train.early_stopping_patience": early_stopping_patience,
            # Without patience there is no best epoch to go back to.
            "train.restore_best": None if early_stopping_patience is None
            else early_stopping_patience > 0,
            "train.token_dropout": token_dropout, "train.lr_decay": lr_decay,
            "train.ensemble_members": ensemble_members, "train.tune": tune,
        }
        overrides.update({key: value for key, value in given.items() if value is not None})
        overrides.update({
            "labels": labels, "focal_labels": focal,
            # Without files (a classifier that only loads and predicts) the source is
            # left as it is: `fit` refuses to run before it would read it.
            "data.source": "files" if self.file_paths else DEFAULTS.data.source,
            "data.paths": self.file_paths,
            "train.model": "bilstm" if model_type == "rnn" else "logistic",
            "data.keep_labels": list(keep_labels) if keep_labels is not None else
            [lab for lab in labels if lab != default_label],
            "data.default_label": default_label,
            "train.loss": self.loss_name, "train.loss_config": loss_config,
            "output.dir": self.work_dir,
            "mlflow.tracking_uri": tracking_uri or _tracking_uri_in(self.work_dir),
            "mlflow.experiment": experiment or DEFAULTS.mlflow.experiment,
        })
        if split_fractions is not None:
            overrides["data.split.fractions"] = dict(split_fractions)
        if split_patterns is not None:
            overrides["data.split.patterns"] = [list(p) for p in split_patterns]
        self.config = _config_from(overrides)
        self.model = None
        self.model_location = None
        self.results = None
        self.tuning = None

    def describe_loss(self) -> str:
        """What `fit` prints first at verbosity >= 1: the model, its loss and labels, in
        the older classifier's words (a header line, then one item a line)."""
        if self.model_type == "logistic":
            if self.class_weights:
                return "\n".join(["[Logistic] Using logistic regression with class weights:"]
                                 + [f"  {lab}: {w}" for lab, w in self.class_weights.items()])
            if self.weight_strategy:
                return (f"[Logistic] Using logistic regression with class weights by "
                        f"strategy: {self.weight_strategy}")
            return "[Logistic] Using logistic regression without class weights"
        cfg = self.config
        if self.loss_name == "soft_f1":
            weight = cfg.train.loss_config.get("cross_entropy_weight")
            # The older classifier had no cross-entropy term: a line of its own, only if set.
            extra = [f"  plus cross-entropy x {weight}"] if weight else []
            return "\n".join(["[BiLSTM] Using mean F1 loss for focal labels:"]
                             + [f"  {lab}" for lab in cfg.focal_labels] + extra)
        loss_config = cfg.train.loss_config
        if self.loss_name == "weighted_cross_entropy" and "class_weights" in loss_config:
            return "\n".join(["[BiLSTM] Using weighted cross-entropy loss with class weights:"]
                             + [f"  {lab}: {w}" for lab, w in loss_config["class_weights"].items()])
        if self.loss_name == "weighted_cross_entropy":
            return (f"[BiLSTM] Using weighted cross-entropy loss with class weights by "
                    f"strategy: {loss_config['weight_strategy']}")
        if self.loss_name == "cross_entropy":
            return "[BiLSTM] Using standard cross-entropy loss"
        return "\n".join([f"[BiLSTM] Using {self.loss_name} loss"]
                         + [f"  {key}: {value}" for key, value in loss_config.items()])

    # ------------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Prepares the files, trains, evaluates on the test split, stores the model.

        Returns a dict with `test_stats` (and `validation_stats`): for every label
        `<Label>_precision`, `_recall`, `_f1`, `_support`, plus `macro_f1` and
        `focal_macro_f1`; also `model`, `loss`, `train_seconds`, `mlflow_run_id` and
        `tuning` (the before/after report of `tune`, None untuned).
        """
        from focalseq.pipelines.run import start_mlflow_run

        if not self.file_paths:
            raise ValueError("fit: file_paths: expected at least one annotated file or glob")
        spark = self._spark()
        if self.verbosity >= 1:
            print(self.describe_loss())
        started = time.time()
        self.tuning = None
        with start_mlflow_run(self.config, f"{self.model_type}-{self.loss_name}") as run, \
                self._epoch_printer():
            if self.model_type == "rnn":
                reports = self._fit_rnn(spark)
            else:
                reports = self._fit_logistic(spark)
            elapsed = time.time() - started
            import mlflow

            mlflow.log_metric("train_seconds", elapsed)
            if self.model_storage:
                self.save_model()  # inside the run: MLflow storage logs into it
        self.results = {f"{split}_stats": _stats(report) for split, report in reports.items()}
        self.results.update({"model": self.model, "loss": self.loss_name,
                             "train_seconds": elapsed, "mlflow_run_id": run.info.run_id,
                             "reports": reports, "model_location": self.model_location,
                             "tuning": self.tuning})
        if self.verbosity >= 1 and self.tuning is not None:
            from focalseq.stages.thresholds import format_tuning

            print("\n" + format_tuning(self.tuning))
        if self.verbosity >= 1 and "test" in reports:
            print("\n" + format_test_results(self.results["test_stats"], self.config.labels))
        return self.results

    def _epoch_printer(self):
        """At verbosity 2, a listener printing each epoch of training Keras-style."""
        if self.verbosity < 2 or self.model_type != "rnn":
            return contextlib.nullcontext()
        from focalseq.training.launch import epoch_listener

        runs, members = [], self.config.train.ensemble_members
        focal = list(self.config.focal_labels)

        def show(run_id, record):
            if run_id not in runs:
                runs.append(run_id)
                if members > 1:
                    print(f"\n[BiLSTM] Training network {len(runs)}/{members}")
                elif len(runs) == 1:
                    print()
            print(f"Epoch {record['epoch'] + 1}/{record.get('epochs', '?')}")
            print(format_epoch_keras(record, focal))

        return epoch_listener(show)

    def _fit_rnn(self, spark) -> dict:
        from focalseq.pipelines.evaluate import evaluate
        from focalseq.pipelines.prepare import prepare
        from focalseq.pipelines.train import inference_pipeline, train_with_report

        manifest = prepare(spark, self.config)
        bilstm, self.tuning = train_with_report(spark, self.config, manifest)
        self.model = inference_pipeline(self.config, bilstm, stride=self.prediction_stride)
        return {split: evaluate(spark, self.config, manifest, bilstm, split)
                for split in ("validation", "test") if split in manifest["splits"]}

    def _fit_logistic(self, spark) -> dict:
        from focalseq.pipelines.logistic import evaluate_logistic, split_lines, train_logistic

        cfg = self.config
        lines = split_lines(spark, cfg).cache()
        try:
            self.model = train_logistic(spark, cfg, lines, self.class_weights,
                                        self.weight_strategy)
            reports = {split: evaluate_logistic(spark, cfg, self.model, split, lines)
                       for split in ("validation", "test")}
        finally:
            lines.unpersist()
        return {split: report for split, report in reports.items() if report is not None}

    # ------------------------------------------------------------------------------------

    def predict(self, file_paths, plain: bool = False):
        """Labels every line of new files; returns a DataFrame (doc_id, line_no, line_idx,
        text, true_label, prediction, probability)."""
        from focalseq.pipelines.predict import label_lines, parse_lines
        from focalseq.stages.parse import list_files

        if self.model is None:
            self.load_model()
        paths = [file_paths] if isinstance(file_paths, str) else list(file_paths)
        files = list_files(self._spark(), paths)
        return label_lines(self.model, parse_lines(self.model, files, plain))

    def save_model(self) -> str:
        """Stores the fitted pipeline; returns the path, MLflow model URI or Redis key."""
        from focalseq import storage

        self.model_location = storage.save_model(
            self.model, self.model_storage, path=self.model_path,
            redis_client=self.redis_client, redis_key=self.redis_key)
        return self.model_location

    def load_model(self):
        from focalseq import storage

        if not self.model_storage:
            raise ValueError("load_model: no model_storage configured and no fitted model")
        path = self.model_path
        if self.model_storage == "mlflow":
            path = self.model_location or self.model_path
        self.model = storage.load_model(self.model_storage, path=path,
                                        redis_client=self.redis_client,
                                        redis_key=self.redis_key)
        return self.model

    def _spark(self):
        if self.spark is None:
            from focalseq.pipelines.session import get_spark

            self.spark = get_spark(self.config.spark.master, self.config.spark.app_name)
        return self.spark


SkolClassifierV2 = FocalSeqClassifier


@functools.lru_cache(maxsize=1)
def api_defaults() -> Config:
    """The configuration whose features, windows and train sections are the API's defaults.

    These are conf/skol.yaml's settings, not `focalseq.config.DEFAULTS`, on purpose: the
    API's users come from the older classifier on the SKOL corpus, and skol.yaml holds the
    best settings found there (benchmarks/quality.py, docs/results.md), while DEFAULTS
    stay the plain settings every stage starts from. Read, not copied, so the two cannot
    drift (tests/test_api.py, tests/test_defaults.py).
    """
    return load_config(packaged_conf("skol.yaml"))


def _tracking_uri_in(work_dir: str) -> str:
    """The classifier's MLflow store when none is given: a SQLite file in `work_dir` on
    a local disk; the workspace's tracking server for a DBFS `work_dir` (Databricks);
    the configuration's default for any other URL (SQLite cannot live on HDFS or S3)."""
    import fsspec

    protocol, _ = fsspec.core.split_protocol(work_dir)
    if protocol == "dbfs" or work_dir.startswith(("dbfs:", "/dbfs/")):
        return "databricks"
    if protocol not in (None, "file", "local"):
        return DEFAULTS.mlflow.tracking_uri
    # fsspec's local path is absolute, so the store does not move with the cwd.
    _, path = fsspec.core.url_to_fs(work_dir)
    return f"sqlite:///{posixpath.join(path, 'mlflow.db')}"


def _config_from(overrides: dict):
    import json

    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def format_test_results(stats: dict, labels) -> str:
    """The older classifier's test block: `Test Results:`, then precision, recall and F1
    of each label, one a line, to 4 decimals.

    >>> print(format_test_results({"A_precision": 0.5, "A_recall": 0.25, "A_f1": 1 / 3}, ["A"]))
    Test Results:
      A_precision: 0.5000
      A_recall: 0.2500
      A_f1: 0.3333
    """
    return "\n".join(["Test Results:"] + [f"  {lab}_{name}: {stats[f'{lab}_{name}']:.4f}"
                                            for lab in labels
                                            for name in ("precision", "recall", "f1")])


def format_epoch_keras(record: dict, focal_labels) -> str:
    """One epoch's figures as Keras prints them at verbose=2 (time, then `name: value`
    pairs joined by " - "), with the focal labels' validation F1 named as the test
    stats name them.

    >>> format_epoch_keras({"epoch": 0, "epochs": 6, "loss": 0.62341, "seconds": 44.6,
    ...     "val_loss": 0.5, "val_f1_A": 0.25, "val_f1_B": 0.75}, ["A"])
    '45s - loss: 0.6234 - val_loss: 0.5000 - val_A_f1: 0.2500'
    """
    parts = [f"{record['seconds']:.0f}s", f"loss: {record['loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss: {record['val_loss']:.4f}")
        parts += [f"val_{lab}_f1: {record[f'val_f1_{lab}']:.4f}" for lab in focal_labels
                  if f"val_f1_{lab}" in record]
    return " - ".join(parts)


def _stats(report: dict) -> dict:
    stats = {}
    for label, m in report["per_label"].items():
        for name in ("precision", "recall", "f1", "support"):
            stats[f"{label}_{name}"] = m[name]
    stats["macro_f1"] = report["macro_f1"]
    stats["focal_macro_f1"] = report["focal_macro_f1"]
    return stats
