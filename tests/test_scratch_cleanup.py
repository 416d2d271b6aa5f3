"""Stale scratch folders: removed only when focalseq made them and their owner is dead.

Real processes make the folders with focalseq's own code; one is killed with SIGKILL (it
cannot clean up), one stays alive. The rest are folders a cleanup must not touch (not
focalseq's, another host's, a symbolic link), and one whose owner pid now belongs to
another process (pids are reused). The cluster test (tests/test_cluster_resume.py)
checks that a training start on a worker host does this cleanup.
"""
import json
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from focalseq.training.scratch import OWNER, PREFIX, make_scratch, remove_stale

_OWNER = ("import sys, time; from focalseq.training.scratch import make_scratch; "
          "print(make_scratch('r1', sys.argv[1]), flush=True); time.sleep(600)")


@pytest.fixture
def owners(tmp_path):
    """Two processes that made a scratch folder each: (killed's folder, live's folder)."""
    procs, folders = [], []
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        folders.append(proc.stdout.readline().strip())
    os.kill(procs[0].pid, signal.SIGKILL)
    procs[0].wait()
    yield folders
    procs[1].kill()
    procs[1].wait()


def _folder(parent, name, record=None):
    path = parent / name
    path.mkdir()
    (path / "data.bin").write_bytes(b"x")
    if record is not None:
        (path / OWNER).write_text(json.dumps(record))
    return str(path)


def test_only_a_dead_owners_scratch_is_removed(tmp_path, owners):
    killed, live = owners
    me = psutil.Process()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    dead = {"host": socket.gethostname(), "pid": int(dead_pid), "started": 0.0}
    reused = _folder(tmp_path, PREFIX + "reused",
                     {"host": socket.gethostname(), "pid": me.pid,
                      "started": me.create_time() - 3600})
    kept = [
        _folder(tmp_path, PREFIX + "no-owner-record"),
        _folder(tmp_path, PREFIX + "other-host", dict(dead, host="not-" + socket.gethostname())),
        _folder(tmp_path, "not-focalseq", dead),
        _folder(tmp_path, PREFIX + "damaged", None),
    ]
    (tmp_path / (PREFIX + "damaged") / OWNER).write_text("{not json")
    target = _folder(tmp_path, "elsewhere", dead)
    link = tmp_path / (PREFIX + "link")
    link.symlink_to(target)

    removed = remove_stale(str(tmp_path))

    assert sorted(removed) == sorted([killed, reused])
    assert not os.path.exists(killed) and not os.path.exists(reused)
    for path in kept + [live, target, str(link)]:
        assert os.path.isdir(path), path
    assert sorted(os.listdir(target)) == sorted(["data.bin", OWNER])


def test_a_scratch_folder_records_its_owner(tmp_path):
    folder = make_scratch("run/with:odd chars", str(tmp_path))
    name = os.path.basename(folder)
    assert name.startswith(PREFIX + "run_with_odd_chars-")
    with open(os.path.join(folder, OWNER)) as fh:
        record = json.load(fh)
    me = psutil.Process()
    assert record == {"run_id": "run/with:odd chars", "host": socket.gethostname(),
                      "pid": os.getpid(), "started": me.create_time()}
    assert remove_stale(str(tmp_path)) == []
