"""The step-time model that chooses the collective (focalseq.training.collective_model),
against numbers worked by hand, and the worker's choice from it (no Spark, no Horovod)."""
import math

import pytest

from focalseq.training import collective_model as cm

# Hand figures: 1 MB, 1 GB/s, 0.1 ms a hop.
MB, GBS, HOP = 1e6, 1e9, 1e-4


def test_ring_allreduce_by_hand():
    # N=2: 2(N-1) a + 2(N-1)/N bytes/bw = 2e-4 + 1 * 1e6/1e9 = 2e-4 + 1e-3 = 1.2 ms
    assert cm.ring_allreduce_seconds(MB, 2, GBS, HOP) == pytest.approx(1.2e-3)
    # N=4: 6e-4 + 2*3/4 * 1e-3 = 6e-4 + 1.5e-3 = 2.1 ms; plus a 1 ms overhead once
    assert cm.ring_allreduce_seconds(MB, 4, GBS, HOP) == pytest.approx(2.1e-3)
    assert cm.ring_allreduce_seconds(MB, 4, GBS, HOP, 1e-3) == pytest.approx(3.1e-3)
    assert cm.ring_allreduce_seconds(MB, 1, GBS, HOP, 1e-3) == 0.0


def test_ring_allgather_by_hand():
    # N=2: (N-1) a + (N-1)/N * N * m/bw = 1e-4 + 1e-3 = 1.1 ms
    assert cm.ring_allgather_seconds(MB, 2, GBS, HOP) == pytest.approx(1.1e-3)
    # N=4: 3e-4 + 3e-3 = 3.3 ms
    assert cm.ring_allgather_seconds(MB, 4, GBS, HOP) == pytest.approx(3.3e-3)


def test_allgather_volume_grows_allreduce_volume_does_not():
    def volume(seconds):  # the bandwidth term alone (no latency)
        return seconds * GBS / MB

    for n in (2, 8, 128, 4096):
        assert volume(cm.ring_allreduce_seconds(MB, n, GBS, 0)) < 2
        assert volume(cm.ring_allgather_seconds(MB, n, GBS, 0)) == pytest.approx(n - 1)


# Dense 1 MB, 1000 embedding rows of 1000 bytes a step, a 100 MB embedding; overheads
# 1 ms an allreduce, 2 ms an allgather; 10 ms of compute a step.
FIG = cm.Figures(compute_per_window=1e-3, batch=10, dense_bytes=MB, sparse_rows=1000,
                 row_bytes=1000, embedding_bytes=100 * MB, bandwidth=GBS, latency=HOP,
                 allreduce_overhead=1e-3, allgather_overhead=2e-3)


def test_both_averagings_by_hand_at_two_workers():
    # packed: 1e6 + 1000 * (1000 + 4) = 2,004,000 bytes a rank
    assert cm.packed_bytes(FIG) == 2_004_000
    # allgather: 2e-3 + 1e-4 + 2.004e-3 = 4.104 ms
    assert cm.allgather_seconds(2, FIG) == pytest.approx(4.104e-3)
    # Horovod: allreduce of D 1e-3 + 2e-4 + 1e-3 = 2.2 ms; values allgather
    # 2e-3 + 1e-4 + 1e-3 = 3.1 ms; int64 indices 2e-3 + 1e-4 + 8e-6 = 2.108 ms: 7.408 ms
    assert cm.allreduce_seconds(2, FIG, sparse_as_dense=False) == pytest.approx(7.408e-3)
    # sparse_as_dense: one allreduce of 101 MB: 1e-3 + 2e-4 + 0.101 = 102.2 ms
    assert cm.allreduce_seconds(2, FIG, sparse_as_dense=True) == pytest.approx(0.1022)
    assert cm.allreduce_seconds(2, FIG) == pytest.approx(7.408e-3)
    assert not cm.sparse_as_dense(2, FIG)
    # efficiency: 10 ms / (10 + 4.104) ms
    assert cm.efficiency("allgather", 2, FIG) == pytest.approx(10 / 14.104)
    assert cm.efficiency("allreduce", 2, FIG) == pytest.approx(10 / 17.408)
    assert cm.efficiency("allgather", 1, FIG) == 1.0


def test_choose_collective_at_both_ends():
    assert cm.choose_collective(2, FIG) == "allgather"
    # 1024 workers: the allgather receives 1023 * 2.004 MB (2.05 s); the dense
    # allreduce ~ 1 ms + 2*1023*0.1 ms + 2*1023/1024 * 101 ms ~ 0.41 s
    assert cm.allgather_seconds(1024, FIG) == pytest.approx(2e-3 + 1023e-4 + 1023 * 2.004e-3)
    assert cm.choose_collective(1024, FIG) == "allreduce"
    assert cm.sparse_as_dense(1024, FIG)


def test_switch_point_by_hand_dense_only():
    # Equal overheads, no embedding: allgather - allreduce = (N-1) [D (N-2)/(N bw) - a],
    # positive once (N-2)/N > a bw / D: 0.1 at 1 GB/s (N=3), 0.5 at 5 GB/s (N=5), and
    # never below 1 at 10 GB/s.
    f = cm.Figures(dense_bytes=MB, latency=HOP, allreduce_overhead=1e-3,
                   allgather_overhead=1e-3)
    assert cm.switch_point(cm.replace(f, bandwidth=1e9)) == 3
    assert cm.switch_point(cm.replace(f, bandwidth=5e9)) == 5
    assert cm.switch_point(cm.replace(f, bandwidth=1e10), max_workers=512) is None
    assert cm.switch_point(cm.with_network(f, 8)) == 3  # 8 Gbit/s = 1 GB/s


SKOL = cm.Figures(dense_bytes=117_260, sparse_rows=4676, row_bytes=192,
                  embedding_bytes=6_291_456)  # benchmarks/collective_cost.py's sizes


@pytest.mark.parametrize("figures", [
    FIG, SKOL, cm.Figures(dense_bytes=MB),
    # sparse_as_dense off the table (embedding size unknown)
    cm.replace(FIG, embedding_bytes=0), cm.replace(SKOL, embedding_bytes=0),
])
def test_switch_point_does_not_fall_as_bandwidth_rises_without_a_dense_embedding(figures):
    # Without sparse_as_dense the allreduce moves fewer bytes than the allgather wherever
    # it wins, so more bandwidth only delays the switch.
    if figures.sparse_rows:
        figures = cm.replace(figures, embedding_bytes=0)
    points = [cm.switch_point(cm.with_network(figures, g), max_workers=1024)
              for g in (1, 10, 25, 100, 400)]
    as_numbers = [math.inf if p is None else p for p in points]
    assert as_numbers == sorted(as_numbers)
    assert points[0] is not None


def test_a_dense_embedding_allreduce_gains_from_bandwidth():
    # sparse_as_dense trades a bounded 6 MB allreduce for the growing allgather: on a
    # fast network it wins early. conf/skol.yaml's sizes, the default overheads.
    ten = cm.switch_point(cm.with_network(SKOL, 10), max_workers=1024)
    hundred = cm.switch_point(cm.with_network(SKOL, 100), max_workers=1024)
    assert hundred < ten
    assert cm.sparse_as_dense(128, cm.with_network(SKOL, 10))
    # Horovod's sparse path allgathers the embedding rows too (the volume that grows), in
    # two more collectives: up to 1024 workers it never beats the packed allgather.
    assert cm.switch_point(cm.replace(cm.with_network(SKOL, 10), embedding_bytes=0),
                           max_workers=1024) is None


# The worker's choice --------------------------------------------------------------------


class FakeHvd:
    def __init__(self, size):
        self._size = size

    def size(self):
        return self._size

    def rank(self):
        return 0


@pytest.fixture(scope="module")
def default_network():
    """conf/default.yaml's network: 16-line windows, 24 tokens, hidden 64, 32768 x 48."""
    from focalseq.text.features import n_shape_features
    from focalseq.training.remote import build_plain_network

    spec = {"batch_size": 16,
            "dims": {"window": 16, "max_tokens": 24, "n_shape": n_shape_features(),
                     "labels": ["Nomenclature", "Description", "Misc-exposition"],
                     "multi_label": False},
            "network": {"vocab_size": 32768, "embedding_dim": 48, "hidden_size": 64}}
    return spec, build_plain_network(spec)


def test_worker_figures_of_the_default_network(default_network):
    from focalseq.training.remote import gradient_figures

    spec, net = default_network
    f = gradient_figures(spec, net)
    assert f.embedding_bytes == 32768 * 48 * 4 and f.row_bytes == 48 * 4
    assert f.sparse_rows == pytest.approx(cm.DEFAULT_ROWS_PER_SLOT * 16 * 16 * 24)
    assert 100_000 < f.dense_bytes < 140_000  # ~29.5k float32 values


def test_worker_keeps_the_allgather_on_two_workers_and_switches_at_scale(default_network):
    from focalseq.training.remote import choose_averaging

    spec, net = default_network
    assert choose_averaging(FakeHvd(2), spec, net) == ("allgather", False)
    assert choose_averaging(FakeHvd(512), spec, net) == ("allreduce", True)
    assert choose_averaging(FakeHvd(2), dict(spec, collective="allreduce"), net)[0] \
        == "allreduce"
    assert choose_averaging(FakeHvd(512), dict(spec, collective="allgather"), net) \
        == ("allgather", False)
    with pytest.raises(ValueError, match="collective"):
        choose_averaging(FakeHvd(2), dict(spec, collective="ring"), net)
