"""The line-level baseline: Spark ML logistic regression on the line features.

featurized lines -> hashed token counts (HashingTF over the token ids) + shape features
-> VectorAssembler -> LogisticRegression (class weights through a weight column). All
stages are Spark's own, so the fitted PipelineModel persists like any other.
"""
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (HashingTF, IndexToString, SQLTransformer, StringIndexerModel,
                                VectorAssembler)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def logistic_pipeline(labels, vocab_size: int, n_shape: int, reg_param: float = 1e-3,
                      max_iter: int = 100) -> Pipeline:
    """A Pipeline over LineFeaturizer output that has a `weight` column (add_weights)."""
    shape_cols = [f"_s{i}" for i in range(n_shape)]
    expand = SQLTransformer(statement=(
        "SELECT *, transform(token_ids, t -> CAST(t AS STRING)) AS _tokens"
        + "".join(f", shape[{i}] AS {c}" for i, c in enumerate(shape_cols))
        + " FROM __THIS__"))
    indexer = StringIndexerModel.from_labels(list(labels), inputCol="label",
                                             outputCol="label_index", handleInvalid="keep")
    tf = HashingTF(inputCol="_tokens", outputCol="_tf", numFeatures=vocab_size)
    assembler = VectorAssembler(inputCols=["_tf"] + shape_cols, outputCol="features")
    lr = LogisticRegression(featuresCol="features", labelCol="label_index",
                            weightCol="weight", regParam=reg_param, maxIter=max_iter,
                            family="multinomial", predictionCol="prediction_index",
                            probabilityCol="probability")
    back = IndexToString(inputCol="prediction_index", outputCol="prediction",
                         labels=list(labels))
    return Pipeline(stages=[expand, indexer, tf, assembler, lr, back])


def add_weights(lines: DataFrame, class_weights: dict, label_col: str = "label") -> DataFrame:
    """Adds `weight` = class_weights[label] (1.0 for labels not listed)."""
    expr = F.lit(1.0)
    for label, weight in class_weights.items():
        expr = F.when(F.col(label_col) == F.lit(label), F.lit(float(weight))).otherwise(expr)
    return lines.withColumn("weight", expr)
