"""Typed configuration: YAML files under conf/ plus `--set key.path=value` overrides.

Every default of the project is defined once, here: the stages' params and the Python
API read theirs from `DEFAULTS`, and the YAML files under conf/ set only what they change.
Sections mirror the data flow: data -> features -> windows -> train -> evaluate ->
output/mlflow.

Everything is validated in one pass before Spark starts: types, ranges, choices,
regexes, label references and the loss config. `load_config` raises one `ConfigError`
listing every problem, one a line, each naming the key as written in the YAML, the bad
value and what would be valid:

    >>> load_config(None, ["train.dropout=1.5", "train.num_layers=0"])
    Traceback (most recent call last):
    ...
    focalseq.config.ConfigError: train.num_layers: 0 is not >= 1
    train.dropout: 1.5 is not in [0, 1)
"""
import os
import re
from typing import Annotated, Any, Callable, Dict, List, Optional

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Both are pure Python (no TensorFlow): the whole check runs before anything heavy loads.
from focalseq.losses.choice import loss_config_for
from focalseq.losses.config import LOSS_NAMES, check_mode, validate_loss_config
from focalseq.text.features import SHAPE_FEATURES

CHOICES = {
    "data.source": ("synthetic", "files"),
    "data.format": ("yedda", "plain"),
    "data.unlabelled": ("default_label", "none"),
    "data.synthetic.kind": ("taxonomic", "multilabel", "binary"),
    "train.optimizer": ("adam", "sgd", "rmsprop"),
    "train.lr_decay": ("none", "cosine"),
    "train.encoder": ("mean", "cnn", "bilstm"),
    "train.head": ("softmax", "crf"),
    "train.collective": ("auto", "allgather", "allreduce"),
    "train.loss": LOSS_NAMES,
    "train.model": ("bilstm", "logistic"),
    "train.tune": ("none", "offsets", "thresholds", "logit_adjust"),
    "output.predictions_format": ("parquet", "jsonl", "yedda"),
    "output.mode": ("error", "overwrite"),
}
SPLITS = ("train", "validation", "test")
URL_SCHEMES = ("file://", "hdfs://", "s3://", "s3a://", "gs://", "abfss://", "dbfs:/")
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ConfigError(ValueError):
    """Every problem of a configuration; `errors` holds one `key: message` line each."""

    def __init__(self, errors: List[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# -- field checks: each runs after the type check, so it sees a value of the right type --

def _invalid(text: str) -> PydanticCustomError:
    # The text goes through the context: a literal template would read "{...}" in a
    # quoted dict as a placeholder.
    return PydanticCustomError("focalseq", "{text}", {"text": text})


def _check(test: Callable[[Any], Optional[str]]) -> AfterValidator:
    """An AfterValidator from `test(value) -> None or the error text`."""
    def run(value):
        text = test(value)
        if text is not None:
            raise _invalid(text)
        return value
    return AfterValidator(run)


def _at_least(low):
    return _check(lambda v: None if v >= low else f"{v!r} is not >= {low}")


def _unit(v):
    return None if 0 <= v < 1 else f"{v!r} is not in [0, 1)"


def _one_of(key: str):
    choices = CHOICES[key]
    return _check(lambda v: None if v in choices else f"{v!r} is not one of {list(choices)}")


Count = Annotated[int, _at_least(1)]
Fraction = Annotated[float, _check(_unit)]
Labels = List[str]


def fractions_problem(fractions) -> Optional[str]:
    """What is wrong with split fractions (None: nothing); shared with DocumentSplitter."""
    valid = (f"a mapping over {list(SPLITS)} of numbers >= 0 that sum to 1, e.g. "
             "{train: 0.8, validation: 0.1, test: 0.1}")
    if not isinstance(fractions, dict):
        return f"{fractions!r} is not a mapping; expected {valid}"
    unknown = [k for k in fractions if k not in SPLITS]
    if unknown:
        return f"unknown split(s) {unknown} in {fractions!r}; expected {valid}"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
           for v in fractions.values()):
        return f"{fractions!r} has a fraction that is not a number >= 0; expected {valid}"
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        return f"{fractions!r} sums to {total:g}; expected {valid}"
    return None


def patterns_problem(patterns) -> Optional[str]:
    """What is wrong with split patterns (None: nothing); shared with DocumentSplitter."""
    if not isinstance(patterns, list):
        return f"{patterns!r} is not a list of [split, regex] pairs"
    problems = []
    for i, item in enumerate(patterns):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and item[0] in SPLITS
                and isinstance(item[1], str)):
            problems.append(f"entry {i} {item!r} is not [split, regex] with split one of "
                            f"{list(SPLITS)}")
            continue
        try:
            re.compile(item[1])
        except re.error as exc:
            problems.append(f"entry {i} has an invalid regex {item[1]!r}: {exc}")
    return "; ".join(problems) or None


def _check_shape_features(names: List[str]) -> Optional[str]:
    unknown = [n for n in names if n not in SHAPE_FEATURES]
    if unknown:
        return f"unknown shape feature(s) {unknown}; valid names are {list(SHAPE_FEATURES)}"
    if len(set(names)) != len(names):
        return f"duplicate names in {names}; list each feature once (empty list: all)"
    return None


def _check_scalars(conf: Dict[str, Any]) -> Optional[str]:
    bad = {k: v for k, v in conf.items() if not isinstance(v, (str, bool, int, float))}
    if bad:
        return f"{bad!r}: expected a string, number or true/false for each setting"
    return None


def _check_labels(labels: List[str]) -> Optional[str]:
    if not labels or len(set(labels)) != len(labels) or not all(labels):
        return f"{labels!r}: expected a non-empty list of distinct, non-empty label names"
    return None


def _check_run_id(run_id: str) -> Optional[str]:
    if run_id and not re.match(RUN_ID_PATTERN, run_id):
        return (f"{run_id!r} is not a valid run id; expected letters, digits, '.', '_' or "
                f"'-', starting with a letter or digit (pattern {RUN_ID_PATTERN}), or '' "
                "for a new run")
    return None


def _check_location(path: str) -> Optional[str]:
    valid = f"a local path or a URL starting with one of {list(URL_SCHEMES)}"
    if not path:
        return f"'' is empty; expected {valid}"
    if is_url(path) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        if not path.startswith(URL_SCHEMES):
            return f"{path!r} has an unsupported scheme; expected {valid}"
    return None


# -- the sections ---------------------------------------------------------------------------

class _Section(BaseModel):
    # strict: a YAML `true` is not 1 and `"3"` is not 3; an int is still a float.
    # frozen: DEFAULTS is shared by every layer; a changed copy comes from `with_updates`.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


class SyntheticConfig(_Section):
    # taxonomic: Nomenclature/Description/Misc-exposition articles in `ratio` (3 numbers);
    # binary: the same articles with two labels, `labels` [positive, negative] in
    # `ratio` (2 numbers); multilabel: GoEmotions-like lines with 0-3 of `labels`, label
    # frequencies long-tailed by their order in `labels` (focalseq.synthetic_multilabel).
    kind: Annotated[str, _one_of("data.synthetic.kind")] = "taxonomic"
    n_docs: Count = 60
    lines_per_doc: Count = 120
    ratio: List[float] = Field(default_factory=lambda: [1.0, 10.0, 100.0])
    noise: Fraction = 0.05
    seed: int = 0


class SplitConfig(_Section):
    fractions: Annotated[Dict[str, float], _check(fractions_problem)] = Field(
        default_factory=lambda: {"train": 0.7, "validation": 0.15, "test": 0.15})
    patterns: Annotated[List[List[str]], _check(patterns_problem)] = Field(default_factory=list)
    seed: int = 0


class DataConfig(_Section):
    source: Annotated[str, _one_of("data.source")] = "synthetic"
    paths: List[str] = Field(default_factory=list)
    recursive: bool = False
    format: Annotated[str, _one_of("data.format")] = "yedda"
    keep_labels: Labels = Field(default_factory=list)
    default_label: str = "Misc-exposition"
    # Text outside spans (and a multi-label set left empty by keep_labels): default_label
    # gives it data.default_label; none (multi-label only) the empty label set.
    unlabelled: Annotated[str, _one_of("data.unlabelled")] = "default_label"
    # Values are checked against `labels` with the other references (Config).
    label_map: Dict[str, Any] = Field(default_factory=dict)
    strict: bool = False
    # Input file bytes per parsing task (prepare, predict): a task holds its lines'
    # windows (several times the text) in a sort by split before writing them, so this
    # bounds an executor's memory whatever the corpus. At least 4 tasks per core.
    bytes_per_task: Count = 8 * 1024 * 1024
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)


class FeaturesConfig(_Section):
    # At least 2: id 0 is padding, so a hashed space needs one more id for any token.
    vocab_size: Annotated[int, _at_least(2)] = 32768
    max_tokens: Count = 24
    words: bool = True
    suffixes: bool = True
    suffix_len: Count = 3
    char_ngrams: bool = False
    ngram_n: Count = 3
    # Empty: every feature of focalseq.text.features.SHAPE_FEATURES.
    shape_features: Annotated[List[str], _check(_check_shape_features)] = Field(
        default_factory=list)


class WindowsConfig(_Section):
    size: Count = 16
    stride: Count = 8
    row_group_bytes: Count = 4 * 1024 * 1024


class TrainConfig(_Section):
    loss: Annotated[str, _one_of("train.loss")] = "cross_entropy"
    loss_config: Dict[str, Any] = Field(default_factory=dict)
    epochs: Count = 5
    batch_size: Count = 32
    learning_rate: Annotated[float, _check(
        lambda v: None if v > 0 else f"{v!r} is not > 0")] = 0.003
    warmup_epochs: Annotated[float, _at_least(0)] = 0.0
    lr_decay: Annotated[str, _one_of("train.lr_decay")] = "none"  # cosine: to 0 over all epochs
    optimizer: Annotated[str, _one_of("train.optimizer")] = "adam"
    hidden_size: Count = 64
    num_layers: Count = 1
    dropout: Fraction = 0.2
    recurrent_dropout: Fraction = 0.0
    embedding_dim: Count = 48
    encoder: Annotated[str, _one_of("train.encoder")] = "mean"
    token_dropout: Fraction = 0.0
    skip_connection: bool = False
    # softmax: each line labelled on its own (sigmoid when multi-label); crf: a
    # linear-chain CRF over the window's lines (single-label), trained through its
    # per-line marginals with the chosen loss (focalseq.training.chain_crf).
    head: Annotated[str, _one_of("train.head")] = "softmax"
    num_proc: Count = 2
    early_stopping_patience: Annotated[int, _at_least(0)] = 0
    restore_best: bool = True
    seed: int = 0
    run_id: Annotated[str, _check(_check_run_id)] = ""
    mixed_precision: bool = False
    # How the ranks average gradients: auto (the cheaper by the step-time model of
    # focalseq.training.collective_model for the job's workers; docs/scaling.md), or one
    # packed allgather a step, or Horovod's allreduce. The model is the same either way.
    collective: Annotated[str, _one_of("train.collective")] = "auto"
    # > 1: that many networks (seeds seed*K .. seed*K+K-1), their probabilities averaged.
    ensemble_members: Count = 1
    # bilstm: the Horovod network over windows; logistic: the Spark ML line baseline
    # (focalseq.pipelines.logistic), class weights from a weighted_cross_entropy loss.
    model: Annotated[str, _one_of("train.model")] = "bilstm"
    # After training, the decision rule fitted on the validation split and saved in the
    # model (focalseq.pipelines.tune): offsets (single-label), thresholds (multi-label) or
    # logit_adjust (offsets -tau*log(prior), tau = tune_tau). Default none, because of
    # the folds: on the SKOL benchmark (docs/results.md) offsets tuned on the validation
    # issue (another journal) lowered the Vol117 test F1 for every loss but logit
    # adjustment, by 3-4 points in every seed of the chosen settings. Turn tuning on where
    # the validation split resembles the data the model will label.
    tune: Annotated[str, _one_of("train.tune")] = "none"
    tune_tau: Annotated[float, _at_least(0)] = 1.0


class MlflowConfig(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "focalseq"
    run_name: str = ""
    log_model: bool = False              # log the inference PipelineModel (Spark flavor)
    register_model: str = ""             # also register it under this name
    alias: str = ""                      # and point this alias at the new version


class SparkConfig(_Section):
    master: str = "local[2]"
    app_name: str = "focalseq"
    # Spark takes any scalar and reads it as a string (`spark.executor.instances: 4`).
    conf: Annotated[Dict[str, Any], _check(_check_scalars)] = Field(default_factory=dict)


class OutputConfig(_Section):
    dir: Annotated[str, _check(_check_location)] = "runs/default"
    predictions_format: Annotated[str, _one_of("output.predictions_format")] = "parquet"
    # An existing non-empty output directory: "error" refuses it, "overwrite" replaces it
    # if focalseq wrote it (its marker file); a directory focalseq did not write is never
    # replaced (focalseq.fileio.check_output_target).
    mode: Annotated[str, _one_of("output.mode")] = "error"
    # Row groups of the Parquet predictions. A Parquet writer holds its open row group in
    # the executor's heap, so this bounds a writing task's memory whatever the corpus
    # (Parquet's own default is 128 MB per task); readers lose little at 4 MB.
    row_group_bytes: Count = 4 * 1024 * 1024


class Config(_Section):
    labels: Annotated[Labels, _check(_check_labels)] = Field(
        default_factory=lambda: ["Nomenclature", "Description", "Misc-exposition"])
    focal_labels: Labels = Field(default_factory=lambda: ["Nomenclature", "Description"])
    multi_label: bool = False
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _references(self):
        errors = _reference_errors(_Lookup(self.to_dict()))
        if errors:
            raise PydanticCustomError("focalseq_references", "{text}",
                                      {"text": "\n".join(errors)})
        return self

    @property
    def store(self) -> str:
        return self.path("store")

    def path(self, *parts: str) -> str:
        """A location under output.dir as a URL (`join_path`): URLs (hdfs://, s3://,
        dbfs:/ ...) as they are, a local output.dir as an absolute ``file://`` URL, so
        every executor resolves it the same way."""
        return join_path(self.output.dir, *parts)

    def to_dict(self) -> dict:
        return self.model_dump()

    def with_updates(self, changes: Dict[str, Any]) -> "Config":
        """A validated copy with `{"section.key": value}` changes (the config is frozen).

        Raises:
            ConfigError: naming every key whose new value is invalid.
        """
        raw = self.to_dict()
        for key, value in changes.items():
            _assign(raw, key, value, f"with_updates {key!r}")
        return validate_config(raw)


# -- checks between keys --------------------------------------------------------------------

class _Unchecked(Exception):
    """A key a check reads failed its own validation (already reported) or is missing."""


class _Lookup:
    """Dotted-key access to a config mapping that refuses keys already reported bad."""

    def __init__(self, data: dict, failed=()):
        self.data, self.failed = data, tuple(failed)

    def __call__(self, key: str):
        for bad in self.failed:
            if bad == key or bad.startswith((key + ".", key + "[")) or key.startswith(bad + "."):
                raise _Unchecked(key)
        node = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise _Unchecked(key)
            node = node[part]
        return node


def _reference_errors(get: _Lookup) -> List[str]:
    """Checks that read more than one key; each runs when its keys are valid on their own."""
    errors = []

    def check(fn):
        try:
            text = fn()
        except _Unchecked:
            return
        if text:
            errors.append(text)

    def subset(key, label_key="labels"):
        values, labels = get(key), get(label_key)
        bad = [v for v in values if v not in labels]
        if bad:
            return f"{key}: {bad} are not in labels {labels}"
        return None

    def default_label():
        label, labels = get("data.default_label"), get("labels")
        if get("data.unlabelled") == "default_label" and label not in labels:
            return f"data.default_label: {label!r} is not in labels {labels}"
        return None

    def unlabelled():
        if get("data.unlabelled") == "none" and not get("multi_label"):
            return ("data.unlabelled: 'none' (no label: the empty label set) needs "
                    "multi_label: true; a single-label line has exactly one label; valid "
                    "here: ['default_label']")
        return None

    def synthetic():
        if get("data.source") != "synthetic":
            return None
        kind, labels, ratio = get("data.synthetic.kind"), get("labels"), get(
            "data.synthetic.ratio")
        if kind == "multilabel" and not get("multi_label"):
            return ("data.synthetic.kind: 'multilabel' writes label sets; set multi_label: "
                    "true")
        if kind == "binary" and len(labels) != 2:
            return (f"labels: data.synthetic.kind 'binary' writes two labels [positive, "
                    f"negative], got {labels}")
        if kind == "binary" and len(ratio) != 2:
            return (f"data.synthetic.ratio: {ratio} for kind 'binary' must be 2 numbers "
                    "(positive, negative lines), e.g. [1, 10]")
        if kind == "taxonomic" and len(ratio) != 3:
            return (f"data.synthetic.ratio: {ratio} for kind 'taxonomic' must be 3 numbers "
                    "(Nomenclature, Description, Misc-exposition lines), e.g. [1, 10, 100]")
        if any(r < 0 for r in ratio) or sum(ratio) <= 0:
            return f"data.synthetic.ratio: {ratio} must be numbers >= 0 with a positive sum"
        return None

    def label_map():
        mapping, labels, multi = get("data.label_map"), get("labels"), get("multi_label")
        bad = {raw: lab for raw, lab in mapping.items() if not isinstance(lab, str)
               or any(part not in labels for part in (lab.split("|") if multi else [lab]))}
        if bad:
            sets = " (or a '|'-separated set of them)" if multi else ""
            return (f"data.label_map: {bad!r} maps to values that are not labels; every value "
                    f"must be one of {labels}{sets}")
        return None

    def paths():
        if get("data.source") == "files" and not get("data.paths"):
            return "data.paths: data.source is 'files' but no paths or globs are given"
        return None

    def stride():
        size, step = get("windows.size"), get("windows.stride")
        if step > size:
            return (f"windows.stride: {step} is larger than windows.size {size}; lines would "
                    f"be skipped; expected a stride in [1, {size}]")
        return None

    def tune():
        method, multi, model = get("train.tune"), get("multi_label"), get("train.model")
        if method == "none":
            return None
        if model != "bilstm":
            return (f"train.tune: {method!r} tunes the bilstm model's decision rule; "
                    f"train.model {model!r} takes train.tune: none")
        valid = ["none", "thresholds"] if multi else ["none", "offsets", "logit_adjust"]
        if method not in valid:
            kind = "multi-label" if multi else "single-label"
            return (f"train.tune: {method!r} does not apply to a {kind} task "
                    f"(multi_label: {str(bool(multi)).lower()}); valid here: {valid}")
        return None

    def separator():
        labels = get("labels")
        if get("multi_label") and any("|" in lab for lab in labels):
            return f"labels: {labels} contain '|', the separator of multi-label sets"
        return None

    def loss():
        name, multi = get("train.loss"), get("multi_label")
        try:
            check_mode(name, bool(multi))
        except ValueError as exc:
            return f"train.loss: {exc}"
        loss_config, labels = get("train.loss_config"), get("labels")
        if name == "soft_f1" and "focal_labels" not in loss_config and subset("focal_labels"):
            return None  # reported once, as focal_labels
        loss_config = loss_config_for(name, loss_config, focal_labels=get("focal_labels"))
        try:
            validate_loss_config(name, loss_config, labels, multi_label=multi)
        except ValueError as exc:
            return f"train.loss_config: {exc}"
        return None

    check(lambda: subset("focal_labels"))
    check(lambda: subset("data.keep_labels"))
    for fn in (default_label, unlabelled, synthetic, label_map, paths, stride, tune,
               separator, loss):
        check(fn)
    return errors


# -- error messages -------------------------------------------------------------------------

_EXPECTED = {
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def _key(loc) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key


def _section_fields(loc) -> List[str]:
    model = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) \
                or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def _describe(error: dict) -> List[str]:
    """One pydantic error -> `key: message` lines in the project's words."""
    loc, kind = error["loc"], error["type"]
    key = _key(loc) or "config"
    if kind == "focalseq_references":
        return error["ctx"]["text"].split("\n")
    if kind == "focalseq":
        return [f"{key}: {error['ctx']['text']}"]
    if kind == "extra_forbidden":
        return [f"{key}: unknown key; valid keys here are {_section_fields(loc[:-1])}"]
    if kind in _EXPECTED:
        return [f"{key}: {_EXPECTED[kind]}, got {error['input']!r}"]
    return [f"{key}: {error['msg']} (got {error.get('input')!r})"]


# -- loading --------------------------------------------------------------------------------

def validate_config(raw: dict) -> Config:
    """Builds a Config from a mapping, checking everything in one pass.

    Raises:
        ConfigError: listing every problem, one a line.
    """
    if not isinstance(raw, dict):
        raise ConfigError([f"config: expected a mapping at the top level, got {raw!r}"])
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
    errors = []
    for error in found:
        for line in _describe(error):
            if line not in errors:
                errors.append(line)
    if not any(e["type"] == "focalseq_references" for e in found):
        # Some key failed on its own, so the model's own check of references did not
        # run: run it over the keys that passed, so that one pass reports everything.
        failed = [_key(e["loc"]) for e in found]
        errors += _reference_errors(_Lookup(_merged(DEFAULTS.to_dict(), raw), failed))
    raise ConfigError(errors)


def load_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> Config:
    """Reads a YAML file (or the defaults), applies `key.path=value` overrides, validates.

    Raises:
        ConfigError: a missing or malformed file or override, or every invalid value.
    """
    raw: dict = {}
    if path:
        from focalseq import fileio

        # Through fsspec: a workflow may pass the file as a URL (dbfs:/, s3://, file:).
        try:
            text = fileio.read_bytes(path).decode("utf-8")
        except FileNotFoundError:
            raise ConfigError([f"--conf: no such file {path!r}"]) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError([f"--conf: cannot read {path!r}: {exc}"]) from exc
        raw = _yaml(text, path) or {}
        if not isinstance(raw, dict):
            raise ConfigError([f"{path}: expected a YAML mapping at the top level"])
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected key.path=value, e.g. train.epochs=3"])
        _assign(raw, key, _yaml(value, f"--set {item!r}"), f"--set {item!r}")
    return validate_config(raw)


def _yaml(text, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML: {' '.join(str(exc).split())}"]) from exc


def packaged_conf(name: str) -> str:
    """The path of a configuration shipped with focalseq (`skol.yaml`, `default.yaml`).

    A wheel carries them in focalseq/conf/; a source checkout (editable install) has them
    in the repository's conf/ folder.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "conf"), os.path.join(os.path.dirname(here), "conf")):
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"{name!r} is not among the packaged configurations "
                            f"(looked in {here}/conf and the source checkout's conf/)")


def _assign(raw: dict, key: str, value, what: str) -> None:
    """Sets raw[a][b][c] = value for key 'a.b.c', creating sections as needed."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError([f"{what}: {part!r} is not a section"])
    node[parts[-1]] = value


def _merged(base: dict, raw: dict) -> dict:
    out = dict(base)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key in (
                "data", "features", "windows", "train", "mlflow", "spark", "output",
                "synthetic", "split"):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def is_url(path: str) -> bool:
    return "://" in path or path.startswith("dbfs:")


def join_path(base: str, *parts: str) -> str:
    """`parts` under `base`, as a URL that names the same place on every host.

    A URL is joined as it is. A local path becomes a ``file://`` URL of its absolute
    form (fsspec's own normalisation, against this process's working directory): the
    location goes to executors on other hosts, whose working directories differ, and
    names the same folder there only as an absolute path on a shared filesystem.

    >>> join_path("hdfs:///runs/a/", "model")
    'hdfs:///runs/a/model'
    >>> join_path("/data/runs/a", "windows", "_manifest.json")
    'file:///data/runs/a/windows/_manifest.json'
    """
    if not is_url(base):
        from fsspec.implementations.local import make_path_posix

        base = "file://" + make_path_posix(base)
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


# The one instance every layer reads its defaults from (stage params, the Python API).
# Frozen: no caller can change a default for the others.
DEFAULTS = Config()
