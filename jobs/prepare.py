"""spark-submit entry point: `spark-submit jobs/prepare.py --conf conf/default.yaml [--set k=v]`."""
import sys

from focalseq.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare"] + sys.argv[1:]))
