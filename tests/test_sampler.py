"""Reverse-SDE / probability-flow samplers against closed forms (docs/algorithm.md §5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax.sampler import (reverse_times, sample_probability_flow,
                             sample_reverse_sde)
from dqs_jax.schedule import GeometricSchedule

SCHEDULE = GeometricSchedule(1e-5, 1.0)
MU = jnp.array([0.7, -0.4])
S2 = 0.09


def exact_score(x, t):
    return -(x - MU) / (S2 + SCHEDULE.h(t))


def true_marginal_at_one(key, n):
    # p_1 = N(mu, s2) * N(0, h(1)) = N(mu, s2 + h(1)).
    return MU + jnp.sqrt(S2 + SCHEDULE.h(1.0)) * jax.random.normal(key, (n, 2))


def test_reverse_times():
    np.testing.assert_allclose(reverse_times(4), [1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="num_steps"):
        reverse_times(0)


def test_sde_recovers_gaussian_mean_and_variance():
    x_init = true_marginal_at_one(jax.random.PRNGKey(0), 20000)
    x_0 = jax.jit(lambda x, k: sample_reverse_sde(
        exact_score, x, SCHEDULE, 500, k))(x_init, jax.random.PRNGKey(1))
    np.testing.assert_allclose(jnp.mean(x_0, 0), MU, atol=0.01)
    np.testing.assert_allclose(jnp.var(x_0, 0), [S2, S2], rtol=0.05)


def test_ode_recovers_gaussian_mean_and_variance():
    x_init = true_marginal_at_one(jax.random.PRNGKey(2), 20000)
    x_0 = sample_probability_flow(exact_score, x_init, SCHEDULE, 2000)
    np.testing.assert_allclose(jnp.mean(x_0, 0), MU, atol=0.01)
    np.testing.assert_allclose(jnp.var(x_0, 0), [S2, S2], rtol=0.05)


def python_loop_sampler(score_fn, x, schedule, num_steps, key, noise_scale):
    dt = 1.0 / num_steps
    keys = jax.random.split(key, num_steps)
    for k in range(num_steps):
        t = 1.0 - k * dt
        g = schedule.g(t)
        z = jax.random.normal(keys[k], x.shape)
        x = x + g**2 * score_fn(x, t) * dt + noise_scale * g * np.sqrt(dt) * z
    return x


@pytest.mark.parametrize("noise_scale", [1.0, 0.5, 0.0])
def test_scan_equals_python_loop(noise_scale):
    x_init = jax.random.normal(jax.random.PRNGKey(3), (5, 2))
    key = jax.random.PRNGKey(4)
    scan = sample_reverse_sde(exact_score, x_init, SCHEDULE, 20, key,
                              noise_scale)
    loop = python_loop_sampler(exact_score, x_init, SCHEDULE, 20, key,
                               noise_scale)
    np.testing.assert_allclose(scan, loop, rtol=1e-5, atol=1e-5)


def test_zero_noise_independent_of_key():
    x_init = jnp.ones((3, 2))
    a = sample_reverse_sde(exact_score, x_init, SCHEDULE, 20,
                           jax.random.PRNGKey(0), noise_scale=0.0)
    b = sample_reverse_sde(exact_score, x_init, SCHEDULE, 20,
                           jax.random.PRNGKey(99), noise_scale=0.0)
    np.testing.assert_array_equal(a, b)
    c = sample_reverse_sde(exact_score, x_init, SCHEDULE, 20,
                           jax.random.PRNGKey(99), noise_scale=1.0)
    assert not np.allclose(a, c)


def test_zero_score_gives_pure_diffusion_variance():
    # With score 0 and c = 1, the added variance is sum_k g(t_k)^2 dt, a
    # Riemann sum of h(1) over the grid.
    n = 50
    x_0 = sample_reverse_sde(lambda x, t: jnp.zeros_like(x),
                             jnp.zeros((40000, 1)), SCHEDULE, n,
                             jax.random.PRNGKey(5))
    expected = float(jnp.sum(SCHEDULE.g(reverse_times(n))**2) / n)
    np.testing.assert_allclose(jnp.var(x_0), expected, rtol=0.03)


def test_shape_errors():
    with pytest.raises(ValueError, match="x_init"):
        sample_reverse_sde(exact_score, jnp.float32(1.0), SCHEDULE, 5,
                           jax.random.PRNGKey(0))
