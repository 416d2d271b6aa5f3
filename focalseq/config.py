"""Typed configuration: YAML files under conf/ plus `--set key.path=value` overrides.

Everything is validated before Spark starts; an error names the key, the bad value and
what would be valid. Sections mirror the data flow: data -> features -> windows ->
train -> evaluate -> output/mlflow.
"""
import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml


@dataclass
class SyntheticConfig:
    n_docs: int = 60
    lines_per_doc: int = 120
    ratio: List[float] = field(default_factory=lambda: [1, 10, 100])
    noise: float = 0.05
    seed: int = 0


@dataclass
class SplitConfig:
    fractions: Dict[str, float] = field(
        default_factory=lambda: {"train": 0.7, "validation": 0.15, "test": 0.15})
    patterns: List[List[str]] = field(default_factory=list)
    seed: int = 0


@dataclass
class DataConfig:
    source: str = "synthetic"            # synthetic | files
    paths: List[str] = field(default_factory=list)
    recursive: bool = False
    format: str = "yedda"                # yedda | plain
    keep_labels: List[str] = field(default_factory=list)
    default_label: str = "Misc-exposition"
    label_map: Dict[str, str] = field(default_factory=dict)
    strict: bool = False
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class FeaturesConfig:
    vocab_size: int = 32768
    max_tokens: int = 24
    words: bool = True
    suffixes: bool = True
    suffix_len: int = 3
    char_ngrams: bool = False
    ngram_n: int = 3
    shape_features: List[str] = field(default_factory=list)


@dataclass
class WindowsConfig:
    size: int = 16
    stride: int = 8
    row_group_bytes: int = 4 * 1024 * 1024


@dataclass
class TrainConfig:
    loss: str = "cross_entropy"
    loss_config: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.003
    warmup_epochs: float = 0.0
    lr_decay: str = "none"               # none | cosine (to 0 over all epochs)
    optimizer: str = "adam"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.2
    recurrent_dropout: float = 0.0
    embedding_dim: int = 48
    encoder: str = "mean"
    token_dropout: float = 0.0
    skip_connection: bool = False
    num_proc: int = 2
    early_stopping_patience: int = 0
    restore_best: bool = True
    seed: int = 0
    run_id: str = ""
    mixed_precision: bool = False
    ensemble_members: int = 1            # > 1: that many networks (seeds seed*K .. seed*K+K-1),
                                         # their probabilities averaged


@dataclass
class MlflowConfig:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "focalseq"
    run_name: str = ""
    log_model: bool = False              # log the inference PipelineModel (Spark flavor)
    register_model: str = ""             # also register it under this name
    alias: str = ""                      # and point this alias at the new version


@dataclass
class SparkConfig:
    master: str = "local[2]"
    app_name: str = "focalseq"
    conf: Dict[str, str] = field(default_factory=dict)


@dataclass
class OutputConfig:
    dir: str = "runs/default"
    predictions_format: str = "parquet"  # parquet | jsonl | yedda


@dataclass
class Config:
    labels: List[str] = field(
        default_factory=lambda: ["Nomenclature", "Description", "Misc-exposition"])
    focal_labels: List[str] = field(default_factory=lambda: ["Nomenclature", "Description"])
    multi_label: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def store(self) -> str:
        return self.path("store")

    def path(self, *parts: str) -> str:
        """A location under output.dir: absolute for local paths, untouched for URLs
        (hdfs://, s3://, dbfs:/ ...) so that every executor resolves it the same way."""
        return join_path(self.output.dir, *parts)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The one instance every layer reads its defaults from (stage params, the Python API).
DEFAULTS = Config()


def is_url(path: str) -> bool:
    return "://" in path or path.startswith("dbfs:")


def join_path(base: str, *parts: str) -> str:
    if is_url(base):
        return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])
    return os.path.join(os.path.abspath(base), *parts)


CHOICES = {
    "data.source": ("synthetic", "files"),
    "data.format": ("yedda", "plain"),
    "train.optimizer": ("adam", "sgd", "rmsprop"),
    "train.lr_decay": ("none", "cosine"),
    "train.encoder": ("mean", "cnn", "bilstm"),
    "output.predictions_format": ("parquet", "jsonl", "yedda"),
}


def load_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> Config:
    """Reads a YAML file (or the defaults), applies `key.path=value` overrides, validates."""
    raw: dict = {}
    if path:
        if not os.path.exists(path):
            raise ValueError(f"--conf: no such file {path!r}")
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a YAML mapping at the top level")
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key.path=value, e.g. train.epochs=3")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    config = _build(Config, raw, "")
    validate(config)
    return config


def _build(cls, raw, prefix):
    if not isinstance(raw, dict):
        raise ValueError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ValueError(f"{prefix + '.' if prefix else ''}{unknown[0]}: unknown key; valid keys "
                         f"here are {sorted(fields)}")
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        key = f"{prefix}.{name}" if prefix else name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, key)
        else:
            kwargs[name] = _coerce(key, value, default)
    return cls(**kwargs)


def _coerce(key, value, default):
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    if kind is list and not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, got {value!r}")
    if kind is dict and not isinstance(value, dict):
        raise ValueError(f"{key}: expected a mapping, got {value!r}")
    return value


def validate(config: Config) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in choices:
            raise ValueError(f"{key}: {value!r} is not one of {list(choices)}")
    if not config.labels or len(set(config.labels)) != len(config.labels):
        raise ValueError(f"labels: expected distinct label names, got {config.labels}")
    bad = [f for f in config.focal_labels if f not in config.labels]
    if bad:
        raise ValueError(f"focal_labels: {bad} are not in labels {config.labels}")
    if config.data.default_label not in config.labels and not config.multi_label:
        raise ValueError(f"data.default_label: {config.data.default_label!r} is not in labels "
                         f"{config.labels}")
    if config.data.source == "files" and not config.data.paths:
        raise ValueError("data.paths: data.source is 'files' but no paths or globs are given")
    for key in ("train.epochs", "train.batch_size", "train.num_proc", "train.hidden_size",
                "train.ensemble_members", "windows.size", "windows.stride", "features.max_tokens"):
        section, name = key.split(".")
        if getattr(getattr(config, section), name) < 1:
            raise ValueError(f"{key}: must be >= 1, got {getattr(getattr(config, section), name)}")
    if config.windows.stride > config.windows.size:
        raise ValueError(f"windows.stride: {config.windows.stride} is larger than windows.size "
                         f"{config.windows.size}; lines would be skipped")
    from focalseq.losses import validate_loss_config

    loss_config = dict(config.train.loss_config)
    if config.train.loss == "soft_f1" and "focal_labels" not in loss_config:
        loss_config["focal_labels"] = config.focal_labels
    try:
        validate_loss_config(config.train.loss, loss_config, config.labels,
                             multi_label=config.multi_label)
    except ValueError as exc:
        raise ValueError(f"train.loss / train.loss_config: {exc}") from exc
