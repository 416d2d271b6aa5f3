"""The generalization benchmark's folds and its scikit-learn reference helpers.

No corpus needed: file paths shaped like the SKOL corpus's are made up here, and the
expected split of each was worked out by reading the fold definitions of issue 14.
"""
import importlib
import os
import sys

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")


@pytest.fixture(scope="module")
def bench():
    # benchmarks/ is a folder of scripts whose helpers import each other by plain name.
    sys.path.insert(0, BENCHMARKS)
    try:
        yield (importlib.import_module("_skol"), importlib.import_module("_sklearn_baseline"))
    finally:
        sys.path.remove(BENCHMARKS)


ROOT = "/data/skol"
FILES = {
    "m54": f"{ROOT}/Mycotaxon/Vol054/n1.txt.ann",
    "m57": f"{ROOT}/Mycotaxon/Vol057/n1.txt.ann",
    "m58": f"{ROOT}/Mycotaxon/Vol058/n1.txt.ann",
    "m117": f"{ROOT}/Mycotaxon/Vol117/s12.txt.ann",
    "p1": f"{ROOT}/Persoonia/Vol016/n1.txt.ann",
    "p4": f"{ROOT}/Persoonia/Vol016/n4.txt.ann",
}
EXPECTED = {
    "vol117": {"m54": "train", "m57": "train", "m58": "train", "m117": "test", "p1": "train",
               "p4": "validation"},
    "lojo-mycotaxon-to-persoonia": {"m54": "train", "m57": "train", "m58": "validation",
                                    "m117": "train", "p1": "test", "p4": "test"},
    "lojo-persoonia-to-mycotaxon": {"m54": "test", "m57": "test", "m58": "test",
                                    "m117": "test", "p1": "train", "p4": "validation"},
    "lovo-Vol058": {"m54": "train", "m57": "validation", "m58": "test", "m117": "train",
                    "p1": "train", "p4": "train"},
    "lovo-Vol117": {"m54": "train", "m57": "train", "m58": "validation", "m117": "test",
                    "p1": "train", "p4": "train"},
}


def _corpus(sk, paths):
    # One line per file is enough to see each file's split.
    return sk.Corpus(list(paths), np.arange(len(paths)), ["x"] * len(paths),
                     ["Misc-exposition"] * len(paths))


@pytest.mark.parametrize("fold", sorted(EXPECTED))
def test_each_file_gets_the_split_of_its_fold(bench, fold):
    skol, sk = bench
    names = list(FILES)
    splits = sk.assign_splits(_corpus(sk, [FILES[n] for n in names]), skol.FOLDS[fold])
    assert dict(zip(names, splits)) == EXPECTED[fold]


def test_every_fold_tests_something_and_validates_on_the_training_side(bench):
    skol, sk = bench
    paths = [f"{ROOT}/Mycotaxon/Vol{v}/n1.txt.ann" for v in ("054", "055", "056", "057", "058")]
    paths += [f"{ROOT}/Mycotaxon/Vol117/s{i}.txt.ann" for i in (1, 2)]
    paths += [f"{ROOT}/Persoonia/Vol016/n{i}.txt.ann" for i in (1, 2, 3, 4)]
    for fold, patterns in skol.FOLDS.items():
        splits = dict(zip(paths, sk.assign_splits(_corpus(sk, paths), patterns)))
        tested = {p for p, s in splits.items() if s == "test"}
        validated = {p for p, s in splits.items() if s == "validation"}
        assert tested and validated and any(s == "train" for s in splits.values()), fold
        journal = {p: p.split("/")[3] for p in paths}
        if fold.startswith("lojo-"):
            # No validation file comes from the test journal.
            assert not {journal[p] for p in validated} & {journal[p] for p in tested}, fold
        volume = {p: p.split("/")[4] for p in paths}
        assert not {volume[p] for p in validated} & {volume[p] for p in tested}, fold


def test_unmatched_files_are_left_out(bench):
    _, sk = bench
    splits = sk.assign_splits(_corpus(sk, ["/a/Vol117/x", "/b/other"]),
                              [["test", "/Vol117/"], ["train", "/a/"]])
    assert list(splits) == ["test", ""]


def test_fold_names_expand_groups_in_order_without_repeats(bench):
    skol, _ = bench
    assert skol.fold_names("lojo,vol117,lojo-persoonia-to-mycotaxon") == [
        "lojo-mycotaxon-to-persoonia", "lojo-persoonia-to-mycotaxon", "vol117"]
    assert len(skol.fold_names("lovo")) == 6
    with pytest.raises(ValueError, match="'nope'.*valid groups"):
        skol.fold_names("nope")


def test_shifted_rows_stay_inside_their_document(bench):
    from scipy import sparse

    _, sk = bench
    # Rows are lines 0..4; lines 0-2 are document 0, lines 3-4 document 1.
    m = sparse.csr_matrix(np.array([[1.0], [2.0], [3.0], [4.0], [5.0]]))
    doc = np.array([0, 0, 0, 1, 1])
    assert sk.shifted(m, doc, 1).toarray().ravel().tolist() == [2, 3, 0, 5, 0]
    assert sk.shifted(m, doc, -2).toarray().ravel().tolist() == [0, 0, 1, 0, 0]


def test_context_texts_join_the_neighbours_of_the_same_document(bench):
    _, sk = bench
    c = sk.Corpus(["a", "b"], np.array([0, 0, 0, 1]), ["l0", "l1", "l2", "m0"], ["x"] * 4)
    assert sk.context_texts(c) == ["l1\nl2", "l0\nl2", "l0\nl1", ""]


def test_reg_param_and_c_describe_the_same_objective(bench):
    _, sk = bench
    # Spark: mean loss + reg/2 |w|^2; scikit-learn: C sum loss + 1/2 |w|^2. Dividing the
    # second by C n gives the first with reg = 1 / (C n): C = 1 on 100,000 lines is 1e-5.
    assert sk.c_for_reg_param(1e-5, 100_000) == pytest.approx(1.0)
    assert sk.c_for_reg_param(1e-3, 100_000) == pytest.approx(0.01)


def test_spark_tokens_match_the_spark_bag(bench):
    _, sk = bench
    # Words: ASCII \w+ runs and single punctuation marks; chars: spaces as "_", 2-4-grams.
    assert sk.spark_tokens("Ab c.") == [
        "ab", "c", ".",
        "c:ab", "c:b_", "c:_c", "c:c.",
        "c:ab_", "c:b_c", "c:_c.",
        "c:ab_c", "c:b_c."]
