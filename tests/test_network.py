"""The Keras line labeler: shapes, padding masks, token dropout, save/load round trips."""
import os

import numpy as np
import pytest

import tensorflow as tf

from focalseq.training.network import (ENCODERS, MaskedMaxPool, MaskedMeanPool,  # noqa: E402
                                       TokenDropout, build_network, split_output)

WINDOW, N_SHAPE, VOCAB = 3, 2, 40


def _inputs(max_tokens, seed=0, batch=2):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB, size=(batch, WINDOW, max_tokens)).astype("int32")
    # Line lengths 1..4 real tokens, then padding; one line holds no token at all.
    for b in range(batch):
        for t in range(WINDOW):
            tokens[b, t, 1 + (b + t) % 4:] = 0
    tokens[0, 2, :] = 0
    shape = rng.random((batch, WINDOW, N_SHAPE)).astype("float32")
    return tokens, shape


def _net(encoder, max_tokens=6, **kwargs):
    tf.keras.utils.set_random_seed(1)
    kwargs = {"embedding_dim": 8, "hidden_size": 8, **kwargs}
    return build_network(WINDOW, max_tokens, N_SHAPE, 3, vocab_size=VOCAB, encoder=encoder,
                         **kwargs)


def _predict(model, tokens, shape):
    return model({"token_ids": tf.constant(tokens), "shape": tf.constant(shape)},
                 training=False).numpy()


@pytest.mark.parametrize("encoder", ENCODERS)
def test_output_is_a_distribution_per_line(encoder):
    tokens, shape = _inputs(6)
    out = _predict(_net(encoder), tokens, shape)
    assert out.shape == (2, WINDOW, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_padding_tokens_change_nothing(encoder):
    """Neither the embedding of id 0 nor the amount of padding reaches the output."""
    tokens, shape = _inputs(6)
    short = _net(encoder, max_tokens=6)
    before = _predict(short, tokens, shape)

    embedding = short.get_layer("token_embedding")
    weights = embedding.get_weights()[0].copy()
    weights[0] = 50.0
    embedding.set_weights([weights])
    np.testing.assert_allclose(_predict(short, tokens, shape), before, atol=1e-5)

    longer = _net(encoder, max_tokens=11)  # same weights, five more padding slots per line
    longer.set_weights(short.get_weights())
    padded = np.concatenate([tokens, np.zeros((2, WINDOW, 5), "int32")], axis=-1)
    np.testing.assert_allclose(_predict(longer, padded, shape), before, atol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_real_tokens_do_change_the_output(encoder):
    tokens, shape = _inputs(6)
    model = _net(encoder)
    changed = tokens.copy()
    changed[1, 0, 0] = (changed[1, 0, 0] % (VOCAB - 1)) + 1
    assert np.abs(_predict(model, changed, shape) - _predict(model, tokens, shape)).max() > 1e-6


@pytest.mark.parametrize("encoder", ENCODERS)
def test_save_and_load_without_custom_objects(encoder, tmp_path):
    tokens, shape = _inputs(6)
    model = _net(encoder, token_dropout=0.3, skip=True, num_layers=2)
    path = os.path.join(tmp_path, f"{encoder}.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(_predict(loaded, tokens, shape), _predict(model, tokens, shape),
                               atol=1e-6)
    assert loaded.get_layer("token_dropout").rate == pytest.approx(0.3)


def test_masked_mean_pool_matches_numpy():
    ids = np.array([[[3, 4, 0, 0], [0, 0, 0, 0]]], "int32")
    emb = np.arange(2 * 4 * 2, dtype="float32").reshape(1, 2, 4, 2)
    out = MaskedMeanPool()(tf.constant(emb), tf.constant(ids)).numpy()
    np.testing.assert_allclose(out[0, 0], emb[0, 0, :2].mean(0))
    np.testing.assert_allclose(out[0, 1], [0.0, 0.0])


def test_masked_max_pool_ignores_padding_even_when_padding_is_larger():
    ids = np.array([[[3, 4, 0]]], "int32")
    feats = np.array([[[[-5.0, 1.0], [-7.0, 2.0], [9.0, 9.0]]]], "float32")
    out = MaskedMaxPool()(tf.constant(feats), tf.constant(ids)).numpy()
    np.testing.assert_allclose(out[0, 0], [-5.0, 2.0])


def test_token_dropout_only_while_training():
    ids = tf.constant(np.arange(1, 2001, dtype="int32").reshape(1, 1, 2000))
    layer = TokenDropout(0.25, seed=3)
    np.testing.assert_array_equal(layer(ids, training=False).numpy(), ids.numpy())
    dropped = layer(ids, training=True).numpy()
    kept = dropped != 0
    assert np.all(dropped[kept] == ids.numpy()[kept])
    assert 0.2 < 1.0 - kept.mean() < 0.3  # 500 expected, sd about 19


def test_representation_head_is_appended_and_unit_length():
    tokens, shape = _inputs(6)
    out = _predict(_net("mean", representation_dim=5), tokens, shape)
    assert out.shape == (2, WINDOW, 3 + 5)
    np.testing.assert_allclose(np.linalg.norm(out[..., 3:], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(split_output(out, 3).sum(-1), 1.0, rtol=1e-5)


def test_multi_label_head_is_sigmoid():
    tokens, shape = _inputs(6)
    out = _predict(_net("mean", multi_label=True), tokens, shape)
    assert np.all((out > 0) & (out < 1))
    assert np.abs(out.sum(-1) - 1.0).max() > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"encoder": "rnn"}, "encoder: 'rnn' is not one of"),
    ({"encoder": "mean", "dropout": 1.0}, "dropout: must be in [0, 1), got 1.0"),
    ({"encoder": "mean", "token_dropout": -0.1}, "token_dropout: must be in [0, 1)"),
    ({"encoder": "mean", "hidden_size": 0}, "hidden_size: must be >= 1, got 0"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")
                       .replace("(", r"\(")):
        _net(**kwargs)
