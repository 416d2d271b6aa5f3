"""Windows -> lines: the arithmetic that turns overlapping windows into one row per line.

A window starting at line ``start`` holds ``n_valid`` real lines (the rest is padding);
with a stride below the window size a line sits in several windows. Both the prediction
engine (`focalseq.stages.prediction`) and the workers' per-epoch validation
(`focalseq.training.remote`) give a line the mean of the probabilities of the windows
that cover it; this module is that arithmetic, numpy only, so the two cannot drift apart.

`LineCounts` scores the validation split the way `PerLabelEvaluator` scores the model's
line predictions: per-label TP, FP and FN over lines, each line counted once, decided by
the rule of `focalseq.stages.decision` with its default values.

>>> import numpy as np
>>> win, offset, line_idx = window_lines(np.array([0, 2]), np.array([4, 4]))
>>> line_idx.tolist()
[0, 1, 2, 3, 2, 3, 4, 5]
>>> first, inverse, counts = line_groups(np.zeros(2, np.int64), win, line_idx)
>>> counts.tolist()  # lines 2 and 3 are in both windows
[1, 1, 2, 2, 1, 1]
"""
import numpy as np

# The floor of `focalseq.stages.decision` (log-probabilities of max(p, floor)): below it
# probabilities tie and the first label wins. Kept equal by a test; importing the stage
# module here would pull Spark into the arithmetic.
LOG_FLOOR = 1e-12
MULTI_LABEL_THRESHOLD = 0.5


def window_lines(starts, n_valid) -> tuple:
    """Every valid (window, line) pair of a set of windows.

    Args:
        starts: (windows,) first line of each window in its document.
        n_valid: (windows,) real lines in each window.

    Returns:
        (win, offset, line_idx): for each pair, the window's index, the line's position
        in the window and its line number in the document.
    """
    valid = np.asarray(n_valid, dtype=np.int64)
    win = np.repeat(np.arange(len(valid)), valid)
    offset = np.arange(len(win)) - np.repeat(np.cumsum(valid) - valid, valid)
    line_idx = np.repeat(np.asarray(starts, dtype=np.int64), valid) + offset
    return win, offset, line_idx


def line_groups(doc_codes, win, line_idx) -> tuple:
    """The distinct (document, line) pairs among the pairs of `window_lines`.

    Args:
        doc_codes: (windows,) non-negative integer naming each window's document.
        win, line_idx: from `window_lines`.

    Returns:
        (first, inverse, counts): the first pair of each line (lines sorted by document
        code, then line number), each pair's line, and the windows covering each line.
    """
    if not len(win):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    key = np.asarray(doc_codes, dtype=np.int64)[win] * (int(line_idx.max()) + 1) + line_idx
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse, np.bincount(inverse, minlength=len(first))


def line_sums(values, win, offset, inverse, n_lines) -> np.ndarray:
    """(n_lines, k) sums over each line's windows of `values[window, offset, :]`."""
    v = values[win, offset]
    return np.stack([np.bincount(inverse, weights=v[:, j], minlength=n_lines)
                     for j in range(v.shape[1])], axis=1) if v.shape[1] else \
        np.zeros((n_lines, 0))


def decide(probs, multi_label: bool) -> np.ndarray:
    """(lines, labels) bool: the predicted labels under the default decision rule."""
    if multi_label:
        return probs >= MULTI_LABEL_THRESHOLD
    best = np.maximum(probs, LOG_FLOOR).argmax(1)  # ties: the first label, as the stage
    return np.eye(probs.shape[1], dtype=bool)[best]


def confusion_counts(probs, y, multi_label: bool) -> np.ndarray:
    """(3, labels) TP, FP, FN of lines with mean probabilities `probs`, targets `y`.

    Single-label: lines without a label are left out (the evaluator drops null labels).
    Multi-label: every line counts; one with no label is a negative for each label.
    """
    true = y > 0.5
    if not multi_label:
        keep = true.any(1)
        probs, true = probs[keep], true[keep]
    pred = decide(probs, multi_label)
    return np.stack([(pred & true).sum(0), (pred & ~true).sum(0),
                     (~pred & true).sum(0)]).astype(np.float64)


def f1_scores(counts) -> np.ndarray:
    """Per-label F1 = 2 TP / (2 TP + FP + FN) from (3, labels) counts; 0 where undefined."""
    tp, fp, fn = np.asarray(counts, dtype=np.float64)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


class LineCounts:
    """Per-label TP/FP/FN over lines, from windows streamed in document order.

    Each document's windows must arrive together (in one call or in consecutive calls);
    a document may continue into the next call, so the last document of every call is
    held back until the next call shows a different one (or `finish`). Every line is
    counted once, with the mean of the probabilities of the windows covering it.

    Args:
        n_labels: number of labels.
        multi_label: sigmoid outputs with 0.5 thresholds instead of an argmax.
    """

    def __init__(self, n_labels: int, multi_label: bool = False):
        self.multi_label = multi_label
        self.counts = np.zeros((3, n_labels))
        self.lines = 0
        self._held = None

    def add(self, doc_ids, starts, n_valid, probs, y) -> None:
        """Adds windows: (windows,) ids, starts, valid lines; (windows, W, labels) arrays."""
        doc_ids = np.asarray(doc_ids)
        batch = [doc_ids, np.asarray(starts), np.asarray(n_valid), np.asarray(probs),
                 np.asarray(y)]
        if not len(doc_ids):
            return
        if self._held is not None:
            if self._held[0][-1] != doc_ids[0]:
                self._score(*self._held)
            else:
                batch = [np.concatenate([h, b]) for h, b in zip(self._held, batch)]
            self._held = None
        ids = batch[0]
        last = len(ids) - int(np.argmax(ids[::-1] != ids[-1])) if (ids != ids[-1]).any() else 0
        if last:
            self._score(*(b[:last] for b in batch))
        self._held = [b[last:] for b in batch]

    def finish(self) -> np.ndarray:
        """Scores the held document; returns the (3, labels) TP, FP, FN counts."""
        if self._held is not None:
            self._score(*self._held)
            self._held = None
        return self.counts

    def _score(self, doc_ids, starts, n_valid, probs, y):
        _, codes = np.unique(doc_ids, return_inverse=True)
        win, offset, line_idx = window_lines(starts, n_valid)
        first, inverse, counts = line_groups(codes, win, line_idx)
        n = len(first)
        mean_p = line_sums(probs, win, offset, inverse, n) / counts[:, None]
        # A line's target is the same in every window; the first one gives it.
        line_y = y[win[first], offset[first]]
        self.counts += confusion_counts(mean_p, line_y, self.multi_label)
        self.lines += n if self.multi_label else int((line_y > 0.5).any(1).sum())
