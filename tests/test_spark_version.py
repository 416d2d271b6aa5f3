"""The Spark a test environment promises, and the Spark-version-dependent path of the
Windower (applyInArrow on Spark 4.0, applyInPandas on 3.5) on a hand-worked example.

`make test` runs this file twice: in the main .venv (pyspark of
requirements/constraints.txt, 4.0) and in .venv-spark35 (scripts/setup_spark35.sh:
pyspark of requirements/spark35.txt, 3.5, the Spark of Databricks 15.4 LTS ML, EMR 7 and
Dataproc 2.2).
"""
import os
import random
import re
import sysconfig

import pyspark
from pyspark.sql import GroupedData
from pyspark.sql import functions as F

from focalseq.stages.windows import Windower
from test_stages_windows import LABELS, SCHEMA, _line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The file scripts/setup_spark35.sh writes into .venv-spark35 (and nowhere else) to put
# the main .venv's packages behind its own pyspark.
SPARK35_MARKER = "zz_focalseq_main_venv.pth"


def _pinned_spark(requirements):
    """(major, minor) of the pyspark== pin in requirements/<requirements>."""
    with open(os.path.join(ROOT, "requirements", requirements)) as f:
        found = re.search(r"^pyspark==(\d+)\.(\d+)\.", f.read(), re.M)
    assert found, f"requirements/{requirements} pins no pyspark"
    return tuple(map(int, found.groups()))


def _promised_spark():
    in_spark35 = os.path.isfile(os.path.join(sysconfig.get_path("purelib"), SPARK35_MARKER))
    return _pinned_spark("spark35.txt" if in_spark35 else "constraints.txt")


def _running_spark():
    return tuple(map(int, pyspark.__version__.split(".")[:2]))


def test_the_environment_runs_the_spark_it_promises(spark):
    promised = _promised_spark()
    assert _running_spark() == promised, (pyspark.__version__, promised)
    # The JVM too: the driver, and the executors (their Python imports pyspark too).
    assert tuple(map(int, spark.version.split(".")[:2])) == promised, spark.version
    seen = spark.sparkContext.parallelize(range(2), 2).map(
        lambda _: __import__("pyspark").__version__).distinct().collect()
    assert seen == [pyspark.__version__]
    # Which Windower path the next test takes here: applyInArrow exists from 4.0 on.
    assert hasattr(GroupedData, "applyInArrow") == (promised >= (4, 0))


# doc_a: 5 lines, window 3, stride 2 -> windows start at lines 0 and 2 (the last window
# ends on the last line, overlapping the first by one line). doc_b: 2 lines, one window
# of 2 real lines and 1 padding row. doc_d: 2 lines without labels (prediction input):
# all-zero targets. doc_c: 1 line.
DOCS = {"doc_a": ["Nomenclature", "Description", "Description", "Misc-exposition",
                  "Misc-exposition"],
        "doc_b": ["Misc-exposition", "Nomenclature"],
        "doc_c": ["Description"],
        "doc_d": [None, None]}
SPLITS = {"doc_a": "train", "doc_b": "train", "doc_c": "test", "doc_d": "test"}
STARTS = {"doc_a": [0, 2], "doc_b": [0], "doc_c": [0], "doc_d": [0]}
WINDOW, STRIDE = 3, 2


def _expected_windows():
    """The windows of DOCS, computed line by line from the lines themselves."""
    out = {}
    for doc, labels in DOCS.items():
        lines = [_line(doc, i, len(labels), lab) for i, lab in enumerate(labels)]
        for start in STARTS[doc]:
            rows = lines[start:start + WINDOW]
            pad = WINDOW - len(rows)
            one_hot = [[float(lab == name) for name in LABELS] for lab in
                       (r[3] for r in rows)]
            out[(doc, start)] = {
                "doc_id": doc, "split": SPLITS[doc], "start": start, "n_valid": len(rows),
                "token_ids": sum((r[4] for r in rows), []) + [0, 0] * pad,
                "shape": [r[5][0] for r in rows] + [0.0] * pad,
                "y": sum(one_hot, []) + [0.0] * len(LABELS) * pad,
                "mask": [1.0] * len(rows) + [0.0] * pad}
    return out


def test_windows_of_lines_in_any_order_match_a_hand_computation(spark):
    rows = [_line(doc, i, len(labels), lab) for doc, labels in DOCS.items()
            for i, lab in enumerate(labels)]
    with_split = F.create_map(*[F.lit(x) for kv in SPLITS.items() for x in kv])
    shuffled = (spark.createDataFrame(random.Random(3).sample(rows, len(rows)), SCHEMA)
                .repartition(3).withColumn("split", with_split[F.col("doc_id")]))
    out = Windower(labels=LABELS, windowSize=WINDOW, stride=STRIDE, inputOrder="any") \
        .transform(shuffled)
    assert out.columns == ["doc_id", "split", "start", "n_valid", "token_ids", "shape",
                           "y", "mask"]
    got = {(r["doc_id"], r["start"]): r.asDict() for r in out.collect()}
    assert got == _expected_windows()
    # The same windows as the in-place path over the same lines in document order.
    in_order = (spark.createDataFrame(rows, SCHEMA).coalesce(1)
                .withColumn("split", with_split[F.col("doc_id")]))
    grouped = Windower(labels=LABELS, windowSize=WINDOW, stride=STRIDE).transform(in_order)
    assert {(r["doc_id"], r["start"]): r.asDict() for r in grouped.collect()} == got
