"""Executor-side helpers shared by the Arrow UDFs of the data stages."""
import sys


def lighten_task_setup() -> None:
    """Makes PySpark's per-task setup of a reused Python worker cheap again.

    Before every task the worker calls ``importlib.invalidate_caches()``, and on Python
    3.10+ every zipimporter in ``sys.path_importer_cache`` then re-reads its archive's
    whole directory in pure Python: the workers import pyspark and py4j from zip files,
    so that is 15-40 importers re-reading pyspark.zip, about 60-150 ms of CPU per task
    and UDF. Dropping the cached zipimporters once the modules are imported removes that
    cost; a later import from the zips simply creates a new importer.
    """
    import zipimport

    cache = sys.path_importer_cache
    for path in [p for p, finder in cache.items() if isinstance(finder, zipimport.zipimporter)]:
        del cache[path]
