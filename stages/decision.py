"""The decision rule: per-label probabilities -> the predicted label (or label set).

One function, used by every stage that predicts (`BiLSTMModel`, `EnsembleModel`,
`ThresholdModel`), so a tuned `ThresholdModel` after a model and the model with the
tuned values set can never disagree.

- Single-label: argmax over ``log(max(p_j, LOG_FLOOR)) + logOffsets[j]``; ties go to the
  first label (as numpy's argmax).
- Multi-label: every label with ``p_j >= thresholds[j]`` (0.5 by default), joined by "|";
  "" for none.

>>> from pyspark.sql import functions as F
>>> df = spark.createDataFrame([([0.2, 0.5, 0.3],), ([0.45, 0.1, 0.45],)], ["p"])
>>> rule = decision_expr(F.col("p"), ["A", "B", "C"], False, [1.0, 0.0, 0.0])
>>> [r[0] for r in df.select(rule).collect()]  # log 0.2 + 1 > log 0.5
['A', 'A']
>>> rule = decision_expr(F.col("p"), ["A", "B", "C"], True, thresholds=[0.4, 0.4, 0.4])
>>> [r[0] for r in df.select(rule).collect()]
['B', 'A|C']
"""
from pyspark.sql import functions as F

LOG_FLOOR = 1e-12  # log-probabilities are taken of max(p, LOG_FLOOR)


def decision_expr(prob, labels, multi_label: bool, log_offsets=(), thresholds=()):
    """The prediction Column from a probability array Column in label order.

    Args:
        prob: array Column of per-label probabilities.
        labels: the label names, in the order of `prob`.
        multi_label: sigmoid head with label sets (thresholds) or softmax (offsets).
        log_offsets: single-label offsets, one per label (empty: none).
        thresholds: multi-label thresholds, one per label (empty: 0.5 each).

    Raises:
        ValueError: offsets or thresholds not one per label.
    """
    labels = list(labels)
    n = len(labels)
    if multi_label:
        th = list(thresholds) or [0.5] * n
        if len(th) != n:
            raise ValueError(f"thresholds: expected {n} values (one per label {labels}), "
                             f"got {len(th)}")
        return F.concat_ws("|", *[F.when(prob[j] >= F.lit(th[j]), F.lit(labels[j]))
                                  for j in range(n)])
    offsets = list(log_offsets) or [0.0] * n
    if len(offsets) != n:
        raise ValueError(f"logOffsets: expected {n} values (one per label {labels}), "
                         f"got {len(offsets)}")
    scores = [F.log(F.greatest(prob[j], F.lit(LOG_FLOOR))) + F.lit(offsets[j])
              for j in range(n)]
    best = F.greatest(*scores)
    expr = F.lit(labels[-1])
    for j in reversed(range(n)):
        expr = F.when(scores[j] == best, F.lit(labels[j])).otherwise(expr)
    return expr
