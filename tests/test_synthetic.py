"""Tests for the synthetic corpus generator."""
import collections
import os
import random

import pytest

from focalseq.synthetic import LABELS, generate_corpus, generate_document
from focalseq.text.features import shape_features
from focalseq.text.yedda import Line, count_nonempty_lines, format_yedda, parse_yedda


def _read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_document_has_requested_lines_and_labels():
    doc = generate_document(random.Random(1), 500, ratio=(1, 10, 100))
    assert len(doc) == 500
    assert {label for _, label in doc} <= set(LABELS)
    assert all(text.strip() and text == text.rstrip() and "\n" not in text for text, _ in doc)


def test_blank_lines_are_extra_entries():
    rng_a, rng_b = random.Random(5), random.Random(5)
    plain = generate_document(rng_a, 300, blank_lines=False)
    spaced = generate_document(rng_b, 300, blank_lines=True)
    assert [e for e in spaced if e[0]] == plain
    assert any(not text for text, _ in spaced)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_tiny_documents(n):
    doc = generate_document(random.Random(n), n, ratio=(1, 1, 1))
    assert len(doc) == n


def test_ratio_is_roughly_honoured_and_descriptions_follow_nomenclature():
    counts = collections.Counter()
    after_nom = collections.Counter()
    rng = random.Random(7)
    for _ in range(30):
        doc = generate_document(rng, 400, ratio=(1, 4, 10), noise=0.0)
        counts.update(label for _, label in doc)
        for (_, a), (_, b) in zip(doc, doc[1:]):
            if a == "Nomenclature" and b != "Nomenclature":
                after_nom[b] += 1
    total = sum(counts.values())
    for label, share in zip(LABELS, (1 / 15, 4 / 15, 10 / 15)):
        assert abs(counts[label] / total - share) < 0.15 * share
    assert after_nom["Description"] > 0.8 * sum(after_nom.values())


def test_cues_are_learnable_without_noise():
    doc = generate_document(random.Random(3), 2000, ratio=(1, 5, 20), noise=0.0)
    hits = collections.defaultdict(collections.Counter)
    names = ("nomenclature_marker", "measurement")
    for text, label in doc:
        f = shape_features(Line(1, text, label, False, 0), 0, 1, names)
        for name, v in zip(names, f):
            hits[label][name] += v
    n = collections.Counter(label for _, label in doc)
    # The first line of every nomenclature block carries a nomenclatural act.
    assert hits["Nomenclature"]["nomenclature_marker"] / n["Nomenclature"] > 0.4
    assert hits["Misc-exposition"]["nomenclature_marker"] / n["Misc-exposition"] < 0.05
    assert hits["Description"]["measurement"] / n["Description"] > 0.4


def test_noise_swaps_text_cues_but_keeps_labels():
    clean = generate_document(random.Random(11), 1000, noise=0.0)
    noisy = generate_document(random.Random(11), 1000, noise=0.3)
    assert [l for _, l in clean] == [l for _, l in noisy]
    changed = sum(a != b for (a, _), (b, _) in zip(clean, noisy))
    assert 0.1 * 1000 < changed < 0.5 * 1000


def test_corpus_is_deterministic_and_parses_cleanly(tmp_path):
    paths = generate_corpus(str(tmp_path / "a"), n_docs=5, lines_per_doc=150, seed=3)
    again = generate_corpus(str(tmp_path / "b"), n_docs=5, lines_per_doc=150, seed=3)
    other = generate_corpus(str(tmp_path / "c"), n_docs=5, lines_per_doc=150, seed=4)
    assert [os.path.basename(p) for p in paths] == [f"doc_{i:05d}.txt.ann" for i in range(5)]
    assert [_read(p) for p in paths] == [_read(p) for p in again]
    assert [_read(p) for p in paths] != [_read(p) for p in other]
    for path in paths:
        text = _read(path)
        lines, problems = parse_yedda(text, path, strict=True)
        assert problems == []
        assert len(lines) == count_nonempty_lines(text)
        assert 150 * 0.7 <= len(lines) <= 150 * 1.3
        assert {line.label for line in lines} <= set(LABELS)


def test_corpus_round_trips_through_the_parser(tmp_path):
    rng = random.Random(21)
    doc = generate_document(rng, 300, blank_lines=True)
    lines, problems = parse_yedda(format_yedda(doc))
    assert problems == []
    assert [(l.text, l.label) for l in lines] == [e for e in doc if e[0]]
    assert any(l.blank_before for l in lines[1:])


def test_corpus_ratio_across_files(tmp_path):
    paths = generate_corpus(str(tmp_path), n_docs=40, lines_per_doc=200, seed=0)
    counts = collections.Counter()
    for p in paths:
        counts.update(line.label for line in parse_yedda(_read(p), p)[0])
    total = sum(counts.values())
    for label, share in zip(LABELS, (1 / 111, 10 / 111, 100 / 111)):
        assert abs(counts[label] / total - share) < 0.25 * share


@pytest.mark.parametrize("kwargs,name", [({"n_lines": -1}, "n_lines"),
                                         ({"ratio": (1, 2)}, "ratio"),
                                         ({"ratio": (0, 0, 0)}, "ratio"),
                                         ({"ratio": (1, -1, 3)}, "ratio"),
                                         ({"noise": 1.5}, "noise")])
def test_invalid_arguments(kwargs, name):
    args = {"n_lines": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        generate_document(random.Random(0), **args)


# -- the multi-label (GoEmotions-like) and binary generators ----------------------------------

def test_multilabel_lines_have_0_to_3_labels_with_a_long_tail():
    from focalseq.synthetic_multilabel import EMOTIONS, generate_lines

    lines = generate_lines(random.Random(11), 20000)
    assert len(EMOTIONS) == 28 and len(set(EMOTIONS)) == 28
    sizes = collections.Counter(len(labels) for _, labels in lines)
    assert set(sizes) == {0, 1, 2, 3}
    # Shares 0.15 / 0.55 / 0.22 / 0.08 (LABELS_PER_LINE), +-0.02 at 20000 lines.
    for k, share in enumerate((0.15, 0.55, 0.22, 0.08)):
        assert abs(sizes[k] / len(lines) - share) < 0.02, (k, sizes)
    counts = collections.Counter(lab for _, labels in lines for lab in labels)
    assert set(counts) == set(EMOTIONS)
    assert all(len(set(labels)) == len(labels) for _, labels in lines)
    # Long tail by rank: the head label far above the tail, each block of seven labels
    # (by rank) rarer than the one before, the 14 tail labels under a sixth of all.
    per_rank = [counts[lab] for lab in EMOTIONS]
    assert per_rank[0] > 25 * min(per_rank)
    blocks = [sum(per_rank[i:i + 7]) for i in range(0, 28, 7)]
    assert blocks == sorted(blocks, reverse=True)
    assert sum(per_rank[14:]) < sum(per_rank) / 6


def test_multilabel_corpus_files_parse_back_to_the_label_sets(tmp_path):
    from focalseq.synthetic_multilabel import cue_words, generate_multilabel_corpus
    from focalseq.text.yedda import LabelMap

    labels = ["neutral", "joy", "anger", "fear", "pride"]
    paths = generate_multilabel_corpus(str(tmp_path), labels=labels, n_docs=3,
                                       lines_per_doc=80, seed=4)
    m = LabelMap(keep=labels, default="neutral", multi_label=True, unlabelled="none")
    n_empty = n_sets = 0
    for path in paths:
        text = _read(path)
        lines, problems = parse_yedda(text, path)
        assert problems == [] and len(lines) == count_nonempty_lines(text)
        for line in lines:
            found = [x for x in m.map(line.label).split("|") if x]
            assert set(found) <= set(labels) and len(found) <= 3
            n_empty += not found
            n_sets += len(found) > 1
            if found:  # every label's cue words are on its line
                words = set(line.text.lower().strip(".!?").split())
                assert all(words & set(cue_words(lab)) for lab in found)
    assert n_empty > 0 and n_sets > 0


def test_multilabel_generator_rejects_bad_arguments():
    from focalseq.synthetic_multilabel import generate_lines

    with pytest.raises(ValueError, match="distinct"):
        generate_lines(random.Random(0), 5, labels=["joy", "joy"])
    with pytest.raises(ValueError, match="share the cue word"):
        generate_lines(random.Random(0), 5, labels=["Joy!", "joy"])
    with pytest.raises(ValueError, match=r"noise: must be in \[0, 1\]"):
        generate_lines(random.Random(0), 5, noise=2.0)


def test_binary_corpus_is_two_labels_about_1_to_10(tmp_path):
    from focalseq.synthetic import generate_binary_corpus

    paths = generate_binary_corpus(str(tmp_path), labels=("Positive", "Negative"), n_docs=10,
                                   lines_per_doc=200, ratio=(1, 10), seed=2)
    counts = collections.Counter()
    for path in paths:
        lines, problems = parse_yedda(_read(path), path)
        assert problems == []
        counts.update(line.label for line in lines)
    assert set(counts) == {"Positive", "Negative"}
    assert 8 < counts["Negative"] / counts["Positive"] < 12.5
    with pytest.raises(ValueError, match="two numbers"):
        generate_binary_corpus(str(tmp_path), ratio=(1, 2, 3))
