"""The 2-D GMM-40 navigation environment (docs/algorithm.md §10)."""

import csv
import importlib.resources
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from dqs_jax.envs import gmm


def packaged_means_by_csv_module():
    """The packaged means, parsed without `gmm` (csv module, float64)."""
    text = (importlib.resources.files("dqs_jax")
            .joinpath("data", "gmm40_means.csv").read_text())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["x", "y"]
    return np.array([[float(v) for v in row] for row in rows[1:]])


def reference_log_density(points):
    """`log (1/40) sum_m N(p; mu_m, I)` by scipy, float64: `[N, 2]` -> `[N]`."""
    means = packaged_means_by_csv_module()
    points = np.asarray(points, np.float64).reshape(-1, 2)
    comps = np.stack([np.atleast_1d(
        stats.multivariate_normal(m, np.eye(2)).logpdf(points))
        for m in means], axis=-1)
    return special.logsumexp(comps, axis=-1) - np.log(len(means))


def test_constants_and_means():
    assert (gmm.BOX, gmm.EPISODE_LENGTH, gmm.MODE_STD) == (50.0, 100, 1.0)
    assert (gmm.OBS_DIM, gmm.ACT_DIM) == (2, 2)
    means = gmm.gmm_means()
    assert means.shape == (40, 2) and means.dtype == np.float32
    np.testing.assert_allclose(means[0], [-0.2995, 21.4577], rtol=1e-6)
    np.testing.assert_allclose(means[1], [-32.9218, -29.4376], rtol=1e-6)
    np.testing.assert_allclose(means[-1], [3.6797, -25.0242], rtol=1e-6)
    assert np.all(np.abs(means) < gmm.BOX)
    np.testing.assert_allclose(means, packaged_means_by_csv_module(),
                               rtol=1e-6)
    assert gmm.gmm_means() is means  # Cached.
    assert not means.flags.writeable


def test_reset_is_uniform_in_the_box():
    env_state, obs = gmm.reset(jax.random.PRNGKey(0))
    assert obs.shape == (2,) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, env_state.position)
    assert env_state.t.dtype == jnp.int32 and int(env_state.t) == 0
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    _, positions = jax.vmap(gmm.reset)(keys)
    positions = np.asarray(positions)
    assert np.all(np.abs(positions) <= gmm.BOX)
    # Uniform on [-50, 50]: mean 0, std 100 / sqrt(12) = 28.87 per axis.
    np.testing.assert_allclose(positions.mean(0), 0.0, atol=2.0)
    np.testing.assert_allclose(positions.std(0), 100 / np.sqrt(12), rtol=0.04)
    assert abs(np.corrcoef(positions.T)[0, 1]) < 0.05


def test_steps_have_unit_length_whatever_the_action_norm():
    rng = np.random.default_rng(0)
    positions = rng.uniform(-40, 40, size=(64, 2)).astype(np.float32)
    directions = rng.normal(size=(64, 2))
    scales = 10.0 ** rng.uniform(-4, 4, size=(64, 1))
    actions = (directions * scales).astype(np.float32)
    states = gmm.GMMEnvState(jnp.asarray(positions),
                             jnp.zeros((64,), jnp.int32))
    new_states, obs, *_ = jax.vmap(gmm.step)(states, jnp.asarray(actions))
    moves = np.asarray(obs, np.float64) - positions
    np.testing.assert_allclose(np.linalg.norm(moves, axis=-1), 1.0, atol=1e-5)
    unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    np.testing.assert_allclose(moves, unit, atol=1e-5)
    np.testing.assert_array_equal(new_states.position, obs)


def test_zero_action_stays_put():
    state = gmm.GMMEnvState(jnp.array([3.0, -4.0]), jnp.zeros((), jnp.int32))
    new_state, obs, reward, _, _ = gmm.step(state, jnp.zeros(2))
    np.testing.assert_array_equal(obs, [3.0, -4.0])
    assert np.isfinite(reward) and int(new_state.t) == 1


@pytest.mark.parametrize("position, action, expected", [
    ((49.5, 0.0), (1.0, 0.0), (50.0, 0.0)),
    ((49.8, 49.9), (5.0, 5.0), (50.0, 50.0)),
    ((-50.0, 10.0), (-3.0, 4.0), (-50.0, 10.8)),
    ((0.0, -49.7), (0.0, -2.0), (0.0, -50.0)),
    ((49.0, 0.0), (1.0, 0.0), (50.0, 0.0)),  # Exactly reaches the edge.
])
def test_clip_at_the_box_edge(position, action, expected):
    state = gmm.GMMEnvState(jnp.array(position, jnp.float32),
                            jnp.zeros((), jnp.int32))
    _, obs, reward, _, _ = gmm.step(state, jnp.array(action, jnp.float32))
    np.testing.assert_allclose(obs, expected, atol=1e-5)
    assert np.all(np.abs(np.asarray(obs)) <= gmm.BOX)
    np.testing.assert_allclose(reward, reference_log_density(
        np.array([expected]))[0], rtol=1e-5)


def test_reward_is_the_mixture_log_density():
    rng = np.random.default_rng(1)
    means = gmm.gmm_means()
    # Near modes, between modes and far out in the corners.
    positions = np.concatenate([
        means[:10] + rng.normal(scale=0.7, size=(10, 2)),
        rng.uniform(-45, 45, size=(20, 2)),
        np.array([[45.0, 45.0], [-49.0, -49.0], [45.0, -48.0]]),
    ]).astype(np.float32)
    actions = rng.normal(size=positions.shape).astype(np.float32)
    states = gmm.GMMEnvState(jnp.asarray(positions),
                             jnp.zeros((len(positions),), jnp.int32))
    _, obs, reward, _, _ = jax.vmap(gmm.step)(states, jnp.asarray(actions))
    assert reward.dtype == jnp.float32 and reward.shape == (len(positions),)
    expected = reference_log_density(np.asarray(obs, np.float64))
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-4)
    assert np.min(expected) < -100.0  # The far points were really far.
    np.testing.assert_allclose(gmm.log_density(obs), expected, rtol=1e-5,
                               atol=1e-4)


def test_log_density_batch_shapes_and_normalisation():
    assert gmm.log_density(jnp.zeros((3, 4, 2))).shape == (3, 4)
    assert gmm.log_density(jnp.zeros(2)).shape == ()
    # Riemann sum of the density over the box is ~1 (all modes are inside).
    g = np.linspace(-50, 50, 401, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    mass = np.sum(np.exp(np.asarray(gmm.log_density(grid), np.float64)))
    np.testing.assert_allclose(mass * (g[1] - g[0]) ** 2, 1.0, rtol=1e-3)


def test_episode_terminates_exactly_at_step_100():
    env_state, _ = gmm.reset(jax.random.PRNGKey(2))

    def body(s, a):
        s, obs, reward, discount, done = gmm.step(s, a)
        return s, (s.t, discount, done, reward)

    actions = jax.random.normal(jax.random.PRNGKey(3), (gmm.EPISODE_LENGTH, 2))
    final, (ts, discounts, dones, rewards) = jax.lax.scan(body, env_state,
                                                          actions)
    np.testing.assert_array_equal(ts, np.arange(1, 101))
    assert dones.dtype == jnp.bool_ and discounts.dtype == jnp.float32
    assert not np.any(dones[:99]) and bool(dones[99])
    np.testing.assert_array_equal(discounts[:99], 1.0)
    assert float(discounts[99]) == 0.0
    assert np.all(np.isfinite(rewards)) and int(final.t) == 100


def test_jit_vmap_scan_match_a_python_loop():
    num_envs, horizon = 6, 30
    keys = jax.random.split(jax.random.PRNGKey(4), num_envs)
    actions = jax.random.normal(jax.random.PRNGKey(5),
                                (horizon, num_envs, 2)) * 3.0

    @jax.jit
    def rollout(keys, actions):
        states, _ = jax.vmap(gmm.reset)(keys)

        def body(s, a):
            s, obs, reward, discount, done = jax.vmap(gmm.step)(s, a)
            return s, (obs, reward, discount, done)

        return jax.lax.scan(body, states, actions)

    final, (obs, rewards, discounts, dones) = rollout(keys, actions)
    assert obs.shape == (horizon, num_envs, 2)
    assert rewards.shape == discounts.shape == dones.shape == (horizon,
                                                               num_envs)
    for i in range(num_envs):
        state, _ = gmm.reset(keys[i])
        for t in range(horizon):
            state, o, r, d, done = gmm.step(state, actions[t, i])
            np.testing.assert_allclose(o, obs[t, i], atol=1e-5)
            np.testing.assert_allclose(r, rewards[t, i], rtol=1e-5, atol=1e-4)
            assert float(d) == float(discounts[t, i]) == 1.0
            assert not bool(done)
        np.testing.assert_allclose(state.position, final.position[i],
                                   atol=1e-5)
    np.testing.assert_array_equal(final.t, horizon)


def test_sample_gmm_hits_every_mode_equally():
    samples = gmm.sample_gmm(jax.random.PRNGKey(6), 8000)
    assert samples.shape == (8000, 2) and samples.dtype == jnp.float32
    means = gmm.gmm_means()
    d2 = np.sum((np.asarray(samples)[:, None] - means[None]) ** 2, -1)
    nearest, dist2 = d2.argmin(-1), d2.min(-1)
    counts = np.bincount(nearest, minlength=40)
    # Equal weights: 200 per mode on average; binomial std ~ 14.
    assert counts.min() > 140 and counts.max() < 260
    # Distance^2 to the own mode is chi^2 with 2 dof: mean 2.
    np.testing.assert_allclose(dist2.mean(), 2.0, rtol=0.1)
    np.testing.assert_allclose(np.asarray(samples).mean(0), means.mean(0),
                               atol=0.6)


def test_observation_scale_changes_only_what_the_agent_sees():
    key = jax.random.PRNGKey(7)
    plain, scaled = gmm.environment(), gmm.environment(observation_scale=0.02)
    (state_p, obs_p), (state_s, obs_s) = plain.reset(key), scaled.reset(key)
    np.testing.assert_array_equal(state_p.position, state_s.position)
    np.testing.assert_allclose(obs_s, 0.02 * obs_p, rtol=1e-6)
    action = jnp.array([0.3, -0.4])
    out_p, out_s = plain.step(state_p, action), scaled.step(state_s, action)
    np.testing.assert_array_equal(out_p[0].position, out_s[0].position)
    np.testing.assert_allclose(out_s[1], 0.02 * out_p[1], rtol=1e-6)
    for a, b in zip(out_p[2:], out_s[2:]):  # reward, discount, done
        np.testing.assert_array_equal(a, b)
    assert gmm.environment(1.0) == plain  # 1 leaves the env as it is.
    with pytest.raises(ValueError, match="scale"):
        gmm.environment(observation_scale=0.0)
