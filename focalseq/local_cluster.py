"""A Spark standalone cluster of separate hosts on this one machine, to try focalseq as a
cluster runs it (and for the cluster tests).

    python -m focalseq.local_cluster start     # master + 2 workers; prints the driver conf
    python -m focalseq.local_cluster status
    python -m focalseq.local_cluster check     # a 2-rank Horovod allreduce across the workers
    python -m focalseq.local_cluster stop

Topology (as root, with iproute2): a Linux bridge in the root network namespace holds the
driver's and the master's address; each worker runs in its own network namespace (its
veth end named ``eth0`` inside, its own address on the bridge's subnet, a default route
via the bridge) and its own UTS namespace (its own hostname, listed in /etc/hosts), with
its own work directory, Spark local directory and TMPDIR. Horovod is told the NIC the
ranks share (``eth0``); left to itself it picks ``lo``, which every namespace has. Only
the bridge's subnet and loopback are used: the root namespace does not forward packets
(``ip_forward`` is checked), so nothing leaves the machine.

Without root or ``ip``, the workers run on loopback instead (one "host"); the start says
so in a warning. State (process ids, names) is kept in ``<dir>/cluster.json``; ``stop``
and the next ``start`` clean up from it, also after a failed start.
"""
import argparse
import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

DEFAULT_DIR = "/tmp/focalseq-local-cluster"
DEFAULT_SUBNET = "10.213.47.0/24"  # RFC 1918, rarely used by hosting or VPNs
HOSTS_FILE = "/etc/hosts"
HOSTS_MARK = "# focalseq-local-cluster"
NS_PREFIX = "fsq-w"  # network namespaces fsq-w1, fsq-w2, ...
VETH_PREFIX = "fsq-v"  # root ends of the veth pairs
BRIDGE = "fsq-br0"
MASTER_PORT = 7177
MASTER_UI_PORT = 8180
NICS_CONF = "spark.focalseq.horovod.nics"
STATE_FILE = "cluster.json"
DAEMON_CLASSES = ("org.apache.spark.deploy.master.Master",
                  "org.apache.spark.deploy.worker.Worker")


@dataclasses.dataclass
class ClusterState:
    """What a started cluster is made of; saved as JSON beside its logs."""

    mode: str  # "namespaces" or "loopback"
    base_dir: str
    master_url: str
    driver_host: str
    nics: List[str]
    master_ui: str
    workers: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    pids: List[int] = dataclasses.field(default_factory=list)
    namespaces: List[str] = dataclasses.field(default_factory=list)
    links: List[str] = dataclasses.field(default_factory=list)

    def spark_conf(self) -> Dict[str, str]:
        """The driver's Spark configuration for this cluster."""
        return {"spark.master": self.master_url,
                "spark.driver.host": self.driver_host,
                "spark.driver.bindAddress": self.driver_host,
                "spark.executor.cores": "1",
                "spark.task.cpus": "1",
                "spark.executor.memory": "1g",
                "spark.pyspark.python": sys.executable,
                NICS_CONF: ",".join(self.nics)}


class LocalCluster:
    """Starts and stops the cluster; a context manager.

    Args:
        base_dir: folder of the state file, logs and each worker's directories.
        n_workers: number of worker hosts (one core, 2 GB each).
        subnet: the bridge's private IPv4 subnet; must not overlap a route of the machine.
        namespaces: None (use them when possible), True (require them) or False (loopback).
    """

    def __init__(self, base_dir: str = DEFAULT_DIR, n_workers: int = 2,
                 subnet: str = DEFAULT_SUBNET, namespaces: Optional[bool] = None):
        if n_workers < 1:
            raise ValueError(f"n_workers: {n_workers} is not >= 1")
        self.base_dir = os.path.abspath(base_dir)
        self.n_workers = n_workers
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.num_addresses < n_workers + 4:
            raise ValueError(f"subnet: {subnet!r} has room for fewer than {n_workers} workers")
        self.namespaces = namespaces
        self.state: Optional[ClusterState] = None

    def __enter__(self) -> ClusterState:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- start --------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ClusterState:
        """Cleans up leftovers of an earlier run, then starts master and workers.

        Raises:
            RuntimeError: the cluster did not come up within `timeout` seconds (what
                was started is stopped again; the logs' tails are in the message).
        """
        started = time.time()
        cleanup(self.base_dir)
        use_ns = self._namespaces_possible()
        os.makedirs(self.base_dir, exist_ok=True)
        if use_ns:
            self.state = self._network()
        else:
            why = ("not asked for" if self.namespaces is False else
                   "unavailable (they need root, iproute2's `ip` and `unshare`)")
            logger.warning("local cluster: network namespaces %s; the workers run on "
                           "loopback, so Spark and Horovod see ONE host, not %d", why,
                           self.n_workers)
            self.state = ClusterState(
                mode="loopback", base_dir=self.base_dir, driver_host="127.0.0.1",
                master_url=f"spark://127.0.0.1:{MASTER_PORT}", nics=["lo"],
                master_ui=f"http://127.0.0.1:{MASTER_UI_PORT}/json/")
        self._save()
        try:
            self._start_master()
            for i in range(1, self.n_workers + 1):
                self._start_worker(i)
            self._wait_for_workers(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("local cluster up in %.1fs: %s, %d workers (%s)", time.time() - started,
                    self.state.master_url, self.n_workers, self.state.mode)
        return self.state

    def _namespaces_possible(self) -> bool:
        possible = os.geteuid() == 0 and shutil.which("ip") and shutil.which("unshare")
        if self.namespaces is True and not possible:
            raise RuntimeError("local cluster: namespaces=True needs root and iproute2's "
                               f"`ip` and util-linux's `unshare` (euid {os.geteuid()}, ip "
                               f"{shutil.which('ip')}, unshare {shutil.which('unshare')})")
        return bool(possible) and self.namespaces is not False

    def _network(self) -> ClusterState:
        """Bridge + one namespace per worker; nothing routed off the machine."""
        _check_subnet_free(self.subnet)
        if _read("/proc/sys/net/ipv4/ip_forward").strip() != "0":
            # With forwarding on, a worker's default route would reach other networks.
            raise RuntimeError("local cluster: /proc/sys/net/ipv4/ip_forward is on; the "
                               "namespaces' traffic could leave this machine. Turn it off "
                               "(sysctl net.ipv4.ip_forward=0) or use namespaces=False")
        hosts = list(self.subnet.hosts())
        prefix = self.subnet.prefixlen
        bridge_ip = str(hosts[0])
        state = ClusterState(mode="namespaces", base_dir=self.base_dir, driver_host=bridge_ip,
                             master_url=f"spark://{bridge_ip}:{MASTER_PORT}", nics=["eth0"],
                             master_ui=f"http://{bridge_ip}:{MASTER_UI_PORT}/json/")
        self.state = state
        self._save()  # from here on a failure leaves something that cleanup() must find
        state.links.append(BRIDGE)
        self._save()
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{bridge_ip}/{prefix}", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        entries = {bridge_ip: "fsq-master"}
        for i in range(1, self.n_workers + 1):
            ns, veth, ip = f"{NS_PREFIX}{i}", f"{VETH_PREFIX}{i}", str(hosts[10 + i])
            state.namespaces.append(ns)
            state.links.append(veth)
            self._save()
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", BRIDGE)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", bridge_ip)
            name = f"fsq-worker-{i}"
            state.workers.append({"name": name, "ip": ip, "netns": ns})
            entries[ip] = name
        _set_hosts_entries(entries)
        self._save()
        return state

    def _start_master(self):
        st = self.state
        host = st.driver_host
        folder = os.path.join(self.base_dir, "master")
        os.makedirs(folder, exist_ok=True)
        cmd = [_spark_class(), "org.apache.spark.deploy.master.Master", "--host", host,
               "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)]
        self._spawn(cmd, folder, {"SPARK_LOCAL_IP": host}, "master")

    def _start_worker(self, i: int):
        st = self.state
        folder = os.path.join(self.base_dir, f"worker{i}")
        dirs = {k: os.path.join(folder, k) for k in ("work", "local", "tmp")}
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        if st.mode == "namespaces":
            w = st.workers[i - 1]
            host, port, ui = w["ip"], 7078, 8081  # each namespace has its own ports
        else:
            host, port, ui = "127.0.0.1", MASTER_PORT + i, MASTER_UI_PORT + i
            st.workers.append({"name": socket.gethostname(), "ip": host, "netns": ""})
        cmd = [_spark_class(), "org.apache.spark.deploy.worker.Worker", st.master_url,
               "--host", host, "--port", str(port), "--webui-port", str(ui),
               "--cores", "1", "--memory", "2g", "--work-dir", dirs["work"]]
        if st.mode == "namespaces":
            # `ip netns exec` and `unshare` exec their command, and so does the shell:
            # the process id recorded is the worker JVM's.
            cmd = ["ip", "netns", "exec", w["netns"], "unshare", "--uts", "sh", "-c",
                   f'hostname {w["name"]} && exec "$0" "$@"'] + cmd
        env = {"SPARK_LOCAL_IP": host, "SPARK_LOCAL_DIRS": dirs["local"],
               "TMPDIR": dirs["tmp"], "PYSPARK_PYTHON": sys.executable}
        self._spawn(cmd, folder, env, f"worker{i}")

    def _spawn(self, cmd, cwd, extra_env, name):
        env = dict(os.environ, SPARK_HOME=_spark_home(), **extra_env)
        for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
            env.pop(key, None)  # a daemon of its own, not part of a caller's Spark app
        with open(os.path.join(self.base_dir, f"{name}.log"), "ab") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.state.pids.append(proc.pid)
        self._save()

    def _wait_for_workers(self, timeout: float):
        deadline = time.time() + timeout
        alive = 0
        while time.time() < deadline:
            for pid in self.state.pids:
                if not _alive(pid):
                    raise RuntimeError(f"local cluster: process {pid} exited during start\n"
                                       + self._log_tails())
            try:
                with urllib.request.urlopen(self.state.master_ui, timeout=2) as resp:
                    alive = int(json.load(resp).get("aliveworkers", 0))
            except (OSError, ValueError):
                alive = 0
            if alive >= self.n_workers:
                return
            time.sleep(0.5)
        raise RuntimeError(f"local cluster: {alive} of {self.n_workers} workers registered "
                           f"with {self.state.master_url} within {timeout:.0f}s\n"
                           + self._log_tails())

    def _log_tails(self, n=15) -> str:
        out = []
        for name in ["master"] + [f"worker{i}" for i in range(1, self.n_workers + 1)]:
            path = os.path.join(self.base_dir, f"{name}.log")
            if os.path.exists(path):
                lines = _read(path).splitlines()[-n:]
                out.append(f"--- {path} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def _save(self):
        _write_state(self.base_dir, self.state)

    # -- stop ---------------------------------------------------------------------------

    def stop(self):
        """Stops the processes by id, then removes namespaces, links and hosts entries."""
        cleanup(self.base_dir)
        self.state = None


def load_state(base_dir: str = DEFAULT_DIR) -> Optional[ClusterState]:
    """The state of the cluster started in `base_dir`, or None."""
    path = os.path.join(base_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    return ClusterState(**json.loads(_read(path)))


def cleanup(base_dir: str = DEFAULT_DIR) -> None:
    """Stops what a cluster of `base_dir` left running and removes its network pieces.

    Safe to call any time: processes are ended by the ids the state file records (only
    if they are still Spark daemons), and any namespace, link or hosts entry with this
    module's names is removed, so leftovers of a crashed run go too.
    """
    started = time.time()
    state = load_state(base_dir)
    pids = [p for p in (state.pids if state else []) if _is_spark_daemon(p)]
    pids += _stale_daemons()  # a run whose state file is gone (another --dir, a crash)
    if shutil.which("ip") and os.geteuid() == 0:
        for ns in _our_namespaces():
            # Executors and Python workers a dead worker left behind in its namespace.
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            pids += [int(p) for p in out.stdout.split() if p.strip().isdigit()]
    _terminate(sorted(set(pids)))
    if shutil.which("ip") and os.geteuid() == 0:
        for ns in _our_namespaces():
            _ip("netns", "delete", ns, check=False)
        for link in _our_links():
            _ip("link", "delete", link, check=False)
    if os.geteuid() == 0 and os.path.exists(HOSTS_FILE):
        _set_hosts_entries({})
    path = os.path.join(base_dir, STATE_FILE)
    if os.path.exists(path):
        os.remove(path)
    if state is not None:
        logger.info("local cluster stopped in %.1fs", time.time() - started)


def status(base_dir: str = DEFAULT_DIR) -> dict:
    """{"running": bool, "state": ..., "alive_workers": n} of the cluster in `base_dir`."""
    state = load_state(base_dir)
    if state is None:
        return {"running": False, "state": None, "alive_workers": 0}
    alive = 0
    try:
        with urllib.request.urlopen(state.master_ui, timeout=2) as resp:
            alive = int(json.load(resp).get("aliveworkers", 0))
    except (OSError, ValueError):
        pass
    running = all(_alive(p) for p in state.pids) and bool(state.pids)
    return {"running": running, "state": dataclasses.asdict(state), "alive_workers": alive}


# -- a check that Horovod ranks on different hosts talk ---------------------------------

def allreduce_worker():
    """One Horovod rank: (rank, hostname, sum over ranks of rank + 1)."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    total = hvd.allreduce(tf.constant(float(hvd.rank() + 1)), op=hvd.Sum)
    return hvd.rank(), socket.gethostname(), float(total.numpy())


def check(state: ClusterState, num_proc: int = 2) -> list:
    """Runs `allreduce_worker` on `num_proc` ranks from a driver of this process.

    Returns:
        The ranks' (rank, hostname, sum); each sum must be n(n+1)/2.
    """
    import horovod.spark

    from focalseq.pipelines.session import get_spark

    spark = get_spark(state.master_url, "focalseq-cluster-check", state.spark_conf())
    try:
        return horovod.spark.run(allreduce_worker, num_proc=num_proc, verbose=0,
                                 use_gloo=True, nics=set(state.nics))
    finally:
        spark.stop()


# -- helpers ------------------------------------------------------------------------------

def _spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _spark_class() -> str:
    return os.path.join(_spark_home(), "bin", "spark-class")


def _ip(*args, check=True):
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"local cluster: `ip {' '.join(args)}` failed: "
                           f"{result.stderr.strip()}")
    return result


def _our_namespaces() -> List[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.strip() and line.split()[0].startswith(NS_PREFIX)]


def _our_links() -> List[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
             if line.count(":") >= 2]
    return [n for n in names if n == BRIDGE or n.startswith(VETH_PREFIX)]


def _check_subnet_free(subnet):
    """Refuses a subnet that overlaps an address or route the machine already has."""
    out = _ip("-4", "-o", "addr", "show", check=False).stdout.split()
    out += _ip("-4", "route", "show", check=False).stdout.split()
    for word in out:
        try:
            net = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if net.prefixlen > 0 and net.overlaps(subnet):
            raise RuntimeError(f"local cluster: subnet {subnet} overlaps {net} of this "
                               "machine; pass another private subnet (--subnet)")


def _set_hosts_entries(entries: Dict[str, str]):
    """Replaces this module's lines in /etc/hosts by `entries` ({ip: name})."""
    text = _read(HOSTS_FILE)
    kept = [line for line in text.splitlines() if not line.endswith(HOSTS_MARK)]
    lines = kept + [f"{ip}\t{name}\t{HOSTS_MARK}" for ip, name in entries.items()]
    new = "\n".join(lines) + "\n"
    if new != text:
        # Written in place: in containers /etc/hosts is a bind mount a rename cannot replace.
        with open(HOSTS_FILE, "w") as fh:
            fh.write(new)


def _terminate(pids: List[int], grace: float = 10.0):
    """SIGTERM to each process group (the daemon and what it started), then SIGKILL."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)


def _signal_group(pid: int, sig: int):
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited


def _is_spark_daemon(pid: int) -> bool:
    """True if `pid` is still one of ours (not a recycled id of another program)."""
    try:
        cmdline = _read(f"/proc/{pid}/cmdline")
    except OSError:
        return False
    return any(cls in cmdline for cls in DAEMON_CLASSES)


def _stale_daemons() -> List[int]:
    """Ids of Spark masters and workers on this module's ports (from any earlier start)."""
    ours = {f"--port\0{MASTER_PORT}\0", f"spark://127.0.0.1:{MASTER_PORT}\0"}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = _read(f"/proc/{entry}/cmdline")
        except OSError:
            continue
        if any(c in cmdline for c in DAEMON_CLASSES) and any(m in cmdline for m in ours):
            found.append(int(entry))
    return found


def _read(path: str) -> str:
    with open(path, errors="replace") as fh:
        return fh.read()


def _write_state(base_dir: str, state: ClusterState):
    path = os.path.join(base_dir, STATE_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(dataclasses.asdict(state), fh, indent=1)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m focalseq.local_cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "check"])
    parser.add_argument("--dir", default=os.environ.get("FOCALSEQ_CLUSTER_DIR", DEFAULT_DIR),
                        help=f"state, logs and worker folders (default {DEFAULT_DIR})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subnet", default=DEFAULT_SUBNET)
    parser.add_argument("--loopback", action="store_true",
                        help="workers on loopback, no namespaces")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if args.command == "start":
        state = LocalCluster(args.dir, args.workers, args.subnet,
                             namespaces=False if args.loopback else None).start()
        print(json.dumps({"spark.conf": state.spark_conf(), "workers": state.workers},
                         indent=1))
        return 0
    if args.command == "stop":
        cleanup(args.dir)
        return 0
    if args.command == "status":
        info = status(args.dir)
        print(json.dumps(info, indent=1))
        return 0 if info["running"] else 1
    state = load_state(args.dir)
    if state is None:
        print(f"no cluster in {args.dir}; run `start` first", file=sys.stderr)
        return 1
    for rank, host, total in sorted(check(state, len(state.workers))):
        print(f"rank {rank} on {host}: allreduce sum {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
