"""A run lock whose owner process on this host is gone is taken over without waiting
for the heartbeat to go stale (a driver killed with kill -9, then rerun at once); a live
owner's lock is not."""
import os
import signal
import subprocess
import sys
import time

import pytest

from focalseq.training.run_lock import RunLock, RunLockedError
from focalseq.training.run_store import RunStore

BEAT = 0.2
_HOLDER = ("import sys, time; from focalseq.training.run_lock import RunLock; "
           "from focalseq.training.run_store import RunStore; "
           f"lock = RunLock(RunStore(sys.argv[1]), 'r1', heartbeat={BEAT}).acquire(); "
           "print('locked', flush=True); time.sleep(600)")


def _holder(store_dir):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, store_dir],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_killed_owners_lock_is_taken_over_at_once(tmp_path):
    holder = _holder(str(tmp_path))
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    time.sleep(3 * BEAT)  # two missed heartbeats
    started = time.time()
    lock = RunLock(RunStore(str(tmp_path)), "r1", heartbeat=BEAT).acquire()
    try:
        # Far below the 60 s after which a silent lock of any host goes stale.
        assert time.time() - started < 30
        assert lock.store.read_json(lock.path)["owner"]["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_live_owners_lock_is_kept(tmp_path):
    holder = _holder(str(tmp_path))
    try:
        time.sleep(3 * BEAT)
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on host"):
            RunLock(RunStore(str(tmp_path)), "r1", heartbeat=BEAT).acquire()
    finally:
        holder.kill()
        holder.wait()
