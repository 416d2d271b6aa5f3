"""Which collective averages a step's gradients: a step-time model (docs/scaling.md).

A training step is compute plus communication, not overlapped (Keras applies the update
after the averaged gradients arrive; the model ignores Horovod's overlap of collectives
with the backward pass, so it errs towards lower efficiency). For N workers, a per-hop
network latency `a` (s), a bandwidth `bw` (bytes/s) and `o`, Horovod's fixed cost of one
collective of that kind (negotiation in its background thread, the cycle, copies; an
allgather of unequal sizes first exchanges the sizes), the standard ring costs (Thakur,
Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH",
IJHPCA 2005; Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
workstations", JPDC 2009), reduction arithmetic left out:

    allreduce of n bytes:              o_ar + 2(N-1) a + 2(N-1)/N * n / bw
    allgather of m bytes from each:    o_ag +  (N-1) a +  (N-1)/N * N*m / bw

An allreduce moves at most twice its bytes whatever N; an allgather's volume grows with N.
The two ways `focalseq.training.remote` averages gradients:

* "allgather" (`focalseq.training.packed`): one allgather of every rank's packed vector,
  dense gradients D plus the embedding's distinct rows (values and float32 indices).
* "allreduce" (`hvd.DistributedOptimizer`): D allreduced and the embedding rows
  allgathered as two collectives (values, int64 indices), or with `sparse_as_dense` the
  whole embedding E allreduced with D, whichever the model finds cheaper.

Everything here is plain arithmetic (no TensorFlow), so the choice can be tested alone.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional

# Defaults of the job's choice (`remote.choose_averaging`). The overheads are the median
# 1-float collective of 2 ranks on localhost, Gloo, HOROVOD_CYCLE_TIME 1 ms, on this
# loaded 2-core machine, rounded from the first run (1.08 / 2.44 ms; four runs gave
# 1.06-2.45 / 2.11-2.44 ms; benchmarks/collective_cost.py, docs/scaling.md). The hop
# latency and the bandwidth are assumptions, not measured: TCP on datacenter Ethernet,
# 10 Gbit/s.
DEFAULT_ALLREDUCE_OVERHEAD = 1.1e-3  # s per allreduce
DEFAULT_ALLGATHER_OVERHEAD = 2.4e-3  # s per allgather
DEFAULT_LATENCY = 50e-6              # s per ring hop
DEFAULT_BANDWIDTH = 10e9 / 8         # bytes/s
# Distinct embedding rows in a step per token slot (batch x window x max_tokens), measured
# on conf/default.yaml's synthetic corpus and conf/skol.yaml's SKOL corpus.
DEFAULT_ROWS_PER_SLOT = 0.15  # measured 0.14 and 0.19
COLLECTIVES = ("allgather", "allreduce")


@dataclass(frozen=True)
class Figures:
    """What one step of one worker computes and sends.

    compute_per_window: seconds of compute per window on one worker.
    batch: windows per worker per step.
    dense_bytes: the dense gradients (float32).
    sparse_rows: distinct embedding rows a worker's step touches; row_bytes: one row.
    embedding_bytes: the whole embedding (what `sparse_as_dense` allreduces); 0 with
        sparse rows: unknown, `sparse_as_dense` is not considered.
    """
    compute_per_window: float = 0.0
    batch: int = 1
    dense_bytes: float = 0.0
    sparse_rows: float = 0.0
    row_bytes: float = 0.0
    embedding_bytes: float = 0.0
    bandwidth: float = DEFAULT_BANDWIDTH
    latency: float = DEFAULT_LATENCY
    allreduce_overhead: float = DEFAULT_ALLREDUCE_OVERHEAD
    allgather_overhead: float = DEFAULT_ALLGATHER_OVERHEAD


def ring_allreduce_seconds(nbytes, n, bandwidth, latency, overhead=0.0) -> float:
    """o + 2(N-1) a + 2(N-1)/N * bytes / bw.

    >>> round(ring_allreduce_seconds(1e6, 2, 1e9, 1e-4), 9)  # 2e-4 + 1e-3
    0.0012
    """
    if n <= 1:
        return 0.0
    return overhead + 2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth


def ring_allgather_seconds(bytes_per_rank, n, bandwidth, latency, overhead=0.0) -> float:
    """o + (N-1) a + (N-1)/N * N * bytes_per_rank / bw: every rank receives the others'.

    >>> round(ring_allgather_seconds(1e6, 4, 1e9, 1e-4), 9)  # 3e-4 + 3e-3
    0.0033
    """
    if n <= 1:
        return 0.0
    return overhead + (n - 1) * latency + (n - 1) * bytes_per_rank / bandwidth


def packed_bytes(f: Figures) -> float:
    """Bytes one rank puts into the packed allgather: D + rows x (row + a float32 index)."""
    return f.dense_bytes + f.sparse_rows * (f.row_bytes + 4)


def allgather_seconds(n: int, f: Figures) -> float:
    """One allgather of each rank's packed vector (`focalseq.training.packed`)."""
    return ring_allgather_seconds(packed_bytes(f), n, f.bandwidth, f.latency,
                                  f.allgather_overhead)


def allreduce_seconds(n: int, f: Figures, sparse_as_dense: Optional[bool] = None) -> float:
    """`hvd.DistributedOptimizer`: D allreduced, the embedding rows allgathered (values,
    then int64 indices); with `sparse_as_dense` one allreduce of D + E. None: the cheaper.

    >>> f = Figures(dense_bytes=1e6, bandwidth=1e9, latency=1e-4, allreduce_overhead=0)
    >>> round(allreduce_seconds(2, f), 9)  # no embedding: the allreduce alone
    0.0012
    """
    ar = (f.bandwidth, f.latency, f.allreduce_overhead)
    ag = (f.bandwidth, f.latency, f.allgather_overhead)
    dense = ring_allreduce_seconds(f.dense_bytes + f.embedding_bytes, n, *ar)
    sparse = ring_allreduce_seconds(f.dense_bytes, n, *ar)
    if f.sparse_rows > 0:
        sparse += (ring_allgather_seconds(f.sparse_rows * f.row_bytes, n, *ag)
                   + ring_allgather_seconds(f.sparse_rows * 8, n, *ag))
        if f.embedding_bytes <= 0:
            dense = math.inf
    if sparse_as_dense is None:
        return min(sparse, dense)
    return dense if sparse_as_dense else sparse


def sparse_as_dense(n: int, f: Figures) -> bool:
    """Whether Horovod's allreduce is cheaper with the embedding allreduced as dense."""
    return allreduce_seconds(n, f, True) < allreduce_seconds(n, f, False)


def efficiency(collective: str, n: int, f: Figures) -> float:
    """compute / (compute + communication) of one step (1.0 for one worker)."""
    compute = f.compute_per_window * f.batch
    comm = allgather_seconds(n, f) if collective == "allgather" else allreduce_seconds(n, f)
    return compute / (compute + comm) if compute + comm > 0 else 1.0


def choose_collective(n_workers: int, f: Figures) -> str:
    """The cheaper averaging for `n_workers` by the model; "allgather" on a tie.

    >>> f = Figures(dense_bytes=1e6, bandwidth=1e9, latency=1e-4,
    ...             allreduce_overhead=1e-3, allgather_overhead=1e-3)
    >>> choose_collective(2, f), choose_collective(8, f)
    ('allgather', 'allreduce')
    """
    if allgather_seconds(n_workers, f) <= allreduce_seconds(n_workers, f):
        return "allgather"
    return "allreduce"


def switch_point(f: Figures, max_workers: int = 4096) -> Optional[int]:
    """The smallest number of workers from which the allreduce is cheaper at every N up
    to `max_workers`; None if it is not cheaper at `max_workers`.

    >>> switch_point(Figures(dense_bytes=1e6, bandwidth=1e9, latency=1e-4,
    ...                      allreduce_overhead=1e-3, allgather_overhead=1e-3))
    3
    """
    point = None
    for n in range(max_workers, 1, -1):
        if choose_collective(n, f) != "allreduce":
            break
        point = n
    return point


def with_network(f: Figures, gbits: float) -> Figures:
    """`f` on a network of `gbits` Gbit/s."""
    return replace(f, bandwidth=gbits * 1e9 / 8)
