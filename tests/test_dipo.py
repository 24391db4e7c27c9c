"""The DIPO baseline: action gradient, diffusion-buffer write-back, updates."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import agents, ddpm, loop, replay
from dqs_jax.baselines import dipo
from dqs_jax.envs import reach
from dqs_jax.types import Batch
from tests.helpers import random_batch, tree_equal

OBS_DIM, ACT_DIM, B, CAPACITY = 3, 2, 16, 48
# Tiny and short (T = 3, K = 3) to keep compile time down; every-other EMA.
SMALL = dipo.DIPOConfig(hidden_dims=(16, 16), critic_hidden_dims=(16, 16),
                        time_embed_dim=8, time_mlp_dims=(16, 8),
                        num_diffusion_steps=3, action_gradient_steps=3,
                        policy_target_every=2, max_action=2.0)


@pytest.fixture(scope="module")
def state():
    # Jitted: one compile instead of op-by-op (several seconds here).
    return jax.jit(dipo.init, static_argnums=(0, 1, 2))(
        SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def buffer():
    """A full 48-slot buffer of random transitions, its `action_targets`
    set apart from `actions` so that the start point is visible."""
    data = random_batch(OBS_DIM, ACT_DIM, CAPACITY, seed=1)
    targets = jax.random.uniform(jax.random.PRNGKey(2), (CAPACITY, ACT_DIM),
                                 minval=-2.0, maxval=2.0)
    return replay.init(CAPACITY, OBS_DIM, ACT_DIM).replace(
        **data._asdict(), action_targets=targets,
        insert_index=jnp.asarray(5, jnp.int32),
        size=jnp.asarray(CAPACITY, jnp.int32))


TRACES = []


def _counted_replay_update(s, buf, key, batch_size):
    TRACES.append(1)
    return dipo.replay_update(s, buf, key, batch_size)


REPLAY_UPDATE = jax.jit(_counted_replay_update, static_argnums=3)


def test_defaults_validation_and_registry():
    c = dipo.DIPOConfig()
    assert (c.hidden_dims, c.critic_hidden_dims, c.num_critics) == (
        (256, 256), (256, 256), 2)
    assert (c.actor_lr, c.critic_lr, c.discount, c.tau) == (3e-4, 3e-4, 0.99,
                                                            0.005)
    assert (c.num_diffusion_steps, c.beta_schedule) == (100, "cosine")
    assert (c.action_lr, c.action_gradient_steps, c.action_grad_norm_ratio,
            c.action_optimizer) == (0.03, 20, 0.1, "adam")
    assert (c.max_grad_norm, c.policy_target_every, c.policy_ema) == (
        2.0, 1, 0.005)
    assert (c.activation, c.time_embed_dim, c.time_mlp_dims) == (
        "mish", 32, (256, 32))
    assert hash(c) == hash(dipo.DIPOConfig(hidden_dims=[256, 256]))
    for bad in (dict(hidden_dims=()), dict(time_mlp_dims=(0,)),
                dict(num_critics=0), dict(actor_lr=0.0), dict(tau=0.0),
                dict(policy_ema=1.5), dict(discount=-0.1),
                dict(num_diffusion_steps=0), dict(beta_schedule="sigmoid"),
                dict(action_optimizer="rmsprop"), dict(action_lr=0.0),
                dict(action_gradient_steps=0),
                dict(action_grad_norm_ratio=-1.0), dict(max_grad_norm=-1.0),
                dict(policy_target_every=0), dict(activation="swish"),
                dict(time_embed_dim=7)):
        with pytest.raises(ValueError, match="DIPOConfig"):
            dipo.DIPOConfig(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tau = 0.1
    agent = agents.get_agent("dipo")
    assert agent.replay_update is dipo.replay_update
    assert agent.config_cls is dipo.DIPOConfig and not agent.on_policy


# A known critic: q(s, a) = -sum_i (a_i - s_i)^2, so grad_a = 2 (s - a).
def quadratic_q(obs, actions):
    return -jnp.sum(jnp.square(actions - obs), axis=-1)


A0 = np.array([[0.1, -0.2], [0.3, 0.4], [-0.9, 0.8]], np.float32)


def _sgd_step(a, s, lr, max_norm):
    g = 2.0 * (s - a)
    norm = np.linalg.norm(g)
    if max_norm > 0:
        g = g * min(1.0, max_norm / norm)
    return np.clip(a + lr * g, -1.0, 1.0), norm


@pytest.mark.parametrize("case", ["norm_clip_binds", "box_binds"])
def test_sgd_action_step_is_the_hand_computation(case):
    if case == "norm_clip_binds":
        s = np.array([[0.5, 0.5], [-0.5, 0.2], [0.0, 0.0]], np.float32)
        lr, max_norm = 0.5, 0.2  # ||g|| = 3.03 > 0.2
    else:
        s = np.array([[3.0, -3.0], [0.3, 0.4], [-0.9, -2.0]], np.float32)
        lr, max_norm = 1.0, 100.0  # no norm clip; rows 0 and 2 leave the box
    expected, norm = _sgd_step(A0, s, lr, max_norm)
    got, aux = dipo.improve_actions(quadratic_q, jnp.asarray(s),
                                    jnp.asarray(A0), lr=lr, num_steps=1,
                                    max_norm=max_norm, optimizer="sgd")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(aux["action_grad_norm"], norm, rtol=1e-6)
    if case == "norm_clip_binds":
        # The whole [B, d] step has norm lr * max_norm, inside the box.
        np.testing.assert_allclose(np.linalg.norm(expected - A0),
                                   lr * max_norm, rtol=1e-5)
    else:
        np.testing.assert_array_equal(got[0], [1.0, -1.0])
        np.testing.assert_array_equal(got[1], A0[1])  # at its optimum
        np.testing.assert_allclose(got[2], [-0.9, -1.0])
    # K steps are K such steps in a row (clamped after each).
    a = A0
    for _ in range(4):
        a, _ = _sgd_step(a, s, lr, max_norm)
    got4, aux4 = dipo.improve_actions(quadratic_q, jnp.asarray(s),
                                      jnp.asarray(A0), lr=lr, num_steps=4,
                                      max_norm=max_norm, optimizer="sgd")
    np.testing.assert_allclose(got4, a, rtol=1e-5, atol=1e-6)
    q = lambda v: np.asarray(quadratic_q(jnp.asarray(s), v))  # noqa: E731
    np.testing.assert_allclose(aux4["action_q_gain"],
                               np.mean(q(got4) - q(A0)), rtol=1e-5)


def test_adam_action_step_is_a_fresh_adam_step():
    s = np.array([[0.5, 0.5], [-0.5, 0.2], [0.0, 0.0]], np.float32)
    lr, max_norm = 0.03, 0.2
    g = 2.0 * (s - A0)
    g = g * min(1.0, max_norm / np.linalg.norm(g))
    # First Adam step with fresh moments: lr * g / (|g| + eps).
    expected = np.clip(A0 + lr * g / (np.abs(g) + dipo.ADAM_EPS), -1, 1)
    got, _ = dipo.improve_actions(quadratic_q, jnp.asarray(s),
                                  jnp.asarray(A0), lr=lr, num_steps=1,
                                  max_norm=max_norm, optimizer="adam")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_replay_update_writes_back_exactly_the_sampled_rows(state, buffer):
    key = jax.random.PRNGKey(3)
    new, new_buf, metrics = REPLAY_UPDATE(state, buffer, key, B)
    _, idx = dipo.replay_indices(buffer, key, B)
    idx = np.asarray(idx)
    chosen = np.zeros(CAPACITY, bool)
    chosen[idx] = True
    assert 4 < chosen.sum() < CAPACITY
    for name in ("observations", "actions", "rewards", "discounts",
                 "next_observations", "insert_index", "size"):
        np.testing.assert_array_equal(getattr(new_buf, name),
                                      getattr(buffer, name))
    old_targets = np.asarray(buffer.action_targets)
    new_targets = np.asarray(new_buf.action_targets)
    np.testing.assert_array_equal(new_targets[~chosen], old_targets[~chosen])
    # The written rows: the action gradient on min_j Q_j of the UPDATED
    # critic, started from the stored targets (in [-1, 1] units).
    critic = dipo.critic_network(SMALL)

    def min_q(obs, u):
        return jnp.min(critic.apply(new.critic_params, obs, 2.0 * u), -1)

    improved, aux = dipo.improve_actions(
        min_q, buffer.observations[idx], buffer.action_targets[idx] / 2.0,
        lr=SMALL.action_lr, num_steps=SMALL.action_gradient_steps,
        max_norm=SMALL.action_grad_norm_ratio * ACT_DIM)
    np.testing.assert_allclose(new_targets[idx], 2.0 * improved, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(metrics["action_q_gain"], aux["action_q_gain"],
                               rtol=1e-4, atol=1e-6)
    assert np.all(np.abs(new_targets) <= SMALL.max_action)
    assert not np.allclose(new_targets[chosen], old_targets[chosen])


def test_replay_update_compiles_once_is_deterministic_and_advances(
        state, buffer):
    s, buf = state, buffer
    for i in range(3):
        s, buf, m = REPLAY_UPDATE(s, buf, jax.random.PRNGKey(10 + i), B)
    assert len(TRACES) == 1 and int(s.step) == 3  # whichever test came first
    before = jax.tree_util.tree_map(np.array, (state, buffer))
    out1 = REPLAY_UPDATE(state, buffer, jax.random.PRNGKey(5), B)
    out2 = REPLAY_UPDATE(state, buffer, jax.random.PRNGKey(5), B)
    assert tree_equal(out1, out2) and tree_equal((state, buffer), before)
    new, _, metrics = out1
    assert not np.array_equal(new.key, state.key) and int(new.step) == 1
    for value in metrics.values():
        assert value.shape == () and value.dtype == jnp.float32
        assert np.isfinite(value)


def test_targets_polyak_and_every_other_ema(state, buffer):
    s1, b1, m1 = REPLAY_UPDATE(state, buffer, jax.random.PRNGKey(6), B)
    s2, _, m2 = REPLAY_UPDATE(s1, b1, jax.random.PRNGKey(7), B)
    for prev, new in ((state, s1), (s1, s2)):
        expected = jax.tree_util.tree_map(
            lambda c, t: SMALL.tau * c + (1 - SMALL.tau) * t,
            new.critic_params, prev.target_critic_params)
        for a, b in zip(jax.tree_util.tree_leaves(new.target_critic_params),
                        jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # policy_target_every = 2: EMA at update 0, none at update 1.
    ema = jax.tree_util.tree_map(
        lambda p, t: SMALL.policy_ema * p + (1 - SMALL.policy_ema) * t,
        s1.policy_params, state.target_policy_params)
    for a, b in zip(jax.tree_util.tree_leaves(s1.target_policy_params),
                    jax.tree_util.tree_leaves(ema)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert tree_equal(s2.target_policy_params, s1.target_policy_params)
    assert (float(m1["policy_target_updated"]),
            float(m2["policy_target_updated"])) == (1.0, 0.0)


@pytest.mark.slow  # Compile-heavy (make test-slow).
def test_update_critic_and_policy_losses_by_hand(state):
    """`update`: TD target from the EMA policy's chain (recomputed from the
    same key split), twin MSEs summed; denoising loss on the improved
    batch actions at the old policy parameters."""
    batch = random_batch(OBS_DIM, ACT_DIM, B, seed=4)._replace(
        discounts=jnp.array([1.0, 0.0] * (B // 2), jnp.float32))
    traces = []
    update = jax.jit(lambda s, b: (traces.append(1), dipo.update(s, b))[1])
    new, metrics = update(state, batch)
    _, next_key, denoise_key = jax.random.split(state.key, 3)
    next_actions = dipo.sample_actions(SMALL, ACT_DIM,
                                       state.target_policy_params,
                                       batch.next_observations, next_key)
    critic = dipo.critic_network(SMALL)
    next_q = np.asarray(critic.apply(state.target_critic_params,
                                     batch.next_observations,
                                     next_actions)).min(-1)
    y = np.asarray(batch.rewards) + SMALL.discount * np.asarray(
        batch.discounts) * next_q
    q = np.asarray(critic.apply(state.critic_params, batch.observations,
                                batch.actions))
    np.testing.assert_allclose(metrics["critic_loss"],
                               np.sum(np.mean((q - y[:, None]) ** 2, 0)),
                               rtol=1e-5)

    def min_q(obs, u):
        return jnp.min(critic.apply(new.critic_params, obs, 2.0 * u), -1)

    improved, _ = dipo.improve_actions(
        min_q, batch.observations, batch.actions / 2.0, lr=SMALL.action_lr,
        num_steps=SMALL.action_gradient_steps,
        max_norm=SMALL.action_grad_norm_ratio * ACT_DIM)
    net = dipo.policy_network(SMALL)
    loss = ddpm.noise_prediction_loss(
        lambda x, t: net.apply(state.policy_params, x, t,
                               batch.observations),
        SMALL.schedule, improved, denoise_key)
    np.testing.assert_allclose(metrics["policy_loss"], loss, rtol=1e-4)
    new2, _ = update(new, random_batch(OBS_DIM, ACT_DIM, B, seed=5))
    assert len(traces) == 1 and int(new2.step) == 2
    assert not np.array_equal(new2.key, new.key)


def test_act_bounds_and_deterministic_ignores_the_key(state):
    obs = 30.0 * jax.random.normal(jax.random.PRNGKey(8), (64, OBS_DIM))
    a1 = dipo.act(state, obs, jax.random.PRNGKey(0), deterministic=True)
    a2 = dipo.act(state, obs, jax.random.PRNGKey(1), deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    # ddpm.sample_posterior_policy, deterministic: the chain from x_T = 0.
    net = dipo.policy_network(SMALL)
    chain = ddpm.sample_posterior_chain(
        lambda x, t: net.apply(state.policy_params, x, t, obs),
        jnp.zeros((64, ACT_DIM)), SMALL.schedule, jax.random.PRNGKey(9), 0.0)
    np.testing.assert_allclose(a1, 2.0 * jnp.clip(chain, -1, 1), rtol=1e-6)
    s1 = dipo.act(state, obs, jax.random.PRNGKey(0))
    s2 = dipo.act(state, obs, jax.random.PRNGKey(1))
    assert s1.shape == (64, ACT_DIM) and not np.allclose(s1, s2)
    for a in (a1, s1, s2):
        assert np.all(np.abs(a) <= SMALL.max_action) and np.all(
            np.isfinite(a))
    # Untrained: x0_hat is clipped at every step, so samples hit the box.
    assert float(jnp.max(jnp.abs(s1))) > 1.9


@pytest.mark.slow  # A learning run (make test-slow).
def test_learns_the_reach_bandit():
    """`dqs_jax.loop` (which calls `replay_update` via `agents.train_step`)
    on the one-step reach task. Measured on the same start states below:
    uniform actions earn about -1.02, the best action (straight to the goal)
    about -0.45, the best constant action about -0.66. The greedy policy must
    close 3/4 of the uniform-to-best gap (about -0.59), which also beats
    every constant action, so it must use the state (6 seeds: -0.43..-0.50
    after 1200 steps)."""
    env = reach.environment(dim=2, horizon=1)
    config = dataclasses.replace(
        SMALL, hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
        num_diffusion_steps=5, action_gradient_steps=5, max_action=1.0,
        discount=0.0, actor_lr=3e-3, critic_lr=3e-3, policy_target_every=1,
        policy_ema=0.05)
    loop_config = loop.LoopConfig(seed_steps=200, batch_size=64,
                                  replay_size=1000)
    agent = agents.get_agent("dipo")
    train = jax.jit(loop.make_train(agent, config, env, loop_config, 1200))
    final, info = train(jax.random.PRNGKey(0))
    assert np.all(np.isfinite(info.metrics["critic_loss"]))
    # The diffusion buffer was rewritten; the executed actions were not.
    buf = final.buffer
    assert not np.allclose(buf.action_targets, buf.actions)

    obs = jax.random.uniform(jax.random.PRNGKey(1), (4000, 2), minval=-1,
                             maxval=1)

    def ret(actions):  # reward of one step from obs
        nxt = jnp.clip(obs + 0.5 * actions, -1, 1)
        return float(jnp.mean(-jnp.linalg.norm(nxt - 0.5, axis=-1)))

    uniform = ret(jax.random.uniform(jax.random.PRNGKey(2), obs.shape,
                                     minval=-1, maxval=1))
    best = ret(jnp.clip((0.5 - obs) / 0.5, -1, 1))
    constant = max(ret(jnp.full_like(obs, c)) for c in (0.0, 0.25, 0.5, 1.0))
    assert best > constant + 0.15 and constant > uniform + 0.2
    trained = float(jnp.mean(loop.evaluate(
        agent, env, final.agent_state, jax.random.PRNGKey(3), 256,
        deterministic=True).returns))
    assert trained > uniform + 0.75 * (best - uniform), (trained, uniform,
                                                         best)
    assert trained > constant + 0.05, (trained, constant)
