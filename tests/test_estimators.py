"""The cheaper score estimates against closed forms, plain Monte Carlo and
their batched forms; the default iDEM path unchanged."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import qmc as scipy_qmc

from dqs_jax import agent, batched_estimator, estimator, losses, mc_noise
from dqs_jax import score_targets

NAMES = ("idem", "antithetic", "qmc", "control_variate")
MU = jnp.array([0.5, -1.0, 2.0])
X = jnp.array([1.5, 0.0, 1.0])


def gaussian_energy(s2):
    """`log N(a; MU, s2 I)` up to a constant: `p_t = N(MU, (s2 + h) I)`."""
    return lambda a: -0.5 * jnp.sum(jnp.square(a - MU)) / s2


def mixture_energy_and_score(h):
    """A two-component isotropic mixture in 3-D and the exact score of its
    `h`-noised law at a point (the components' variances add `h`)."""
    means = jnp.array([[1.0, 0.0, 0.5], [-1.0, 0.5, -0.5]])
    weights, s2 = jnp.array([0.3, 0.7]), 0.2

    def log_mix(a, var):
        logs = (jnp.log(weights) - 0.5 * jnp.sum(jnp.square(a - means), -1)
                / var - 1.5 * jnp.log(var))
        return jax.scipy.special.logsumexp(logs)

    return (lambda a: log_mix(a, s2)), jax.grad(lambda a: log_mix(a, s2 + h))


def spread(name, log_density, x, h, num_samples, num_keys=256, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), num_keys)
    score = estimator.SCORE_ESTIMATORS[name]
    return jax.vmap(lambda k: score(log_density, x, h, k, num_samples))(keys)


@pytest.mark.parametrize("name", NAMES)
def test_consistent_for_a_gaussian_target(name):
    s2, h = 0.5, 0.3
    exact = -(X - MU) / (s2 + h)
    est = spread(name, gaussian_energy(s2), X, h, 512, num_keys=32)
    np.testing.assert_allclose(jnp.mean(est, 0), exact, atol=0.03)


@pytest.mark.parametrize("name", NAMES)
def test_error_shrinks_with_k_on_a_mixture(name):
    h = 0.3
    log_density, noised_score = mixture_energy_and_score(h)
    x = jnp.array([0.2, 0.3, 0.0])
    exact = noised_score(x)

    def rmse(k):
        est = spread(name, log_density, x, h, k, num_keys=128, seed=1)
        return float(jnp.sqrt(jnp.mean(jnp.sum(jnp.square(est - exact), -1))))

    errors = [rmse(k) for k in (4, 32, 256)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < errors[0] / 4, errors  # 64x the draws: ~1/8 (MC).


@pytest.mark.parametrize("name", ["antithetic", "qmc"])
def test_variance_below_plain_monte_carlo(name):
    """Linear-plus-quadratic energy (a tilted Gaussian) at small noise
    (`h = 0.01`, where the draws' odd terms dominate the error): same K,
    same number of critic calls, a quarter of the spread of i.i.d. draws or
    less. (At `h = 0.2` the antithetic gain vanishes; QMC's stays ~5x.)"""
    b = jnp.array([2.0, -1.0, 0.5])
    log_density = lambda a: b @ a - 0.5 * jnp.sum(jnp.square(a)) / 0.4  # noqa
    h = 0.01

    def total_variance(n):
        return float(jnp.sum(jnp.var(spread(n, log_density, X, h, 16), 0)))

    plain, better = total_variance("idem"), total_variance(name)
    assert better < 0.25 * plain, (better, plain)


@pytest.mark.parametrize("h", [1e-6, 1e-3, 0.1, 1.0])
def test_control_variate_is_exact_on_a_linear_energy(h):
    b = jnp.array([1.0, -2.0, 3.0])
    for seed in range(3):
        est = estimator.control_variate_score(
            lambda a: b @ a, X, h, jax.random.PRNGKey(seed), 8)
        np.testing.assert_allclose(est, b, rtol=1e-5)


def test_control_variate_has_zero_variance_for_a_gaussian_target():
    s2, h = 0.5, 0.3
    est = spread("control_variate", gaussian_energy(s2), X, h, 8)
    np.testing.assert_allclose(est, jnp.broadcast_to(-(X - MU) / (s2 + h),
                                                     est.shape), atol=1e-4)


def test_control_variate_at_zero_noise_is_the_gradient():
    est = estimator.control_variate_score(lambda a: jnp.sum(jnp.sin(a)), X,
                                          0.0, jax.random.PRNGKey(0), 4)
    np.testing.assert_allclose(est, jnp.cos(X), rtol=1e-6)


def test_control_variate_falls_back_to_tweedie_when_one_draw_dominates():
    """ESS = 1 (all weight on one draw, large h): the gradient-free form
    `u_0 = eps_0 / sqrt(h)`, not the lone draw's gradient."""
    eps = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    values = jnp.array([0.0, -1e4, -1e4, -1e4])
    grads = 100.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    est = estimator.control_variate_combination(values, grads, eps, 4.0)
    np.testing.assert_allclose(est, eps[0] / 2.0, atol=1e-5)


def test_noises():
    key = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(mc_noise.gaussian(key, 10, 4),
                                  jax.random.normal(key, (10, 4)))
    anti = mc_noise.antithetic(key, 7, 4)
    np.testing.assert_array_equal(anti[4:], -anti[:3])
    # Sobol integers are scipy's points; a digital shift keeps a net a net:
    # every coordinate of 2^m shifted points hits each of 2^m bins once.
    ints = mc_noise.sobol_integers(16, 5)
    np.testing.assert_allclose(
        ints / 2.0**32, scipy_qmc.Sobol(5, scramble=False).random_base2(4))
    z = mc_noise.qmc(key, 16, 5)
    bins = np.floor(jax.scipy.stats.norm.cdf(np.asarray(z)) * 16)
    for j in range(5):
        assert sorted(bins[:, j].astype(int).tolist()) == list(range(16))
    # Randomised per key, unbiased: the mean over keys of each point is 0.
    draws = jax.vmap(lambda k: mc_noise.qmc(k, 8, 3))(
        jax.random.split(key, 4000))
    assert float(jnp.max(jnp.abs(jnp.mean(draws, 0)))) < 0.1
    with pytest.raises(ValueError, match="antithetic"):
        mc_noise.get_noise("sobolev")


# Batched forms, through a small critic.
B, O, D, K = 12, 4, 3, 24
CONFIG = agent.DQSConfig(hidden_dims=(16, 16), critic_hidden_dims=(16, 16),
                         embed_dim=8, num_mc_samples=K, num_sampling_steps=3,
                         mc_chunk_size=8)
STATE = agent.init(CONFIG, O, D, jax.random.PRNGKey(0))
RNG = np.random.default_rng(0)
OBS = jnp.asarray(RNG.normal(size=(B, O)), jnp.float32)
X_T = jnp.asarray(RNG.normal(size=(B, D)), jnp.float32)
H = jnp.asarray(np.geomspace(1e-6, 1.0, B), jnp.float32)
TEMP = jnp.full((B,), 0.1, jnp.float32)
KEY = jax.random.PRNGKey(1)


def critic_min_q(o, a):
    return jnp.min(agent.critic_network(CONFIG).apply(STATE.critic_params,
                                                      o, a))


@pytest.mark.parametrize("name", ["antithetic", "qmc", "control_variate"])
def test_batched_estimates_equal_the_vmapped_ones(name):
    config = dataclasses.replace(CONFIG, estimator=name)
    fast = score_targets.idem_target_fn(config, STATE.critic_params)(
        OBS, X_T, H, TEMP, KEY)
    reference = losses.idem_targets(critic_min_q, OBS, X_T, H, TEMP, KEY, K,
                                    estimator=name)
    np.testing.assert_allclose(fast, reference, rtol=2e-3, atol=2e-3)


def test_idem_default_path_is_unchanged():
    """The default target is the streaming iDEM estimate on
    `jax.random.normal` draws, bit for bit, whatever else was added."""
    direct = batched_estimator.chunked_idem_targets(
        score_targets.energy_value_and_grad(CONFIG, STATE.critic_params,
                                            TEMP), OBS, X_T, H, KEY, K,
        CONFIG.mc_chunk_size)
    via_config = agent.idem_target_fn(CONFIG, STATE.critic_params)(
        OBS, X_T, H, TEMP, KEY)
    np.testing.assert_array_equal(direct, via_config)
    assert CONFIG.estimator == "idem"


def test_adaptive_groups_rows_by_time_stratum():
    config = dataclasses.replace(CONFIG, estimator="adaptive",
                                 stratified_times=True)
    # Strata of 12 rows end at (i + 1) / 12: 8 end at or below 0.7, two
    # more at or below 0.85.
    assert score_targets.row_groups(config, B) == [
        (8, "antithetic", 2), (2, "antithetic", 16), (2, "control_variate",
                                                      K)]
    fast = score_targets.idem_target_fn(config, STATE.critic_params)(
        OBS, X_T, H, TEMP, KEY)
    keys = jax.random.split(KEY, 3)
    parts = [losses.idem_targets(critic_min_q, OBS[s], X_T[s], H[s], TEMP[s],
                                 k, n, estimator=e)
             for s, k, n, e in ((slice(0, 8), keys[0], 2, "antithetic"),
                                (slice(8, 10), keys[1], 16, "antithetic"),
                                (slice(10, 12), keys[2], K,
                                 "control_variate"))]
    np.testing.assert_allclose(fast, jnp.concatenate(parts), rtol=2e-3,
                               atol=2e-3)


def test_bad_estimator_config_is_refused():
    with pytest.raises(ValueError, match="control_variate"):
        dataclasses.replace(CONFIG, estimator="rqmc")
    with pytest.raises(ValueError, match="stratified_times"):
        dataclasses.replace(CONFIG, estimator="adaptive")
    with pytest.raises(ValueError, match="adaptive_low_time"):
        dataclasses.replace(CONFIG, adaptive_low_time=0.9)
    with pytest.raises(ValueError, match="qmc"):
        losses.idem_targets(critic_min_q, OBS, X_T, H, TEMP, KEY, K,
                            estimator="nope")


@pytest.mark.parametrize("name", ["qmc", "adaptive"])
def test_update_runs_with_each_estimator(name):
    config = dataclasses.replace(CONFIG, estimator=name,
                                 stratified_times=True)
    state = agent.init(config, O, D, jax.random.PRNGKey(0))
    batch = agent.Batch(OBS, jnp.tanh(X_T), jnp.ones(B), jnp.ones(B), OBS)
    new, metrics = jax.jit(agent.update)(state, batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(new.step) == 1
