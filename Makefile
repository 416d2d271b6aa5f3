# Two commands for a new user: `make run` and `make test`. Both set up what is missing
# (a .venv with the pinned stack, Horovod built from source, redis-server) and are quick
# when everything is already there.
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 2
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: setup run test test-spark35 test-fast bench clean

setup:
	@bash scripts/setup_env.sh

run: setup
	$(VENV)/bin/focalseq run --conf conf/default.yaml

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15
	$(MAKE) test-spark35

# The Spark 3.5 of Databricks 15.4 LTS ML, EMR 7 and Dataproc 2.2: the Spark-version
# check, the Windower and the local-cluster end-to-end run, in .venv-spark35
# (scripts/setup_spark35.sh: pyspark 3.5 in front of the main .venv).
SPARK35_VENV ?= .venv-spark35
SPARK35_PY := $(abspath $(SPARK35_VENV)/bin/python)
SPARK35_TESTS := tests/test_spark_version.py tests/test_stages_windows.py \
	tests/test_cluster.py::test_pipeline_on_the_cluster_with_file_urls

test-spark35: setup
	@VENV=$(VENV) VENV_SPARK35=$(SPARK35_VENV) bash scripts/setup_spark35.sh
	PYSPARK_PYTHON=$(SPARK35_PY) PYSPARK_DRIVER_PYTHON=$(SPARK35_PY) \
		$(SPARK35_PY) -m pytest -q -p no:cacheprovider $(SPARK35_TESTS)

test-fast: setup
	$(PY) -m pytest tests -q -m "not slow"

bench: setup
	$(PY) benchmarks/prepare_throughput.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/predict_throughput.py

clean:
	rm -rf runs mlruns mlflow.db spark-warehouse
