"""Loading trusts nothing it did not write (issue 12, item 2).

A crafted model names a module of our own making that leaves a file behind when it is
imported; every refusal below is checked by that file's absence (and the module's absence
from sys.modules), so "refused before any import" is observed, not assumed.
"""
import importlib
import inspect
import io
import json
import os
import pkgutil
import sys
import tarfile
import uuid
import zipfile

import pytest

from focalseq import storage
from focalseq.stages import persistence


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A module on sys.path that writes a marker file when imported: {"module", "marker"}."""
    name = f"evil_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported.txt"
    folder = tmp_path / "evil-code"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Stage:\n"
        "    @classmethod\n"
        "    def load(cls, path):\n"
        "        return cls()\n")
    monkeypatch.syspath_prepend(str(folder))
    yield {"module": name, "cls": f"{name}.Stage", "marker": marker}
    sys.modules.pop(name, None)


def _not_imported(evil):
    return not evil["marker"].exists() and evil["module"] not in sys.modules


def _metadata(folder, cls, uid="Stage_0123456789ab", **extra):
    """A stage folder as Spark ML writes one: metadata/part-00000 (one JSON line)."""
    meta = folder / "metadata"
    meta.mkdir(parents=True)
    record = {"class": cls, "timestamp": 0, "sparkVersion": "4.0.1", "uid": uid,
              "paramMap": {}, "defaultParamMap": {}, **extra}
    (meta / "part-00000").write_text(json.dumps(record) + "\n")
    (meta / "_SUCCESS").write_text("")
    return folder


def _tar(folder) -> bytes:
    """The folder as model_to_bytes packs one: plain files under model/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(str(path), arcname=f"model/{path.relative_to(folder)}")
    return buffer.getvalue()


# The allowlist ---------------------------------------------------------------------------

def test_allowlist_is_every_readable_focalseq_stage():
    from pyspark.ml.util import MLReadable

    import focalseq.stages

    found = set()
    for info in pkgutil.iter_modules(focalseq.stages.__path__):
        module = importlib.import_module(f"focalseq.stages.{info.name}")
        found |= {f"{c.__module__}.{c.__name__}" for _, c in inspect.getmembers(module,
                                                                                 inspect.isclass)
                  if issubclass(c, MLReadable) and c.__module__ == module.__name__}
    assert persistence.FOCALSEQ_CLASSES == found


def test_the_logistic_baseline_and_a_mixed_pipeline_still_load(spark, tmp_path):
    """The allowed Spark names are the ones Spark really writes (JVM and Python pipelines)."""
    from pyspark.ml import PipelineModel

    from focalseq.pipelines.logistic import add_weights, logistic_pipeline
    from focalseq.stages.features import LineFeaturizer

    lines = spark.createDataFrame([([1, 2], [0.5, 1.0], "A"), ([3], [0.1, 0.0], "B")],
                                  "token_ids array<int>, shape array<float>, label string")
    fitted = logistic_pipeline(["A", "B"], 64, 2, max_iter=2).fit(add_weights(lines, {}))
    fitted.write().save(str(tmp_path / "logistic"))
    loaded = persistence.load_stage(str(tmp_path / "logistic"))
    assert [type(s).__name__ for s in loaded.stages] == [
        "SQLTransformer", "StringIndexerModel", "HashingTF", "VectorAssembler",
        "LogisticRegressionModel", "IndexToString"]
    mixed = PipelineModel([LineFeaturizer(), fitted.stages[1]])
    mixed.write().save(str(tmp_path / "mixed"))
    assert [type(s).__name__ for s in persistence.load_stage(str(tmp_path / "mixed")).stages] \
        == ["LineFeaturizer", "StringIndexerModel"]


# Crafted folders --------------------------------------------------------------------------

def test_a_root_class_outside_the_allowlist_is_refused_before_import(evil, tmp_path):
    folder = _metadata(tmp_path / "crafted", evil["cls"])
    with pytest.raises(ValueError) as info:
        storage.load_model("disk", path=str(folder))
    message = str(info.value)
    assert message.startswith(f"path {str(folder)!r}: ")
    assert repr(evil["cls"]) in message and "metadata/part-00000" in message
    assert "focalseq.stages.bilstm.BiLSTMModel" in message  # says what is allowed
    assert "org.apache.spark.ml.PipelineModel" in message
    assert _not_imported(evil)
    # The detector works: importing the module does leave its file.
    importlib.import_module(evil["module"])
    assert evil["marker"].exists()


@pytest.mark.parametrize("cls", ["os.system", "pyspark.ml.feature.Tokenizer",
                                 "org.apache.spark.ml.feature.Tokenizer", "subprocess.Popen",
                                 "stages.bilstm.BiLSTMModel", None])
def test_any_other_class_is_refused(tmp_path, cls):
    folder = _metadata(tmp_path / "crafted", cls)
    with pytest.raises(ValueError, match=f"names class {cls!r}"):
        persistence.load_stage(str(folder))


def test_a_crafted_stage_inside_a_saved_pipeline_is_refused(spark, evil, tmp_path):
    from pyspark.ml import PipelineModel

    from focalseq.stages.features import LineFeaturizer
    from focalseq.stages.split import DocumentSplitter

    path = tmp_path / "pipeline"
    PipelineModel([LineFeaturizer(), DocumentSplitter()]).write().save(str(path))
    persistence.check_saved(str(path))  # the genuine folder passes
    stage = sorted((path / "stages").iterdir())[1]
    part = next(p for p in (stage / "metadata").iterdir() if p.name.startswith("part-"))
    record = json.loads(part.read_text())
    part.write_text(json.dumps({**record, "class": evil["cls"]}) + "\n")
    (stage / "metadata" / f".{part.name}.crc").unlink()  # Hadoop would notice the edit
    with pytest.raises(ValueError, match=f"names class '{evil['cls']}' \\(in stages/1_"):
        storage.load_model("disk", path=str(path))
    assert _not_imported(evil)


def test_a_crafted_ensemble_member_is_refused(evil, tmp_path):
    root = _metadata(tmp_path / "ensemble", "focalseq.stages.ensemble.EnsembleModel",
                     numMembers=1)
    _metadata(root / "members" / "member_00", evil["cls"])
    with pytest.raises(ValueError, match="in members/member_00/metadata/part-00000"):
        persistence.load_stage(str(root))
    assert _not_imported(evil)


def test_a_second_metadata_record_is_refused(evil, tmp_path):
    """Spark's reader takes whichever record comes first: no folder may hold two."""
    folder = _metadata(tmp_path / "two", "focalseq.stages.features.LineFeaturizer")
    (folder / "metadata" / "part-00001").write_text(json.dumps({"class": evil["cls"]}))
    with pytest.raises(ValueError, match="metadata holds 2 metadata records"):
        persistence.load_stage(str(folder))
    assert _not_imported(evil)


def test_a_stage_uid_that_leaves_the_folder_is_refused(tmp_path):
    folder = _metadata(tmp_path / "p", "pyspark.ml.pipeline.PipelineModel",
                       paramMap={"stageUids": ["../../elsewhere"], "language": "Python"})
    with pytest.raises(ValueError, match=r"uid\(s\) \['../../elsewhere'\]"):
        persistence.load_stage(str(folder))


def test_a_network_naming_a_foreign_module_is_refused(evil, tmp_path):
    """Keras 2.15 imports the module a saved network's config names."""
    folder = _metadata(tmp_path / "m", "focalseq.stages.bilstm.BiLSTMModel")
    config = {"module": "keras.src.engine.functional", "class_name": "Functional",
              "config": {"layers": [{"module": evil["module"], "class_name": "Stage",
                                     "config": {}}]}}
    with zipfile.ZipFile(folder / "network.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    with pytest.raises(ValueError, match=f"network.keras names module '{evil['module']}'"):
        persistence.load_stage(str(folder))
    assert _not_imported(evil)


def test_an_hdf5_network_is_refused(tmp_path):
    """Keras loads a network.keras that is not a zip as legacy HDF5, without safe mode."""
    import h5py

    folder = _metadata(tmp_path / "m", "focalseq.stages.bilstm.BiLSTMModel")
    with h5py.File(folder / "network.keras", "w", userblock_size=512) as fh:
        fh.attrs["model_config"] = "{}"
    with pytest.raises(ValueError, match="network.keras is an HDF5 file, which Keras would "
                                         "load without its safe mode"):
        persistence.check_saved(str(folder))
    (folder / "network.keras").write_bytes(b"neither zip nor HDF5: Keras cannot load it")
    persistence.check_saved(str(folder))


def test_a_folder_without_metadata_says_what_was_expected(spark, tmp_path):
    from focalseq.pipelines import builders

    with pytest.raises(ValueError) as info:
        builders.load_model(spark, str(tmp_path))
    assert str(info.value) == (f"model {str(tmp_path)!r}: not a saved Spark ML stage (no "
                               "metadata/part-* file); expected a folder written by a "
                               "focalseq model's save")


# Redis --------------------------------------------------------------------------------------

def test_a_crafted_redis_value_is_refused_before_import(redis_client, evil, tmp_path):
    redis_client.set("crafted", _tar(_metadata(tmp_path / "crafted", evil["cls"])))
    with pytest.raises(ValueError, match=f"^redis key 'crafted': the saved model names class "
                                         f"'{evil['cls']}'"):
        storage.load_model("redis", redis_client=redis_client, redis_key="crafted")
    assert _not_imported(evil)


@pytest.mark.parametrize("value", [b"", b"garbage, not a model", b"\x1f\x8b\x08\x00junk"])
def test_garbage_redis_values_name_the_key(redis_client, value):
    redis_client.set("junk", value)
    with pytest.raises(ValueError, match="^redis key 'junk': not a focalseq model archive "
                                         r"\(.+\); expected the gzip'd tar"):
        storage.load_model("redis", redis_client=redis_client, redis_key="junk")


def test_a_truncated_redis_value_names_the_key(spark, redis_client):
    from focalseq.stages.features import LineFeaturizer

    storage.save_model(LineFeaturizer(maxTokens=7), "redis", redis_client=redis_client,
                       redis_key="whole")
    whole = redis_client.get("whole")
    assert storage.load_model("redis", redis_client=redis_client,
                              redis_key="whole").getMaxTokens() == 7
    for cut in (len(whole) // 2, len(whole) - 10):
        redis_client.set("cut", whole[:cut])
        with pytest.raises(ValueError, match="^redis key 'cut': not a focalseq model archive"):
            storage.load_model("redis", redis_client=redis_client, redis_key="cut")


def test_archive_entries_outside_model_are_still_refused(redis_client):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    redis_client.set("escape", buffer.getvalue())
    with pytest.raises(ValueError, match="^redis key 'escape': unexpected archive entry "
                                         "'model/../../escape.txt'"):
        storage.load_model("redis", redis_client=redis_client, redis_key="escape")


# MLflow --------------------------------------------------------------------------------------

def test_a_tampered_mlflow_model_is_refused_naming_its_uri(spark, mlflow_store, evil, tmp_path):
    from pyspark.ml import PipelineModel

    from focalseq.stages.features import LineFeaturizer

    uri = storage.save_model(PipelineModel([LineFeaturizer(maxTokens=5)]), "mlflow",
                             registered_model_name="tampered", alias="t")
    assert storage.load_model("mlflow", model_uri=uri).stages[0].getMaxTokens() == 5
    shared = tmp_path / "shared"  # a folder the executors see, copied to and removed
    shared.mkdir()
    assert storage.load_model("mlflow", model_uri=uri, tmp_dir=str(shared)) \
        .stages[0].getMaxTokens() == 5
    assert os.listdir(shared) == []
    parts = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "artifacts")
             for f in files if f.startswith("part-") and "LineFeaturizer" in d]
    assert len(parts) == 1
    with open(parts[0]) as fh:
        record = json.loads(fh.readline())
    with open(parts[0], "w") as fh:
        fh.write(json.dumps({**record, "class": evil["cls"]}) + "\n")
    with pytest.raises(ValueError, match=f"^MLflow model '{uri}': the saved model names "
                                         f"class '{evil['cls']}'"):
        storage.load_model("mlflow", model_uri=uri)
    assert _not_imported(evil)
    with pytest.raises(ValueError, match="^MLflow model 'models:/nothing@here': cannot "
                                         "download it"):
        storage.load_model("mlflow", model_uri="models:/nothing@here")
