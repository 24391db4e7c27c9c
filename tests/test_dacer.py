"""DACER (dqs_jax.baselines.dacer): the init / update / act interface."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dqs_jax import agents, loop
from dqs_jax.baselines import dacer
from dqs_jax.envs import reach
from tests.helpers import random_batch, tree_equal

OBS_DIM, ACT_DIM, B = 3, 2, 16
# Tiny nets, T = 5, and an entropy window of 2 states every 4 updates (the
# temperature steps on updates 3, 7, ...).
SMALL = dacer.DACERConfig(
    hidden_dims=(16, 16), critic_hidden_dims=(16, 16), num_diffusion_steps=5,
    time_embed_dim=4, time_mlp_dims=(8,), entropy_update_interval=4,
    entropy_num_states=2, entropy_num_samples=24, gmm_iters=5, max_action=2.0)
MAX = SMALL.max_action
# XLA's backend optimisations cost more compile time than they save here.
FAST = {"xla_backend_optimization_level": 0}


def make_batch(seed=0, batch_size=B):
    return random_batch(OBS_DIM, ACT_DIM, batch_size, seed)


INIT = jax.jit(dacer.init, static_argnums=(0, 1, 2), compiler_options=FAST)


@pytest.fixture(scope="module")
def state():
    return INIT(SMALL, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))


TRACES = []


def _counted_update(s, b):
    TRACES.append(1)
    return dacer.update(s, b)


# One compiled update shared by every test (SMALL, batch B).
UPDATE = jax.jit(_counted_update, compiler_options=FAST)
ACT = jax.jit(dacer.act, static_argnames="deterministic",
              compiler_options=FAST)
# `sample_actions(config, params, obs [B, o], key, alpha, d)`, compiled once.
SAMPLE = jax.jit(dacer.sample_actions, static_argnums=(0, 5),
                 compiler_options=FAST)


def run(state, num_updates, first_seed=0):
    history = [state]
    for i in range(num_updates):
        state, metrics = UPDATE(state, make_batch(first_seed + i))
        history.append(state)
    return history, metrics


def test_defaults_and_validation():
    c = dacer.DACERConfig()
    assert (c.hidden_dims, c.critic_hidden_dims, c.num_critics) == (
        (256, 256), (256, 256), 2)
    assert (c.actor_lr, c.critic_lr, c.discount, c.tau) == (3e-4, 3e-4, 0.99,
                                                            0.005)
    assert (c.policy_delay, c.num_diffusion_steps, c.beta_schedule) == (
        2, 20, "vp")
    assert c.noise_scale == 0.1 and math.log(c.init_temperature) == 1.2
    assert (c.temperature_lr, c.entropy_update_interval) == (0.03, 10_000)
    assert (c.entropy_num_samples, c.entropy_num_states, c.gmm_components) == (
        200, 256, 3)
    assert c.target_entropy is None and c.entropy_target(6) == pytest.approx(
        -5.4)
    assert dacer.DACERConfig(target_entropy=1.5).entropy_target(6) == 1.5
    assert (c.reward_scale, c.max_action, c.activation) == (1.0, 1.0, "mish")
    assert (c.time_embed_dim, c.time_mlp_dims) == (16, (32, 16))
    assert hash(c) == hash(dacer.DACERConfig(hidden_dims=[256, 256]))
    for bad in (dict(hidden_dims=()), dict(critic_hidden_dims=(0,)),
                dict(num_critics=0), dict(policy_delay=0),
                dict(policy_delay=1.5), dict(num_diffusion_steps=0),
                dict(beta_schedule="quadratic"), dict(noise_scale=-0.1),
                dict(init_temperature=0.0), dict(temperature_lr=0.0),
                dict(entropy_update_interval=0), dict(entropy_num_states=0),
                dict(entropy_num_samples=2), dict(gmm_iters=-1),
                dict(actor_lr=0.0), dict(discount=1.5), dict(tau=0.0),
                dict(max_action=0.0), dict(reward_scale=0.0),
                dict(activation="swish"), dict(time_embed_dim=5),
                dict(time_mlp_dims=(0,)), dict(target_entropy=math.inf)):
        with pytest.raises(ValueError, match="DACERConfig"):
            dacer.DACERConfig(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tau = 0.1
    with pytest.raises(ValueError):
        dacer.init(c, 0, 2, jax.random.PRNGKey(0))
    assert agents.get_agent("dacer").config_cls is dacer.DACERConfig


def test_init(state):
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    assert (state.obs_dim, state.act_dim, state.config) == (OBS_DIM, ACT_DIM,
                                                            SMALL)
    assert tree_equal(state.critic_params, state.target_critic_params)
    np.testing.assert_allclose(state.temperature, math.exp(1.2), rtol=1e-6)
    assert float(state.entropy) == float(state.entropy_sum) == 0.0
    assert float(state.last_actor_loss) == 0.0
    pointers = [leaf.unsafe_buffer_pointer()
                for leaf in jax.tree_util.tree_leaves(state)]
    assert len(set(pointers)) == len(pointers)  # Donatable: no aliases.


def test_acting(state):
    obs = 10.0 * make_batch(4).observations
    d1 = ACT(state, obs, jax.random.PRNGKey(0), deterministic=True)
    d2 = ACT(state, obs, jax.random.PRNGKey(1), deterministic=True)
    np.testing.assert_array_equal(d1, d2)
    s1 = ACT(state, obs, jax.random.PRNGKey(0))
    s2 = ACT(state, obs, jax.random.PRNGKey(1))
    assert s1.shape == (B, ACT_DIM) and not np.allclose(s1, s2)
    np.testing.assert_array_equal(s1, ACT(state, obs, jax.random.PRNGKey(0)))
    for a in (d1, s1):
        assert np.all(np.abs(a) <= MAX) and np.all(np.isfinite(a))
        assert float(jnp.max(jnp.abs(a))) > 1.0  # Scaled, not clipped at 1.
    # Row by row: an action does not depend on the other observations.
    np.testing.assert_array_equal(
        ACT(state, obs[::-1], jax.random.PRNGKey(0), deterministic=True),
        d1[::-1])


def test_exploration_noise_is_lambda_alpha_gaussian(state):
    """Same key: alpha only scales the final noise, `a = clip(x + l a z)`."""
    obs, key = make_batch(5).observations, jax.random.PRNGKey(6)
    base = SAMPLE(SMALL, state.actor_params, obs, key, 0.0, ACT_DIM)
    noisy = SAMPLE(SMALL, state.actor_params, obs, key, 3.0, ACT_DIM)
    z = jax.random.normal(jax.random.split(key)[1], base.shape)
    np.testing.assert_allclose(noisy, jnp.clip(base + 0.1 * 3.0 * z, -1, 1),
                               atol=1e-6)
    assert np.any(np.abs(np.asarray(base)) < 0.9)  # Some unclipped rows.
    np.testing.assert_array_equal(
        MAX * noisy, ACT(state.replace(log_temperature=jnp.log(
            jnp.float32(3.0))), obs, key))


def test_update_is_pure_deterministic_and_compiles_once(state):
    batch = make_batch()
    before = jax.tree_util.tree_map(np.array, state)
    s1, m1 = UPDATE(state, batch)
    s2, m2 = UPDATE(state, batch)
    assert tree_equal(s1, s2) and tree_equal(m1, m2)
    assert tree_equal(state, before)
    history, _ = run(state, 5)
    assert int(history[-1].step) == 5 and len(TRACES) == 1
    keys = {"critic_loss", "actor_loss", "q_mean", "target_q_mean",
            "critic_grad_norm", "temperature", "exploration_std", "entropy",
            "target_entropy"}
    assert set(m1) == keys
    for value in m1.values():
        assert value.shape == () and value.dtype == jnp.float32
        assert np.isfinite(value)
    for a, b in zip(history, history[1:]):
        assert not np.array_equal(a.key, b.key)
        assert int(b.step) == int(a.step) + 1


def test_actor_and_targets_step_every_second_update(state):
    """Updates 0, 2, 4 step the actor and Polyak the targets toward the
    updated critics; updates 1, 3 leave both alone. Critics step always."""
    history, _ = run(state, 4)
    tau = SMALL.tau
    for i, (prev, new) in enumerate(zip(history, history[1:])):
        assert not tree_equal(prev.critic_params, new.critic_params)
        if i % 2 == 0:
            assert not tree_equal(prev.actor_params, new.actor_params)
            expected = optax.incremental_update(
                new.critic_params, prev.target_critic_params, tau)
            leaves = jax.tree_util.tree_leaves
            for a, b in zip(leaves(new.target_critic_params),
                            leaves(expected)):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        else:
            assert float(new.last_actor_loss) == float(prev.last_actor_loss)
            assert tree_equal(prev.actor_params, new.actor_params)
            assert tree_equal(prev.actor_opt_state, new.actor_opt_state)
            assert tree_equal(prev.target_critic_params,
                              new.target_critic_params)


def test_critic_target_by_hand(state):
    batch = make_batch(3)._replace(
        discounts=jnp.array([1.0, 0.0] * (B // 2), jnp.float32))
    _, metrics = UPDATE(state, batch)
    _, next_key, _, _ = jax.random.split(state.key, 4)
    next_actions = MAX * SAMPLE(SMALL, state.actor_params,
                                batch.next_observations, next_key,
                                state.temperature, ACT_DIM)
    critic = dacer.critic_network(SMALL)
    next_q = np.asarray(critic.apply(state.target_critic_params,
                                     batch.next_observations,
                                     next_actions)).min(-1)
    target = np.asarray(batch.rewards) + SMALL.discount * np.asarray(
        batch.discounts) * next_q
    q = np.asarray(critic.apply(state.critic_params, batch.observations,
                                batch.actions))
    np.testing.assert_allclose(metrics["critic_loss"],
                               np.mean((q - target[:, None]) ** 2), rtol=1e-4)
    np.testing.assert_allclose(metrics["target_q_mean"], target.mean(),
                               rtol=1e-4, atol=1e-5)


def test_actor_loss_decreases_through_the_chain_on_a_fixed_critic(state):
    """Repeated actor steps (update 0 of the cycle) with the critics, batch
    and key reset each time: the pre-update actor loss `-mean min_j Q_j(s,
    a_theta(s))` is then a fixed function of the actor, and falls."""
    batch = make_batch(7)
    s, values = state, []
    for _ in range(6):
        s = s.replace(critic_params=state.critic_params,
                      target_critic_params=state.target_critic_params,
                      critic_opt_state=state.critic_opt_state,
                      key=state.key, step=state.step)
        new, metrics = UPDATE(s, batch)
        values.append(float(metrics["actor_loss"]))
        # The time embedding acts only through the chain's steps: it moves.
        assert not tree_equal(s.actor_params["params"]["time_0"],
                              new.actor_params["params"]["time_0"])
        s = new
    assert all(b < a for a, b in zip(values, values[1:])), values


def test_entropy_window_and_temperature_step(state):
    """Window of 2 states on updates 2 and 3 of each 4 (the sum resets
    after); on update 3, H_hat is their mean and log alpha moves by one Adam
    step (exactly the lr) in the direction of H_target - H_hat."""
    history, metrics = run(state, 4)
    assert [float(s.entropy_sum) for s in history[:3]] == [0.0] * 3
    first = float(history[3].entropy_sum)  # H of update 2's state.
    assert float(history[4].entropy_sum) == 0.0
    mean = float(history[4].entropy)
    second = 2 * mean - first  # H of update 3's state.
    assert first != second and min(first, second) > -1.0
    np.testing.assert_allclose(metrics["entropy"], mean, rtol=1e-6)
    # Untrained chain + noise std 0.33: entropy well above -0.9 d = -1.8.
    assert mean > SMALL.entropy_target(ACT_DIM) + 1.0
    log_alpha = [float(s.log_temperature) for s in history]
    assert all(a == log_alpha[0] for a in log_alpha[:4])
    np.testing.assert_allclose(log_alpha[4] - log_alpha[3], -0.03, rtol=1e-4)


def test_temperature_rises_when_the_entropy_is_below_target(state):
    """A collapsed policy: the output bias of eps_theta at -100 makes every
    `x0_hat` clip to +1, so the chain returns exactly 1 (c1_0 = 1, c2_0 = 0,
    no noise at t = 0); with alpha = 1e-3 the noise std is 1e-4 and the
    GMM entropy is far below -1.8."""
    params = jax.tree_util.tree_map(lambda x: x, state.actor_params)
    dense = params["params"]["denoiser"]
    last = sorted(k for k in dense if k.startswith("Dense"))[-1]
    dense[last]["bias"] = jnp.full_like(dense[last]["bias"], -100.0)
    collapsed = state.replace(actor_params=params,
                              log_temperature=jnp.log(jnp.float32(1e-3)))
    a = SAMPLE(SMALL, params, make_batch().observations,
               jax.random.PRNGKey(0), 0.0, ACT_DIM)
    np.testing.assert_array_equal(a, np.ones((B, ACT_DIM)))
    history, metrics = run(collapsed, 4)
    assert float(metrics["entropy"]) < SMALL.entropy_target(ACT_DIM) - 5.0
    np.testing.assert_allclose(float(history[4].log_temperature) - float(
        history[3].log_temperature), 0.03, rtol=1e-4)


def test_state_is_a_checkpointable_pytree(state):
    """Every leaf an array (what orbax saves); static config and dims."""
    s1, _ = UPDATE(state, make_batch(4))
    leaves, treedef = jax.tree_util.tree_flatten(s1)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert tree_equal(jax.tree_util.tree_unflatten(treedef, leaves), s1)


@pytest.mark.slow  # A learning run (make test-slow).
def test_learns_a_reaching_bandit():
    """Reach with horizon 1 and the goal at the centre: one step from
    s ~ U[-1, 1]^2, reward -||s'||. Monte Carlo below: uniform random
    actions earn -0.80, staying put -0.77, full steps toward the goal
    (sign policy) -0.38, the best actions clip(-2 s, -1, 1) -0.22. The test
    asks for > -0.33: above every saturated policy, so the actions must be
    graded by state (4 seeds scored -0.23 to -0.25 here; the 500-episode
    mean has a standard error below 0.01).

    (With the goal off-centre, at (0.5, 0.5), the chain often collapses onto
    the corner action (1, 1): its last step returns the clipped `x0_hat`
    (c1_0 = 1, c2_0 = 0), whose gradient vanishes once saturated. The
    official chain shares this.)"""
    env = reach.environment(dim=2, horizon=1, goal=0.0)
    agent = agents.get_agent("dacer")
    config = dacer.DACERConfig(
        hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
        num_diffusion_steps=5, time_embed_dim=8, time_mlp_dims=(16,),
        actor_lr=1e-3, critic_lr=1e-3, discount=0.0,
        entropy_update_interval=100, entropy_num_states=4,
        entropy_num_samples=32, gmm_iters=5)
    loop_config = loop.LoopConfig(seed_steps=200, batch_size=64,
                                  replay_size=1000)
    train = jax.jit(loop.make_train(agent, config, env, loop_config, 600),
                    compiler_options=FAST)
    final, info = train(jax.random.PRNGKey(0))
    assert int(final.agent_state.step) == 400
    trained = loop.evaluate(agent, env, final.agent_state,
                            jax.random.PRNGKey(1), 500, True).returns
    rng = np.random.default_rng(0)
    start = rng.uniform(-1, 1, (100_000, 2))

    def mean_return(actions):
        end = np.clip(start + 0.5 * actions, -1, 1)
        return -np.linalg.norm(end, axis=-1).mean()

    random_return = mean_return(rng.uniform(-1, 1, start.shape))
    assert -0.82 < random_return < -0.78
    assert -0.40 < mean_return(-np.sign(start)) < -0.36
    assert -0.23 < mean_return(np.clip(-2 * start, -1, 1)) < -0.21
    assert float(trained.mean()) > -0.33, float(trained.mean())
    # The temperature stepped only after updates 99, 199, 299 (the metric is
    # the value an update used; the step after update 399 is unseen).
    alpha = np.asarray(info.metrics["temperature"])[200:]
    changed = set(np.flatnonzero(alpha[1:] != alpha[:-1]) + 1)
    assert changed and changed <= {100, 200, 300}, changed
