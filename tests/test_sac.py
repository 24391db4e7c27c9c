"""The SAC baseline: same init / update / act interface as the DQS agent."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dqs_jax.baselines import sac
from dqs_jax.types import Batch
from tests.helpers import random_batch, tree_equal

OBS_DIM, ACT_DIM, B = 3, 2, 16
SMALL = sac.SACConfig(hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
                      init_temperature=0.3)


def make_batch(seed=0, batch_size=B, discount=1.0):
    return random_batch(OBS_DIM, ACT_DIM, batch_size, seed, discount)


@pytest.fixture(scope="module")
def state():
    return sac.init(SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def jit_update():
    return jax.jit(sac.update)


def test_defaults_and_validation():
    c = sac.SACConfig()
    assert (c.hidden_dims, c.critic_hidden_dims, c.num_critics) == (
        (256, 256), (256, 256), 2)
    assert (c.actor_lr, c.critic_lr, c.temperature_lr) == (3e-4, 3e-4, 3e-4)
    assert (c.discount, c.tau, c.init_temperature) == (0.99, 0.005, 1.0)
    assert c.target_entropy is None and c.entropy_target(6) == -6.0
    assert (c.max_action, c.log_std_min, c.log_std_max) == (1.0, -5.0, 2.0)
    assert sac.SACConfig(target_entropy=0.5).entropy_target(6) == 0.5
    assert hash(c) == hash(sac.SACConfig(hidden_dims=[256, 256]))
    for bad in (dict(hidden_dims=()), dict(critic_hidden_dims=(0,)),
                dict(num_critics=0), dict(actor_lr=0.0),
                dict(temperature_lr=-1.0), dict(init_temperature=0.0),
                dict(discount=1.5), dict(tau=0.0), dict(max_action=0.0),
                dict(log_std_min=2.0, log_std_max=2.0),
                dict(target_entropy=float("nan"))):
        with pytest.raises(ValueError, match="SACConfig"):
            sac.SACConfig(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tau = 0.1
    with pytest.raises(ValueError):
        sac.init(c, 0, 2, jax.random.PRNGKey(0))


def test_init(state):
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    assert (state.obs_dim, state.act_dim, state.config) == (OBS_DIM, ACT_DIM,
                                                            SMALL)
    assert tree_equal(state.critic_params, state.target_critic_params)
    leaves = jax.tree_util.tree_leaves(state.critic_params)
    assert all(leaf.shape[0] == SMALL.num_critics for leaf in leaves)
    np.testing.assert_allclose(state.temperature, SMALL.init_temperature)
    assert state.log_temperature.dtype == jnp.float32
    state3 = sac.init(dataclasses.replace(SMALL, init_temperature=0.2),
                      OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    np.testing.assert_allclose(state3.temperature, 0.2, rtol=1e-6)


def test_orthogonal_kernel_init_option():
    """kernel_init="orthogonal" (the reference's): every Dense kernel of the
    actor and of each critic, outputs included, has all singular values
    sqrt(2); biases 0. The default stays Flax's LeCun normal."""
    assert sac.SACConfig().kernel_init == "lecun_normal"
    with pytest.raises(ValueError, match="kernel_init"):
        sac.SACConfig(kernel_init="xavier")
    config = dataclasses.replace(SMALL, kernel_init="orthogonal")
    s = sac.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    actor = s.actor_params["params"]["MLP_0"]
    critic = s.critic_params["params"]["ensemble"]["MLP_0"]
    kernels = [actor[n]["kernel"] for n in actor] + [
        critic[n]["kernel"][e] for n in critic
        for e in range(config.num_critics)]
    assert len(kernels) == 3 + 3 * config.num_critics
    for kernel in kernels:
        singular = np.linalg.svd(np.asarray(kernel), compute_uv=False)
        np.testing.assert_allclose(singular, np.sqrt(2.0), rtol=1e-4)
    biases = [actor[n]["bias"] for n in actor] + [critic[n]["bias"]
                                                  for n in critic]
    assert all(float(jnp.max(jnp.abs(b))) == 0.0 for b in biases)
    default = sac.init(SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    singular = np.linalg.svd(np.asarray(
        default.actor_params["params"]["MLP_0"]["Dense_1"]["kernel"]),
        compute_uv=False)
    assert np.ptp(singular) > 0.5


def test_state_buffers_are_not_aliased(state):
    # Aliased leaves (e.g. target = critic at init) could not be donated.
    leaves = jax.tree_util.tree_leaves(state)
    pointers = [leaf.unsafe_buffer_pointer() for leaf in leaves]
    assert len(set(pointers)) == len(pointers)


def numerical_log_density(a, mean, std, max_action):
    """log d/da P(A <= a) by central differences of the exact CDF, 1-D.

    `P(A <= a) = Phi((atanh(a / m) - mean) / std)` for `A = m tanh(X)`.
    """
    eps = 1e-6 * max_action
    cdf = lambda v: stats.norm.cdf(  # noqa: E731
        (np.arctanh(v / max_action) - mean) / std)
    return np.log((cdf(a + eps) - cdf(a - eps)) / (2 * eps))


@pytest.mark.parametrize("max_action", [1.0, 2.5])
def test_tanh_gaussian_log_prob_is_the_change_of_variables(max_action):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(50, 3))
    log_std = rng.uniform(-1.5, 0.5, size=(50, 3))
    x = mean + np.exp(log_std) * rng.normal(size=(50, 3))
    x = np.clip(x, -3.5, 3.5)  # Keep the finite differences accurate.
    a = max_action * np.tanh(x)
    expected = sum(numerical_log_density(a[:, i], mean[:, i],
                                         np.exp(log_std[:, i]), max_action)
                   for i in range(3))
    got = sac.tanh_gaussian_log_prob(jnp.asarray(x, jnp.float32),
                                     jnp.asarray(mean, jnp.float32),
                                     jnp.asarray(log_std, jnp.float32),
                                     max_action)
    assert got.shape == (50,)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-3)


def test_tanh_gaussian_log_prob_is_stable_in_the_tails():
    x = jnp.array([[-40.0], [-12.0], [0.0], [12.0], [40.0]])
    zeros = jnp.zeros_like(x)
    got = sac.tanh_gaussian_log_prob(x, zeros, zeros)
    assert np.all(np.isfinite(got))
    # log(1 - tanh(x)^2) = log 4 - 2|x| - 2 log(1 + e^{-2|x|}).
    xd = np.abs(np.asarray(x[:, 0], np.float64))
    log_det = np.log(4.0) - 2 * xd - 2 * np.log1p(np.exp(-2 * xd))
    expected = -0.5 * xd ** 2 - 0.5 * np.log(2 * np.pi) - log_det
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    grads = jax.grad(lambda v: jnp.sum(
        sac.tanh_gaussian_log_prob(v, zeros, zeros)))(x)
    assert np.all(np.isfinite(grads))


def test_samples_and_their_log_prob():
    mean = jnp.array([[0.3, -1.0]] * 20000)
    log_std = jnp.log(jnp.array([[0.5, 0.2]] * 20000))
    actions, log_prob = sac.sample_tanh_gaussian(mean, log_std,
                                                 jax.random.PRNGKey(1), 2.0)
    assert actions.shape == (20000, 2) and log_prob.shape == (20000,)
    assert np.all(np.abs(actions) <= 2.0)
    x = np.arctanh(np.asarray(actions, np.float64) / 2.0)
    np.testing.assert_allclose(x.mean(0), [0.3, -1.0], atol=0.01)
    np.testing.assert_allclose(x.std(0), [0.5, 0.2], rtol=0.02)
    np.testing.assert_allclose(
        log_prob, sac.tanh_gaussian_log_prob(jnp.asarray(x, jnp.float32),
                                             mean, log_std, 2.0),
        rtol=1e-4, atol=1e-3)


def test_log_std_is_squashed_into_its_bounds():
    actor = sac.TanhGaussianActor((16,), 2, -5.0, 2.0)
    obs = jnp.concatenate([jnp.zeros((1, 3)), 1e4 * jax.random.normal(
        jax.random.PRNGKey(2), (64, 3))])
    params = actor.init(jax.random.PRNGKey(3), obs)
    mean, log_std = actor.apply(params, obs)
    assert mean.shape == log_std.shape == (65, 2)
    assert np.all(log_std >= -5.0) and np.all(log_std <= 2.0)
    assert float(jnp.min(log_std)) < -4.9 and float(jnp.max(log_std)) > 1.9
    # Zero input: raw output 0 (zero biases) -> the middle of the range.
    np.testing.assert_allclose(log_std[0], -1.5, atol=1e-6)


def test_act_deterministic_is_tanh_of_the_mean_and_ignores_the_key(state):
    obs = jax.random.normal(jax.random.PRNGKey(4), (7, OBS_DIM))
    act = jax.jit(sac.act, static_argnames="deterministic")
    a1 = act(state, obs, jax.random.PRNGKey(0), deterministic=True)
    a2 = act(state, obs, jax.random.PRNGKey(1), deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    mean, _ = sac.actor_network(SMALL, ACT_DIM).apply(state.actor_params, obs)
    np.testing.assert_allclose(a1, jnp.tanh(mean), rtol=1e-6, atol=1e-7)
    s1 = act(state, obs, jax.random.PRNGKey(0))
    s2 = act(state, obs, jax.random.PRNGKey(1))
    assert s1.shape == (7, ACT_DIM) and not np.allclose(s1, s2)
    np.testing.assert_array_equal(s1, act(state, obs, jax.random.PRNGKey(0)))


def test_actions_stay_in_bounds():
    config = dataclasses.replace(SMALL, max_action=2.0)
    state = sac.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(5))
    obs = 1e3 * jax.random.normal(jax.random.PRNGKey(6), (256, OBS_DIM))
    for det in (True, False):
        a = sac.act(state, obs, jax.random.PRNGKey(7), deterministic=det)
        assert np.all(np.abs(a) <= 2.0) and np.all(np.isfinite(a))
        assert float(jnp.max(jnp.abs(a))) > 1.9  # Saturated, not shrunk.


def test_update_is_pure_and_deterministic(state, jit_update):
    batch = make_batch()
    before = jax.tree_util.tree_map(np.array, state)
    s1, m1 = jit_update(state, batch)
    s2, m2 = jit_update(state, batch)
    assert tree_equal(s1, s2) and tree_equal(m1, m2)
    assert tree_equal(state, before)  # Input untouched.
    s3, _ = jit_update(state, make_batch(1))
    assert not tree_equal(s1.actor_params, s3.actor_params)
    expected_keys = {"critic_loss", "actor_loss", "temperature_loss",
                     "temperature", "entropy", "q_mean", "target_q_mean"}
    assert expected_keys <= set(m1)
    for value in m1.values():
        assert value.shape == () and value.dtype == jnp.float32
        assert np.isfinite(value)


def test_update_advances_key_and_step_and_changes_parameters(
        state, jit_update):
    new, metrics = jit_update(state, make_batch())
    assert int(new.step) == 1 and new.step.dtype == jnp.int32
    assert not np.array_equal(new.key, state.key)
    for name in ("actor_params", "critic_params", "target_critic_params",
                 "log_temperature"):
        old_leaves = jax.tree_util.tree_leaves(getattr(state, name))
        new_leaves = jax.tree_util.tree_leaves(getattr(new, name))
        assert any(not np.array_equal(a, b)
                   for a, b in zip(old_leaves, new_leaves)), name
    assert (new.config, new.obs_dim, new.act_dim) == (SMALL, OBS_DIM, ACT_DIM)
    np.testing.assert_allclose(metrics["temperature"], state.temperature)


def test_update_compiles_once(state):
    traces = []

    def counted(s, b):
        traces.append(1)
        return sac.update(s, b)

    update = jax.jit(counted)
    s = state
    for seed in range(4):
        s, _ = update(s, make_batch(seed))
    assert int(s.step) == 4 and len(traces) == 1


def test_polyak_target_update_is_exact(state, jit_update):
    s1, _ = jit_update(state, make_batch(1))
    s2, _ = jit_update(s1, make_batch(2))
    tau = SMALL.tau
    for prev, new in ((state, s1), (s1, s2)):
        expected = jax.tree_util.tree_map(
            lambda c, t: tau * c + (1 - tau) * t, new.critic_params,
            prev.target_critic_params)
        for a, b in zip(jax.tree_util.tree_leaves(new.target_critic_params),
                        jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # After the first step the target lags the critic.
    assert not tree_equal(s2.target_critic_params, s2.critic_params)


def test_critic_loss_uses_the_soft_target(state, jit_update):
    """Recompute the soft TD loss by hand (numpy log-density, float64)."""
    alpha, gamma = SMALL.init_temperature, SMALL.discount
    batch = make_batch(3)._replace(
        discounts=jnp.array([1.0, 0.0] * (B // 2), jnp.float32))
    _, metrics = jit_update(state, batch)
    _, next_key, _ = jax.random.split(state.key, 3)
    actor = sac.actor_network(SMALL, ACT_DIM)
    critic = sac.critic_network(SMALL)
    mean, log_std = (np.asarray(v, np.float64) for v in actor.apply(
        state.actor_params, batch.next_observations))
    eps = np.asarray(jax.random.normal(next_key, mean.shape, jnp.float32))
    x = mean + np.exp(log_std) * eps
    next_actions = np.tanh(x)
    log_pi = np.sum(stats.norm.logpdf(x, mean, np.exp(log_std))
                    - np.log(1 - np.tanh(x) ** 2), axis=-1)
    next_q = np.asarray(critic.apply(
        state.target_critic_params, batch.next_observations,
        jnp.asarray(next_actions, jnp.float32))).min(-1)
    target = (np.asarray(batch.rewards) + gamma * np.asarray(batch.discounts)
              * (next_q - alpha * log_pi))
    q = np.asarray(critic.apply(state.critic_params, batch.observations,
                                batch.actions))
    expected = np.mean((q - target[:, None]) ** 2)
    np.testing.assert_allclose(metrics["critic_loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(metrics["target_q_mean"], target.mean(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("target_entropy, rises", [(5.0, True),
                                                   (-20.0, False)])
def test_temperature_follows_the_entropy_gap(target_entropy, rises):
    config = dataclasses.replace(SMALL, target_entropy=target_entropy,
                                 init_temperature=0.5, temperature_lr=1e-2)
    state = sac.init(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(9))
    update = jax.jit(sac.update)
    s, temps, history = state, [float(state.temperature)], []
    for seed in range(5):
        s, metrics = update(s, make_batch(seed))
        entropy = float(metrics["entropy"])
        assert (entropy < target_entropy) == rises
        temps.append(float(s.temperature))
        history.append(metrics)
    assert all((b > a) == rises for a, b in zip(temps, temps[1:])), temps
    # The first loss is log(alpha) * (entropy - target).
    first = history[0]
    np.testing.assert_allclose(
        first["temperature_loss"],
        math.log(0.5) * (float(first["entropy"]) - target_entropy), rtol=1e-5)
    # Adam's first step moves log(alpha) by the learning rate.
    np.testing.assert_allclose(
        math.log(temps[1]) - math.log(0.5), 1e-2 if rises else -1e-2,
        rtol=1e-3)


NUM_STEPS = 600


def test_learns_a_one_step_bandit():
    a_star = np.array([0.5, -0.3], np.float32)
    config = sac.SACConfig(hidden_dims=(64, 64), critic_hidden_dims=(64, 64),
                           actor_lr=3e-3, critic_lr=3e-3, temperature_lr=1e-3,
                           init_temperature=0.01, discount=0.0)
    state = sac.init(config, 1, 2, jax.random.PRNGKey(10))
    rng = np.random.default_rng(11)
    num_batches, batch_size = 8, 128
    actions = rng.uniform(-1, 1, size=(num_batches, batch_size, 2))
    obs = jnp.zeros((num_batches, batch_size, 1), jnp.float32)
    batches = Batch(obs, jnp.asarray(actions, jnp.float32),
                    jnp.asarray(-np.sum((actions - a_star) ** 2, -1),
                                jnp.float32),
                    jnp.zeros((num_batches, batch_size), jnp.float32), obs)

    @jax.jit
    def train(state):
        def body(s, i):
            batch = jax.tree_util.tree_map(lambda v: v[i % num_batches],
                                           batches)
            return sac.update(s, batch)

        return jax.lax.scan(body, state, jnp.arange(NUM_STEPS))

    state, metrics = train(state)
    greedy = sac.act(state, jnp.zeros((1, 1)), jax.random.PRNGKey(0),
                     deterministic=True)[0]
    assert np.linalg.norm(greedy - a_star) < 0.15, greedy
    assert float(metrics["critic_loss"][-1]) < 0.1 * float(
        metrics["critic_loss"][0])
    assert int(state.step) == NUM_STEPS
