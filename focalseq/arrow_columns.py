"""Arrow column helpers shared by the executor-side Arrow passes.

The data stages hand Arrow record batches between Spark and numpy. Three shapes recur:
runs of equal values (a document's contiguous rows), fixed-width list columns built from
an (n, k) array (Spark's ``array<... not null>``), and such a list column read back as a
dense (n, k) array. Each lives here once.

>>> import numpy as np
>>> runs(np.array([7, 7, 3, 3, 3, 7]))
(array([0, 2, 5]), array([2, 3, 1]))
>>> column = list_array(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32))
>>> column.to_pylist()
[[1, 2], [3, 4], [5, 6]]
>>> dense(column, 2).tolist()
[[1, 2], [3, 4], [5, 6]]
"""
import numpy as np


def runs(values) -> tuple:
    """(starts, lengths) of the runs of equal values in a 1-D array or Arrow column."""
    codes = values
    if not isinstance(values, np.ndarray):  # an Arrow array: compare dictionary codes
        codes = values.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    return starts, np.diff(np.concatenate([starts, [n]]))


def list_array(matrix: np.ndarray):
    """An (n, k) array as an Arrow list column of Spark's ``array<... not null>`` type."""
    import pyarrow as pa

    n, k = matrix.shape
    values = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    # Spark's array<... not null> is a list of non-null "element"s.
    kind = pa.list_(pa.field("element", values.type, nullable=False))
    offsets = np.arange(0, (n + 1) * k, k, dtype=np.int32) if k else \
        np.zeros(n + 1, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=kind)


def dense(column, width: int, dtype=None) -> np.ndarray:
    """A list column whose every row holds `width` values, as an (n, width) array.

    Raises:
        ValueError: the column's rows do not all hold `width` values.
    """
    values = column.flatten().to_numpy(zero_copy_only=False)
    rows = len(column)
    if len(values) != rows * width:
        raise ValueError(f"expected arrays of length {width} in every row, got "
                         f"{len(values)} values for {rows} rows")
    out = np.ascontiguousarray(values).reshape(rows, width)
    return out if dtype is None else out.astype(dtype, copy=False)
