"""The familiar Python API: one object that prepares, trains, evaluates, stores, predicts.

Users of the older single-machine classifier keep their code; only the import changes:

    from focalseq import SkolClassifierV2
    classifier = SkolClassifierV2(
        spark=spark, input_source="files", file_paths=["data/annotated/*.ann"],
        model_type="rnn", window_size=15, prediction_stride=5, hidden_size=128,
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
"""
import functools
import logging
import os
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


class FocalSeqClassifier:
    """Line classifier over annotated files; see the module docstring for an example.

    Args:
        spark: a SparkSession (None: a local one).
        input_source: "files" (annotated YEDDA files).
        file_paths: paths or globs on any filesystem Spark reads.
        model_type: "rnn" (the Horovod BiLSTM) or "logistic" (Spark ML baseline).
        focal_labels / class_weights / weight_strategy / loss / loss_config: the loss.
        model_storage: None, "disk" (model_path), "mlflow" (logged into the fit's run;
            model_path may name a model URI to load), or "redis" (redis_client +
            redis_key).
        verbosity: 0 silent, 1 what is used, 2 per-epoch progress.
        ensemble_members: networks trained (seeds seed*K .. seed*K+K-1) whose
            probabilities are averaged; 3 by default, the best setting on the SKOL
            benchmark; 1 trains a single network in a third of the time.
        The remaining keywords (learning_rate, num_workers, embedding_dim, encoder,
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
                 lr_decay=None, ensemble_members=None, shape_features=None):
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
        if not file_paths:
            raise ValueError("file_paths: expected at least one annotated file or glob")
        self.spark = spark
        self.model_type = model_type
        self.file_paths = [file_paths] if isinstance(file_paths, str) else list(file_paths)
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
            "windows.size": window_size, "windows.stride": prediction_stride,
            "train.epochs": epochs, "train.batch_size": batch_size,
            "train.learning_rate": learning_rate, "train.hidden_size": hidden_size,
            "train.num_layers": num_layers, "train.dropout": dropout,
            "train.embedding_dim": embedding_dim, "train.encoder": encoder,
            "train.num_proc": num_workers, "train.seed": seed,
            "train.early_stopping_patience": early_stopping_patience,
            # Without patience there is no best epoch to go back to.
            "train.restore_best": None if early_stopping_patience is None
            else early_stopping_patience > 0,
            "train.token_dropout": token_dropout, "train.lr_decay": lr_decay,
            "train.ensemble_members": ensemble_members,
        }
        overrides.update({key: value for key, value in given.items() if value is not None})
        overrides.update({
            "labels": labels, "focal_labels": focal,
            "data.source": "files", "data.paths": self.file_paths,
            "data.keep_labels": list(keep_labels) if keep_labels is not None else
            [lab for lab in labels if lab != default_label],
            "data.default_label": default_label,
            "train.loss": self.loss_name, "train.loss_config": loss_config,
            "output.dir": self.work_dir,
            "mlflow.tracking_uri": tracking_uri or
            f"sqlite:///{os.path.join(os.path.abspath(self.work_dir), 'mlflow.db')}",
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
        if verbosity >= 1:
            print(self.describe_loss())

    def describe_loss(self) -> str:
        cfg = self.config
        if self.model_type == "logistic":
            weights = self.class_weights or self.weight_strategy or "none"
            return f"model: logistic regression (Spark ML), class weights: {weights}"
        if self.loss_name == "soft_f1":
            return (f"model: BiLSTM, loss: soft_f1 (mean soft F1) over focal labels "
                    f"{cfg.focal_labels}")
        return (f"model: BiLSTM, loss: {self.loss_name} {cfg.train.loss_config or ''}".rstrip()
                + f", labels {cfg.labels}")

    # ------------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Prepares the files, trains, evaluates on the test split, stores the model.

        Returns a dict with `test_stats` (and `validation_stats`): for every label
        `<Label>_precision`, `_recall`, `_f1`, `_support`, plus `macro_f1` and
        `focal_macro_f1`; also `model`, `loss`, `train_seconds`, `mlflow_run_id`.
        """
        from focalseq.pipelines.run import start_mlflow_run

        spark = self._spark()
        started = time.time()
        with start_mlflow_run(self.config, f"{self.model_type}-{self.loss_name}") as run:
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
                             "reports": reports, "model_location": self.model_location})
        if self.verbosity >= 1 and "test" in reports:
            from focalseq.stages.evaluation import format_report

            print(format_report(reports["test"]))
        return self.results

    def _fit_rnn(self, spark) -> dict:
        from focalseq.pipelines.evaluate import evaluate
        from focalseq.pipelines.prepare import prepare
        from focalseq.pipelines.train import inference_pipeline, train

        manifest = prepare(spark, self.config)
        bilstm = train(spark, self.config, manifest)
        self.model = inference_pipeline(self.config, bilstm)
        return {split: evaluate(spark, self.config, manifest, bilstm, split)
                for split in ("validation", "test") if split in manifest["splits"]}

    def _fit_logistic(self, spark) -> dict:
        from pyspark.ml import PipelineModel

        from focalseq.losses import compute_class_weights
        from focalseq.pipelines import builders
        from focalseq.pipelines.logistic import add_weights, logistic_pipeline
        from focalseq.pipelines.prepare import parse_and_featurize

        cfg = self.config
        _, lines = parse_and_featurize(spark, cfg)
        lines = builders.splitter(cfg).transform(lines).cache()
        train = lines.filter(lines.split == "train")
        weights = self.class_weights or {}
        if self.weight_strategy:
            counts = {r["label"]: r["count"] for r in train.groupBy("label").count().collect()}
            weights = compute_class_weights(self.weight_strategy,
                                            {lab: counts.get(lab, 0) for lab in cfg.labels},
                                            cfg.labels)
        n_shape = builders.featurizer(cfg).n_shape()
        fitted = logistic_pipeline(cfg.labels, cfg.features.vocab_size, n_shape).fit(
            add_weights(train, weights))
        self.model = PipelineModel([builders.parser(cfg), builders.featurizer(cfg)]
                                   + fitted.stages)
        reports = {}
        for split in ("validation", "test"):
            part = lines.filter(lines.split == split)
            if part.limit(1).count():
                from pyspark.ml.functions import vector_to_array

                ev = builders.evaluator(cfg, split)
                predictions = fitted.transform(part)
                ev.evaluate(predictions.withColumn(
                    "probability", vector_to_array("probability")))
                reports[split] = ev.last_report
        lines.unpersist()
        return reports

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


def _config_from(overrides: dict):
    import json

    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def _stats(report: dict) -> dict:
    stats = {}
    for label, m in report["per_label"].items():
        for name in ("precision", "recall", "f1", "support"):
            stats[f"{label}_{name}"] = m[name]
    stats["macro_f1"] = report["macro_f1"]
    stats["focal_macro_f1"] = report["focal_macro_f1"]
    return stats
