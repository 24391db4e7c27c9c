"""Entropy of a sample set through a fitted Gaussian mixture (pure JAX).

DACER (Wang et al., NeurIPS 2024) estimates the entropy of its
diffusion policy at a state by fitting a `K`-component full-covariance
Gaussian mixture to `N` sampled actions and reading off

    H_hat = sum_k w_k [d/2 (1 + ln 2pi) + 1/2 ln |Sigma_k|] - sum_k w_k ln w_k.

This is `H(Z) + H(X | Z)`, the entropy of the mixture's joint law of
component and point: the mixture's entropy `H(X)` plus the mean posterior
entropy of the component label, `E_X[H(Z | X)] >= 0`. It is exact for well
separated components and exceeds `H(X)` where components overlap (at most by
`ln K`): K = 3 components fitted to a single Gaussian in d = 2..3 read
0.2 to 0.8 nats high. DACER's target entropy was tuned with this bias. The
official code fits with scikit-learn's `GaussianMixture`
(k-means init, EM to tolerance 1e-3, `reg_covar` 1e-6) in a host callback;
here EM runs a fixed number of iterations inside `jit`, batched with `vmap`,
from the hard assignment to greedy k-means++ centres (no Lloyd rounds).
Samples piled on a face of the action box (clipped actions) make a nearly
singular component, and the estimate falls by up to `-1/2 ln reg_covar`
(6.9 nats) per such dimension.
"""

import math
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp, xlogy

from dqs_jax.types import PRNGKey

_LOG_TWO_PI = math.log(2.0 * math.pi)


class GaussianMixture(NamedTuple):
    """`K` full-covariance Gaussians in `d` dimensions.

    Attributes:
      weights: `[K]`, positive, summing to 1.
      means: `[K, d]`.
      covariances: `[K, d, d]`, symmetric positive definite.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array


def component_log_densities(samples: jax.Array, means: jax.Array,
                            chol: jax.Array) -> jax.Array:
    """`log N(x_n; mu_k, L_k L_k^T)` for every sample and component.

    Args:
      samples: `[N, d]`.
      means: `[K, d]`.
      chol: `[K, d, d]`, lower Cholesky factors of the covariances.

    Returns:
      `[N, K]` log-densities.
    """
    chex.assert_rank([samples, means, chol], [2, 2, 3])
    d = samples.shape[-1]
    diff = samples[None, :, :] - means[:, None, :]  # [K, N, d]
    # L^{-1} once per component, then a matmul (as scikit-learn's precision
    # Cholesky): a triangular solve against all N samples is slow on CPU.
    eye = jnp.broadcast_to(jnp.eye(d, dtype=chol.dtype), chol.shape)
    chol_inv = solve_triangular(chol, eye, lower=True)  # [K, d, d]
    z = jnp.einsum("kij,knj->kni", chol_inv, diff)
    maha = jnp.sum(jnp.square(z), axis=-1)  # [K, N]
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)),
                           axis=-1)  # [K]
    log_prob = -0.5 * (d * _LOG_TWO_PI + maha) - half_log_det[:, None]
    return log_prob.T


def _m_step(samples: jax.Array, resp: jax.Array,
            reg_covar: float) -> GaussianMixture:
    """Weighted maximum likelihood given responsibilities `resp [N, K]`;
    scikit-learn's guard `N_k + 10 eps` keeps empty components finite."""
    n, d = samples.shape
    counts = jnp.sum(resp, axis=0) + 10.0 * jnp.finfo(samples.dtype).eps
    means = resp.T @ samples / counts[:, None]  # [K, d]
    diff = samples[None, :, :] - means[:, None, :]  # [K, N, d]
    weighted = diff * resp.T[:, :, None]
    covariances = jnp.einsum("kni,knj->kij", weighted, diff) / counts[:, None,
                                                                      None]
    covariances = 0.5 * (covariances + jnp.swapaxes(covariances, 1, 2))
    covariances = covariances + reg_covar * jnp.eye(d, dtype=samples.dtype)
    return GaussianMixture(counts / jnp.sum(counts), means, covariances)


def _e_step(samples: jax.Array, gmm: GaussianMixture) -> jax.Array:
    """Responsibilities `[N, K]` (posterior component probabilities)."""
    chol = jnp.linalg.cholesky(gmm.covariances)
    log_joint = component_log_densities(samples, gmm.means, chol) + jnp.log(
        gmm.weights)
    return jnp.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))


def kmeans_plus_plus(samples: jax.Array, key: PRNGKey,
                     num_centres: int) -> jax.Array:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's
    variant): the first centre uniform among the samples; each next one the
    best, by the summed squared distance to the nearest centre, of
    `2 + floor(ln K)` candidates drawn with probability proportional to the
    squared distance to the nearest centre so far (uniform if all vanish).

    Args:
      samples: `[N, d]`.
      key: PRNG key.
      num_centres: `K` (static).

    Returns:
      `[K, d]` centres, each one of the samples.
    """
    chex.assert_rank(samples, 2)
    n = samples.shape[0]
    num_trials = 2 + int(math.log(num_centres))
    # One uniform draw for all choices, by inverse-CDF sampling.
    u = jax.random.uniform(key, (num_centres, num_trials), samples.dtype)
    first = jnp.minimum((u[0, 0] * n).astype(jnp.int32), n - 1)
    centres = [samples[first]]
    nearest = jnp.sum(jnp.square(samples - centres[0]), axis=-1)  # [N]
    for k in range(1, num_centres):
        weights = nearest + jnp.finfo(samples.dtype).tiny
        cdf = jnp.cumsum(weights)
        candidates = jnp.minimum(
            jnp.searchsorted(cdf, u[k] * cdf[-1], side="right",
                             method="compare_all"), n - 1)
        new = jnp.minimum(nearest[None], jnp.sum(jnp.square(
            samples[None] - samples[candidates][:, None]), axis=-1))
        best = jnp.argmin(jnp.sum(new, axis=-1))
        centres.append(samples[candidates[best]])
        nearest = new[best]
    return jnp.stack(centres)


def fit_gmm(samples: jax.Array, key: PRNGKey, num_components: int = 3,
            num_iters: int = 50, reg_covar: float = 1e-6) -> GaussianMixture:
    """Fits a full-covariance Gaussian mixture by fixed-iteration EM.

    Init: k-means++ centres (`kmeans_plus_plus`), every sample assigned to
    its nearest centre (hard responsibilities), one M-step; then `num_iters`
    E/M rounds (Dempster et al. 1977). `reg_covar` is added to each
    covariance's diagonal (scikit-learn's default 1e-6). No gradient flows
    through the fit.

    Args:
      samples: `[N, d]`, `N >= num_components`.
      key: PRNG key for the initial centres.
      num_components: `K` (static).
      num_iters: EM rounds (static).
      reg_covar: diagonal regulariser of the covariances.

    Returns:
      The fitted `GaussianMixture`.
    """
    chex.assert_rank(samples, 2)
    n = samples.shape[0]
    if not 1 <= num_components <= n or num_iters < 0:
        raise ValueError(f"fit_gmm needs 1 <= num_components <= N and "
                         f"num_iters >= 0, got {num_components}, N={n}, "
                         f"{num_iters}.")
    samples = jax.lax.stop_gradient(samples)
    distances = jnp.sum(jnp.square(
        samples[:, None, :] - kmeans_plus_plus(samples, key, num_components)[
            None]), axis=-1)  # [N, K]
    resp = jax.nn.one_hot(jnp.argmin(distances, axis=-1), num_components,
                          dtype=samples.dtype)
    gmm = _m_step(samples, resp, reg_covar)

    def em_round(_, gmm):
        return _m_step(samples, _e_step(samples, gmm), reg_covar)

    return jax.lax.fori_loop(0, num_iters, em_round, gmm)


def mixture_entropy_bound(gmm: GaussianMixture) -> jax.Array:
    """`H(Z) + H(X | Z) = sum_k w_k H(N(mu_k, Sigma_k)) - sum_k w_k ln w_k`,
    with `H(N(mu, Sigma)) = d/2 (1 + ln 2 pi) + 1/2 ln |Sigma|`: an upper
    bound on the mixture's entropy, tight for separated components.

    Returns:
      Scalar (nats).
    """
    chex.assert_rank([gmm.weights, gmm.means, gmm.covariances], [1, 2, 3])
    d = gmm.means.shape[-1]
    chol = jnp.linalg.cholesky(gmm.covariances)
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)),
                           axis=-1)
    component = 0.5 * d * (1.0 + _LOG_TWO_PI) + half_log_det
    return jnp.sum(gmm.weights * component) - jnp.sum(
        xlogy(gmm.weights, gmm.weights))


def gmm_entropy(samples: jax.Array, key: PRNGKey, num_components: int = 3,
                num_iters: int = 50, reg_covar: float = 1e-6) -> jax.Array:
    """DACER's entropy estimate of the law behind `samples` (module doc).

    Fits `fit_gmm` and returns `mixture_entropy_bound` of the fit. Batch it
    over states with `jax.vmap` (one key per state).

    Args:
      samples: `[N, d]`.
      key: PRNG key for the EM initialisation.
      num_components: `K` (static; DACER: 3).
      num_iters: EM rounds (static).
      reg_covar: diagonal regulariser of the covariances.

    Returns:
      Scalar entropy estimate (nats), without gradient.
    """
    gmm = fit_gmm(samples, key, num_components, num_iters, reg_covar)
    return jax.lax.stop_gradient(mixture_entropy_bound(gmm))


def policy_entropy(sample_fn: Callable[[jax.Array, PRNGKey], jax.Array],
                   observations: jax.Array, num_samples: int, key: PRNGKey,
                   num_components: int = 3, num_iters: int = 50
                   ) -> jax.Array:
    """`[S]` `gmm_entropy` estimates of a policy's action law, one per row of
    `observations [S, o]`, each from `num_samples` actions.

    Args:
      sample_fn: `(observations [N, o], key) -> actions [N, d]`, one draw
        per row.
      observations: `[S, o]`.
      num_samples: actions per state (static).
      key: PRNG key for the samples and the EM initialisations.
      num_components: `K` (static).
      num_iters: EM rounds (static).

    Returns:
      `[S]` entropies (nats), without gradient.
    """
    chex.assert_rank(observations, 2)
    num_states = observations.shape[0]
    sample_key, fit_key = jax.random.split(key)
    tiled = jnp.repeat(observations, num_samples, axis=0)  # state-major
    actions = sample_fn(tiled, sample_key)
    chex.assert_rank(actions, 2)
    actions = actions.reshape(num_states, num_samples, actions.shape[-1])
    return jax.vmap(lambda a, k: gmm_entropy(a, k, num_components, num_iters))(
        actions, jax.random.split(fit_key, num_states))
