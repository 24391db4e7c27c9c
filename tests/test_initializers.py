"""Named Dense initialisations (`dqs_jax.initializers`) against their closed
forms, and the `kernel_init` field of every agent that has one."""

import math

import flax.linen as nn
import jax
import numpy as np
import pytest

from dqs_jax import agents, initializers

FAN_IN, FAN_OUT = 256, 1024


def _dense(name):
    layer = nn.Dense(FAN_OUT, **initializers.get_kernel_init(name, FAN_IN))
    params = layer.init(jax.random.PRNGKey(0), np.zeros((1, FAN_IN)))
    return (np.asarray(params["params"]["kernel"]),
            np.asarray(params["params"]["bias"]))


TRUNCATED_STD = 0.8796256610  # sd of a unit normal truncated to [-2, 2]
# Standard deviation of the kernel entries, and the bound of |w| if any.
KERNEL_STD = {
    "lecun_normal": (1 / math.sqrt(FAN_IN),
                     2 / (TRUNCATED_STD * math.sqrt(FAN_IN))),
    "xavier_uniform": (math.sqrt(2 / (FAN_IN + FAN_OUT)),
                       math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "pytorch": (1 / math.sqrt(3 * FAN_IN), 1 / math.sqrt(FAN_IN)),
    "haiku": (TRUNCATED_STD / math.sqrt(FAN_IN), 2 / math.sqrt(FAN_IN)),
    "dipo": (0.5 / math.sqrt(FAN_IN), None),
}


@pytest.mark.parametrize("name", sorted(KERNEL_STD))
def test_kernel_statistics_match_the_convention(name):
    kernel, bias = _dense(name)
    std, bound = KERNEL_STD[name]
    np.testing.assert_allclose(kernel.std(), std, rtol=0.01)
    assert abs(kernel.mean()) < 0.01 * std
    if bound is not None:
        assert np.abs(kernel).max() <= bound * (1 + 1e-6)
        assert np.abs(kernel).max() > 0.95 * bound
    if name == "pytorch":  # biases U(+-1/sqrt(fan_in)) too
        np.testing.assert_allclose(bias.std(), std, rtol=0.1)
        assert np.abs(bias).max() <= bound
    else:
        np.testing.assert_array_equal(bias, 0.0)


def test_orthogonal_singular_values_equal_the_gain():
    kernel, bias = _dense("orthogonal")
    singular = np.linalg.svd(kernel, compute_uv=False)
    np.testing.assert_allclose(singular, math.sqrt(2.0), rtol=1e-4)
    np.testing.assert_array_equal(bias, 0.0)


def test_bad_names_and_missing_fan_in_raise():
    with pytest.raises(ValueError, match="xavier"):
        initializers.get_kernel_init("xavier")
    with pytest.raises(ValueError, match="fan_in"):
        initializers.get_kernel_init("pytorch")
    assert initializers.get_kernel_init("lecun_normal") == {}


AGENTS_WITH_INIT = ("dqs", "sac", "td3", "ddpg", "qsm", "dacer", "dipo")


@pytest.mark.parametrize("name", AGENTS_WITH_INIT)
def test_every_layer_of_every_agent_follows_kernel_init(name):
    """With "pytorch" (the only convention with non-zero biases) every bias
    of every network of the agent is non-zero and within 1/sqrt(fan_in) of
    its layer; a bad name raises."""
    agent = agents.get_agent(name)
    with pytest.raises(ValueError, match="kernel_init"):
        agent.make_config(kernel_init="xavier")
    config = agent.make_config(kernel_init="pytorch", hidden_dims=(16, 16),
                               critic_hidden_dims=(16, 16))
    state = agent.init(config, 5, 2, jax.random.PRNGKey(0))
    params = {k: v for k, v in vars(state).items()
              if k.endswith("params") and "target" not in k}
    assert params
    dense = [layer for tree in params.values()
             for layer in _dense_layers(tree)]
    assert len(dense) >= 4
    for kernel, bias in dense:
        fan_in = kernel.shape[-2]
        assert np.all(bias != 0.0)
        assert np.abs(bias).max() <= 1 / math.sqrt(fan_in)
        assert np.abs(kernel).max() <= 1 / math.sqrt(fan_in)


def _dense_layers(tree):
    """`(kernel, bias)` of every Dense layer in a parameter tree."""
    if isinstance(tree, dict) or hasattr(tree, "items"):
        if "kernel" in tree and "bias" in tree:
            return [(np.asarray(tree["kernel"]), np.asarray(tree["bias"]))]
        return [layer for value in tree.values()
                for layer in _dense_layers(value)]
    return []
