"""Cosine learning-rate decay of the Horovod worker (train.lr_decay / learningRateDecay)."""
import math

import pytest

import tensorflow as tf

from focalseq.config import load_config  # noqa: E402
from focalseq.pipelines import builders  # noqa: E402
from focalseq.training.remote import WarmupSchedule  # noqa: E402


def test_cosine_decay_halves_at_midpoint_and_ends_at_zero():
    schedule = WarmupSchedule(0.01, 0, 0.5, decay_steps=100)
    # 0.01 * 0.5 * (1 + cos(pi * t / 100)), worked out by hand.
    expected = {0: 0.01, 25: 0.01 * 0.5 * (1 + math.sqrt(0.5)), 50: 0.005, 100: 0.0, 130: 0.0}
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, abs=1e-7)


def test_warmup_alone_is_unchanged_and_combines_with_decay():
    warm = WarmupSchedule(0.01, 10, 0.5)
    assert [float(warm(s)) for s in (0, 5, 10, 40)] == pytest.approx([0.005, 0.0075, 0.01, 0.01])
    both = WarmupSchedule(0.01, 10, 0.5, decay_steps=20)
    # step 5: warm-up factor 0.75, cosine factor 0.5 * (1 + cos(pi / 4))
    assert float(both(5)) == pytest.approx(0.01 * 0.75 * 0.5 * (1 + math.sqrt(0.5)), abs=1e-7)
    assert WarmupSchedule.from_config(both.get_config()).decay_steps == 20


def test_config_reaches_the_estimator_and_bad_values_are_named():
    cfg = load_config(None, ["train.lr_decay=cosine"])
    assert builders.estimator(cfg).getOrDefault("learningRateDecay") == "cosine"
    with pytest.raises(ValueError, match=r"train.lr_decay: 'step' is not one of \['none', 'cosine'\]"):
        load_config(None, ["train.lr_decay=step"])
