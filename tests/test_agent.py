"""DQSConfig, TrainState and the pure init / update / act."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import agent
from tests.helpers import random_batch, tree_equal

OBS_DIM, ACT_DIM, B = 3, 2, 16
SMALL = agent.DQSConfig(hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
                        embed_dim=8, num_mc_samples=8, num_sampling_steps=5)


def make_batch(seed=0, batch_size=B, discount=1.0):
    return random_batch(OBS_DIM, ACT_DIM, batch_size, seed, discount)


@pytest.fixture(scope="module")
def state():
    return agent.init(SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def jit_update():
    return jax.jit(agent.update)


def test_defaults_follow_the_spec():
    c = agent.DQSConfig()
    assert (c.hidden_dims, c.critic_hidden_dims, c.embed_dim) == (
        (256, 256), (256, 256), 128)
    assert (c.num_critics, c.actor_lr, c.critic_lr) == (2, 3e-4, 1e-3)
    assert (c.discount, c.tau, c.num_mc_samples, c.num_sampling_steps) == (
        0.99, 0.005, 1000, 20)
    assert (c.sigma_min, c.sigma_max) == (1e-5, 1.0)
    assert c.init_temperature == c.final_temperature == 0.05
    assert c.max_action == 1.0
    hash(c)  # A static field of TrainState.


def test_init(state):
    assert int(state.step) == 0
    assert state.obs_dim == OBS_DIM and state.act_dim == ACT_DIM
    assert tree_equal(state.critic_params, state.target_critic_params)
    leaves = jax.tree_util.tree_leaves(state.critic_params)
    assert all(leaf.shape[0] == SMALL.num_critics for leaf in leaves)


def test_update_is_pure_and_deterministic(state, jit_update):
    batch = make_batch()
    before = jax.tree_util.tree_map(np.array, state)
    s1, m1 = jit_update(state, batch)
    s2, m2 = jit_update(state, batch)
    assert tree_equal(s1, s2) and tree_equal(m1, m2)
    assert tree_equal(state, before)  # Input untouched.


def test_update_advances_key_and_step_and_changes_parameters(
        state, jit_update):
    new, metrics = jit_update(state, make_batch())
    assert int(new.step) == 1
    assert not np.array_equal(new.key, state.key)
    assert not tree_equal(new.score_params, state.score_params)
    assert not tree_equal(new.critic_params, state.critic_params)
    # Polyak: target' = tau * critic' + (1 - tau) * target.
    expected = jax.tree_util.tree_map(
        lambda c, t: SMALL.tau * c + (1 - SMALL.tau) * t, new.critic_params,
        state.target_critic_params)
    for a, b in zip(jax.tree_util.tree_leaves(new.target_critic_params),
                    jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert set(metrics) >= {"critic_loss", "score_loss", "q_mean",
                            "temperature"}
    for name, value in metrics.items():
        assert value.shape == (), name
        assert np.isfinite(value), name


def test_update_compiles_once(state):
    traces = []

    def counted(s, b):
        traces.append(1)
        return agent.update(s, b)

    step = jax.jit(counted)
    s = state
    for i in range(4):
        s, _ = step(s, make_batch(seed=i))
    assert len(traces) == 1


def test_critic_learns_rewards_on_a_fixed_batch(state, jit_update):
    # With discounts 0 the TD target is the reward: the loss must fall.
    batch = make_batch(seed=1, discount=0.0)
    s, first = jit_update(state, batch)
    for _ in range(150):
        s, metrics = jit_update(s, batch)
    assert float(metrics["critic_loss"]) < 0.2 * float(first["critic_loss"])


def test_act_bounds_and_determinism(state):
    config = dataclasses.replace(SMALL, max_action=2.0)
    s = agent.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(1))
    obs = jnp.asarray(np.random.default_rng(2).normal(size=(256, OBS_DIM)),
                      jnp.float32)
    act = jax.jit(agent.act, static_argnames="deterministic")
    a = act(s, obs, jax.random.PRNGKey(3))
    assert a.shape == (256, ACT_DIM)
    assert np.all(np.abs(a) <= 2.0)
    assert np.max(np.abs(a)) > 1.0  # Scaled, not clipped to 1.
    b = act(s, obs, jax.random.PRNGKey(4))
    assert not np.allclose(a, b)
    d1 = act(s, obs, jax.random.PRNGKey(3), deterministic=True)
    d2 = act(s, obs, jax.random.PRNGKey(4), deterministic=True)
    np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize("eval_start", ["zero", "hashed"])
def test_deterministic_actions_are_key_independent(eval_start):
    config = dataclasses.replace(SMALL, eval_start=eval_start)
    s = agent.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(1))
    obs = jnp.asarray(np.random.default_rng(5).normal(size=(8, OBS_DIM)),
                      jnp.float32)
    act = jax.jit(agent.act, static_argnames="deterministic")
    d1 = act(s, obs, jax.random.PRNGKey(3), deterministic=True)
    d2 = act(s, obs, jax.random.PRNGKey(4), deterministic=True)
    np.testing.assert_array_equal(d1, d2)
    # A row's action does not depend on the rest of the batch.
    np.testing.assert_allclose(act(s, obs[2:3], jax.random.PRNGKey(9),
                                   deterministic=True), d1[2:3],
                               rtol=1e-5, atol=1e-6)


def test_hashed_eval_start():
    config = dataclasses.replace(SMALL, eval_start="hashed")
    obs = jnp.asarray(np.random.default_rng(6).normal(size=(400, OBS_DIM)),
                      jnp.float32)
    start = agent.sampler_start(config, obs, ACT_DIM, jax.random.PRNGKey(0),
                                deterministic=True)
    # Deterministic per observation: another key, a permuted batch, a
    # duplicated row all give the same start for the same observation.
    again = agent.sampler_start(config, obs[::-1], ACT_DIM,
                                jax.random.PRNGKey(1), deterministic=True)
    np.testing.assert_array_equal(start, again[::-1])
    twice = agent.sampler_start(config, jnp.concatenate([obs[:1], obs[:1]]),
                                ACT_DIM, jax.random.PRNGKey(2), True)
    np.testing.assert_array_equal(twice, jnp.concatenate([start[:1]] * 2))
    # Different across observations, and distributed as N(0, h(1) I).
    assert len(np.unique(np.asarray(start[:, 0]))) == 400
    np.testing.assert_allclose(np.std(start), np.sqrt(config.schedule.h(1.0)),
                               rtol=0.1)
    assert abs(float(np.mean(start))) < 0.1
    # "zero" starts at 0; stochastic starts depend on the key.
    zero = agent.sampler_start(SMALL, obs, ACT_DIM, jax.random.PRNGKey(0),
                               True)
    np.testing.assert_array_equal(zero, np.zeros((400, ACT_DIM)))
    a, b = (agent.sampler_start(config, obs, ACT_DIM, jax.random.PRNGKey(k),
                                False) for k in (0, 1))
    assert not np.allclose(a, b)


def test_orthogonal_init_of_every_layer():
    """Default init (the authors'): every Dense kernel of both networks,
    outputs included, has all singular values equal to sqrt(2); biases 0."""
    assert agent.DQSConfig().kernel_init == "orthogonal"
    s = agent.init(SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    critic = s.critic_params["params"]["ensemble"]["MLP_0"]
    kernels = [critic[n]["kernel"][e] for n in critic
               for e in range(SMALL.num_critics)]
    biases = [critic[n]["bias"] for n in critic]
    score = s.score_params["params"]
    kernels += [score[n]["kernel"] for n in score]
    biases += [score[n]["bias"] for n in score]
    assert len(kernels) == 3 * 2 + 4
    for kernel in kernels:
        singular = np.linalg.svd(np.asarray(kernel), compute_uv=False)
        np.testing.assert_allclose(singular, np.sqrt(2.0), rtol=1e-4)
    assert all(float(jnp.max(jnp.abs(b))) == 0.0 for b in biases)
    # The two critics differ; the old init stays reachable.
    assert not np.allclose(kernels[0], kernels[1])
    old = agent.init(dataclasses.replace(SMALL, kernel_init="lecun_normal"),
                     OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    singular = np.linalg.svd(np.asarray(
        old.score_params["params"]["block_0"]["kernel"]), compute_uv=False)
    assert np.ptp(singular) > 0.5


def test_temperature_schedule():
    config = dataclasses.replace(SMALL, init_temperature=10.0,
                                 final_temperature=1.0,
                                 temperature_anneal_steps=100)
    np.testing.assert_allclose(config.temperature(0), 10.0, rtol=1e-6)
    np.testing.assert_allclose(config.temperature(50), np.sqrt(10.0),
                               rtol=1e-5)
    np.testing.assert_allclose(config.temperature(100), 1.0, rtol=1e-6)
    np.testing.assert_allclose(config.temperature(1000), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        config.temperature(jnp.array([25, 75])),
        [10.0**0.75, 10.0**0.25], rtol=1e-5)
    np.testing.assert_allclose(SMALL.temperature(12345), 0.05, rtol=1e-6)
    s = agent.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    s, metrics = jax.jit(agent.update)(s, make_batch())
    np.testing.assert_allclose(metrics["temperature"], 10.0, rtol=1e-6)
    np.testing.assert_allclose(s.temperature, 10.0**0.99, rtol=1e-5)


def test_shape_errors_are_clear(state):
    bad = make_batch()._replace(observations=jnp.zeros((B, OBS_DIM + 1)))
    with pytest.raises(AssertionError, match="shape"):
        agent.update(state, bad)
    bad = make_batch()._replace(rewards=jnp.zeros((B, 1)))
    with pytest.raises(AssertionError, match="rank"):
        agent.update(state, bad)
    with pytest.raises(AssertionError):
        agent.act(state, jnp.zeros((4, OBS_DIM + 2)), jax.random.PRNGKey(0))
    with pytest.raises(AssertionError, match="rank"):
        agent.act(state, jnp.zeros((OBS_DIM,)), jax.random.PRNGKey(0))


@pytest.mark.parametrize("field,value,match", [
    ("num_mc_samples", 0, "num_mc_samples"),
    ("num_sampling_steps", 0, "num_sampling_steps"),
    ("init_temperature", -1.0, "init_temperature"),
    ("hidden_dims", (64, 32), "equal"),
    ("discount", 1.5, "discount"),
    ("sigma_min", 2.0, "sigma_min < sigma_max"),
    ("kernel_init", "xavier", "kernel_init"),
    ("score_input_activation", "sigmoidal", "activation"),
    ("eval_start", "random", "eval_start"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMALL, **{field: value})
