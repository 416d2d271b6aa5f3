"""Every focalseq stage: a setter for every param, and save -> load keeps uid and params.

Each param is set to a value other than its default (derived from its type converter),
so a reader that dropped a param or fell back to a default would be caught.
"""
import pytest
from pyspark.ml.param import TypeConverters

pytestmark = pytest.mark.spark


def _stages():
    from focalseq.stages.bilstm import BiLSTMEstimator, BiLSTMModel
    from focalseq.stages.ensemble import EnsembleEstimator, EnsembleModel
    from focalseq.stages.evaluation import PerLabelEvaluator
    from focalseq.stages.features import LineFeaturizer
    from focalseq.stages.parse import YeddaParser
    from focalseq.stages.split import DocumentSplitter
    from focalseq.stages.thresholds import ThresholdModel, ThresholdTuner
    from focalseq.stages.windows import Windower

    return [YeddaParser, LineFeaturizer, DocumentSplitter, Windower, BiLSTMEstimator,
            BiLSTMModel, EnsembleEstimator, EnsembleModel, ThresholdTuner, ThresholdModel,
            PerLabelEvaluator]


STAGES = _stages()


# Params whose setters check the value against a fixed set: another valid choice.
CHOICES = {"format": "plain", "inputOrder": "any"}


def _other_value(param, default):
    """A valid value of the param's type that differs from `default`."""
    if param.name in CHOICES:
        return CHOICES[param.name]
    conv = param.typeConverter
    if conv is TypeConverters.toBoolean:
        return not default
    if conv is TypeConverters.toInt:
        return (default or 0) + 3
    if conv is TypeConverters.toFloat:
        return (default or 0.0) / 2 + 0.125
    if conv is TypeConverters.toListString:
        return list(default or []) + ["Zeta"]
    if conv is TypeConverters.toListFloat:
        return list(default or []) + [0.25]
    if conv is TypeConverters.toListInt:
        return list(default or []) + [7]
    if isinstance(default, dict):
        return {**default, "zeta": 1}
    # Strings, and JSON params stored as strings.
    if isinstance(default, str) and default.strip().startswith(("{", "[")):
        return '{"zeta": 1}' if default.strip().startswith("{") else '[{"zeta": 1}]'
    return f"{default or ''}zeta"


def _configured(cls):
    stage = cls()
    for param in stage.params:
        default = stage.getOrDefault(param) if stage.hasDefault(param) else None
        stage._set(**{param.name: _other_value(param, default)})
    return stage


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
def test_every_param_has_a_getter_and_a_setter_returning_the_stage(cls):
    stage = cls()
    missing = []
    for param in stage.params:
        name = param.name[0].upper() + param.name[1:]
        if not callable(getattr(stage, f"get{name}", None)):
            missing.append(f"get{name}")
        setter = getattr(stage, f"set{name}", None)
        if not callable(setter):
            missing.append(f"set{name}")
    assert missing == []
    for param in stage.params:
        name = param.name[0].upper() + param.name[1:]
        default = stage.getOrDefault(param) if stage.hasDefault(param) else None
        value = _other_value(param, default)
        assert getattr(stage, f"set{name}")(value) is stage
        assert stage.isSet(param)


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
def test_save_and_load_keep_the_uid_and_every_param(cls, spark, tmp_path):
    from focalseq.stages.bilstm import BiLSTMModel
    from focalseq.stages.ensemble import EnsembleModel

    stage = _configured(cls)
    if cls is BiLSTMModel:
        stage._set_network(b"network bytes")  # saved and read back as bytes, not parsed
    if cls is EnsembleModel:
        members = [BiLSTMModel(labels=["A", "B"]) for _ in range(2)]
        for i, member in enumerate(members):
            member._set_network(f"member {i}".encode())
        stage = EnsembleModel(members=members, weights=[1.0, 2.0], logOffsets=[0.5, 0.0])
    path = str(tmp_path / cls.__name__)
    stage.write().save(path)
    loaded = cls.load(path)
    assert type(loaded) is cls
    assert loaded.uid == stage.uid
    for param in stage.params:
        assert loaded.isSet(param.name) == stage.isSet(param), param.name
        assert loaded.getOrDefault(param.name) == stage.getOrDefault(param), param.name
    if cls is BiLSTMModel:
        assert loaded.network_bytes == b"network bytes"
    if cls is EnsembleModel:
        assert [m.uid for m in loaded.members] == [m.uid for m in stage.members]
        assert [m.network_bytes for m in loaded.members] == [b"member 0", b"member 1"]
