"""Evaluation metrics: MMD, mode coverage and Boltzmann log-partition."""

import math
from typing import Callable, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax.types import PRNGKey

# `q_fn(states [K, d_s], actions [K, d]) -> [K]`, batched over K pairs.
BatchedQFn = Callable[[jax.Array, jax.Array], jax.Array]


def _pairwise_sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
    """`[N, d]`, `[M, d]` -> `[N, M]` squared distances, by differences.

    No `|a|^2 + |b|^2 - 2ab` cancellation: equal points give exactly 0 and
    the result is bitwise symmetric.
    """
    return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)


def median_heuristic_bandwidth(points: jax.Array) -> jax.Array:
    """Median of the Euclidean distances over distinct pairs `i < j`.

    Args:
      points: `[P, d]`, `P >= 2`.

    Returns:
      float32 scalar; 1.0 if that median is 0 (e.g. all points equal), so
      that the kernel stays finite.
    """
    chex.assert_rank(points, 2)
    num = points.shape[0]
    if num < 2:
        raise ValueError(f"the median heuristic needs >= 2 points, got {num}.")
    rows, cols = np.triu_indices(num, k=1)
    dists = jnp.sqrt(_pairwise_sq_dists(points, points)[rows, cols])
    bandwidth = jnp.median(dists)
    return jnp.where(bandwidth > 0, bandwidth, 1.0).astype(jnp.float32)


def mmd(x: jax.Array, y: jax.Array,
        bandwidth: Optional[float] = None) -> jax.Array:
    """Squared maximum mean discrepancy with an RBF kernel (biased estimate).

    `k(a, b) = exp(-||a - b||^2 / (2 bw^2))` and
    `MMD^2 = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)`,
    the V-statistic (all pairs, diagonals included): non-negative, and exactly
    0 when `x` and `y` are the same set in the same order.

    Bandwidth rule when `bandwidth is None` (median heuristic): `bw` = median
    of the Euclidean distances `||z_i - z_j||` over the distinct pairs `i < j`
    of the pooled set `z = concat(x, y)` (1.0 if that median is 0). Jittable.

    Args:
      x: `[N, d]`.
      y: `[M, d]`.
      bandwidth: kernel bandwidth `bw > 0`, or None for the median heuristic.

    Returns:
      float32 scalar.
    """
    chex.assert_rank([x, y], 2)
    chex.assert_equal_shape_suffix([x, y], suffix_len=1)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    pooled = jnp.concatenate([x, y], axis=0)
    if bandwidth is None:
        bandwidth = median_heuristic_bandwidth(pooled)
    bandwidth = jnp.asarray(bandwidth, jnp.float32)
    scale = 2.0 * jnp.square(bandwidth)

    def mean_kernel(a, b):
        return jnp.mean(jnp.exp(-_pairwise_sq_dists(a, b) / scale))

    if x.shape == y.shape:
        # One batched reduction: the three means are computed by the same
        # code, so identical x and y cancel exactly, also under jit.
        k_xx, k_yy, k_xy = jax.vmap(mean_kernel)(jnp.stack([x, y, x]),
                                                 jnp.stack([x, y, y]))
    else:
        k_xx, k_yy, k_xy = (mean_kernel(x, x), mean_kernel(y, y),
                            mean_kernel(x, y))
    return k_xx + k_yy - 2.0 * k_xy


def mode_coverage(points: jax.Array, means: jax.Array, std,
                  radius: float = 3.0) -> jax.Array:
    """Number of modes hit: means with a point within `radius * std`.

    Args:
      points: `[N, d]`.
      means: `[M, d]`.
      std: scalar mode standard deviation.
      radius: hit radius in units of `std`.

    Returns:
      int32 scalar in `[0, M]`.
    """
    chex.assert_rank([points, means], 2)
    chex.assert_equal_shape_suffix([points, means], suffix_len=1)
    points = jnp.asarray(points, jnp.float32)
    means = jnp.asarray(means, jnp.float32)
    threshold = jnp.square(radius * jnp.asarray(std, jnp.float32))
    hit = _pairwise_sq_dists(points, means) <= threshold  # [N, M]
    return jnp.sum(jnp.any(hit, axis=0)).astype(jnp.int32)


def unit_sphere_area(dim: int) -> float:
    """Surface area of `S^{dim-1}` in `R^dim`: `2 pi^{dim/2} / Gamma(dim/2)`."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}.")
    return 2.0 * math.pi ** (dim / 2) / math.gamma(dim / 2)


def log_partition(q_fn: BatchedQFn, states: jax.Array, temperature,
                  key: PRNGKey, num_actions: int = 1000,
                  act_dim: int = 2) -> jax.Array:
    """Monte Carlo `log Z(s) = log ∫_{S^{d-1}} exp(Q(s, a) / temperature) da`.

    The integral is over unit actions (the sphere `S^{d-1}`, surface
    measure), as in the GMM environment where only the direction of the
    action matters. Per state, `A = num_actions` directions `a_k` uniform on
    the sphere (normalised Gaussians, independent across states):
    `log Z(s) ≈ logsumexp_k(Q(s, a_k) / temperature) - log A + log |S^{d-1}|`.

    Args:
      q_fn: `q_fn(states [K, d_s], actions [K, d]) -> [K]`, called once with
        `K = N * num_actions` (state `i` repeated for its `A` directions,
        state-major order).
      states: `[N, d_s]`.
      temperature: positive scalar.
      key: PRNG key.
      num_actions: `A`, directions per state (static).
      act_dim: `d`, action dimension (static).

    Returns:
      `[N]` float32 estimates.
    """
    chex.assert_rank(states, 2)
    if num_actions < 1:
        raise ValueError(f"num_actions must be >= 1, got {num_actions}.")
    num_states = states.shape[0]
    directions = jax.random.normal(key, (num_states, num_actions, act_dim),
                                   jnp.float32)
    directions = directions / jnp.linalg.norm(directions, axis=-1,
                                              keepdims=True)
    flat_states = jnp.repeat(states, num_actions, axis=0)
    flat_actions = directions.reshape(num_states * num_actions, act_dim)
    q = q_fn(flat_states, flat_actions)
    chex.assert_shape(q, (num_states * num_actions,))
    logits = q.reshape(num_states, num_actions) / temperature
    return (jax.nn.logsumexp(logits, axis=-1) - math.log(num_actions)
            + math.log(unit_sphere_area(act_dim))).astype(jnp.float32)
