"""The pure parts of reading windows' Parquet in the Python workers."""
from focalseq.stages import parquet_input as pi


def test_partition_values_come_from_hive_folders_innermost_last():
    assert pi._partition_values("file:/w/split=test/part-0.parquet") == {"split": "test"}
    assert pi._partition_values("s3://b/k=a%20b/split=train/x.parquet") == {
        "k": "a b", "split": "train"}
    assert pi._partition_values("file:/w/part-0.parquet") == {}


def test_local_urls_map_to_local_paths():
    fs, path = pi._filesystem("file:///tmp/a%20b/x.parquet")
    assert type(fs).__name__ == "LocalFileSystem" and path == "/tmp/a b/x.parquet"
    assert pi._filesystem("file:/tmp/x.parquet")[1] == "/tmp/x.parquet"


def test_files_are_dealt_by_size_keeping_their_order(tmp_path):
    sizes = {"a": 50, "b": 10, "c": 40, "d": 10}
    files = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
        files.append((f"file://{tmp_path / name}", {}))
    bins = pi.packed(files, 2)
    names = [[f.rsplit("/", 1)[1] for f, _ in b] for b in bins]
    assert sorted(names) == [["a", "d"], ["b", "c"]]  # 60 and 50 bytes, each in order
    assert sorted(pi.packed(files, 10)) == sorted([f] for f in files)  # a task per file at most
    # Sizes unknown (files gone): dealt by count.
    gone = [(f"file://{tmp_path}/none{i}", {}) for i in range(3)]
    assert sorted(len(b) for b in pi.packed(gone, 2)) == [1, 2]


def test_one_filesystem_per_scheme_and_host_with_its_paths():
    fs, path = pi._filesystem("memory://bucket/a/split=test/x.parquet")
    fs2, path2 = pi._filesystem("memory://bucket/b/y%20z.parquet")
    assert fs is fs2  # not a new filesystem (an S3 client, say) per file
    assert path.endswith("bucket/a/split=test/x.parquet")
    assert path2.endswith("bucket/b/y z.parquet")
