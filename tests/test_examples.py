"""examples/compare_losses.py against a real redis-server."""
import os
import subprocess
import sys

import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.horovod
def test_compare_losses_prints_the_table_and_keeps_models_in_redis(redis_server, tmp_path):
    import redis

    url = f"redis://{redis_server['host']}:{redis_server['port']}/0"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "compare_losses.py"), "--redis", url,
         "--epochs", "1", "--small", "--work-dir", str(tmp_path),
         # One approach: all three, with Redis, run in tests/test_familiar_api.py
         # (the documented "comparing approaches" example).
         "--approaches", "soft_f1_focal"],
        env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-5000:]
    table = proc.stdout.split("approach")[-1].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:] if line.strip()}
    assert set(rows) == {"soft_f1_focal"}
    for cells in rows.values():
        f1s = [float(c) for c in cells[1:5]]
        assert all(0.0 <= f <= 1.0 for f in f1s)
    assert "[BiLSTM] Using mean F1 loss for focal labels:\n  Nomenclature\n  Description\n" \
        in proc.stdout
    client = redis.Redis.from_url(url)
    assert sorted(k.decode() for k in client.keys("rnn_*")) == ["rnn_soft_f1_focal"]


def test_compare_losses_refuses_an_unknown_approach():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "compare_losses.py"),
         "--approaches", "standard,focal"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--approaches: ['focal'] not among ['standard', 'weighted_inverse', " \
        "'soft_f1_focal']" in proc.stderr
