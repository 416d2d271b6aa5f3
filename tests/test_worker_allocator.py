"""A training worker takes its CPU tensors from TensorFlow's pooling (BFC) allocator.

glibc's malloc, TensorFlow's default on CPU, let a worker's peak memory creep with the
number of steps (benchmarks/worker_memory.py). Only a BFC allocator keeps statistics, so
`tf.config.experimental.get_memory_info` tells which one a process uses. Each check runs
in a fresh process: the allocator is chosen at the first tensor and never again.
"""
import json
import os
import subprocess
import sys

WORKER = """
import json
import tensorflow as tf
from focalseq.training import remote
remote._init_horovod({"seed": 0, "threads_per_worker": 1})
tf.ones([256, 256])  # 256 KiB
try:
    print(json.dumps(tf.config.experimental.get_memory_info("CPU:0")))
except ValueError as exc:  # no statistics: not a BFC allocator
    print(json.dumps({"error": str(exc)}))
"""


def _worker_memory_info(**env):
    run_env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    run_env.update(env, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", WORKER], env=run_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_worker_uses_tensorflows_pooling_allocator():
    info = _worker_memory_info()
    assert "error" not in info, info
    assert info["peak"] >= 256 * 256 * 4  # the tensor above went through it


def test_the_workers_environment_overrides_the_choice():
    info = _worker_memory_info(TF_CPU_ALLOCATOR_USE_BFC="false")
    assert "not available" in info["error"]
