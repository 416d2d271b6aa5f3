"""Fault injection for the multi-process training tests, kept out of the shipped worker.

`injected_fault(rank, epoch)` is a context manager: while it is active, every Horovod
job the estimator starts runs `failing_worker(rank, epoch)` instead of the shipped
`train_worker`; that wrapper runs the real worker, with rank `rank` raising right after
epoch `epoch`'s bookkeeping (validation, checkpoint, progress record) has finished.
The seam is `focalseq.training.launch.run_horovod`'s `worker` argument.
"""
import contextlib

from focalseq.training import launch


def failing_worker(rank: int, epoch: int):
    """A worker function (cloudpickled by value: a closure) that fails on purpose."""

    def worker(spec):
        from focalseq.training import remote

        finish_epoch = remote.ValidateAndCheckpoint.on_epoch_end

        def on_epoch_end(self, e, logs=None):
            finish_epoch(self, e, logs)
            if e == epoch and self.hvd.rank() == rank:
                raise RuntimeError(f"injected fault on rank {rank} after epoch {e}")

        remote.ValidateAndCheckpoint.on_epoch_end = on_epoch_end
        return remote.train_worker(spec)

    return worker


@contextlib.contextmanager
def injected_fault(rank: int, epoch: int):
    run = launch.run_horovod

    def run_failing(spec, num_proc, store, worker=None):
        return run(spec, num_proc, store, worker=failing_worker(rank, epoch))

    launch.run_horovod = run_failing
    try:
        yield
    finally:
        launch.run_horovod = run
