"""idem_score against closed forms (docs/algorithm.md §3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax.estimator import idem_score

MU = jnp.array([0.5, -1.0, 2.0])


def gaussian_q(a):
    return -0.5 * jnp.sum(jnp.square(a - MU))


def test_converges_to_gaussian_score():
    # Q(a) = -||a - mu||^2 / 2 with alpha = s2: target N(mu, s2 I), exact
    # noised score -(x - mu) / (s2 + h).
    s2, h = 0.5, 0.3
    x = jnp.array([1.0, 0.0, 1.0])
    exact = -(x - MU) / (s2 + h)
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    estimates = jax.vmap(lambda k: idem_score(
        lambda a: gaussian_q(a) / s2, x, h, k, 4096))(keys)
    np.testing.assert_allclose(jnp.mean(estimates, 0), exact, atol=0.02)


def test_error_decreases_with_num_samples():
    s2, h = 0.5, 0.5
    x = jnp.array([1.5, 0.0, 1.0])
    exact = -(x - MU) / (s2 + h)
    keys = jax.random.split(jax.random.PRNGKey(1), 128)

    def rmse(k_samples):
        est = jax.vmap(lambda k: idem_score(
            lambda a: gaussian_q(a) / s2, x, h, k, k_samples))(keys)
        return float(jnp.sqrt(jnp.mean(jnp.square(est - exact))))

    errors = [rmse(k) for k in (4, 64, 1024)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05 * float(jnp.linalg.norm(exact))


def test_zero_noise_gives_exact_gradient():
    x = jnp.array([0.3, 0.2, -0.7])
    est = idem_score(lambda a: jnp.sin(a).sum() * 3.0, x, 0.0,
                     jax.random.PRNGKey(2), 16)
    np.testing.assert_allclose(est, 3.0 * jnp.cos(x), rtol=1e-5)


def test_single_sample_is_gradient_at_the_noisy_point():
    x, h, key = jnp.array([0.1, 0.4]), 0.25, jax.random.PRNGKey(3)
    log_density = lambda a: jnp.sum(a**3)  # noqa: E731
    eps = jax.random.normal(key, (1, 2))
    expected = 3 * (x + 0.5 * eps[0])**2
    np.testing.assert_allclose(idem_score(log_density, x, h, key, 1),
                               expected, rtol=1e-5)


def test_stable_for_huge_log_densities():
    # |Q| / alpha of order 1e4: a constant offset must not change the score,
    # and a sharp Gaussian (precision 1e4) still gives its closed form.
    x, h, key = jnp.array([0.5, -0.9, 2.1]), 1e-6, jax.random.PRNGKey(4)
    sharp = lambda a: 1e4 * gaussian_q(a)  # noqa: E731
    base = idem_score(sharp, x, h, key, 256)
    shifted = idem_score(lambda a: sharp(a) + 3e4, x, h, key, 256)
    negative = idem_score(lambda a: sharp(a) - 3e4, x, h, key, 256)
    assert np.all(np.isfinite(base))
    np.testing.assert_allclose(shifted, base, rtol=1e-3)
    np.testing.assert_allclose(negative, base, rtol=1e-3)
    exact = -(x - MU) / (1e-4 + h)
    np.testing.assert_allclose(base, exact, rtol=0.02, atol=20.0)


def test_deterministic_given_key():
    x = jnp.array([0.0, 0.0, 0.0])
    a = idem_score(gaussian_q, x, 0.4, jax.random.PRNGKey(5), 32)
    b = jax.jit(idem_score, static_argnums=(0, 4))(
        gaussian_q, x, 0.4, jax.random.PRNGKey(5), 32)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_shape_errors():
    with pytest.raises(AssertionError, match="rank"):
        idem_score(gaussian_q, jnp.zeros((2, 3)), 0.1, jax.random.PRNGKey(0),
                   8)
    with pytest.raises(AssertionError, match="rank"):
        idem_score(gaussian_q, jnp.zeros(3), jnp.ones(3),
                   jax.random.PRNGKey(0), 8)
    with pytest.raises(ValueError, match="num_samples"):
        idem_score(gaussian_q, jnp.zeros(3), 0.1, jax.random.PRNGKey(0), 0)
