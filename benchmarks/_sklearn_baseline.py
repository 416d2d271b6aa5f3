"""Independent check of the context baseline, in scikit-learn (benchmark only, no Spark).

Two things live here:

* :func:`reference`: the users' baseline as they describe it, written the plain
  scikit-learn way: ``TfidfVectorizer`` of words and one of character 2-4-grams over the
  line, the same two over its context (the text of the lines at -2, -1, +1, +2 joined),
  the four blocks side by side, ``LogisticRegression(C=1)``. Nothing of focalseq is used
  but the YEDDA reader (so both sides see the same lines and labels).
* :func:`ablation`: the Spark ML baseline of ``_baseline.py`` re-expressed in
  scikit-learn/scipy with a switch for each of its choices (tokens, hashing, IDF formula,
  sublinear tf, how context is represented, class weights, L2 strength), so that each
  suspect of the gap between the two can be turned on and off alone, in seconds instead
  of Spark's half hour. Count matrices are built once for the whole corpus; a fold only
  refits IDF and the classifier.

Spark's L2 objective is mean (weighted) loss + regParam ||w||^2 / 2; scikit-learn's is
C * sum of losses + ||w||^2 / 2: the same model when regParam = 1 / (C * sum of weights),
which :func:`c_for_reg_param` converts.
"""
import glob
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import sparse

logger = logging.getLogger(__name__)

CONTEXT = (-2, -1, 1, 2)
# Java's \w (Spark's RegexTokenizer) is ASCII unless told otherwise.
_SPARK_WORDS = re.compile(r"\w+|[^\w\s]", re.ASCII)
_SPACE = re.compile(r"\s")


@dataclass
class Corpus:
    """Every non-empty line of the corpus in document order, with its document and label."""

    paths: List[str]
    doc: np.ndarray          # document index of each line
    text: List[str]
    label: List[str]
    cache: Dict[str, object] = field(default_factory=dict)


def read_corpus(root: str, volumes: Sequence[str], keep: Sequence[str],
                default: str) -> Corpus:
    """Parses every ``*.ann`` file of `volumes` under `root` with focalseq's YEDDA reader."""
    from focalseq.text.yedda import LabelMap, decode_bytes, parse_yedda

    label_map = LabelMap(keep=list(keep), default=default)
    paths, doc, text, label = [], [], [], []
    for volume in volumes:
        for path in sorted(glob.glob(os.path.join(root, volume, "*.ann"))):
            with open(path, "rb") as fh:
                content, _ = decode_bytes(fh.read())
            lines, _ = parse_yedda(content, path)
            doc += [len(paths)] * len(lines)
            paths.append(path)
            text += [x.text for x in lines]
            label += [label_map.map(x.label) for x in lines]
    return Corpus(paths, np.asarray(doc), text, label)


def assign_splits(corpus: Corpus, patterns) -> np.ndarray:
    """Split of each line: the first [split, regex] whose regex is found in the file path.

    Lines of files no pattern matches get "" (dropped), as DocumentSplitter drops them.
    """
    compiled = [(split, re.compile(regex)) for split, regex in patterns]
    per_doc = []
    for path in corpus.paths:
        per_doc.append(next((s for s, rx in compiled if rx.search(path)), ""))
    return np.asarray(per_doc, dtype=object)[corpus.doc]


def shifted(matrix, doc: np.ndarray, k: int):
    """Row i becomes row i+k of the same document; zero where that line does not exist."""
    n = matrix.shape[0]
    src = np.arange(n) + k
    ok = (src >= 0) & (src < n)
    ok[ok] = doc[src[ok]] == doc[ok]
    rows = np.flatnonzero(ok)
    pick = sparse.csr_matrix((np.ones(len(rows)), (rows, src[rows])), shape=(n, n))
    return (pick @ matrix).tocsr()


def context_texts(corpus: Corpus, offsets=CONTEXT) -> List[str]:
    """The text of the lines at `offsets` (same document), joined with newlines."""
    out = []
    n = len(corpus.text)
    for i in range(n):
        parts = [corpus.text[i + k] for k in offsets
                 if 0 <= i + k < n and corpus.doc[i + k] == corpus.doc[i]]
        out.append("\n".join(parts))
    return out


def c_for_reg_param(reg_param: float, total_weight: float) -> float:
    """scikit-learn's C for Spark's regParam (mean loss + reg ||w||^2/2 = (sum C loss + ||w||^2/2) / (C W))."""
    return 1.0 / (reg_param * total_weight)


def report(truth, pred, labels, focal_labels) -> dict:
    """Per-label precision, recall, F1 and support, and the focal macro-F1 (PerLabelEvaluator's keys)."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=list(labels),
                                                 zero_division=0)
    per_label = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                       "support": int(s[i])} for i, lab in enumerate(labels)}
    return {"labels": list(labels), "per_label": per_label, "n": len(truth),
            "focal_macro_f1": float(np.mean([per_label[x]["f1"] for x in focal_labels]))}


def _fit_and_report(x, y, splits, labels, focal_labels, c, class_weight, max_iter):
    from sklearn.linear_model import LogisticRegression

    train = splits == "train"
    clf = LogisticRegression(C=c, class_weight=class_weight, max_iter=max_iter)
    t0 = time.time()
    clf.fit(x[train], y[train])
    out = {"seconds": time.time() - t0, "iterations": int(np.max(clf.n_iter_)), "reports": {}}
    for split in ("validation", "test"):
        rows = splits == split
        if rows.any():
            out["reports"][split] = report(y[rows], clf.predict(x[rows]), labels,
                                           focal_labels)
    return out


# -- the users' version -----------------------------------------------------------------


def reference(corpus: Corpus, splits: np.ndarray, labels, focal_labels, c: float = 1.0,
              class_weight=None, max_iter: int = 1000, char_analyzer: str = "char") -> dict:
    """The users' baseline: TF-IDF words + char 2-4-grams of the line and of its context.

    Returns {"reports": {split: report}, "seconds", "iterations"}.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if "context" not in corpus.cache:
        corpus.cache["context"] = context_texts(corpus)
    keep = splits != ""
    line = np.asarray(corpus.text, dtype=object)[keep]
    ctx = np.asarray(corpus.cache["context"], dtype=object)[keep]
    s = splits[keep]
    train = s == "train"
    started = time.time()
    blocks = []
    for texts in (line, ctx):
        for vec in (TfidfVectorizer(), TfidfVectorizer(analyzer=char_analyzer,
                                                       ngram_range=(2, 4))):
            vec.fit(texts[train])
            blocks.append(vec.transform(texts))
    x = sparse.hstack(blocks).tocsr()
    out = _fit_and_report(x, np.asarray(corpus.label, dtype=object)[keep], s, labels,
                          focal_labels, c, class_weight, max_iter)
    out["seconds"] = time.time() - started
    out["features"] = x.shape[1]
    return out


# -- the Spark version, one switch per choice -------------------------------------------


def spark_tokens(text: str) -> List[str]:
    """_baseline.line_bags in Python: ASCII word/punctuation tokens + c:-prefixed char 2-4-grams."""
    lower = text.lower()
    chars = _SPACE.sub("_", lower)
    grams = ["c:" + chars[i:i + n] for n in (2, 3, 4) for i in range(len(chars) - n + 1)]
    return _SPARK_WORDS.findall(lower) + grams


def _counts(corpus: Corpus, tokens: str):
    """Line-by-vocabulary count matrix (all lines) and the vocabulary, cached per token style."""
    from sklearn.feature_extraction.text import CountVectorizer

    key = f"counts-{tokens}"
    if key not in corpus.cache:
        if tokens == "spark":
            vec = CountVectorizer(analyzer=spark_tokens)
            matrix = vec.fit_transform(corpus.text)
            vocab = vec.get_feature_names_out()
        elif tokens == "sklearn":
            word = CountVectorizer()
            char = CountVectorizer(analyzer="char", ngram_range=(2, 4))
            matrix = sparse.hstack([word.fit_transform(corpus.text),
                                    char.fit_transform(corpus.text)]).tocsr()
            vocab = np.concatenate([word.get_feature_names_out(),
                                    ["c:" + g for g in char.get_feature_names_out()]])
        else:
            raise ValueError(f"tokens={tokens!r}; valid: 'spark', 'sklearn'")
        corpus.cache[key] = (matrix.astype(np.float64).tocsr(), vocab)
    return corpus.cache[key]


def _hash_columns(corpus: Corpus, tokens: str, prefix: str, num_features: int) -> np.ndarray:
    from sklearn.utils import murmurhash3_32

    key = f"hash-{tokens}-{prefix}-{num_features}"
    if key not in corpus.cache:
        vocab = _counts(corpus, tokens)[1]
        corpus.cache[key] = np.fromiter(
            (murmurhash3_32(prefix + t, seed=42, positive=True) % num_features for t in vocab),
            dtype=np.int64, count=len(vocab))
    return corpus.cache[key]


def _shifted_counts(corpus: Corpus, tokens: str, k: int):
    key = f"shift-{tokens}-{k}"
    if key not in corpus.cache:
        counts = _counts(corpus, tokens)[0]
        corpus.cache[key] = counts if k == 0 else shifted(counts, corpus.doc, k)
    return corpus.cache[key]


def _idf(x_train, formula: str, min_doc_freq: int) -> np.ndarray:
    m = x_train.shape[0]
    df = np.bincount(x_train.indices, minlength=x_train.shape[1]).astype(np.float64)
    if formula == "spark":
        idf = np.log((m + 1.0) / (df + 1.0))
        idf[df < min_doc_freq] = 0.0
    elif formula == "sklearn":
        idf = np.log((1.0 + m) / (1.0 + df)) + 1.0
        idf[df == 0] = 0.0  # a term never seen in training is not in its vocabulary
    else:
        raise ValueError(f"idf={formula!r}; valid: 'spark', 'sklearn'")
    return idf


def _tfidf_block(x, train, idf_formula, min_doc_freq, sublinear):
    from sklearn.preprocessing import normalize

    x = x.copy()
    if sublinear:
        x.data = 1.0 + np.log(x.data)
    x = x @ sparse.diags(_idf(x[train], idf_formula, min_doc_freq))
    x.eliminate_zeros()
    return normalize(x, norm="l2", copy=False)


@dataclass(frozen=True)
class Variant:
    """One setting of every suspect; the defaults are what _baseline.py did before issue 14."""

    tokens: str = "spark"             # "spark" (_baseline.line_bags) | "sklearn" (\\b\\w\\w+\\b, char)
    num_features: Optional[int] = 2 ** 19   # hashed width; None: one column per term
    idf: str = "spark"                # "spark": log((m+1)/(df+1)), df < 2 -> 0 | "sklearn": +1, smooth
    sublinear_tf: bool = False
    context: str = "prefixed"         # "prefixed": one bag, tokens by offset, one norm |
                                      # "bags": line and context (sum of -2..+2) blocks, a norm each |
                                      # "blocks": one block per offset, a norm each
    class_weight: Optional[str] = "balanced"
    reg_param: Optional[float] = 1e-4  # Spark's regParam; None: use `c`
    c: float = 1.0
    max_iter: int = 100


def features(corpus: Corpus, splits: np.ndarray, v: Variant):
    """The feature matrix of `v` for all lines (IDF fitted on the training lines)."""
    train = splits == "train"
    offsets = (0,) + CONTEXT

    def hashed(x, prefix):
        if v.num_features is None:
            return x
        cols = _hash_columns(corpus, v.tokens, prefix, v.num_features)
        x = x.tocoo()
        return sparse.csr_matrix((x.data, (x.row, cols[x.col])),
                                 shape=(x.shape[0], v.num_features))

    shifts = {k: _shifted_counts(corpus, v.tokens, k) for k in offsets}
    if v.context == "prefixed":
        blocks = [hashed(shifts[k], f"{k:+d}:") for k in offsets]
        # With hashing every offset shares one space (Spark's prefixed tokens in one
        # HashingTF); without, each offset has its own columns.
        x = sum(blocks[1:], blocks[0]) if v.num_features else sparse.hstack(blocks).tocsr()
        return _tfidf_block(x.tocsr(), train, v.idf, 2, v.sublinear_tf)
    if v.context == "bags":
        ctx = sum((shifts[k] for k in CONTEXT[1:]), shifts[CONTEXT[0]])
        parts = [hashed(shifts[0], "0:"), hashed(ctx, "ctx:")]
    elif v.context == "blocks":
        parts = [hashed(shifts[k], f"{k:+d}:") for k in offsets]
    else:
        raise ValueError(f"context={v.context!r}; valid: 'prefixed', 'bags', 'blocks'")
    return sparse.hstack([_tfidf_block(p.tocsr(), train, v.idf, 2, v.sublinear_tf)
                          for p in parts]).tocsr()


def ablation(corpus: Corpus, splits: np.ndarray, labels, focal_labels, v: Variant) -> dict:
    """Fits variant `v` of the Spark baseline; returns reports per split, seconds, C used."""
    started = time.time()
    keep = splits != ""
    # Rows that differ only in the classifier share their features.
    key = ("features", v.tokens, v.num_features, v.idf, v.sublinear_tf, v.context,
           hash(splits.tobytes()) if splits.dtype != object else hash(tuple(splits)))
    if corpus.cache.get("features-key") != key:
        corpus.cache["features-key"] = key
        corpus.cache["features"] = features(corpus, splits, v)[keep]
    x = corpus.cache["features"]
    y = np.asarray(corpus.label, dtype=object)[keep]
    s = splits[keep]
    train = s == "train"
    # Balanced class weights sum to the number of lines too, so W = n either way.
    c = v.c if v.reg_param is None else c_for_reg_param(v.reg_param, float(train.sum()))
    out = _fit_and_report(x, y, s, labels, focal_labels, c, v.class_weight, v.max_iter)
    out.update(seconds=time.time() - started, c=c, features=x.shape[1])
    return out
