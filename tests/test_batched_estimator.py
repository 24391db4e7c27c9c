"""The batched, chunked iDEM estimator against the reference vmap path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import agent, batched_estimator, losses, networks

B, O, D, K = 16, 5, 3, 60
CONFIG = agent.DQSConfig(hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
                         embed_dim=8, num_mc_samples=K, num_sampling_steps=4)
STATE = agent.init(CONFIG, O, D, jax.random.PRNGKey(0))
RNG = np.random.default_rng(0)
OBS = jnp.asarray(RNG.normal(size=(B, O)), jnp.float32)
X_T = jnp.asarray(RNG.normal(size=(B, D)), jnp.float32)
H = jnp.asarray(np.geomspace(1e-8, 1.0, B), jnp.float32)
TEMP = jnp.full((B,), 0.05, jnp.float32)
KEY = jax.random.PRNGKey(1)


def reference_targets(config=CONFIG):
    net = agent.critic_network(config)

    def min_q(o, a):
        if config.energy_action == "clip":
            a = jnp.clip(a, -config.max_action, config.max_action)
        return jnp.min(net.apply(STATE.critic_params, o, a))

    return losses.idem_targets(min_q, OBS, X_T, H, TEMP, KEY, K)


def test_largest_divisor():
    assert batched_estimator.largest_divisor_at_most(1000, 32) == 25
    assert batched_estimator.largest_divisor_at_most(60, 64) == 60
    assert batched_estimator.largest_divisor_at_most(7, 3) == 1


def test_ensemble_min_q_matches_the_flax_critic():
    points = jnp.asarray(RNG.normal(size=(B, 7, D)), jnp.float32)
    fast = batched_estimator.ensemble_min_q(STATE.critic_params, OBS, points)
    net = agent.critic_network(CONFIG)
    slow = jnp.min(net.apply(STATE.critic_params,
                             jnp.broadcast_to(OBS[:, None], (B, 7, O)),
                             points), axis=-1)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation,members,dtype,tol", [
    ("relu", 2, None, 1e-5), ("gelu", 3, None, 1e-5),
    ("relu", 2, jnp.bfloat16, 1e-2)])
def test_ensemble_min_q_and_grad_matches_autodiff(activation, members, dtype,
                                                  tol):
    """The hand-written backward pass equals `jax.vjp` of the minimum over
    the Flax ensemble (any activation and ensemble size)."""
    net = networks.CriticEnsemble((16, 16), members, activation)
    params = net.init(jax.random.PRNGKey(3), OBS, X_T)
    points = jnp.asarray(RNG.normal(size=(B, 5, D)), jnp.float32)

    def min_q(p):
        if dtype is not None:  # the same matmul precision
            return batched_estimator.ensemble_min_q(
                params, OBS, p, networks.get_activation(activation), dtype)
        return jnp.min(net.apply(params, jnp.broadcast_to(
            OBS[:, None], (B, 5, O)), p), axis=-1)

    q_ref, vjp = jax.vjp(min_q, points)
    (g_ref,) = vjp(jnp.ones_like(q_ref))
    q, g = batched_estimator.ensemble_min_q_and_grad(
        params, OBS, points, networks.get_activation(activation), dtype)
    assert q.shape == (B, 5) and g.shape == (B, 5, D)
    relative = lambda a, b: float(  # noqa: E731
        jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
    assert relative(q, q_ref) < tol and relative(g, g_ref) < tol


@pytest.mark.parametrize("chunk", [1, 7, 20, 60])
def test_chunked_targets_equal_the_vmapped_estimate(chunk):
    q = agent.energy_q(CONFIG, STATE.critic_params)
    fast = batched_estimator.chunked_idem_targets(
        batched_estimator.scaled_value_and_grad(q, TEMP), OBS, X_T, H, KEY,
        K, chunk)
    np.testing.assert_allclose(fast, reference_targets(), rtol=2e-4,
                               atol=2e-4)


def test_agent_target_fn_and_clip_energy():
    config = dataclasses.replace(CONFIG, energy_action="clip", max_action=0.5)
    fast = agent.idem_target_fn(config, STATE.critic_params)(OBS, X_T, H,
                                                             TEMP, KEY)
    np.testing.assert_allclose(fast, reference_targets(config), rtol=2e-4,
                               atol=2e-4)
    # With the energy evaluated at clipped actions, a point far outside the
    # box with tiny noise has a zero score: Q is flat out there.
    far = jnp.full((B, D), 10.0)
    tiny = jnp.full((B,), 1e-10)
    out = agent.idem_target_fn(config, STATE.critic_params)(OBS, far, tiny,
                                                            TEMP, KEY)
    np.testing.assert_array_equal(out, jnp.zeros_like(out))


def test_stable_for_huge_energies():
    value_and_grad = batched_estimator.scaled_value_and_grad(
        lambda o, p: -1e4 * jnp.sum(jnp.square(p), -1) + 5e4, TEMP / 0.05)
    out = batched_estimator.chunked_idem_targets(value_and_grad, OBS, X_T,
                                                 jnp.full((B,), 1e-8), KEY, K,
                                                 16)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, -2e4 * X_T / (1.0 + 2e4 * 1e-8),
                               rtol=2e-3, atol=1.0)


def test_bfloat16_estimator_error_is_small():
    config = dataclasses.replace(CONFIG, estimator_precision="bfloat16")
    exact = agent.idem_target_fn(CONFIG, STATE.critic_params)(OBS, X_T, H,
                                                              TEMP, KEY)
    low = agent.idem_target_fn(config, STATE.critic_params)(OBS, X_T, H,
                                                            TEMP, KEY)
    rel = float(jnp.linalg.norm(low - exact) / jnp.linalg.norm(exact))
    assert 0 < rel < 0.05


def test_speed_mode_deviation_is_bounded():
    config = dataclasses.replace(CONFIG, stratified_times=True,
                                 small_noise_threshold=1e-3)
    n = config.num_small_noise(B)
    # sqrt(h(t)) < 1e-3 <=> t < ln(1e4) / (2 ln 1e5) = 0.4: 6 of 16 strata.
    assert n == 6
    # Elements whose actual noise is below the threshold.
    h = jnp.asarray(np.geomspace(1e-12, 1e-7, B), jnp.float32)
    exact = agent.idem_target_fn(CONFIG, STATE.critic_params)(OBS, X_T, h,
                                                              TEMP, KEY)
    fast = agent.idem_target_fn(config, STATE.critic_params)(OBS, X_T, h,
                                                             TEMP, KEY)
    rel = jnp.linalg.norm(fast[:n] - exact[:n], axis=-1) / jnp.linalg.norm(
        exact[:n], axis=-1)
    assert float(jnp.max(rel)) < 1e-2
    with pytest.raises(ValueError, match="stratified_times"):
        dataclasses.replace(CONFIG, small_noise_threshold=1e-3)


def test_agent_update_matches_the_reference_idem_loss():
    batch_key = jax.random.PRNGKey(5)
    actions = jnp.tanh(jax.random.normal(batch_key, (B, D)))
    temperature = STATE.temperature
    net, score = agent.critic_network(CONFIG), agent.score_network(CONFIG)

    def min_q(o, a):
        return jnp.min(net.apply(STATE.critic_params, o, a))

    def score_fn(x, t, o, temp):
        return score.apply(STATE.score_params, x, t, o, temp)

    reference = losses.idem_loss(score_fn, min_q, OBS, actions, temperature,
                                 KEY, schedule=CONFIG.schedule, num_samples=K)
    fast, _ = losses.idem_loss_with_aux(
        score_fn, None, OBS, actions, temperature, KEY,
        schedule=CONFIG.schedule, num_samples=K,
        target_fn=agent.idem_target_fn(CONFIG, STATE.critic_params))
    np.testing.assert_allclose(fast, reference, rtol=1e-4)


def test_naive_reference_agrees_with_the_library():
    from experiments.bench.naive_idem import naive_target_fn
    naive = naive_target_fn(CONFIG, STATE.critic_params)(OBS, X_T, H, TEMP,
                                                         KEY)
    np.testing.assert_allclose(naive, reference_targets(), rtol=2e-4,
                               atol=2e-4)


@pytest.mark.parametrize("hidden_dims", [(16, 16, 16), (12, 9, 7)])
def test_fast_critic_paths_follow_the_module(hidden_dims):
    """`ensemble_min_q` and `ensemble_min_q_and_grad` compute the module's
    own `apply` (and its autodiff gradient) for random parameters (non-zero
    biases) of any depth and widths `init` produces."""
    net = networks.CriticEnsemble(hidden_dims, 3, "silu")
    params = net.init(jax.random.PRNGKey(4), OBS, X_T)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(5), len(leaves))
    params = jax.tree_util.tree_unflatten(tree, [
        0.3 * jax.random.normal(k, leaf.shape) for k, leaf in
        zip(keys, leaves)])
    points = jnp.asarray(RNG.normal(size=(B, 4, D)), jnp.float32)

    def min_q(p):
        return jnp.min(net.apply(params, jnp.broadcast_to(
            OBS[:, None], (B, 4, O)), p), axis=-1)

    q_ref, vjp = jax.vjp(min_q, points)
    (g_ref,) = vjp(jnp.ones_like(q_ref))
    act = networks.get_activation("silu")
    np.testing.assert_allclose(
        batched_estimator.ensemble_min_q(params, OBS, points, act), q_ref,
        rtol=1e-5, atol=1e-6)
    q, g = batched_estimator.ensemble_min_q_and_grad(params, OBS, points, act)
    np.testing.assert_allclose(q, q_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)
