"""Scratch folders of training workers, and the removal of those their owner left behind.

A worker keeps a few local files while it trains (weights on their way to the run store,
the final network before upload) in a folder under its host's temp directory, removed
when it ends. A worker killed with SIGKILL (kill -9, the OOM killer, a lost executor)
cannot remove it. So each scratch folder carries an owner record, and every worker that
starts on a host first removes the scratch folders whose owner is dead:

- the folder is named ``focalseq-scratch-*`` and holds `OWNER` (only this module writes
  that pair: nothing else is ever touched, a folder still being created included);
- its owner ran on this host (the record's host name is this host's);
- its owner process is gone: no process has its pid, or the pid now belongs to a
  process started at another time (pids are reused).

A folder of a live worker, of another host sharing the temp directory, or one that is
not focalseq's is left alone.

>>> import tempfile
>>> top = tempfile.mkdtemp()
>>> folder = make_scratch("r1", top)
>>> remove_stale(top)  # its owner (this process) lives
[]
>>> os.path.isdir(folder)
True
"""
import json
import logging
import os
import shutil
import socket
import tempfile

import psutil

logger = logging.getLogger(__name__)

PREFIX = "focalseq-scratch-"
OWNER = "owner.json"


def make_scratch(run_id: str, parent: str = None) -> str:
    """A new scratch folder for `run_id` under `parent` (default: the temp directory),
    with its owner record (this host, this process and its start time)."""
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{_safe(run_id)}-", dir=parent)
    me = psutil.Process()
    record = {"run_id": run_id, "host": socket.gethostname(), "pid": me.pid,
              "started": me.create_time()}
    with open(os.path.join(folder, OWNER), "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    return folder


def remove_stale(parent: str = None) -> list:
    """Removes the scratch folders under `parent` (default: the temp directory) whose
    owner on this host is dead; returns their paths."""
    parent = parent or tempfile.gettempdir()
    try:
        names = os.listdir(parent)
    except OSError as exc:
        logger.warning("scratch: cannot list %s: %s", parent, exc)
        return []
    removed = []
    for name in sorted(names):
        folder = os.path.join(parent, name)
        if not name.startswith(PREFIX) or os.path.islink(folder) or not os.path.isdir(folder):
            continue
        record = _owner(folder)
        if record is None or not _dead(record):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            removed.append(folder)
            logger.info("scratch: removed %s, left by pid %s of run %s (no longer running)",
                        folder, record.get("pid"), record.get("run_id"))
    return removed


def _owner(folder: str):
    """The folder's owner record, or None (not ours, being created, or unreadable)."""
    try:
        with open(os.path.join(folder, OWNER), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


def _dead(record: dict) -> bool:
    if record.get("host") != socket.gethostname():
        return False  # another host's process: nothing here can tell whether it lives
    try:
        started = psutil.Process(record["pid"]).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # alive but not ours to inspect
        return False
    # The same pid started at another time is another process. create_time is rounded
    # differently across reads only below a hundredth of a second.
    return abs(started - float(record.get("started", started))) > 0.05


def _safe(run_id: str) -> str:
    """The run id as a file-name part (run ids may hold characters a path should not)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:64]
