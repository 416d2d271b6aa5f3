"""One tiny trained ensemble (two BiLSTM members, seeds 0 and 1) shared by the tests of
evaluation, thresholds, ensembles, MLflow and storage.

A synthetic corpus (12 documents of about 60 lines) is turned into windows, and an
EnsembleEstimator trains its two members with real 2-process Horovod jobs (2 epochs, a
16-unit network). The result is built once per pytest session, however many modules
ask for it, because training dominates the time of these tests.

tests/conftest.py registers this module as a plugin, so its fixtures (`trained`,
`pipeline_output`) reach every test module without an import; importing a fixture into a
module would define it again there, and a session fixture defined twice is built twice.
"""
import os

import pytest


def _train(spark, folder) -> dict:
    from focalseq.config import load_config
    from focalseq.pipelines import builders
    from focalseq.pipelines.train import inference_pipeline
    from focalseq.stages.ensemble import EnsembleEstimator
    from focalseq.stages.parse import list_files, split_problems
    from focalseq.synthetic import generate_corpus

    # Fixed splits: 8 documents train, 2 validation, 2 test.
    patterns = '[["validation", "doc_0000[89]"], ["test", "doc_0001[01]"], ["train", ".*"]]'
    cfg = load_config(None, [f"output.dir={folder}", "features.vocab_size=4096",
                             f"data.split.patterns={patterns}"])
    files = generate_corpus(os.path.join(folder, "corpus"), n_docs=12, lines_per_doc=60, seed=0)
    # The stages of pipelines.prepare, kept in memory: fewer Spark jobs than writing
    # Parquet, reports and counts.
    parsed = builders.parser(cfg).transform(list_files(spark, files))
    lines, _ = split_problems(builders.splitter(cfg).transform(parsed))
    windows = builders.windower(cfg).transform(builders.featurizer(cfg).transform(lines))
    windows = windows.cache()
    estimator = EnsembleEstimator(
        epochs=2, hiddenSize=16, embeddingDim=16, vocabSize=4096, numProc=2, batchSize=16,
        learningRate=0.01, storePath=os.path.join(folder, "store"),
        focalLabels=cfg.focal_labels, memberParams=[{"seed": 0}, {"seed": 1}])
    ensemble = estimator.fit(windows.filter(windows.split.isin("train", "validation")))
    model = ensemble.members[0]
    return {"cfg": cfg, "windows": windows, "estimator": estimator, "ensemble": ensemble,
            "model": model, "predictions": model.transform(windows).cache(),
            "pipeline": inference_pipeline(cfg, model), "files": files}


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory) -> dict:
    """cfg, windows (cached DataFrame with a split column), estimator, ensemble, model
    (its first member), predictions (model over all windows, cached), pipeline (the
    inference PipelineModel around model), files (the corpus)."""
    return _train(spark, str(tmp_path_factory.mktemp("trained")))


def pipeline_lines(model, files_df) -> dict:
    """{(doc_id, line_idx): (prediction, probabilities)} of a pipeline over files."""
    return {(r["doc_id"], r["line_idx"]): (r["prediction"], tuple(r["probability"]))
            for r in model.transform(files_df).select(
                "doc_id", "line_idx", "prediction", "probability").collect()}


@pytest.fixture(scope="session")
def pipeline_output(trained, spark) -> dict:
    """The trained pipeline over one corpus file: {"path", "files" (a DataFrame),
    "lines" (see pipeline_lines)}, computed once per session."""
    path = "file:" + trained["files"][-1]
    files = spark.createDataFrame([(path,)], "path string")
    return {"path": path, "files": files, "lines": pipeline_lines(trained["pipeline"], files)}
