"""The Spark session the jobs use: local mode by default, any master by configuration."""
import os
import sys


def get_spark(master: str = "local[2]", app_name: str = "focalseq", conf: dict = None):
    """Returns the active session or builds one. On a cluster (spark-submit, Databricks)
    the existing session is reused and `master` is ignored."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Executors must run the same interpreter (and so the same pinned packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (SparkSession.builder.appName(app_name)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.shuffle.partitions", "8")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "4g"))
    # Under spark-submit the JVM launched this interpreter (PYSPARK_GATEWAY_PORT is set)
    # and the submit command's --master wins.
    if master and "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
