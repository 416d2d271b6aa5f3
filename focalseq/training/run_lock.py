"""One live fit per run id: a lock file in the run's store, kept alive by a heartbeat.

`RunLock` creates ``<store>/<run_id>/lock.json`` atomically (exclusive create where the
filesystem has it, as local disks and HDFS do; elsewhere write, wait, read back and keep
it only if it is still ours). The file names its owner (host, pid and a random token) and
a heartbeat time that a driver thread refreshes every `HEARTBEAT_S` seconds. A second fit
of the same run id is refused while the lock is fresh; a lock whose heartbeat is older
than `STALE_AFTER_S` seconds (its driver was killed) is taken over, and so is one whose
owner process on this host is gone and has missed two heartbeats. The lock is released
when the fit ends, however it ends.

>>> import tempfile
>>> from focalseq.training.run_store import RunStore
>>> store = RunStore(tempfile.mkdtemp())
>>> with RunLock(store, "r1"):
...     try:
...         RunLock(store, "r1").acquire()
...     except RunLockedError as exc:
...         print(str(exc)[:32])
run 'r1' is already being fitted
>>> store.exists(store.path("r1", "lock.json"))
False
"""
import json
import logging
import os
import socket
import threading
import time
import uuid

from focalseq import fileio

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often the owner refreshes its lock's heartbeat."""
STALE_AFTER_S = 60.0
"""A lock whose heartbeat is older than this belongs to a dead fit and may be taken over."""
_READ_BACK_S = 1.0  # without exclusive create: how long a rival's write may take to land
_ATTEMPTS = 3


class RunLockedError(ValueError):
    """The run id is being fitted by another live process; the message names it."""


class RunLock:
    """The lock of one run id in a `RunStore`; a context manager.

    Args:
        store: the run's `RunStore`.
        run_id: the run.
        stale_after: seconds without heartbeat after which the lock may be taken over.
        heartbeat: seconds between heartbeats.
    """

    def __init__(self, store, run_id: str, stale_after: float = None, heartbeat: float = None):
        self.store, self.run_id = store, run_id
        self.stale_after = STALE_AFTER_S if stale_after is None else float(stale_after)
        self.heartbeat = HEARTBEAT_S if heartbeat is None else float(heartbeat)
        if not 0 < self.heartbeat < self.stale_after:
            raise ValueError(f"heartbeat: {self.heartbeat}s must be > 0 and shorter than "
                             f"stale_after ({self.stale_after}s)")
        self.path = store.path(run_id, "lock.json")
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(),
                      "token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    # Acquire / release ----------------------------------------------------------------------

    def acquire(self) -> "RunLock":
        """Takes the lock (a stale one is taken over) and starts the heartbeat.

        Raises:
            RunLockedError: another live fit holds it; the message names its owner.
        """
        for _ in range(_ATTEMPTS):
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True,
                                                name=f"focalseq-lock-{self.run_id}")
                self._thread.start()
                logger.debug("run %s: locked by %s", self.run_id, self.owner)
                return self
            held = self._read()
            if held is None:
                continue  # released between our create and our read: try again
            age = time.time() - float(held.get("heartbeat", 0))
            if age <= self.stale_after and not _owner_gone(held, age, self.heartbeat):
                raise RunLockedError(
                    f"run {self.run_id!r} is already being fitted by {_describe(held)} (its "
                    f"lock {self.store.url(self.run_id, 'lock.json')} was refreshed "
                    f"{max(age, 0):.0f}s ago); a run id means one training: wait for that "
                    "fit to end, or use a new runId. A lock without heartbeat for "
                    f"{self.stale_after:.0f}s is taken over")
            logger.warning("run %s: taking over the lock of %s, silent for %.0fs (its fit "
                           "died)", self.run_id, _describe(held), age)
            self._break(held)
        raise RunLockedError(f"run {self.run_id!r}: could not take the lock "
                             f"{self.store.url(self.run_id, 'lock.json')} in {_ATTEMPTS} "
                             "attempts: other fits of this run id are starting; use a new "
                             "runId")

    def release(self) -> None:
        """Stops the heartbeat and deletes the lock file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, self.heartbeat))
            self._thread = None
        try:
            held = self._read()
            if held is not None and _token(held) == self.owner["token"]:
                self.store.fs.rm(self.path)
        except OSError as exc:  # never hide how the fit ended behind a cleanup error
            logger.warning("run %s: could not remove its lock %s: %s", self.run_id,
                           self.path, exc)

    # The lock file ------------------------------------------------------------------------

    def _record(self) -> bytes:
        now = time.time()
        return json.dumps({"run_id": self.run_id, "owner": self.owner, "heartbeat": now,
                           "heartbeat_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(now))},
                          indent=1, sort_keys=True).encode()

    def _create(self) -> bool:
        """True if this call created the lock file."""
        fs = self.store.fs
        fs.makedirs(self.store.path(self.run_id), exist_ok=True)
        try:
            with fs.open(self.path, "xb") as fh:
                fh.write(self._record())
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError):
            pass  # no exclusive create here (object stores): write, then read back
        if fs.exists(self.path):
            return False
        fileio.write_atomically(fs, self.path, self._record())
        time.sleep(_READ_BACK_S)  # a rival's write that crossed ours lands by now
        held = self._read()
        return held is not None and _token(held) == self.owner["token"]

    def _read(self):
        """The lock's record; None if there is no lock file."""
        fs = self.store.fs
        try:
            data = fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            return json.loads(data)
        except ValueError:
            # Being written by an exclusive create right now, or damaged: its age is the
            # file's, so a damaged lock goes stale like any other.
            try:
                written = fs.modified(self.path).timestamp()
            except (OSError, NotImplementedError):
                written = time.time()
            return {"owner": "an unreadable lock file", "heartbeat": written}

    def _break(self, held) -> None:
        """Moves a stale lock aside; puts it back if it was someone's fresh one after all."""
        fs = self.store.fs
        aside = f"{self.path}.stale-{uuid.uuid4().hex[:8]}"
        try:
            fs.mv(self.path, aside)
        except FileNotFoundError:
            return  # another fit broke it first
        try:
            moved = json.loads(fs.cat_file(aside))
        except ValueError:
            moved = {}
        if _token(moved) != _token(held) and not fs.exists(self.path):
            fs.mv(aside, self.path)  # a rival took the lock between our read and our move
        else:
            fs.rm(aside)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                held = self._read()
                if held is None or _token(held) != self.owner["token"]:
                    logger.error("run %s: lost its lock %s to %s; another fit may now write "
                                 "the same run", self.run_id, self.path,
                                 _describe(held) if held else "nobody (it was removed)")
                    return
                fileio.write_atomically(self.store.fs, self.path, self._record())
            except (OSError, ValueError) as exc:  # a flaky store: try again next beat
                logger.warning("run %s: heartbeat failed: %s", self.run_id, exc)


def _owner_gone(record, age: float, heartbeat: float) -> bool:
    """True when the lock's owner ran on this host and its process no longer exists.

    A killed driver on this machine need not be waited out for `stale_after` seconds.
    Two missed heartbeats are still required, so a live owner that shares the host name
    from another pid namespace (a container) keeps its lock.
    """
    owner = record.get("owner") if isinstance(record, dict) else None
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    if age <= 2 * heartbeat or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _token(record) -> str:
    owner = record.get("owner") if isinstance(record, dict) else None
    return owner.get("token") if isinstance(owner, dict) else None


def _describe(record) -> str:
    owner = record.get("owner")
    if isinstance(owner, dict):
        return f"pid {owner.get('pid')} on host {owner.get('host')!r}"
    return str(owner)
