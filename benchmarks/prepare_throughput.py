"""Throughput of files -> lines -> features -> windows -> Parquet, Spark vs one process.

Measures, each in a fresh child process (so memory high-water marks belong to one run):

* spark:     YeddaParser -> LineFeaturizer -> Windower -> Parquet with Spark local[2]
             (the stages of focalseq.stages; windows built in place, no shuffle);
* reference: the same transformation in a single Python process, written here: read
             each file, focalseq.text.yedda.parse_yedda, token_ids and shape_features
             line by line, window_starts + numpy slices, pyarrow.parquet writer.

on the real SKOL corpus (if present) and on a synthetic corpus (generate_corpus) of
about 1,000,000 lines, plus a smaller synthetic corpus to show that driver memory does
not grow with corpus size. Prints lines/second, the Spark / reference ratio, and peak
memory: the Python driver's VmHWM, the JVM's VmHWM and its heap in use after a full GC,
and the largest Python worker's VmHWM.

    .venv/bin/python benchmarks/prepare_throughput.py [--data ../shared/data/skol]
        [--docs 1000 --lines-per-doc 1010] [--small-docs 250] [--work DIR]

Same settings as conf/default.yaml: vocab 32768, 24 tokens, all 21 shape features,
windows of 16 lines with stride 8; labels Nomenclature, Description, Misc-exposition
(every other label maps to Misc-exposition).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "data", "skol")
LABELS = ["Nomenclature", "Description", "Misc-exposition"]
KEEP = ["Nomenclature", "Description"]
VOCAB, MAX_TOKENS, WINDOW, STRIDE = 32768, 24, 16, 8


# -- measurements (run in child processes) -----------------------------------------------

def _status_kb(pid, key="VmHWM"):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid):
    out = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(task) as fh:
                out += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return out


def _descendants(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        for c in _children(p):
            seen.append(c)
            todo.append(c)
    return seen


def _comm(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cpu_seconds(pids):
    """utime + stime of the processes, plus that of their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except OSError:
            pass
    return total / tick


def _is_java(pid):
    return os.path.basename(_comm(pid).split(" ")[0]) == "java"


def _is_python_worker(pid):
    # The JVM's class path names pyspark too: look at the program, then the module.
    cmd = _comm(pid).split(" ")
    return "python" in os.path.basename(cmd[0]) and "pyspark.daemon" in cmd


def _cpu_by_kind(pid):
    """CPU seconds so far of the driver, the JVM and the Python workers under `pid`."""
    tree = _descendants(pid)
    java = [p for p in tree if _is_java(p)]
    workers = [p for p in tree if _is_python_worker(p)]
    return {"driver": _cpu_seconds([pid]), "jvm": _cpu_seconds(java),
            "workers": _cpu_seconds(workers)}


def _loadavg():
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def run_spark(paths, out_dir, master, how="prepare"):
    """Spark: `prepare` (one fused pass, split folders, manifest) or the stages chained."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from focalseq.config import load_config
    from focalseq.pipelines.prepare import prepare
    from focalseq.pipelines.session import get_spark
    from focalseq.stages.features import LineFeaturizer
    from focalseq.stages.parse import YeddaParser, list_files, split_problems
    from focalseq.stages.windows import Windower

    def pipeline(files, out):
        if how == "prepare":
            cfg = load_config(None, [
                "data.source=files", f"data.paths={json.dumps(files)}",
                f"data.keep_labels={json.dumps(KEEP)}", f"labels={json.dumps(LABELS)}",
                f"features.vocab_size={VOCAB}", f"features.max_tokens={MAX_TOKENS}",
                f"windows.size={WINDOW}", f"windows.stride={STRIDE}"])
            return sum(prepare(spark, cfg, out)["window_counts"].values())
        parsed = YeddaParser(keepLabels=KEEP).transform(list_files(spark, files))
        lines, _ = split_problems(parsed)
        feats = LineFeaturizer(vocabSize=VOCAB, maxTokens=MAX_TOKENS).transform(lines)
        windows = Windower(labels=LABELS, windowSize=WINDOW, stride=STRIDE).transform(feats)
        windows.write.mode("overwrite").parquet(out)
        return spark.read.parquet(out).count()

    started = time.time()
    spark = get_spark(master, "prepare-throughput")
    startup = time.time() - started
    # Warm-up on a few files starts the Python workers (imports), as the reference's
    # imports happen before its clock starts.
    t0 = time.time()
    first = sorted(f for p in paths for f in glob.glob(p))[:2 * spark.sparkContext.defaultParallelism]
    pipeline(first, out_dir + "-warmup")
    warmup = time.time() - t0
    load0 = _loadavg()
    cpu0 = _cpu_by_kind(os.getpid())
    t0 = time.time()
    n_windows = pipeline(paths, out_dir)
    seconds = time.time() - t0
    cpu1 = _cpu_by_kind(os.getpid())
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    heap = jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
    tree = _descendants(os.getpid())
    java = [p for p in tree if _is_java(p)]
    workers = [p for p in tree if _is_python_worker(p)]
    result = {
        "seconds": seconds, "startup_seconds": startup, "warmup_seconds": warmup,
        "load_before": load0,
        "load_after": _loadavg(),
        "cpu_seconds": {k: cpu1[k] - cpu0[k] for k in cpu1},
        "driver_python_peak_mb": _status_kb(os.getpid()) / 1024,
        "jvm_peak_rss_mb": max((_status_kb(p) or 0) for p in java) / 1024 if java else None,
        "jvm_heap_used_after_gc_mb": heap.getUsed() / 2 ** 20,
        "jvm_heap_committed_mb": heap.getCommitted() / 2 ** 20,
        "worker_python_peak_mb": max((_status_kb(p) or 0) for p in workers) / 1024
        if workers else None,
        "windows": n_windows, "how": how,
    }
    spark.stop()
    return result


def run_reference(paths, out_dir):
    """The same transformation in this process, line by line; returns timing figures."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from focalseq.text.features import SHAPE_FEATURES, TokenConfig, shape_features, token_ids
    from focalseq.text.windows import window_starts
    from focalseq.text.yedda import LabelMap, decode_bytes, parse_yedda

    files = sorted(f for p in paths for f in glob.glob(p))
    cfg = TokenConfig(vocab_size=VOCAB, max_tokens=MAX_TOKENS)
    label_map = LabelMap(keep=KEEP)
    index = {lab: i for i, lab in enumerate(LABELS)}
    F, L = len(SHAPE_FEATURES), len(LABELS)

    def lists(values, width):
        flat = pa.array(np.concatenate(values) if values else np.zeros(0, np.float32))
        offsets = pa.array(np.arange(0, len(values) * width + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, flat)

    os.makedirs(out_dir, exist_ok=True)
    load0 = _loadavg()
    t0 = time.time()
    writer = None
    n_lines = n_windows = 0
    cols = {k: [] for k in ("doc_id", "start", "n_valid", "token_ids", "shape", "y", "mask")}
    for path in files:
        with open(path, "rb") as fh:
            text, _ = decode_bytes(fh.read())
        lines, _ = parse_yedda(text, path)
        n = len(lines)
        n_lines += n
        if not n:
            continue
        tokens = np.zeros((n + WINDOW, MAX_TOKENS), np.int32)
        shapes = np.zeros((n + WINDOW, F), np.float32)
        y = np.zeros((n + WINDOW, L), np.float32)
        for i, line in enumerate(lines):
            tokens[i] = token_ids(line.text, cfg)
            shapes[i] = shape_features(line, i, n)
            y[i, index[label_map.map(line.label)]] = 1.0
        for start in window_starts(n, WINDOW, STRIDE):
            valid = min(WINDOW, n - start)
            mask = np.zeros(WINDOW, np.float32)
            mask[:valid] = 1.0
            cols["doc_id"].append(path)
            cols["start"].append(start)
            cols["n_valid"].append(valid)
            cols["token_ids"].append(tokens[start:start + WINDOW].ravel())
            cols["shape"].append(shapes[start:start + WINDOW].ravel())
            cols["y"].append(y[start:start + WINDOW].ravel())
            cols["mask"].append(mask)
        if len(cols["start"]) >= 2000 or path == files[-1]:
            table = pa.table({
                "doc_id": pa.array(cols["doc_id"]),
                "start": pa.array(cols["start"], pa.int32()),
                "n_valid": pa.array(cols["n_valid"], pa.int32()),
                "token_ids": lists(cols["token_ids"], WINDOW * MAX_TOKENS),
                "shape": lists(cols["shape"], WINDOW * F),
                "y": lists(cols["y"], WINDOW * L),
                "mask": lists(cols["mask"], WINDOW)})
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(out_dir, "windows.parquet"),
                                          table.schema, compression="snappy")
            writer.write_table(table)
            n_windows += table.num_rows
            cols = {k: [] for k in cols}
    if writer is not None:
        writer.close()
    seconds = time.time() - t0
    return {"seconds": seconds, "lines": n_lines, "windows": n_windows,
            "load_before": load0, "load_after": _loadavg(),
            "cpu_seconds": _cpu_seconds([os.getpid()]),
            "python_peak_mb": _status_kb(os.getpid()) / 1024}


def count_lines(paths):
    from focalseq.text.yedda import count_nonempty_lines, decode_bytes

    total = 0
    for path in sorted(f for p in paths for f in glob.glob(p)):
        with open(path, "rb") as fh:
            total += count_nonempty_lines(decode_bytes(fh.read())[0])
    return total


# -- the driver of the benchmark ---------------------------------------------------------

def _child(kind, paths, out_dir, master="local[2]", how="prepare"):
    """Runs one measurement in a fresh interpreter; returns its JSON result."""
    spec = json.dumps({"kind": kind, "paths": paths, "out": out_dir, "master": master,
                       "how": how})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{kind} run failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_mb(x):
    return "n/a" if x is None else f"{x:,.0f} MB"


def measure(name, paths, work, hows=("prepare",), with_reference=True, master="local[2]"):
    """Spark runs (one per entry of `hows`) and the reference on one corpus."""
    lines = count_lines(paths)
    print(f"\n== {name}: {lines:,} non-empty lines in "
          f"{sum(len(glob.glob(p)) for p in paths):,} files", flush=True)
    result = {"name": name, "lines": lines, "spark": {}}
    for how in hows:
        run = _child("spark", paths, os.path.join(work, f"spark-{name}"), master, how)
        cpu = run["cpu_seconds"]
        print(f"  spark {how:8s} {master}: {run['seconds']:7.1f} s {lines / run['seconds']:9,.0f}"
              f" lines/s  ({run['windows']:,} windows; CPU s: JVM {cpu['jvm']:.0f}, Python "
              f"workers {cpu['workers']:.0f}, driver {cpu['driver']:.0f}; load "
              f"{run['load_before']:.1f}->{run['load_after']:.1f}; not counted: session start "
              f"{run['startup_seconds']:.0f} s, warm-up {run['warmup_seconds']:.0f} s)", flush=True)
        print(f"    peak memory: driver python {_fmt_mb(run['driver_python_peak_mb'])}, JVM RSS "
              f"{_fmt_mb(run['jvm_peak_rss_mb'])}; JVM heap after GC "
              f"{_fmt_mb(run['jvm_heap_used_after_gc_mb'])} (committed "
              f"{_fmt_mb(run['jvm_heap_committed_mb'])}); largest python worker "
              f"{_fmt_mb(run['worker_python_peak_mb'])}", flush=True)
        result["spark"][how] = run
    if with_reference:
        ref = _child("reference", paths, os.path.join(work, f"ref-{name}"))
        windows = {r["windows"] for r in result["spark"].values()}
        if ref["lines"] != lines or windows != {ref["windows"]}:
            raise SystemExit(f"reference and Spark disagree: {ref['lines']} vs {lines} lines, "
                             f"{ref['windows']} vs {windows} windows")
        print(f"  reference (1 process): {ref['seconds']:7.1f} s {lines / ref['seconds']:9,.0f}"
              f" lines/s  (CPU {ref['cpu_seconds']:.0f} s; peak "
              f"{_fmt_mb(ref['python_peak_mb'])}; load {ref['load_before']:.1f}->"
              f"{ref['load_after']:.1f})", flush=True)
        result["reference"] = ref
        result["ratio"] = {how: ref["seconds"] / run["seconds"]
                           for how, run in result["spark"].items()}
        print("  ratio spark / reference: " + ", ".join(
            f"{how} {r:.2f}x" for how, r in result["ratio"].items()), flush=True)
    for d in glob.glob(os.path.join(work, f"*-{name}*")):
        shutil.rmtree(d, ignore_errors=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="real SKOL corpus root")
    parser.add_argument("--docs", type=int, default=1000, help="synthetic documents")
    parser.add_argument("--lines-per-doc", type=int, default=1010,
                        help="lines a document; about 0.7%% are blank, so 1000 x 1010 "
                             "gives just over 1M non-empty lines")
    parser.add_argument("--small-docs", type=int, default=250,
                        help="documents of the smaller synthetic corpus (memory check)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(args.child)
        if spec["kind"] == "spark":
            result = run_spark(spec["paths"], spec["out"], spec["master"], spec["how"])
        else:
            result = run_reference(spec["paths"], spec["out"])
        print(json.dumps(result))
        return 0

    work = args.work or tempfile.mkdtemp(prefix="prepare-throughput-")
    os.makedirs(work, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {_loadavg():.1f}; scratch {work}")
    results = []
    data = os.path.abspath(args.data)
    real = sorted(glob.glob(os.path.join(data, "*", "*", "*.ann")))
    if real:
        results.append(measure("skol", [os.path.join(data, "*", "*", "*.ann")], work,
                               master=args.master))
    else:
        print(f"\nreal corpus: MISSING at {data} (no */*/*.ann files there); pass --data PATH. "
              "Continuing with the synthetic corpus only.")

    from focalseq.synthetic import generate_corpus

    corpus = os.path.join(work, "synthetic")
    if not os.path.isdir(corpus) or len(os.listdir(corpus)) != args.docs:
        shutil.rmtree(corpus, ignore_errors=True)
        t = time.time()
        generate_corpus(corpus, n_docs=args.docs, lines_per_doc=args.lines_per_doc, seed=0)
        print(f"\ngenerated {args.docs} synthetic documents in {time.time() - t:.0f} s")
    files = sorted(glob.glob(os.path.join(corpus, "*.ann")))
    small = os.path.join(work, "synthetic-small")
    if args.small_docs and not os.path.isdir(small):
        os.makedirs(small)
        for f in files[:args.small_docs]:
            os.link(f, os.path.join(small, os.path.basename(f)))
    if args.small_docs:
        results.append(measure("synthetic-small", [os.path.join(small, "*.ann")], work,
                               with_reference=False, master=args.master))
    results.append(measure("synthetic", [os.path.join(corpus, "*.ann")], work,
                           hows=("prepare", "stages"), master=args.master))

    print("\n== summary (lines/s; peak memory of the Spark driver)")
    for r in results:
        for how, run in r["spark"].items():
            ratio = f"{r['ratio'][how]:.2f}x reference" if "ratio" in r else "no reference"
            print(f"  {r['name']:16s} {r['lines']:>10,} lines  spark {how:8s} "
                  f"{r['lines'] / run['seconds']:>8,.0f}  {ratio:16s}  driver python "
                  f"{_fmt_mb(run['driver_python_peak_mb'])}, JVM RSS "
                  f"{_fmt_mb(run['jvm_peak_rss_mb'])}, JVM heap after GC "
                  f"{_fmt_mb(run['jvm_heap_used_after_gc_mb'])}")
        if "reference" in r:
            print(f"  {r['name']:16s} {r['lines']:>10,} lines  reference        "
                  f"{r['lines'] / r['reference']['seconds']:>8,.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
