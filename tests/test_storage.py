"""Model storage on disk, in MLflow and in a real redis-server: load and predict the same."""
import os

import pytest
from pyspark.ml import PipelineModel

from focalseq import storage

from trained_models import pipeline_lines


@pytest.fixture(scope="module")
def featurizing(spark, tmp_path_factory):
    """A cheap fitted PipelineModel of focalseq stages (parse + featurize) and its input."""
    from focalseq.config import load_config
    from focalseq.pipelines import builders
    from focalseq.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("corpus")
    files = generate_corpus(str(folder), n_docs=2, lines_per_doc=15, seed=3)
    cfg = load_config(None, ["features.vocab_size=512", "features.max_tokens=8"])
    pipeline = PipelineModel([builders.parser(cfg), builders.featurizer(cfg)])
    return pipeline, spark.createDataFrame([("file:" + f,) for f in files], "path string")


def _rows(df):
    return sorted(df.select("doc_id", "line_idx", "label", "token_ids", "shape").collect())


def _same_stages(a, b):
    assert [type(s) for s in a.stages] == [type(s) for s in b.stages]
    for x, y in zip(a.stages, b.stages):
        assert x.uid == y.uid
        assert {p.name: x.getOrDefault(p) for p in x.params if x.isDefined(p)} == \
            {p.name: y.getOrDefault(p) for p in y.params if y.isDefined(p)}


def test_disk_round_trip(featurizing, tmp_path):
    pipeline, files = featurizing
    where = storage.save_model(pipeline, "disk", path=str(tmp_path / "m"))
    loaded = storage.load_model("disk", path=where)
    _same_stages(pipeline, loaded)
    assert _rows(loaded.transform(files)) == _rows(pipeline.transform(files))
    with pytest.raises(Exception):  # Spark refuses to overwrite unless asked
        storage.save_model(pipeline, "disk", path=where, overwrite=False)


def test_redis_round_trip(featurizing, redis_client):
    pipeline, files = featurizing
    assert storage.save_model(pipeline, "redis", redis_client=redis_client,
                              redis_key="models:featurize") == "models:featurize"
    packed = redis_client.get("models:featurize")
    assert packed[:2] == b"\x1f\x8b"  # one gzip'd tar under the key
    loaded = storage.load_model("redis", redis_client=redis_client, redis_key="models:featurize")
    _same_stages(pipeline, loaded)
    assert _rows(loaded.transform(files)) == _rows(pipeline.transform(files))
    with pytest.raises(ValueError, match="exists and overwrite=False"):
        storage.save_model(pipeline, "redis", redis_client=redis_client,
                           redis_key="models:featurize", overwrite=False)
    with pytest.raises(ValueError, match="'models:missing' does not exist"):
        storage.load_model("redis", redis_client=redis_client, redis_key="models:missing")


def test_mlflow_round_trip(featurizing, mlflow_store):
    import mlflow

    pipeline, files = featurizing
    uri = storage.save_model(pipeline, "mlflow", registered_model_name="featurize",
                             alias="latest-test")
    assert uri == "models:/featurize@latest-test"
    assert mlflow.active_run() is None  # the run it started is closed again
    for loaded in (storage.load_model("mlflow", model_uri=uri),
                   storage.load_model("mlflow")):  # default: the newest run with a model
        _same_stages(pipeline, loaded)
    assert _rows(loaded.transform(files)) == _rows(pipeline.transform(files))


def test_invalid_storage_arguments(featurizing):
    pipeline, _ = featurizing
    with pytest.raises(ValueError, match=r"'s3' is not one of \['disk', 'mlflow', 'redis'\]"):
        storage.save_model(pipeline, "s3")
    with pytest.raises(ValueError, match="needs path"):
        storage.save_model(pipeline, "disk")
    with pytest.raises(ValueError, match="needs redis_client and redis_key"):
        storage.load_model("redis", redis_key="k")
    with pytest.raises(ValueError, match="not a saved Spark ML stage"):
        storage.load_model("disk", path=os.path.dirname(__file__))


@pytest.mark.slow
@pytest.mark.horovod
def test_trained_pipeline_from_redis_predicts_the_same(trained, pipeline_output, redis_client):
    pipeline = trained["pipeline"]
    expected = pipeline_output["lines"]  # the original pipeline over one corpus file
    assert expected
    storage.save_model(pipeline, "redis", redis_client=redis_client, redis_key="rnn_focal_f1")
    loaded = storage.load_model("redis", redis_client=redis_client, redis_key="rnn_focal_f1")
    assert [type(s).__name__ for s in loaded.stages] == \
        ["YeddaParser", "LineFeaturizer", "Windower", "BiLSTMModel"]
    assert loaded.stages[-1].network_bytes == pipeline.stages[-1].network_bytes
    assert pipeline_lines(loaded, pipeline_output["files"]) == expected
