#!/usr/bin/env bash
# Creates .venv-spark35: the main .venv (scripts/setup_env.sh) with pyspark 3.5
# (requirements/spark35.txt) in front of its pyspark 4.0, for `make test-spark35`.
#
# Why a layered venv and not a second full install: the rest of the stack (TensorFlow,
# Horovod, petastorm, pyarrow 14, ...) is the same for both Spark versions, and Horovod
# alone takes ~5 minutes to build. Why a venv of its own and not PYTHONPATH: Spark starts
# every executor's Python as `spark.pyspark.python`/PYSPARK_PYTHON, which focalseq and the
# local cluster set to sys.executable; with an interpreter of its own, the driver, the
# standalone daemons (their SPARK_HOME is the pyspark package that interpreter imports),
# the executors and Horovod's ranks all pick pyspark 3.5 without depending on an
# environment variable reaching each of them. The layering is one .pth file: the venv's
# own site-packages (pyspark 3.5, py4j) comes first on sys.path, then the main .venv's
# site-packages, whose .pth files (the editable focalseq) run too.
#
# Idempotent: a stamp keyed on this script, the pins and the main .venv's stamp skips the
# work when nothing changed; otherwise the folder is made anew (pip caches the pyspark
# wheel, so only the first run on a machine downloads and builds it, ~1.5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${VENV:-.venv}
ENV35=${VENV_SPARK35:-.venv-spark35}

[ -f "$MAIN/.focalseq-stamp" ] || bash scripts/setup_env.sh
stamp="$ENV35/.focalseq-stamp"
want=$(cat scripts/setup_spark35.sh requirements/spark35.txt "$MAIN/.focalseq-stamp" \
       | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

rm -rf "$ENV35"
# From the main venv's interpreter: venv bases the new one on the same Python 3.11.
"$MAIN/bin/python" -m venv --without-pip "$ENV35"
site35=$("$ENV35/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
main_site=$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
export PIP_DISABLE_PIP_VERSION_CHECK=1
# --target with --no-deps: only these two packages, nothing of the main stack duplicated
# or replaced.
"$MAIN/bin/python" -m pip install -q --no-deps --target "$site35" -r requirements/spark35.txt
# addsitedir (not a plain path line) so that the main site-packages' own .pth files run.
echo "import site; site.addsitedir('$main_site')" > "$site35/zz_focalseq_main_venv.pth"
# The console script the cluster tests run (they take it from beside sys.executable).
cat > "$ENV35/bin/focalseq" <<EOF
#!$(cd "$ENV35/bin" && pwd)/python
import sys
from focalseq.cli import main
sys.exit(main())
EOF
chmod +x "$ENV35/bin/focalseq"

want_spark=$(sed -nE 's/^pyspark==([0-9.]+).*/\1/p' requirements/spark35.txt)
got=$("$ENV35/bin/python" -c 'import pyspark, focalseq, horovod; print(pyspark.__version__)')
if [ "$got" != "$want_spark" ]; then
  echo "focalseq setup: $ENV35 imports pyspark $got, expected $want_spark" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "focalseq setup: pyspark $got environment ready in $ENV35"
