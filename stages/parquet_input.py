"""Windows read from their Parquet files by the Python workers themselves.

When the DataFrame given to a model's transform is a plain scan of Parquet files (for
example ``spark.read.parquet(windows_dir)``, with columns selected or dropped, filtered on
partition columns only), the Python workers that run the network can read those files
directly with pyarrow instead of receiving the rows from the JVM. That skips the JVM's
Parquet decode and its rows-to-Arrow hand-over: for a million lines, about a second of
the two that Spark added to the network's time on two cores (see
benchmarks/predict_throughput.py and docs/training.md). Petastorm reads the training
windows the same way.

A filter on partition columns (``split == "test"``) keeps or drops whole files, so Spark
lists the files it keeps (a job that reads only their footers) and Python reads those.
Anything else (a filter on the rows, a join, a computed column, a format other than
Parquet, files the driver cannot open with pyarrow) keeps the general path:
`parquet_files` returns None. A hive-style partition column the model needs (``split``)
is taken from the file's path (``.../split=test/part-0.parquet``), as Spark does.

Documents stay together: each file is read whole, in order, by one task, so the windows
of a document written into one file (as the Windower writes them) arrive together.
"""
import logging
import re
from functools import lru_cache
from urllib.parse import unquote

from pyspark.sql.types import StringType

logger = logging.getLogger(__name__)

_PLAN_NODES = {"LogicalRelation", "Project", "Filter"}


def parquet_files(dataset, columns):
    """[(path, {partition column: value})] behind `dataset`, or None (use the JVM).

    None unless the optimized plan is a Parquet relation under projections of plain
    columns and filters on partition columns, every needed column is in the files or a
    string partition column, and the first file opens with pyarrow from the driver.
    """
    try:
        plan = dataset._jdf.queryExecution().optimizedPlan()
        found = _plain_relation(plan)
    except Exception as exc:  # noqa: BLE001 - any py4j surprise: the general path
        logger.debug("direct Parquet read not possible: %s", exc)
        return None
    if found is None:
        return None
    relation, filtered = found
    partition = list(relation.partitionSchema().fieldNames())
    for name in partition:
        if name in columns and not isinstance(dataset.schema[name].dataType, StringType):
            return None  # values from the path are strings
    if filtered:
        # Only partition columns are filtered (checked by _plain_relation), so the filter
        # keeps or drops whole files: Spark prunes them, and reading no column of the
        # remaining files costs their footers only.
        from pyspark.sql import functions as F

        files = sorted(r[0] for r in dataset.select(F.input_file_name()).distinct().collect())
    else:
        files = sorted(dataset.inputFiles())
    if not files:
        return None
    try:
        import pyarrow.parquet as pq

        fs, path = _filesystem(files[0])
        with fs.open_input_file(path) as fh:
            names = set(pq.ParquetFile(fh).schema_arrow.names)
    except Exception as exc:  # noqa: BLE001 - e.g. credentials only the JVM has
        logger.info("windows read through the JVM: pyarrow cannot open %s (%s)", files[0], exc)
        return None
    missing = [c for c in columns if c not in names and c not in partition]
    if missing:
        return None
    return [(f, {k: v for k, v in _partition_values(f).items() if k in partition})
            for f in files]


def _plain_relation(plan):
    """(HadoopFsRelation, filtered) of a Parquet scan under attribute-only projections
    and filters on partition columns only, or None."""
    node, filter_columns, filtered = plan, set(), False
    while True:
        kind = node.getClass().getSimpleName()
        if kind not in _PLAN_NODES:
            return None
        if kind == "Project":
            for expr in _scala_list(node.projectList()):
                if expr.getClass().getSimpleName() != "AttributeReference":
                    return None
            node = node.child()
            continue
        if kind == "Filter":
            condition = node.condition()
            names = {a.name() for a in _scala_list(condition.references())}
            if not condition.deterministic() or not names:
                return None  # rand() and the like keep or drop rows, not files
            filter_columns |= names
            filtered = True
            node = node.child()
            continue
        relation = node.relation()
        if relation.getClass().getSimpleName() != "HadoopFsRelation":
            return None
        if "Parquet" not in relation.fileFormat().getClass().getSimpleName():
            return None
        if not filter_columns <= set(relation.partitionSchema().fieldNames()):
            return None  # a filter on the files' rows: Spark must apply it
        return relation, filtered


def _scala_list(seq) -> list:
    it, out = seq.iterator(), []
    while it.hasNext():
        out.append(it.next())
    return out


_PARTITION = re.compile(r"^([^=/]+)=([^/]*)$")


def _partition_values(path: str) -> dict:
    """Hive-style `name=value` folders of a file's path (the innermost wins)."""
    values = {}
    for part in path.split("/")[:-1]:
        m = _PARTITION.match(part)
        if m:
            values[unquote(m.group(1))] = unquote(m.group(2))
    return values


def _filesystem(url: str):
    """(pyarrow filesystem, path in it) for a URL Spark listed (file:, hdfs:, s3a:, ...);
    one filesystem object per scheme and host in a process."""
    from urllib.parse import urlsplit

    if url.startswith("file:"):
        return _local(), unquote(re.sub(r"^file:(//)?", "", url))
    if url.startswith(("s3a:", "s3n:")):
        url = "s3:" + url.split(":", 1)[1]
    parts = urlsplit(url)
    fs, prefix = _remote(f"{parts.scheme}://{parts.netloc}", url)
    return fs, prefix + unquote(parts.path).lstrip("/") if prefix else unquote(parts.path)


@lru_cache(maxsize=None)
def _local():
    from pyarrow import fs as pafs

    return pafs.LocalFileSystem()


_REMOTE = {}


def _remote(root: str, example: str):
    """(filesystem, how its paths start) for the scheme and host `root`, learned once
    from the path pyarrow (or fsspec) gives for `example`, a URL under `root`."""
    if root not in _REMOTE:
        _REMOTE[root] = _open_remote(example)
    return _REMOTE[root]


def _open_remote(example: str):
    from urllib.parse import urlsplit

    from pyarrow import fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(example)
    except Exception:  # noqa: BLE001 - schemes pyarrow lacks: through fsspec
        import fsspec

        inner, path = fsspec.core.url_to_fs(example)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(inner))
    tail = unquote(urlsplit(example).path).lstrip("/")
    return fs, path[:len(path) - len(tail)] if tail and path.endswith(tail) else ""


def packed(files, tasks: int) -> list:
    """The files dealt into at most `tasks` lists of similar total size, order kept."""
    tasks = max(1, min(tasks, len(files)))
    sizes = _sizes([f for f, _ in files])
    bins, totals = [[] for _ in range(tasks)], [0] * tasks
    for i in sorted(range(len(files)), key=lambda i: -sizes[i]):
        j = totals.index(min(totals))
        bins[j].append(i)
        totals[j] += sizes[i]
    return [[files[i] for i in sorted(b)] for b in bins if b]


def _sizes(urls) -> list:
    """Each file's size in bytes, asked in one call (the files share a filesystem); all 1
    (deal by count) when that fails."""
    try:
        fs = _filesystem(urls[0])[0]
        infos = fs.get_file_info([_filesystem(u)[1] for u in urls])
        return [max(int(i.size or 0), 1) for i in infos]
    except Exception:  # noqa: BLE001 - sizes unknown: every file counts as one unit
        return [1] * len(urls)


def read_batches(assignments, columns, schema, batch_rows: int):
    """Arrow batches of `columns` (cast to `schema`) from the files of each assignment.

    `assignments` are Arrow batches of a `files` column (a list of [path, partition JSON]
    pairs per row). Row groups stream one batch at a time: memory holds one batch of a
    file, not the file.
    """
    import json

    import pyarrow.parquet as pq

    for assignment in assignments:
        for files in assignment.column("files").to_pylist():
            for path, partition_json in files:
                partition = json.loads(partition_json)
                try:
                    fs, local = _filesystem(path)
                    fh = fs.open_input_file(local)
                except Exception as exc:
                    raise OSError(f"{path}: pyarrow cannot open it in this executor ({exc}); "
                                  "transform with directRead=False to read it through "
                                  "Spark") from exc
                with fh:
                    yield from _file_batches(pq.ParquetFile(fh), partition, columns, schema,
                                             batch_rows)


def _file_batches(parquet, partition, columns, schema, batch_rows):
    import pyarrow as pa

    in_file = [c for c in columns if c not in partition or c in parquet.schema_arrow.names]
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=in_file):
        arrays = []
        for field in schema:
            if field.name in in_file:
                arrays.append(batch.column(field.name).cast(field.type))
            else:  # a partition column: its value from the path
                arrays.append(pa.array([partition[field.name]] * batch.num_rows, field.type))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
