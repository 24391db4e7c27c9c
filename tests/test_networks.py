"""Score network and critic ensemble (docs/algorithm.md §6, §8)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax.networks import (CriticEnsemble, ScoreNetwork,
                              conditioned_score_fn, get_activation,
                              sinusoidal_embedding)


def test_sinusoidal_embedding_values():
    emb = sinusoidal_embedding(jnp.array([0.0, 0.5]), 8)
    freqs = np.exp(-math.log(1000.0) * np.arange(4) / 3)
    np.testing.assert_allclose(freqs[[0, -1]], [1.0, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(emb[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(
        emb[1], np.concatenate([np.sin(0.5 * freqs), np.cos(0.5 * freqs)]),
        rtol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(jnp.zeros(()), 7)


def test_critic_ensemble_is_vmapped_over_independent_parameters():
    net = CriticEnsemble((32, 32), num_critics=3)
    obs, act = jnp.ones((5, 4)), jnp.ones((5, 2))
    params = net.init(jax.random.PRNGKey(0), obs, act)
    kernels = [leaf for leaf in jax.tree_util.tree_leaves(params)]
    assert all(leaf.shape[0] == 3 for leaf in kernels)
    q = net.apply(params, obs, act)
    assert q.shape == (5, 3)
    # Members are distinct, and each is the plain MLP on [s, a].
    assert len(np.unique(np.round(np.asarray(q[0]), 5))) == 3
    p = params["params"]["ensemble"]["MLP_0"]
    h = jnp.concatenate([obs, act], -1)
    for i in range(2):
        h = jax.nn.relu(h @ p[f"Dense_{i}"]["kernel"][1]
                        + p[f"Dense_{i}"]["bias"][1])
    manual = h @ p["Dense_2"]["kernel"][1] + p["Dense_2"]["bias"][1]
    np.testing.assert_allclose(q[:, 1], manual[:, 0], rtol=1e-5, atol=1e-6)
    # One example in, one value per member out.
    assert net.apply(params, obs[0], act[0]).shape == (3,)


def test_score_network_shapes_and_conditioning():
    net = ScoreNetwork((64, 64), embed_dim=16)
    x, obs = jnp.ones((7, 3)), jnp.ones((7, 5))
    params = net.init(jax.random.PRNGKey(0), x, jnp.zeros(7), obs, jnp.ones(7))
    out = net.apply(params, x, jnp.full(7, 0.5), obs, jnp.ones(7))
    assert out.shape == (7, 3)
    # Scalar t and temperature broadcast over the batch.
    np.testing.assert_allclose(
        net.apply(params, x, 0.5, obs, 1.0), out, rtol=1e-5)
    # The output depends on t and on the temperature.
    assert not np.allclose(net.apply(params, x, 0.1, obs, 1.0), out)
    assert not np.allclose(net.apply(params, x, 0.5, obs, 5.0), out)
    # One unbatched example.
    assert net.apply(params, x[0], 0.5, obs[0], 1.0).shape == (3,)


def test_score_network_residual_blocks():
    net = ScoreNetwork((16, 16), embed_dim=4, activation="relu")
    x, obs = jnp.ones((2, 1)), jnp.ones((2, 1))
    params = net.init(jax.random.PRNGKey(1), x, 0.3, obs, 1.0)
    p = params["params"]
    h = jnp.concatenate([obs, x, jnp.broadcast_to(
        sinusoidal_embedding(0.3, 4), (2, 4)), jnp.broadcast_to(
            sinusoidal_embedding(1.0, 4), (2, 4))], -1)
    h = h @ p["input"]["kernel"] + p["input"]["bias"]
    for i in range(2):
        h = h + jax.nn.relu(h @ p[f"block_{i}"]["kernel"]
                            + p[f"block_{i}"]["bias"])
    manual = h @ p["output"]["kernel"] + p["output"]["bias"]
    np.testing.assert_allclose(net.apply(params, x, 0.3, obs, 1.0), manual,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("input_activation", [None, "gelu"])
@pytest.mark.parametrize("temperature", [0.3, np.array([0.1, 0.5, 2.0])])
def test_conditioned_score_fn_equals_apply(input_activation, temperature):
    """The sampler's split input layer computes the same network, with or
    without an activation after the input projection."""
    net = ScoreNetwork((16, 16), embed_dim=8,
                       input_activation=input_activation)
    rng = np.random.default_rng(0)
    x, obs = (jnp.asarray(rng.normal(size=s), jnp.float32)
              for s in [(3, 2), (3, 5)])
    params = net.init(jax.random.PRNGKey(2), x, 0.5, obs, 1.0)
    score_fn = conditioned_score_fn(net, params, obs, temperature)
    for t in (1.0, 0.37):
        np.testing.assert_allclose(
            score_fn(x, t), net.apply(params, x, t, obs, temperature),
            rtol=1e-5, atol=1e-6)
    # The input activation changes the function.
    other = ScoreNetwork((16, 16), embed_dim=8, input_activation=(
        "gelu" if input_activation is None else None))
    assert not np.allclose(other.apply(params, x, 0.5, obs, 1.0),
                           net.apply(params, x, 0.5, obs, 1.0))


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="Unknown activation"):
        get_activation("swish2")
    net = ScoreNetwork((16, 32))
    with pytest.raises(ValueError, match="equal widths"):
        net.init(jax.random.PRNGKey(0), jnp.ones((1, 2)), 0.0,
                 jnp.ones((1, 2)), 1.0)


def _randomised(params, seed):
    """`params` with every leaf redrawn (non-zero biases included)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [
        0.5 * jax.random.normal(k, leaf.shape, leaf.dtype)
        for k, leaf in zip(keys, leaves)])


class _RenamedScoreNetwork(ScoreNetwork):
    INPUT_LAYER = "embed"
    OUTPUT_LAYER = "head"

    @staticmethod
    def block_name(i):
        return f"residual_{i}"


@pytest.mark.parametrize("cls", [ScoreNetwork, _RenamedScoreNetwork])
@pytest.mark.parametrize("kernel_init,input_activation", [
    ("lecun_normal", None), ("pytorch", "gelu")])
def test_conditioned_score_fn_follows_the_module(cls, kernel_init,
                                                 input_activation):
    """The sampler's fast path reads the layers the module defines: it
    equals `apply` on random parameters of any layout `init` produces,
    also when the layers are renamed."""
    net = cls((8, 8, 8), embed_dim=6, activation="silu",
              input_activation=input_activation, kernel_init=kernel_init)
    rng = np.random.default_rng(3)
    x, obs = (jnp.asarray(rng.normal(size=s), jnp.float32)
              for s in [(4, 3), (4, 5)])
    params = _randomised(net.init(jax.random.PRNGKey(0), x, 0.5, obs, 1.0),
                         seed=1)
    names = {cls.INPUT_LAYER, cls.OUTPUT_LAYER} | {
        cls.block_name(i) for i in range(3)}
    assert set(params["params"]) == names
    assert cls.action_dim(params) == 3
    temperature = jnp.asarray([0.2, 0.7, 1.0, 3.0], jnp.float32)
    score_fn = conditioned_score_fn(net, params, obs, temperature)
    for t in (0.9, 0.05):
        np.testing.assert_allclose(
            score_fn(x, t), net.apply(params, x, t, obs, temperature),
            rtol=1e-5, atol=1e-5)


def test_critic_layer_params_follow_the_module():
    """`CriticEnsemble.layer_params` lists the layers `apply` runs, in call
    order, and refuses a parameter tree whose layers it does not know."""
    net = CriticEnsemble((6, 7, 5), num_critics=2, activation="gelu")
    obs, act = jnp.ones((3, 4)), jnp.full((3, 2), 0.5)
    params = _randomised(net.init(jax.random.PRNGKey(0), obs, act), seed=2)
    layers = CriticEnsemble.layer_params(params)
    assert [layer["kernel"].shape for layer in layers] == [
        (2, 6, 6), (2, 6, 7), (2, 7, 5), (2, 5, 1)]
    h = jnp.concatenate([obs, act], -1)
    for layer in layers[:-1]:
        h = jax.nn.gelu(h @ layer["kernel"][1] + layer["bias"][1])
    manual = h @ layers[-1]["kernel"][1] + layers[-1]["bias"][1]
    np.testing.assert_allclose(net.apply(params, obs, act)[:, 1],
                               manual[:, 0], rtol=1e-5, atol=1e-6)
    mlp = dict(params["params"]["ensemble"]["MLP_0"])
    mlp["hidden"] = mlp.pop("Dense_1")
    renamed = {"params": {"ensemble": {"MLP_0": mlp}}}
    with pytest.raises(ValueError, match="Not the parameters of an MLP"):
        CriticEnsemble.layer_params(renamed)
