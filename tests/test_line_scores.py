"""Line-level validation counts (focalseq.training.line_scores) on examples worked by hand.

Two documents, windows of 4 lines with stride 2, labels A and B (P(B) = 1 - P(A)):

    doc a, 6 lines, windows at 0 and 2 (window_starts(6, 4, 2) == [0, 2])
        P(A) in window 0 at lines 0..3: 0.9 0.8 0.6 0.2
        P(A) in window 2 at lines 2..5:         0.2 0.3 0.1 0.4
        mean P(A) per line:             0.9 0.8 0.4 0.25 0.1 0.4
        true:                           A   A   A   B    B   (none)
        predicted:                      A   A   B   B    B   (not counted)
    doc b, 3 lines, one window at 0 (n_valid 3; position 3 is padding, P(A) 0.99 there)
        P(A):      0.7 0.45 0.3
        true:      A   B    B
        predicted: A   B    B

A: TP 3 (a0 a1 b0), FP 0, FN 1 (a2): F1 = 6 / 7.
B: TP 4 (a3 a4 b1 b2), FP 1 (a2), FN 0: F1 = 8 / 9.
Scored per window position instead, a2 would count twice (A in window 0, B in window 2),
a3 twice, and the unlabeled a5 would count too.
"""
import numpy as np
import pytest

from focalseq.text.windows import window_starts
from focalseq.training.line_scores import LineCounts, f1_scores, line_groups, window_lines

W = 4
P_A = {("a", 0): [0.9, 0.8, 0.6, 0.2], ("a", 2): [0.2, 0.3, 0.1, 0.4],
       ("b", 0): [0.7, 0.45, 0.3, 0.99]}
TRUE = {"a": ["A", "A", "A", "B", "B", None], "b": ["A", "B", "B"]}
EXPECTED = np.array([[3, 4], [0, 1], [1, 0]])  # rows TP, FP, FN; columns A, B


def _windows():
    """doc_ids, starts, n_valid, probs (w, W, 2), y (w, W, 2) of the example."""
    ids, starts, valid, probs, y = [], [], [], [], []
    for doc, labels in TRUE.items():
        for s in window_starts(len(labels), W, 2):
            p = np.array(P_A[(doc, s)])
            ids.append(doc)
            starts.append(s)
            valid.append(min(W, len(labels) - s))
            probs.append(np.stack([p, 1 - p], axis=1))
            rows = [labels[s + i] if s + i < len(labels) else None for i in range(W)]
            y.append([[float(r == "A"), float(r == "B")] for r in rows])
    return (np.array(ids, dtype=object), np.array(starts), np.array(valid),
            np.array(probs), np.array(y, dtype=np.float32))


def test_window_starts_of_the_example():
    assert window_starts(6, W, 2) == [0, 2] and window_starts(3, W, 2) == [0]


def test_each_line_counts_once_with_the_mean_of_its_windows():
    counts = LineCounts(2)
    counts.add(*_windows())
    np.testing.assert_array_equal(counts.finish(), EXPECTED)
    assert counts.lines == 8  # a5 has no label
    np.testing.assert_allclose(f1_scores(EXPECTED), [6 / 7, 8 / 9])


@pytest.mark.parametrize("cuts", [[1], [2], [1, 2], [3]])
def test_a_document_split_across_calls_counts_the_same(cuts):
    """Row groups may cut a document: its windows are held until the document ends."""
    data = _windows()
    counts = LineCounts(2)
    for lo, hi in zip([0] + cuts, cuts + [len(data[0])]):
        counts.add(*(column[lo:hi] for column in data))
    np.testing.assert_array_equal(counts.finish(), EXPECTED)


def test_line_groups_count_the_windows_covering_each_line():
    ids, starts, valid, _, _ = _windows()
    win, offset, line_idx = window_lines(starts, valid)
    assert line_idx.tolist() == [0, 1, 2, 3, 2, 3, 4, 5, 0, 1, 2]
    first, inverse, counts = line_groups(np.array([0, 0, 1]), win, line_idx)
    assert counts.tolist() == [1, 1, 2, 2, 1, 1, 1, 1, 1]
    assert win[first].tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]


def test_multi_label_counts_every_line_and_thresholds_at_one_half():
    # One document of 3 lines in windows at 0 and 1 (W = 2, stride 1).
    # Line 1 is in both: P = mean([0.6, 0.2], [0.3, 0.9]) = [0.45, 0.55] -> {B}.
    probs = np.array([[[0.7, 0.1], [0.6, 0.2]], [[0.3, 0.9], [0.5, 0.5]]])
    # True: line 0 {A}, line 1 {A, B}, line 2 {} (still counted: a negative for both).
    y = np.array([[[1, 0], [1, 1]], [[1, 1], [0, 0]]], dtype=np.float32)
    counts = LineCounts(2, multi_label=True)
    counts.add(np.array(["d", "d"]), np.array([0, 1]), np.array([2, 2]), probs, y)
    # A: predicted on lines 0 and 2 (0.7, 0.5) -> TP 1 (line 0), FP 1 (line 2), FN 1 (line 1).
    # B: predicted on lines 1 and 2 (0.55, 0.5) -> TP 1, FP 1 (line 2), FN 0.
    np.testing.assert_array_equal(counts.finish(), [[1, 1], [1, 1], [1, 0]])
    assert counts.lines == 3


def test_the_decision_floor_is_the_stage_rules():
    from focalseq.stages.decision import LOG_FLOOR
    from focalseq.training import line_scores

    assert line_scores.LOG_FLOOR == LOG_FLOOR
