"""The linear-chain CRF head: its marginals against brute-force enumeration of every
labelling, padding lines, training of the transitions, and the network it heads."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from focalseq.training.chain_crf import ChainCRF, chain_marginals
from focalseq.training.network import build_network


def _brute_marginals(emissions, transitions, mask):
    """Sum over every labelling of the real lines of exp(score), by enumeration."""
    batch, steps, labels = emissions.shape
    out = np.zeros_like(emissions)
    for b in range(batch):
        real = [t for t in range(steps) if mask[b, t]]
        z = np.zeros((steps, labels))
        total = 0.0
        for path in itertools.product(range(labels), repeat=len(real)):
            score = sum(emissions[b, t, y] for t, y in zip(real, path))
            score += sum(transitions[y0, y1] for y0, y1 in zip(path, path[1:]))
            weight = np.exp(score)
            total += weight
            for t, y in zip(real, path):
                z[t, y] += weight
        for t in range(steps):
            if mask[b, t]:
                out[b, t] = z[t] / total
            else:
                ex = np.exp(emissions[b, t] - emissions[b, t].max())
                out[b, t] = ex / ex.sum()
    return out


@pytest.mark.parametrize("mask", [
    [[1, 1, 1, 1, 1]],            # a full window
    [[1, 1, 1, 0, 0]],            # a short document: padding at the end
    [[0, 1, 1, 1, 1]],            # padding first
    [[1, 0, 1, 0, 1]],            # holes: the chain runs across them
    [[1, 0, 0, 0, 0]],            # one real line
    [[0, 0, 0, 0, 0]],            # no real line
])
def test_marginals_equal_enumeration_of_every_labelling(mask):
    rng = np.random.default_rng(3)
    mask = np.array(mask * 2, dtype=bool)
    emissions = rng.normal(0, 2, (2, 5, 3)).astype(np.float32)
    transitions = rng.normal(0, 2, (3, 3)).astype(np.float32)
    got = chain_marginals(tf.constant(emissions), tf.constant(transitions),
                          tf.constant(mask)).numpy()
    want = _brute_marginals(emissions.astype(np.float64), transitions.astype(np.float64),
                            mask)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_zero_transitions_are_the_per_line_softmax():
    emissions = np.random.default_rng(0).normal(size=(2, 6, 4)).astype(np.float32)
    got = ChainCRF()(tf.constant(emissions), tf.ones((2, 6), tf.bool)).numpy()
    np.testing.assert_allclose(got, tf.nn.softmax(emissions).numpy(), atol=1e-6)


def test_the_transitions_learn_what_no_single_line_shows():
    # Labels alternate 0, 1, 0, 1 ... from a first label that only the first line's
    # emissions reveal; every other line's emissions are uninformative. A per-line
    # softmax of these emissions is right on half the later lines at best; the chain
    # carries the first line's evidence along through its transitions.
    rng = np.random.default_rng(1)
    first = rng.integers(0, 2, 256)
    labels = (first[:, None] + np.arange(8)[None, :]) % 2
    emissions = np.zeros((256, 8, 2), np.float32)
    emissions[np.arange(256), 0, first] = 4.0
    crf = ChainCRF()
    crf.build((None, 8, 2))
    optimizer = tf.keras.optimizers.Adam(0.1)
    mask = tf.ones((256, 8), tf.bool)
    y = tf.one_hot(labels, 2)
    for _ in range(60):
        with tf.GradientTape() as tape:
            probs = crf(tf.constant(emissions), mask)
            loss = -tf.reduce_mean(tf.reduce_sum(y * tf.math.log(probs + 1e-9), -1))
        optimizer.apply_gradients(zip(tape.gradient(loss, crf.trainable_weights),
                                      crf.trainable_weights))
    predicted = np.argmax(crf(tf.constant(emissions), mask).numpy(), -1)
    assert (predicted[:, 1:] == labels[:, 1:]).mean() == 1.0
    # It learnt "a label is followed by the other one".
    t = crf.transitions.numpy()
    assert t[0, 1] > t[0, 0] and t[1, 0] > t[1, 1]


def _net(**kwargs):
    return build_network(6, 5, 2, 3, vocab_size=50, embedding_dim=8, hidden_size=8,
                         head="crf", **kwargs)


def test_a_crf_network_outputs_marginals_padding_aside_and_reloads(tmp_path):
    net = _net()
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 50, (3, 6, 5)).astype(np.int32)
    shape = rng.normal(size=(3, 6, 2)).astype(np.float32)
    tokens[0, 4:], shape[0, 4:] = 0, 0.0      # a short document's padding lines
    net.get_layer("chain_crf").transitions.assign(rng.normal(0, 2, (3, 3)))
    probs = net.predict([tokens, shape], verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # The real lines' marginals are the chain's over the real lines only (the padding
    # lines' all-zero inputs still give them emissions, which must not count).
    emitting = tf.keras.Model(net.inputs, net.get_layer("labels").output)
    emissions = emitting.predict([tokens, shape], verbose=0).astype(np.float64)
    mask = np.ones((3, 6), bool)
    mask[0, 4:] = False
    want = _brute_marginals(emissions, net.get_layer("chain_crf").transitions.numpy(), mask)
    np.testing.assert_allclose(probs, want, atol=1e-5)
    path = str(tmp_path / "crf.keras")
    net.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict([tokens, shape], verbose=0), probs, atol=1e-6)


def test_a_crf_head_needs_single_label_windows():
    with pytest.raises(ValueError, match="head: 'crf'.*multi-label"):
        _net(multi_label=True)
    with pytest.raises(ValueError, match="head: 'viterbi' is not one of"):
        build_network(6, 5, 2, 3, vocab_size=50, head="viterbi")
