# Databricks notebook source
# MAGIC %md
# MAGIC # focalseq quickstart: train a rare-label line classifier on annotated files
# MAGIC
# MAGIC Runs the whole pipeline through the Python API on a corpus path: parse the YEDDA
# MAGIC files, window them, train the BiLSTM with Horovod across the cluster's executors,
# MAGIC evaluate per label, and log everything to MLflow. Locally the same file runs as a
# MAGIC script: `python notebooks/focalseq_quickstart.py --corpus 'path/*.ann'`.

# COMMAND ----------

import argparse
import posixpath

try:  # Databricks: widgets and the notebook's session
    dbutils.widgets.text("corpus", "dbfs:/data/skol/**/*.ann")  # noqa: F821
    # A URL of the shared store: every path goes through Spark's or fsspec's filesystems.
    dbutils.widgets.text("work_dir", "dbfs:/focalseq/quickstart")  # noqa: F821
    dbutils.widgets.text("epochs", "6")  # noqa: F821
    dbutils.widgets.text("num_workers", "2")  # noqa: F821
    args = argparse.Namespace(**{k: dbutils.widgets.get(k)  # noqa: F821
                                 for k in ("corpus", "work_dir", "epochs", "num_workers")})
except NameError:  # a plain Python run
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=None,
                        help="annotated files or glob (default: a generated synthetic corpus)")
    parser.add_argument("--work_dir", default="runs/notebook")
    parser.add_argument("--epochs", default="6")
    parser.add_argument("--num_workers", default="2")
    args = parser.parse_args()

if not args.corpus:
    from focalseq.synthetic import generate_corpus

    # Written through fsspec, so work_dir may be a URL (dbfs:/, s3://, file://).
    generate_corpus(posixpath.join(args.work_dir, "corpus"), n_docs=40, lines_per_doc=120)
    args.corpus = posixpath.join(args.work_dir, "corpus", "*.ann")
print(f"corpus: {args.corpus}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Train with soft-F1 over the two rare labels

# COMMAND ----------

from focalseq import SkolClassifierV2

classifier = SkolClassifierV2(
    input_source="files", file_paths=[args.corpus], model_type="rnn",
    window_size=16, prediction_stride=8, hidden_size=64, num_layers=1, dropout=0.2,
    epochs=int(args.epochs), batch_size=16, num_workers=int(args.num_workers),
    focal_labels=["Nomenclature", "Description"],
    model_storage="disk", model_path=posixpath.join(args.work_dir, "model"),
    work_dir=args.work_dir, verbosity=1)
results = classifier.fit()

# COMMAND ----------

# MAGIC %md
# MAGIC ## Per-label results (also in MLflow under the printed run id)

# COMMAND ----------

for label in ("Nomenclature", "Description", "Misc-exposition"):
    stats = results["test_stats"]
    print(f"{label:16s} P {stats[label + '_precision']:.3f}  R {stats[label + '_recall']:.3f}"
          f"  F1 {stats[label + '_f1']:.3f}  n {stats[label + '_support']}")
print("MLflow run:", results["mlflow_run_id"])

# COMMAND ----------

# MAGIC %md
# MAGIC ## Label new files

# COMMAND ----------

predictions = classifier.predict([args.corpus])
predictions.groupBy("prediction").count().show()
