#!/usr/bin/env bash
# Databricks cluster init script: the pinned stack, Horovod built against TensorFlow,
# and focalseq itself, on every node. Databricks ML runtimes ship Spark; pip must not
# replace it, so pyspark is left out of the install.
set -euo pipefail
REPO=${FOCALSEQ_REPO:-/Workspace/Repos/focalseq}
grep -v '^pyspark' "$REPO/requirements/constraints.txt" > /tmp/focalseq-constraints.txt
# GPU nodes get the tensorflow wheel with its CUDA libraries, CPU nodes tensorflow-cpu:
# both provide the `tensorflow` module, so exactly one is installed (focalseq[gpu] / [cpu]).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  TF="tensorflow[and-cuda]"; EXTRA=gpu; GPU_OPS="HOROVOD_GPU_OPERATIONS=NCCL"
else
  TF="tensorflow-cpu"; EXTRA=cpu; GPU_OPS=""
fi
echo "focalseq init: installing $TF (focalseq[$EXTRA])"
/databricks/python/bin/pip install -c /tmp/focalseq-constraints.txt "$TF" numpy protobuf
env $GPU_OPS HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_PYTORCH=1 \
  HOROVOD_WITHOUT_MXNET=1 /databricks/python/bin/pip install -c /tmp/focalseq-constraints.txt --no-build-isolation horovod
/databricks/python/bin/pip install -c /tmp/focalseq-constraints.txt --no-deps "$REPO"
/databricks/python/bin/pip install -c /tmp/focalseq-constraints.txt petastorm pyarrow mlflow redis PyYAML fsspec
