"""A synthetic multi-label corpus in YEDDA, shaped like GoEmotions.

Each line is a short comment carrying 0 to 3 of the labels (28 emotions by default,
`EMOTIONS`, in GoEmotions' order of frequency). Label frequencies are long-tailed: the
label of rank k (0-based, in the order given) is drawn with weight ``(k + 1) ** -tail``,
so with the default ``tail=1.3`` the most frequent label is drawn about 76 times as often
as the 28th. The number of labels per line follows `LABELS_PER_LINE` (most lines have
one label, some none, a few two or three).

The cues are words: every label has a few words of its own (`LEXICON`, or words made
from the label's name for a label it does not know), and a line holds one or two cue
words of each of its labels among filler words shared by all. A ``noise`` fraction of
lines also holds a cue word of a label it does not carry, so a word alone does not
always decide.

Written with :func:`focalseq.text.yedda.format_yedda`: ``[@text#joy|anger*]`` for a line
with labels, the text outside any span for a line with none (read back as the empty set
with ``data.unlabelled: none``).
"""
import logging
import random
from typing import Dict, List, Sequence, Tuple

from focalseq.synthetic import write_documents

logger = logging.getLogger(__name__)

EMOTIONS = ("neutral", "admiration", "approval", "gratitude", "annoyance", "amusement",
            "curiosity", "love", "disapproval", "optimism", "anger", "joy", "confusion",
            "sadness", "disappointment", "realization", "caring", "surprise", "excitement",
            "disgust", "desire", "fear", "remorse", "embarrassment", "nervousness", "relief",
            "pride", "grief")
# Shares of lines with 0, 1, 2 and 3 labels.
LABELS_PER_LINE = (0.15, 0.55, 0.22, 0.08)

LEXICON: Dict[str, Tuple[str, ...]] = {
    "neutral": ("okay", "anyway", "whatever", "noted", "alright", "fine"),
    "admiration": ("impressive", "brilliant", "amazing", "talented", "admire", "respect"),
    "approval": ("agree", "correct", "exactly", "valid", "approve", "fair"),
    "gratitude": ("thanks", "thank", "grateful", "appreciate", "thankful", "cheers"),
    "annoyance": ("annoying", "irritating", "ugh", "bothered", "meh", "tiresome"),
    "amusement": ("lol", "haha", "hilarious", "funny", "lmao", "laughing"),
    "curiosity": ("wonder", "curious", "how", "why", "interesting", "question"),
    "love": ("love", "adore", "lovely", "darling", "beloved", "heart"),
    "disapproval": ("wrong", "disagree", "shouldnt", "unacceptable", "bad", "nope"),
    "optimism": ("hope", "hopefully", "soon", "better", "faith", "wish"),
    "anger": ("angry", "furious", "hate", "rage", "mad", "outraged"),
    "joy": ("happy", "glad", "yay", "delighted", "joyful", "cheerful"),
    "confusion": ("confused", "huh", "unclear", "lost", "puzzled", "what"),
    "sadness": ("sad", "unhappy", "tears", "crying", "miserable", "sorrow"),
    "disappointment": ("disappointed", "letdown", "unfortunately", "shame", "bummer",
                       "underwhelming"),
    "realization": ("realized", "oh", "noticed", "turns", "actually", "dawned"),
    "caring": ("careful", "hug", "safe", "support", "care", "wellbeing"),
    "surprise": ("wow", "whoa", "surprised", "unexpected", "shocked", "omg"),
    "excitement": ("excited", "pumped", "thrilled", "hyped", "woohoo", "cantwait"),
    "disgust": ("gross", "disgusting", "eww", "nasty", "vile", "repulsive"),
    "desire": ("want", "crave", "desire", "longing", "need", "wishing"),
    "fear": ("scared", "afraid", "terrified", "fear", "frightening", "panic"),
    "remorse": ("sorry", "apologize", "regret", "mybad", "guilty", "forgive"),
    "embarrassment": ("embarrassed", "awkward", "cringe", "blush", "ashamed", "oops"),
    "nervousness": ("nervous", "anxious", "worried", "jittery", "uneasy", "tense"),
    "relief": ("relieved", "phew", "finally", "relief", "whew", "unburdened"),
    "pride": ("proud", "accomplished", "achievement", "pride", "earned", "nailed"),
    "grief": ("grief", "mourning", "passed", "funeral", "loss", "rip"),
}
_FILLER = """the a this that post thread game team movie people guy day week comment
really just so it is was be my your time work city dog cat food music song news story
everyone here there today yesterday with about for from on in at of and but""".split()


def label_weights(n_labels: int, tail: float = 1.3) -> List[float]:
    """Drawing weight of each label by rank: ``(k + 1) ** -tail``."""
    return [(k + 1) ** -tail for k in range(n_labels)]


def cue_words(label: str) -> Tuple[str, ...]:
    """The words that signal `label`: its `LEXICON` entry, else words made from its name."""
    if label in LEXICON:
        return LEXICON[label]
    stem = "".join(ch for ch in label.lower() if ch.isalnum()) or "label"
    return tuple(f"{stem}{suffix}" for suffix in ("", "ish", "ness", "ful"))


def _validate(labels: Sequence[str], noise: float, tail: float) -> None:
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels: expected distinct label names, got {list(labels)!r}")
    words = {}
    for label in labels:
        for word in cue_words(label):
            if words.setdefault(word, label) != label:
                raise ValueError(f"labels: {words[word]!r} and {label!r} share the cue word "
                                 f"{word!r}; rename one of them")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise: must be in [0, 1], got {noise!r}")
    if tail < 0:
        raise ValueError(f"tail: must be >= 0, got {tail!r}")


def generate_lines(rng: random.Random, n_lines: int, labels: Sequence[str] = EMOTIONS,
                   noise: float = 0.05, tail: float = 1.3) -> List[Tuple[str, Tuple[str, ...]]]:
    """`n_lines` comments as ``(text, label set)``, the set in the order of `labels`.

    Raises:
        ValueError: repeated labels, two labels with a cue word in common, `noise`
            outside [0, 1] or a negative `tail`.
    """
    _validate(labels, noise, tail)
    weights = label_weights(len(labels), tail)
    out = []
    for _ in range(n_lines):
        k = min(rng.choices(range(len(LABELS_PER_LINE)), LABELS_PER_LINE)[0], len(labels))
        chosen: List[int] = []
        while len(chosen) < k:
            free = [j for j in range(len(labels)) if j not in chosen]
            chosen.append(rng.choices(free, [weights[j] for j in free])[0])
        chosen.sort()
        words = rng.choices(_FILLER, k=rng.randint(3, 8))
        for j in chosen:
            words += rng.sample(cue_words(labels[j]), rng.randint(1, 2))
        if rng.random() < noise and len(chosen) < len(labels):
            other = rng.choice([j for j in range(len(labels)) if j not in chosen])
            words.append(rng.choice(cue_words(labels[other])))
        rng.shuffle(words)
        text = " ".join(words)
        out.append((text[0].upper() + text[1:] + rng.choice((".", "!", "?", "")),
                    tuple(labels[j] for j in chosen)))
    return out


def generate_multilabel_corpus(out_dir: str, labels: Sequence[str] = EMOTIONS,
                               n_docs: int = 40, lines_per_doc: int = 200,
                               noise: float = 0.05, seed: int = 0, tail: float = 1.3,
                               jitter: float = 0.25) -> List[str]:
    """Writes `n_docs` YEDDA files of comments with label sets (see the module docstring).

    Args:
        out_dir: directory or URL to write into (created if missing).
        labels: the labels, most frequent first.
        n_docs: number of files, named ``doc_00000.txt.ann`` onwards.
        lines_per_doc: mean number of lines per document.
        noise: fraction of lines with a cue word of a label they do not carry.
        seed: the corpus is a function of this seed and the other arguments.
        tail: exponent of the long tail of label frequencies.
        jitter: document lengths vary uniformly by this fraction around the mean.

    Returns:
        The paths written, in order.
    """
    _validate(labels, noise, tail)
    return write_documents(out_dir, n_docs, lines_per_doc, seed, jitter,
                           lambda rng, n: generate_lines(rng, n, labels, noise, tail))
