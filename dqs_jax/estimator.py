"""The iDEM K-sample Monte Carlo score estimate (SPEC §3)."""

import chex
import jax
import jax.numpy as jnp

from dqs_jax.types import LogDensityFn, PRNGKey


def idem_score(log_density: LogDensityFn, x_t: jax.Array, h_t, key: PRNGKey,
               num_samples: int) -> jax.Array:
    """K-sample estimate of the score of `exp(log_density) * N(0, h_t I)` at `x_t`.

    `S_K(x_t) = grad_x log sum_i exp(log_density(x_t + sqrt(h_t) eps_i))`,
    `eps_i ~ N(0, I)`, i.e. the softmax(log_density)-weighted mean of the
    gradients of `log_density` at the K noisy points. It converges to
    `grad log p_t(x_t)` as K grows (Akhound-Sadegh et al., 2024, iDEM).

    The weights are a softmax, so log-densities of any magnitude (e.g. `Q/alpha`
    of 1e4) neither overflow nor underflow.

    Args:
      log_density: maps ONE point `[d]` to a scalar unnormalised log-density,
        e.g. `lambda a: Q(s, a) / alpha`. It is vmapped over the K samples.
      x_t: `[d]` noisy point.
      h_t: scalar, the added variance `h(t)` of the noise schedule.
      key: PRNG key for the K Gaussian perturbations.
      num_samples: K >= 1, static.

    Returns:
      `[d]` score estimate, same dtype as `x_t`.
    """
    chex.assert_rank(x_t, 1)
    chex.assert_rank(h_t, 0)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    eps = jax.random.normal(key, (num_samples,) + x_t.shape, x_t.dtype)
    points = x_t + jnp.sqrt(h_t).astype(x_t.dtype) * eps  # [K, d]
    values, grads = jax.vmap(jax.value_and_grad(log_density))(points)
    chex.assert_shape(values, (num_samples,))
    weights = jax.nn.softmax(values)  # [K]
    return weights @ grads
