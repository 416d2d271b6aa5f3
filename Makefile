# Two commands for a new user: `make run` and `make test`. Both set up what is missing
# (a .venv with the pinned stack, Horovod built from source, redis-server) and are quick
# when everything is already there.
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 2
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: setup run test test-fast bench clean

setup:
	@bash scripts/setup_env.sh

run: setup
	$(VENV)/bin/focalseq run --conf conf/default.yaml

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest tests -q -m "not slow"

bench: setup
	$(PY) benchmarks/prepare_throughput.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/predict_throughput.py

clean:
	rm -rf runs mlruns mlflow.db spark-warehouse
