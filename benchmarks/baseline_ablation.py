"""Why the Spark ML context baseline trailed the users' scikit-learn one: one suspect at a time.

Each row re-creates the Spark baseline of benchmarks/_baseline.py in scikit-learn/scipy
(benchmarks/_sklearn_baseline.py, `Variant`: the same tokens, hashing, IDF formula,
offset-prefixed context, class weights and L2 strength on Spark's scale) and changes one
choice; the first row is the baseline as it was before issue 14, the last the users'
version (`reference`). Count matrices are built once; each row refits IDF and the
classifier on the fold's training lines. Prints a Markdown table (test and validation
focal F1s) and writes it into --out as section --name.

Usage, from the repository root:

    .venv/bin/python benchmarks/baseline_ablation.py --data ../shared/data/skol --folds vol117
"""
import argparse
import json
import logging
import os
import sys
import warnings

import _skol
import _sklearn_baseline as sk

BEFORE = sk.Variant()  # _baseline.py before issue 14: balanced weights, regParam 1e-4
FIXED = sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300)
# (suspect, description, variant); "ref" is the users' scikit-learn version.
ROWS = [
    ("-", "Spark baseline before issue 14 (balanced weights, regParam 1e-4)", BEFORE),
    ("a", "  regParam 1e-3 (the other value of its grid)", sk.Variant(reg_param=1e-3)),
    ("a", "  regParam 1e-5 (= C 1 on ~100k lines), maxIter 300: the fix (best validation)",
     sk.Variant(reg_param=1e-5, max_iter=300)),
    ("e", "  no class weights", sk.Variant(class_weight=None)),
    ("a+e", "no class weights + regParam 1e-5, maxIter 300", FIXED),
    ("a", "  row 4 with regParam 3e-6", sk.Variant(class_weight=None, reg_param=3e-6,
                                                     max_iter=300)),
    ("a", "  row 4 with regParam 3e-5", sk.Variant(class_weight=None, reg_param=3e-5,
                                                     max_iter=300)),
    ("a", "  row 4 with maxIter 100", sk.Variant(class_weight=None, reg_param=1e-5,
                                                   max_iter=100)),
    ("b", "  row 4 without hashing (a column per term)",
     sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300, num_features=None)),
    ("b", "  row 4 hashed into 2^20", sk.Variant(class_weight=None, reg_param=1e-5,
                                                   max_iter=300, num_features=2 ** 20)),
    ("c", "  row 4 with scikit-learn's IDF (smooth, +1)",
     sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300, idf="sklearn")),
    ("c", "  row 4 with sublinear tf (1 + log tf)",
     sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300, sublinear_tf=True)),
    ("d", "  row 4 with line and context as two bags, a norm each",
     sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300, context="bags")),
    ("e", "  row 4 with scikit-learn's tokens (\\b\\w\\w+\\b words, 'char' 2-4-grams)",
     sk.Variant(class_weight=None, reg_param=1e-5, max_iter=300, tokens="sklearn")),
    ("ref", "users' version: scikit-learn TfidfVectorizers (line, context), C 1", None),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=_skol.DEFAULT_DATA)
    p.add_argument("--folds", default="vol117", help="fold groups or names (see quality.py)")
    p.add_argument("--rows", default=None,
                   help="comma-separated row numbers to run (default: all)")
    p.add_argument("--out", default=os.path.join(_skol.REPO, "docs", "results.md"))
    p.add_argument("--name", default="baseline-ablation")
    p.add_argument("--log", default=os.path.join(_skol.DEFAULT_RUN_DIR,
                                                 "baseline_ablation.jsonl"),
                   help="finished rows (JSON lines), reused on the next run")
    args = p.parse_args(argv)
    args.folds = _skol.fold_names(args.folds)
    args.rows = None if args.rows is None else [int(x) for x in args.rows.split(",")]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore")  # lbfgs ConvergenceWarning at maxIter 100 is a finding
    labels = ["Nomenclature", "Description", "Misc-exposition"]
    focal = labels[:2]
    corpus = sk.read_corpus(_skol.corpus_dir(args.data), _skol.VOLUMES, focal, labels[2])
    done = {}
    if os.path.exists(args.log):
        with open(args.log) as fh:
            for line in fh:
                rec = json.loads(line)
                done[(rec["fold"], rec["variant"])] = rec
    results = {}
    # Rows run in the order given (rows sharing features next to each other are cheaper).
    order = args.rows if args.rows is not None else range(len(ROWS))
    for fold in args.folds:
        splits = sk.assign_splits(corpus, _skol.FOLDS[fold])
        for i in order:
            variant = ROWS[i][2]
            key = (fold, repr(variant))
            if key not in done:
                out = sk.reference(corpus, splits, labels, focal) if variant is None else \
                    sk.ablation(corpus, splits, labels, focal, variant)
                rec = {"fold": fold, "variant": repr(variant), "row": i,
                       "test": out["reports"]["test"],
                       "validation": out["reports"]["validation"],
                       "seconds": out["seconds"], "iterations": out["iterations"]}
                os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
                with open(args.log, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                done[key] = rec
            rec = done[key]
            results[(fold, i)] = rec
            t = rec["test"]["per_label"]
            print(f"{fold} row {i}: N {t['Nomenclature']['f1']:.3f} "
                  f"D {t['Description']['f1']:.3f} ({rec['seconds']:.0f}s, "
                  f"{rec['iterations']} it)", flush=True)
    table = format_table(results, args.folds)
    print("\n" + table)
    if args.out != "-":
        from quality import write_section

        cmd = " ".join(["python", "benchmarks/baseline_ablation.py"] + sys.argv[1:])
        write_section(args.out, args.name, f"Command: `{cmd}`\n\n{table}\n")
    return 0


def format_table(results: dict, folds) -> str:
    head = ["suspect", "variant"]
    for fold in folds:
        head += [f"{fold}: N P / R / F1", f"{fold}: D F1", f"{fold}: val macro"]
    head.append("L-BFGS iterations")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for i, (suspect, text, _) in enumerate(ROWS):
        if not any((fold, i) in results for fold in folds):
            continue
        cells = [suspect, text.strip()]
        its = []
        for fold in folds:
            rec = results.get((fold, i))
            if rec is None:
                cells += ["", "", ""]
                continue
            n, d = rec["test"]["per_label"]["Nomenclature"], rec["test"]["per_label"]["Description"]
            cells += [f"{n['precision']:.3f} / {n['recall']:.3f} / **{n['f1']:.3f}**",
                      f"**{d['f1']:.3f}**", f"{rec['validation']['focal_macro_f1']:.3f}"]
            its.append(str(rec["iterations"]))
        cells.append(", ".join(its))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
