"""A worker's share of the run's windowed Parquet, read a few row groups at a time.

The estimator writes the training windows as Parquet files of `rowGroupBytes` row groups
(`focalseq.stages.bilstm`). Rank r of N owns the row groups r, r + N, r + 2N, ... of the
sorted files (the sharding petastorm uses). Each epoch the worker visits its row groups
in a seeded order (seed, epoch, rank), loads `BLOCK_ROW_GROUPS` of them at a time,
shuffles that block and cuts it into batches; the rows left over (fewer than a batch)
join the next block. So memory holds a block, never the shard, and every row is used
once per full pass.

Every rank takes the same number of steps per epoch, computed alike on every rank from
the row-group sizes in the files' footers: the smallest shard's windows // batch. A rank
never waits at a collective for another that ran out of data, and no collective is
needed to agree on it. An epoch's batches depend only on (seed, epoch, rank) and the
data, so a resumed run reads, from its first epoch on, what an uninterrupted run would.

The validation windows are written sorted by document, a document's windows in one file;
each rank reads whole files (`files_of_rank`), so every document is scored on one rank.

>>> groups = [RowGroup("a", 0, 100), RowGroup("a", 1, 60), RowGroup("b", 0, 90)]
>>> [g.rows for g in shard(groups, 0, 2)], [g.rows for g in shard(groups, 1, 2)]
([100, 90], [60])
>>> equal_steps(groups, 2, 32)  # the smaller shard (60 windows) sets the steps
(1, 32)
"""
import itertools
import logging
import posixpath
from dataclasses import dataclass

import numpy as np

from focalseq.arrow_columns import dense

logger = logging.getLogger(__name__)

# Row groups shuffled together: a block of this many is the most a worker holds of its
# shard (with the rows carried to the next block, fewer than one batch).
BLOCK_ROW_GROUPS = 4
TRAIN_COLUMNS = ("token_ids", "shape", "y", "mask")
VALIDATION_COLUMNS = ("doc_id", "start", "n_valid", "token_ids", "shape", "y", "mask")


@dataclass(frozen=True)
class RowGroup:
    """One row group: its file, its index in the file, its number of rows."""
    path: str
    index: int
    rows: int


def parquet_files(fs, folder: str) -> list:
    """The data files of a Parquet folder, sorted (Spark's _SUCCESS and hidden files left out)."""
    if not fs.exists(folder):
        return []
    paths = fs.glob(posixpath.join(folder, "*.parquet"))
    return sorted(p for p in paths if not posixpath.basename(p).startswith(("_", ".")))


def row_groups(fs, paths) -> list:
    """Every row group of `paths` in file order, from the footers alone."""
    import pyarrow.parquet as pq

    groups = []
    for path in paths:
        with fs.open(path, "rb") as fh:
            meta = pq.ParquetFile(fh).metadata
        groups.extend(RowGroup(path, i, meta.row_group(i).num_rows)
                      for i in range(meta.num_row_groups))
    return groups


def shard(groups: list, rank: int, size: int) -> list:
    """Rank `rank`'s row groups among `size` ranks: every size-th, from the rank-th."""
    return list(groups[rank::size])


def files_of_rank(paths: list, rank: int, size: int) -> list:
    """Rank `rank`'s whole files among `size` ranks (for data grouped by file)."""
    return list(paths[rank::size])


def equal_steps(groups: list, size: int, batch_size: int) -> tuple:
    """(steps per epoch, batch) the same for every rank, from all ranks' shard sizes.

    The batch is `batch_size`, or the smallest shard when that is smaller.

    Raises:
        ValueError: a rank's shard is empty; the message lists the shard sizes.
    """
    sizes = [sum(g.rows for g in shard(groups, r, size)) for r in range(size)]
    if min(sizes) == 0:
        raise ValueError(f"training data: some workers got no windows (windows per worker: "
                         f"{sizes}, from {len(groups)} row groups); use fewer workers "
                         "(numProc) or more training data")
    batch = min(batch_size, min(sizes))
    return min(sizes) // batch, batch


def epoch_rng(seed: int, epoch: int, rank: int) -> np.random.Generator:
    """The generator of one rank's order in one epoch: independent streams by key."""
    return np.random.default_rng([int(seed), int(epoch), int(rank)])


def shuffled_batches(groups: list, read, batch_size: int, rng: np.random.Generator,
                     block_row_groups: int = BLOCK_ROW_GROUPS):
    """One pass over `groups` in a shuffled order, as batches of dict-of-array rows.

    The row groups are visited in an order drawn from `rng`; `block_row_groups` of them
    are read (`read(group) -> {name: array}`) and shuffled together with the rows left
    from the block before. Every batch holds `batch_size` rows but the last, which holds
    the rest; every row comes exactly once.
    """
    order = rng.permutation(len(groups))
    carry = None
    for i in range(0, len(order), block_row_groups):
        parts = [read(groups[j]) for j in order[i:i + block_row_groups]]
        if carry is not None:
            parts.insert(0, carry)
        block = {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
                 for k in parts[0]}
        del parts
        n = len(next(iter(block.values())))
        perm = rng.permutation(n)
        block = {k: v[perm] for k, v in block.items()}
        full = n - n % batch_size
        for s in range(0, full, batch_size):
            yield {k: v[s:s + batch_size] for k, v in block.items()}
        carry = {k: v[full:] for k, v in block.items()} if full < n else None
    if carry is not None:
        yield carry


class WindowReader:
    """Reads row groups of windowed Parquet into dense numpy arrays.

    Args:
        fs: an fsspec filesystem (the run store's).
        dims: the windows' dimensions (window, max_tokens, n_shape, labels).
        columns: which columns to read (`TRAIN_COLUMNS` or `VALIDATION_COLUMNS`).
    """

    def __init__(self, fs, dims: dict, columns=TRAIN_COLUMNS):
        W, L = dims["window"], len(dims["labels"])
        self.fs, self.columns, self.window = fs, list(columns), W
        self.shapes = {"token_ids": (W, dims["max_tokens"]), "shape": (W, dims["n_shape"]),
                       "y": (W, L), "mask": (W,)}
        self.dtypes = {"token_ids": np.int32, "shape": np.float32, "y": np.float32,
                       "mask": np.float32}

    def read(self, group: RowGroup) -> dict:
        import pyarrow.parquet as pq

        with self.fs.open(group.path, "rb") as fh:
            table = pq.ParquetFile(fh).read_row_group(group.index, columns=self.columns,
                                                      use_threads=False)
        return self.arrays(table)

    def arrays(self, table) -> dict:
        """An Arrow table of windows as {column: array}, window columns (rows, W, ...)."""
        out = {}
        for name in self.columns:
            column = table.column(name).combine_chunks()
            if name in self.shapes:
                shape = self.shapes[name]
                out[name] = dense(column, int(np.prod(shape)), self.dtypes[name]) \
                    .reshape((-1,) + shape)
            else:
                out[name] = column.to_numpy(zero_copy_only=False)
        return out

    def file_batches(self, path: str):
        """The row groups of one file, in order, each as arrays."""
        import pyarrow.parquet as pq

        with self.fs.open(path, "rb") as fh:
            parquet = pq.ParquetFile(fh)
            for i in range(parquet.metadata.num_row_groups):
                yield self.arrays(parquet.read_row_group(i, columns=self.columns,
                                                         use_threads=False))


def training_batches(reader: WindowReader, groups: list, batch_size: int, steps: int,
                     seed: int, rank: int, first_epoch: int = 0):
    """Endless batches: `steps` of each epoch from `first_epoch` on, for one rank.

    Epoch e's batches are the first `steps` of `shuffled_batches` with `epoch_rng(seed,
    e, rank)`: the same whether the run started at epoch 0 or resumed at e.
    """
    for epoch in itertools.count(first_epoch):
        batches = shuffled_batches(groups, reader.read, batch_size,
                                   epoch_rng(seed, epoch, rank))
        yield from itertools.islice(batches, steps)
        batches.close()  # the rest of the shard is not read this epoch
