"""The workers' streaming input (focalseq.training.streaming), without Horovod or Spark:
row groups from Parquet footers, shards, equal steps, the buffered shuffle and its
determinism across a resume, and Keras consuming one epoch after the other."""
import numpy as np
import pytest

from focalseq.training.streaming import (RowGroup, WindowReader, equal_steps, epoch_rng,
                                         files_of_rank, parquet_files, row_groups, shard,
                                         shuffled_batches, training_batches)

W, K, F, LABELS = 4, 3, 2, ["A", "B"]
DIMS = {"window": W, "max_tokens": K, "n_shape": F, "labels": LABELS, "multi_label": False}


class IdReader:
    """Row groups of consecutive ids: group g holds ids offset[g] .. offset[g] + rows - 1.

    Records how many rows have been read and not yet handed out in a batch."""

    def __init__(self, groups):
        self.offsets = dict(zip(groups, np.cumsum([0] + [g.rows for g in groups])))
        self.read_rows = 0
        self.reads = []

    def read(self, group):
        self.reads.append(group)
        self.read_rows += group.rows
        start = self.offsets[group]
        return {"id": np.arange(start, start + group.rows)}


def _groups(sizes):
    return [RowGroup(f"f{i // 3}", i % 3, n) for i, n in enumerate(sizes)]


# Shards and steps -----------------------------------------------------------------------


def test_row_groups_are_dealt_round_robin_over_the_ranks():
    groups = _groups([10, 20, 30, 40, 50])
    assert [g.rows for g in shard(groups, 0, 2)] == [10, 30, 50]
    assert [g.rows for g in shard(groups, 1, 2)] == [20, 40]
    assert [g.rows for g in shard(groups, 2, 3)] == [30]
    assert files_of_rank(["a", "b", "c"], 1, 2) == ["b"]


def test_equal_steps_on_unequal_shards_follow_the_smallest():
    # Rank 0: 100 + 90 = 190 windows, rank 1: 60 + 10 = 70; 70 // 32 = 2 steps each.
    groups = _groups([100, 60, 90, 10])
    assert equal_steps(groups, 2, 32) == (2, 32)
    # One rank: everything, 260 // 32 = 8.
    assert equal_steps(groups, 1, 32) == (8, 32)
    # A shard smaller than a batch: one step of that many windows on every rank.
    assert equal_steps(groups, 2, 100) == (1, 70)


def test_a_worker_without_windows_is_an_error_listing_the_shards():
    with pytest.raises(ValueError, match=r"windows per worker: \[30, 0, 0\].*numProc"):
        equal_steps(_groups([30]), 3, 8)


def test_every_rank_can_run_the_shared_steps_with_full_batches():
    groups = _groups([100, 60, 90, 10, 33])
    steps, batch = equal_steps(groups, 2, 16)
    # Rank 0: 100 + 90 + 33 = 223 windows, rank 1: 60 + 10 = 70; 70 // 16 = 4.
    assert (steps, batch) == (4, 16)
    for rank in range(2):
        mine = shard(groups, rank, 2)
        stream = training_batches(IdReader(mine), mine, batch, steps, seed=5, rank=rank)
        for _ in range(3):  # epochs
            assert [len(next(stream)["id"]) for _ in range(steps)] == [batch] * steps


# The buffered shuffle -------------------------------------------------------------------


@pytest.mark.parametrize("sizes,batch,block", [
    ([7, 13, 5, 20, 1, 9], 4, 2), ([50], 8, 4), ([3, 3, 3], 5, 1), ([10, 20, 30], 64, 4)])
def test_one_pass_gives_every_row_exactly_once(sizes, batch, block):
    groups = _groups(sizes)
    reader = IdReader(groups)
    batches = list(shuffled_batches(groups, reader.read, batch, np.random.default_rng(0),
                                    block))
    ids = np.concatenate([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(sum(sizes)))
    # Full batches but the last, which holds the rest.
    assert [len(b["id"]) for b in batches[:-1]] == [batch] * (len(batches) - 1)
    assert len(batches) == -(-sum(sizes) // batch)


def test_the_buffer_holds_a_block_of_row_groups_not_the_shard():
    sizes = [30] * 20
    groups = _groups(sizes)
    reader = IdReader(groups)
    held = []
    handed_out = 0
    for b in shuffled_batches(groups, reader.read, 8, np.random.default_rng(1), 3):
        handed_out += len(b["id"])
        held.append(reader.read_rows - handed_out)
    # At most a block (3 x 30) plus the rows carried over from the block before (< 8).
    assert max(held) < 3 * 30 + 8
    assert sum(sizes) > 5 * max(held)


def test_row_groups_and_rows_are_mixed_across_groups():
    groups = _groups([20] * 8)
    reader = IdReader(groups)
    batches = list(shuffled_batches(groups, reader.read, 10, np.random.default_rng(2), 4))
    # Row groups are not read in file order ...
    assert reader.reads != groups
    # ... and a batch mixes rows of several row groups of its block.
    assert max(len(set((b["id"] // 20).tolist())) for b in batches) > 1


def test_the_order_is_seeded_by_seed_epoch_and_rank():
    groups = _groups([9, 9, 9, 9])

    def order(seed, epoch, rank):
        reader = IdReader(groups)
        return np.concatenate([b["id"] for b in shuffled_batches(
            groups, reader.read, 4, epoch_rng(seed, epoch, rank), 2)]).tolist()

    assert order(1, 0, 0) == order(1, 0, 0)
    assert len({tuple(order(*key)) for key in [(1, 0, 0), (1, 1, 0), (1, 0, 1), (2, 0, 0)]}) == 4


def test_resuming_at_an_epoch_reads_what_the_whole_run_read_in_it():
    groups = _groups([11, 7, 13, 5])
    steps, batch = 3, 6
    whole = training_batches(IdReader(groups), groups, batch, steps, seed=3, rank=1)
    by_epoch = [[next(whole)["id"].tolist() for _ in range(steps)] for _ in range(4)]
    resumed = training_batches(IdReader(groups), groups, batch, steps, seed=3, rank=1,
                               first_epoch=2)
    assert [[next(resumed)["id"].tolist() for _ in range(steps)] for _ in range(2)] == \
        by_epoch[2:]
    assert by_epoch[0] != by_epoch[1]


# Parquet ---------------------------------------------------------------------------------


def _write_windows(folder, n_rows, rows_per_group, seed=0, docs=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from focalseq.arrow_columns import list_array

    rng = np.random.default_rng(seed)
    columns = {
        "doc_id": pa.array(docs if docs is not None else [f"d{i // 3}" for i in range(n_rows)]),
        "start": pa.array(np.arange(n_rows, dtype=np.int32)),
        "n_valid": pa.array(np.full(n_rows, W, np.int32)),
        "token_ids": list_array(rng.integers(0, 50, (n_rows, W * K)).astype(np.int32)),
        "shape": list_array(rng.random((n_rows, W * F)).astype(np.float32)),
        "y": list_array(np.eye(2, dtype=np.float32)[rng.integers(0, 2, n_rows * W)]
                        .reshape(n_rows, W * 2)),
        "mask": list_array(np.ones((n_rows, W), np.float32)),
    }
    table = pa.table(columns)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(folder / "part-00000.parquet"), row_group_size=rows_per_group)
    return table


def test_row_groups_come_from_the_footers_and_read_back_dense(tmp_path):
    import fsspec

    fs = fsspec.filesystem("file")
    table = _write_windows(tmp_path / "data", 25, 10)
    (tmp_path / "data" / "_SUCCESS").write_text("")
    paths = parquet_files(fs, str(tmp_path / "data"))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["part-00000.parquet"]
    groups = row_groups(fs, paths)
    assert [(g.index, g.rows) for g in groups] == [(0, 10), (1, 10), (2, 5)]
    arrays = WindowReader(fs, DIMS).read(groups[1])
    assert sorted(arrays) == ["mask", "shape", "token_ids", "y"]
    assert arrays["token_ids"].shape == (10, W, K) and arrays["token_ids"].dtype == np.int32
    assert arrays["shape"].shape == (10, W, F) and arrays["y"].shape == (10, W, 2)
    expected = np.array(table.column("token_ids").to_pylist()[10:20]).reshape(10, W, K)
    np.testing.assert_array_equal(arrays["token_ids"], expected)
    assert parquet_files(fs, str(tmp_path / "absent")) == []


def test_a_file_is_read_row_group_by_row_group_in_order(tmp_path):
    import fsspec

    from focalseq.training.streaming import VALIDATION_COLUMNS

    fs = fsspec.filesystem("file")
    _write_windows(tmp_path / "val", 25, 10)
    reader = WindowReader(fs, DIMS, VALIDATION_COLUMNS)
    parts = list(reader.file_batches(str(tmp_path / "val" / "part-00000.parquet")))
    assert [len(p["start"]) for p in parts] == [10, 10, 5]
    assert np.concatenate([p["start"] for p in parts]).tolist() == list(range(25))
    assert parts[0]["doc_id"][:4].tolist() == ["d0", "d0", "d0", "d1"]


def test_keras_takes_each_epoch_after_the_last_from_one_stream(tmp_path):
    """fit over the endless dataset reads the stream in order, epoch 0's batches then
    epoch 1's, and no more than the prefetch ahead (a new iterator per epoch would drop
    the prefetched batches and shift every later epoch)."""
    import fsspec
    import tensorflow as tf

    from focalseq.training.network import build_network
    from focalseq.training.remote import _train_dataset

    fs = fsspec.filesystem("file")
    _write_windows(tmp_path / "train", 40, 8)
    groups = row_groups(fs, parquet_files(fs, str(tmp_path / "train")))
    steps, batch = equal_steps(groups, 1, 6)
    reader = WindowReader(fs, DIMS)
    consumed = []

    def recorded():
        for b in training_batches(reader, groups, batch, steps, seed=0, rank=0):
            consumed.append(b["token_ids"].copy())
            yield b

    net = build_network(W, K, F, 2, vocab_size=50, embedding_dim=4, hidden_size=4)
    net.compile(optimizer="sgd", loss="categorical_crossentropy")
    net.fit(_train_dataset(recorded(), batch, DIMS), epochs=2, steps_per_epoch=steps,
            verbose=0)
    expected = training_batches(reader, groups, batch, steps, seed=0, rank=0)
    for got in consumed[:2 * steps]:
        np.testing.assert_array_equal(got, next(expected)["token_ids"])
    # Prefetching reads at most a little ahead, never a whole epoch more.
    assert 2 * steps <= len(consumed) <= 2 * steps + 3
    # A restarted stream would begin epoch 1 with epoch 0's first batch.
    assert not np.array_equal(consumed[steps], consumed[0])
