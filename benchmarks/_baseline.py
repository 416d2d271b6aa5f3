"""The users' strong baseline in Spark ML: TF-IDF logistic regression with context.

Each line becomes a bag of lower-cased word tokens and character 2-, 3- and 4-grams; the
bags of the lines at offsets -2..+2 in the same document are added with the offset as a
prefix (so "nov" two lines above is a different feature from "nov" on the line itself).
The bag is hashed (HashingTF), weighted by IDF fitted on the training lines, scaled to unit
length, and classified by a multinomial `LogisticRegression` whose class weights
(balanced: N / (K n_c) from the training counts) come through a weight column. The L2
strength is chosen on the validation split by macro-F1 over the focal labels.
"""
import os
import time

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import HashingTF, IDF, NGram, Normalizer, RegexTokenizer
from pyspark.sql import Window
from pyspark.sql import functions as F

OFFSETS = (-2, -1, 0, 1, 2)
REG_PARAMS = (1e-4, 1e-3)


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


def class_weights(counts: dict, labels) -> dict:
    total, k = sum(counts[lab] for lab in labels), len(labels)
    return {lab: total / (k * max(counts[lab], 1)) for lab in labels}


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


def run_baseline(lines, labels, focal_labels, evaluator_factory, work_dir: str,
                 num_features=2 ** 19, reg_params=REG_PARAMS, max_iter=100, partitions=4):
    """Fits the context baseline; returns {"reports": {split: report}, "seconds", "reg_param"}.

    Args:
        lines: parsed lines with doc_id, line_idx, text, label and split.
        labels: label order; focal_labels: labels of the selection metric.
        evaluator_factory: split name -> PerLabelEvaluator (reports per-label metrics).
        work_dir: where the featurized lines are written (Parquet) and read back from.
        num_features: hashed feature space; reg_params: L2 grid for validation.
        max_iter: L-BFGS iterations; partitions: files per split (each partition sends a
            dense labels x features gradient to the driver, so few of them).
    """
    started = time.time()
    spark = lines.sparkSession
    data = context_bags(line_bags(lines.select("doc_id", "line_idx", "text", "label", "split")))
    counts = {r["label"]: r["count"] for r in
              lines.filter(F.col("split") == "train").groupBy("label").count().collect()}
    data = _with_label_columns(data, labels, class_weights(counts, labels))
    featurize = Pipeline(stages=[
        HashingTF(inputCol="features_in", outputCol="tf", numFeatures=num_features),
        IDF(inputCol="tf", outputCol="tfidf", minDocFreq=2),
        Normalizer(inputCol="tfidf", outputCol="features", p=2.0)])
    featurizer = featurize.fit(data.filter(F.col("split") == "train"))
    # Written once and read back: the context columns (window functions over documents)
    # are computed once, and nothing but LogisticRegression's own blocks stays in memory.
    path = os.path.join(os.path.abspath(work_dir), "baseline_features")
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
