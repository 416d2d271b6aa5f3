"""A real redis-server for tests: started on a free loopback port in a temporary folder.

tests/conftest.py registers this module as a plugin: every test module can ask for
`redis_server` (one per test module) and `redis_client` without importing them.

Tests skip only when the `redis-server` binary is missing (scripts/setup_env.sh installs
it from the system packages); a server that does not come up fails the test.
"""
import shutil
import socket
import subprocess
import time

import pytest

START_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(binary, folder, port):
    log = folder / "redis.log"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, True
        except OSError:
            pass
        time.sleep(0.1)
    return proc, False


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """{"host", "port"} of a redis-server that lives for the test module."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: `apt-get install redis-server` "
                    "(scripts/setup_env.sh installs it)")
    folder = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        proc, up = _start(binary, folder, port)
        if up:
            break
        _stop(proc)
    else:
        log = folder / "redis.log"
        pytest.fail("redis-server did not start:\n" +
                    (log.read_text() if log.exists() else "(no log)"))
    try:
        yield {"host": "127.0.0.1", "port": port}
    finally:
        _stop(proc)


@pytest.fixture
def redis_client(redis_server):
    """A redis-py client on an emptied database."""
    import redis

    client = redis.Redis(host=redis_server["host"], port=redis_server["port"])
    client.flushdb()
    yield client
    client.close()
