#!/usr/bin/env bash
# Creates .venv with the pinned stack (requirements/constraints.txt), builds Horovod
# against it, installs redis-server from the system packages and focalseq itself.
# Idempotent: a stamp file keyed on the constraints and setup.py skips the work when
# nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}

missing=()
command -v "$PY" >/dev/null 2>&1 || missing+=("Python 3.11 ($PY not on PATH; TensorFlow 2.15 needs 3.9-3.11)")
if command -v java >/dev/null 2>&1; then
  jv_report=$(java -version 2>&1 || true)
  jv=$(sed -nE '1s/.*version "([0-9]+).*/\1/p' <<<"$jv_report")
  [ "$jv" = "17" ] || missing+=("Java 17 (found Java $jv; pyspark 4.0 needs 17)")
else
  missing+=("Java 17 (no java on PATH; apt-get install openjdk-17-jre-headless)")
fi
command -v cmake >/dev/null 2>&1 || missing+=("cmake (Horovod builds from source; apt-get install cmake)")
command -v g++ >/dev/null 2>&1 || missing+=("g++ (Horovod builds from source; apt-get install g++)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "focalseq setup: missing prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "focalseq setup: installing redis-server from the system packages"
  if [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
      || echo "focalseq setup: WARNING could not install redis-server; Redis tests will fail" >&2
  else
    echo "focalseq setup: WARNING redis-server missing and not root; run: sudo apt-get install redis-server" >&2
  fi
fi

stamp="$VENV/.focalseq-stamp"
want=$(cat requirements/constraints.txt setup.py scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
$PIP install -q --upgrade "pip<25" "setuptools>=64,<70" wheel
C="-c requirements/constraints.txt"
$PIP install -q $C tensorflow-cpu numpy protobuf
if ! "$VENV/bin/python" -c "import horovod.tensorflow" >/dev/null 2>&1; then
  echo "focalseq setup: building Horovod 0.28.1 against TensorFlow (about 5 minutes the first time)"
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    $PIP install -q $C --no-build-isolation horovod
fi
$PIP install -q $C -e ".[dev,cpu]"
# Capture the whole report first: piping it into `grep -q` closes the pipe at the first
# match, and horovodrun then dies of a BrokenPipeError that pipefail turns into a failure.
build=$("$VENV/bin/horovodrun" --check-build 2>&1) \
  || { echo "focalseq setup: horovodrun --check-build failed:" >&2; echo "$build" >&2; exit 1; }
if ! grep -q "\[X\] TensorFlow" <<<"$build"; then
  echo "focalseq setup: Horovod was built without TensorFlow; its build report:" >&2
  echo "$build" >&2
  echo "Rebuild it: rm -rf $VENV && make setup" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "focalseq setup: environment ready in $VENV"
