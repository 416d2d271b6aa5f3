"""The users' strong baseline in Spark ML: TF-IDF logistic regression with context.

Each line becomes a bag of lower-cased word tokens and character 2-, 3- and 4-grams; the
bags of the lines at offsets -2..+2 in the same document are added with the offset as a
prefix (so "nov" two lines above is a different feature from "nov" on the line itself).
The bag is hashed (HashingTF) once for the whole corpus (:func:`featurize`); each fold
(:func:`fit_fold`) then weights it by IDF fitted on its training lines, scales it to unit
length, and classifies it by a multinomial `LogisticRegression` (the L2 strength with the
best focal macro-F1 on the fold's validation split when SETTINGS lists several).

Issue 14 (ablation in docs/results.md, run on a scikit-learn emulation of this pipeline
that reproduces its Vol117 figures): the L2 strength was on the wrong scale. Spark
minimises mean loss + regParam ||w||^2 / 2, scikit-learn C * sum of losses + ||w||^2 / 2,
so the users' C = 1 is regParam = 1 / (C n_train), about 1e-5 here; the old grid (1e-4,
1e-3) was 10-100 times stronger. Balanced class weights stay: without them Nomenclature
recall collapses (F1 0.27 at regParam 1e-5). regParam 1e-5 with balanced weights had the
best validation macro-F1 of the variants tried. Weaker L2 needs more L-BFGS iterations.
"""
import os
import time

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import HashingTF, IDF, NGram, Normalizer, RegexTokenizer
from pyspark.sql import Window
from pyspark.sql import functions as F

OFFSETS = (-2, -1, 0, 1, 2)
# The settings of the baseline; every fold of quality.py uses them, and a change of any
# retrains the ledger's runs. regParam 1e-5 is the users' C = 1 on ~100k training lines
# (one value, not a grid: each fit takes many minutes on a busy machine; the scikit-learn
# ablation in docs/results.md shows its neighbours); class_weighting: "none" or
# "balanced" (N / (K n_c)).
SETTINGS = {"num_features": 2 ** 20, "reg_params": [1e-5], "max_iter": 300,
            "class_weighting": "balanced"}


def line_bags(lines):
    """Adds `bag`: the line's word tokens and its character 2-4-grams (prefix c:)."""
    words = RegexTokenizer(inputCol="text", outputCol="_words", pattern=r"\w+|[^\w\s]",
                           gaps=False, toLowercase=True)
    # Spaces become "_" so that NGram's own space separator can be removed afterwards.
    chars = RegexTokenizer(inputCol="_spaced", outputCol="_chars", pattern="", gaps=True,
                           toLowercase=True, minTokenLength=1)
    grams = [NGram(n=n, inputCol="_chars", outputCol=f"_g{n}") for n in (2, 3, 4)]
    spaced = lines.withColumn("_spaced", F.regexp_replace(F.coalesce("text", F.lit("")),
                                                          r"\s", "_"))
    out = Pipeline(stages=[words, chars] + grams).fit(spaced).transform(spaced)
    # NGram joins characters with a space; "c:" keeps char grams apart from words.
    char_grams = F.transform(F.concat(*[F.col(f"_g{n}") for n in (2, 3, 4)]),
                             lambda g: F.concat(F.lit("c:"), F.regexp_replace(g, " ", "")))
    return out.withColumn("bag", F.concat(F.col("_words"), char_grams)).drop(
        "_spaced", "_words", "_chars", *[f"_g{n}" for n in (2, 3, 4)])


def context_bags(lines, offsets=OFFSETS):
    """Adds `features_in`: the bags of the lines at `offsets`, each token prefixed by its offset."""
    order = Window.partitionBy("doc_id").orderBy("line_idx")
    empty = F.array().cast("array<string>")
    parts = []
    for k in offsets:
        bag = F.col("bag") if k == 0 else (F.lag("bag", -k) if k < 0 else F.lead("bag", k)).over(order)
        parts.append(F.transform(F.coalesce(bag, empty), _prefixer(f"{k:+d}:")))
    return lines.withColumn("features_in", F.concat(*parts))


def _prefixer(prefix):
    # F.transform reads a second lambda argument as the element index, hence a closure.
    return lambda token: F.concat(F.lit(prefix), token)


def class_weights(counts: dict, labels, weighting: str) -> dict:
    """Per-label weights: 1 each ("none") or N / (K n_c) ("balanced")."""
    if weighting == "none":
        return {lab: 1.0 for lab in labels}
    if weighting == "balanced":
        total, k = sum(counts.get(lab, 0) for lab in labels), len(labels)
        return {lab: total / (k * max(counts.get(lab, 0), 1)) for lab in labels}
    raise ValueError(f"class_weighting={weighting!r}; valid: 'none', 'balanced'")


def _with_label_columns(df, labels, weights):
    index = F.lit(None).cast("double")
    weight = F.lit(None).cast("double")
    for i, lab in enumerate(labels):
        index = F.when(F.col("label") == lab, F.lit(float(i))).otherwise(index)
        weight = F.when(F.col("label") == lab, F.lit(float(weights[lab]))).otherwise(weight)
    return df.withColumn("label_index", index).withColumn("weight", weight)


def _predictions(model, df, labels):
    name = F.element_at(F.array(*[F.lit(lab) for lab in labels]),
                        F.col("prediction_index").cast("int") + 1)
    return model.transform(df).withColumn("prediction", name)


def featurize(lines, work_dir: str, num_features: int = SETTINGS["num_features"],
              partitions: int = 8) -> str:
    """Writes every line's hashed context bag (`tf`) to Parquet once; returns the path.

    Args:
        lines: parsed lines (doc_id, line_idx, text, label), no split needed.
        work_dir: the Parquet goes to <work_dir>/tf-<num_features>; an existing one is reused.
    """
    path = os.path.join(os.path.abspath(work_dir), f"tf-{num_features}")
    if os.path.exists(os.path.join(path, "_SUCCESS")):
        return path
    data = context_bags(line_bags(lines.select("doc_id", "line_idx", "text", "label")))
    tf = HashingTF(inputCol="features_in", outputCol="tf", numFeatures=num_features)
    # Written once and read back: the context columns (window functions over documents)
    # are computed once for all folds.
    (tf.transform(data).select("doc_id", "line_idx", "label", "tf")
     .repartition(partitions).write.mode("overwrite").parquet(path))
    return path


def fit_fold(spark, features_path: str, patterns, labels, evaluator_factory, work_dir: str,
             reg_params=None, max_iter=None, class_weighting=None, partitions: int = 4):
    """Fits the baseline on one split; returns {"reports": {split: report}, "seconds", "reg_param"}.

    Args:
        features_path: :func:`featurize` output.
        patterns: the fold's [split, regex] pairs over doc_id (first match wins).
        labels: label order. evaluator_factory: split name -> PerLabelEvaluator.
        work_dir: where the fold's weighted vectors are written (Parquet) and read back.
        reg_params, max_iter, class_weighting: default to SETTINGS.
        partitions: files per split (each partition sends a dense labels x features
            gradient to the driver, so few of them).
    """
    from focalseq.stages.split import DocumentSplitter

    reg_params = SETTINGS["reg_params"] if reg_params is None else reg_params
    max_iter = SETTINGS["max_iter"] if max_iter is None else max_iter
    weighting = SETTINGS["class_weighting"] if class_weighting is None else class_weighting
    started = time.time()
    data = DocumentSplitter(patterns=patterns).transform(spark.read.parquet(features_path))
    train = data.filter(F.col("split") == "train")
    counts = {r["label"]: r["count"] for r in train.groupBy("label").count().collect()}
    data = _with_label_columns(data, labels, class_weights(counts, labels, weighting))
    featurizer = Pipeline(stages=[
        IDF(inputCol="tf", outputCol="tfidf", minDocFreq=2),
        Normalizer(inputCol="tfidf", outputCol="features", p=2.0)]).fit(train)
    path = os.path.join(os.path.abspath(work_dir), "fold_features")
    (featurizer.transform(data)
     .select("doc_id", "line_idx", "split", "label", "label_index", "weight", "features")
     .repartition(partitions).write.mode("overwrite").partitionBy("split").parquet(path))

    def split_frame(name):
        return spark.read.parquet(os.path.join(path, f"split={name}"))

    best = None
    for reg in reg_params:
        lr = LogisticRegression(featuresCol="features", labelCol="label_index",
                                weightCol="weight", predictionCol="prediction_index",
                                family="multinomial", regParam=reg, elasticNetParam=0.0,
                                standardization=False, maxIter=max_iter)
        model = lr.fit(split_frame("train"))
        score = evaluator_factory("validation").evaluate(
            _predictions(model, split_frame("validation"), labels))
        if best is None or score > best[0]:
            best = (score, reg, model)
    _, reg, model = best
    reports = {}
    for split in ("validation", "test"):
        ev = evaluator_factory(split)
        ev.evaluate(_predictions(model, split_frame(split), labels))
        reports[split] = ev.last_report
    return {"reports": reports, "seconds": time.time() - started, "reg_param": reg}
