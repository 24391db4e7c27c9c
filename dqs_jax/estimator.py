"""K-sample Monte Carlo estimates of the noised score (docs/algorithm.md §3,
the paper's Eq. (4)-(5)), one point.

`idem_score` is the paper's estimate (iDEM). The others estimate the same
`grad log p_t(x_t)`, `p_t = exp(log_density) * N(0, h I)`, with cheaper
variance per draw: `antithetic_score` and `qmc_score` change only the draws (`mc_noise`);
`control_variate_score` blends the gradient (target-score, De Bortoli et
al. 2024) and gradient-free (Tweedie) forms with a fitted Stein control
variate (Kahouli et al. 2025; Li, Tang & Azizan 2026). All share
`idem_score`'s signature; `losses.idem_targets` vmaps any of them and
`batched_estimator` computes them for a batch in bounded memory.
"""

import chex
import jax
import jax.numpy as jnp

from dqs_jax import mc_noise
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


def snis_gradient_mean(values: jax.Array, grads: jax.Array) -> jax.Array:
    """The target-score (TSI) form `sum_i w_i g_i`, `w = softmax(values)`:
    `values [K]`, `grads [K, d]` -> `[d]`."""
    chex.assert_rank([values, grads], [1, 2])
    return jax.nn.softmax(values) @ grads


def control_variate_combination(values: jax.Array, grads: jax.Array,
                                eps: jax.Array, h_t) -> jax.Array:
    """Stein control-variate form of the score estimate (one point).

    With `w = softmax(values)`, `u_i = eps_i / sqrt(h)` (the Tweedie, DSI
    integrand) and `s_i = g_i - u_i` (the posterior score at `y_i`, whose
    posterior mean is 0: Stein's identity), returns per dimension

      `S_CV = sum_i w_i u_i + lam * sum_i w_i s_i`,
      `lam = clip(-C(u, s) / C(s, s), 0, 1)`,
      `C(a, b) = sum_i w_i^2 (a_i - a_bar)(b_i - b_bar)`, `a_bar = sum w a`,

    `lam` minimising the delta-method variance of the self-normalised
    average (the per-dimension coefficient of Reverse Flow Matching's
    control variate, Li, Tang & Azizan 2026, in DQS's VE form `lam = c / h`).
    `lam = 0` is the gradient-free Tweedie form, `lam = 1` the iDEM form;
    for a Gaussian posterior of variance `v`, `lam = v / h` and the
    integrand is constant (zero variance). On a linear energy `lam = 1`
    and the result is the exact gradient.

    Args:
      values: `[K]` log-densities at the draws `y_i = x_t + sqrt(h) eps_i`.
      grads: `[K, d]` their gradients `g_i`.
      eps: `[K, d]` the standard-normal draws.
      h_t: scalar `h >= 0` (at 0, `lam = 1`: the gradient).

    Returns:
      `[d]`.
    """
    chex.assert_rank([values, grads, eps], [1, 2, 2])
    chex.assert_equal_shape([grads, eps])
    tiny = jnp.finfo(eps.dtype).tiny
    h_t = jnp.asarray(h_t, eps.dtype)
    w = jax.nn.softmax(values)
    u = eps * jax.lax.rsqrt(jnp.maximum(h_t, tiny))
    # Centred at the heaviest draw p: `a_i - a_bar = a'_i - sum_j w_j a'_j`
    # with `a' = a - a_p`. When one weight is near 1 (large h), the plain
    # `a_p - a_bar` cancels catastrophically in float32 (w_p = 1 - 1e-6
    # leaves ~10% error), and that term carries a weight w_p^2 ~ 1 in C.
    pivot = jnp.argmax(w)
    u_p, g_p = u[pivot], grads[pivot]
    u_rel, g_rel = w @ (u - u_p), w @ (grads - g_p)  # `a_bar - a_p`
    du, dg = (u - u_p) - u_rel, (grads - g_p) - g_rel
    w2 = jnp.square(w)
    # With s = g - u: C(s, s) = C(u,u) - 2 C(u,g) + C(g,g) and
    # 1 - lam = (C(g, g) - C(u, g)) / C(s, s): no cancellation of the large
    # `u` terms at small `h`, where `lam -> 1`. With all weight on one draw
    # both sums vanish: then lam = 0, the Tweedie form.
    c_ss = w2 @ jnp.square(dg - du)
    one_minus = jnp.where(c_ss > 0, jnp.clip(
        (w2 @ (dg * (dg - du))) / jnp.where(c_ss > 0, c_ss, 1.0), 0.0, 1.0),
        1.0)
    one_minus = jnp.where(h_t > 0, one_minus, 0.0)  # h = 0: coinciding draws.
    # `u_bar + lam s_bar`, written around `g_bar`: exact when `lam = 1`.
    g_bar = g_p + g_rel
    return g_bar + one_minus * ((u_p - g_p) + (u_rel - g_rel))


def _draws(log_density: LogDensityFn, x_t: jax.Array, h_t, key: PRNGKey,
           num_samples: int, noise: str):
    chex.assert_rank(x_t, 1)
    chex.assert_rank(h_t, 0)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    eps = mc_noise.get_noise(noise)(key, num_samples, x_t.shape[0],
                                    x_t.dtype)
    points = x_t + jnp.sqrt(h_t).astype(x_t.dtype) * eps  # [K, d]
    values, grads = jax.vmap(jax.value_and_grad(log_density))(points)
    chex.assert_shape(values, (num_samples,))
    return values, grads, eps


def antithetic_score(log_density: LogDensityFn, x_t: jax.Array, h_t,
                     key: PRNGKey, num_samples: int) -> jax.Array:
    """`idem_score` with antithetic draws `(eps, -eps)` (`mc_noise`): same
    limit, lower variance for smooth energies; same arguments and shapes."""
    values, grads, _ = _draws(log_density, x_t, h_t, key, num_samples,
                              "antithetic")
    return snis_gradient_mean(values, grads)


def qmc_score(log_density: LogDensityFn, x_t: jax.Array, h_t, key: PRNGKey,
              num_samples: int) -> jax.Array:
    """`idem_score` with randomised Sobol draws (`mc_noise.qmc`); same
    arguments and shapes."""
    values, grads, _ = _draws(log_density, x_t, h_t, key, num_samples, "qmc")
    return snis_gradient_mean(values, grads)


def control_variate_score(log_density: LogDensityFn, x_t: jax.Array, h_t,
                          key: PRNGKey, num_samples: int) -> jax.Array:
    """Score estimate with the fitted Stein control variate
    (`control_variate_combination`) on antithetic draws; same arguments and
    shapes as `idem_score`. Consistent in K: both its terms
    are, for any `lam`."""
    values, grads, eps = _draws(log_density, x_t, h_t, key, num_samples,
                                "antithetic")
    return control_variate_combination(values, grads, eps, h_t)


# Per-example estimators by name (`DQSConfig.estimator`; "adaptive" is a
# batch-level allocation of these, see `score_targets`).
SCORE_ESTIMATORS = {"idem": idem_score, "antithetic": antithetic_score,
                    "qmc": qmc_score,
                    "control_variate": control_variate_score}
