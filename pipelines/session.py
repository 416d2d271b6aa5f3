"""The Spark session the jobs use: local mode by default, any master by configuration.

Spark's console progress bars are off (`spark.ui.showConsoleProgress`; a `spark.conf`
entry turns them back on): they would interleave with the log's progress lines.

Importing this module also makes forked children leave the driver's Py4J connections
alone (`_fork_keeps_py4j_connections`).
"""
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


def _fork_keeps_py4j_connections():
    """Before a fork: Py4J's connection close stops shutting sockets down (see below).

    Horovod checks how it was built (`gloo_built`, `mpi_built`) in a forked child. While
    the child starts, CPython frees the states of the driver's other threads; their
    thread-local Py4J connections lose their last reference, and Py4J's finalizer closes
    each with `socket.shutdown`, which ends the TCP connection for the driver too
    (closing the child's copy of the descriptor alone would not). The JVM then drops
    it, and the driver's next command on it fails with `ConnectionResetError`, which
    Py4J logs with two tracebacks before it reconnects.

    The thread states are freed before any after-fork hook of the child runs, so this
    runs in the parent right before the fork; the child keeps the no-op and the parent
    gets Py4J's own helper back right after (`_py4j_shutdown_back`). A connection the
    parent closes in that instant is closed without the shutdown call, which closing
    its last descriptor does anyway. Only `py4j.clientserver` (the pinned-thread mode
    PySpark uses by default) is concerned.
    """
    clientserver = sys.modules.get("py4j.clientserver")
    if clientserver is not None:
        clientserver.quiet_shutdown = _no_shutdown


def _py4j_shutdown_back():
    """After a fork, in the parent: Py4J's own shutdown helper again."""
    clientserver = sys.modules.get("py4j.clientserver")
    if clientserver is not None:
        from py4j.java_gateway import quiet_shutdown

        clientserver.quiet_shutdown = quiet_shutdown


def _no_shutdown(socket_instance):
    """Py4J's `quiet_shutdown` while a process forks: leaves the connection up."""


# Once per process (a module is imported once); runs around every os.fork after it.
os.register_at_fork(before=_fork_keeps_py4j_connections,
                    after_in_parent=_py4j_shutdown_back)
