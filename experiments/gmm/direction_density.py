r"""The Boltzmann density of a critic over 2-D action directions, and how far
a policy's sampled directions are from it: the diagnostic of how well DQS's
sampler tracks its critic on GMM-40 (the GMM diagnosis,
docs/results/gmm.md).

For an environment that executes only the direction of a 2-D action (the
GMM env moves by `a / |a|`), the Boltzmann policy over what is executed is a
density on the circle of directions `theta`, w.r.t. arc length:

    p(theta | s) = exp(Q(s, r u(theta)) / alpha) / Z(s),
    u(theta) = (cos theta, sin theta),  Z(s) = ∫_{-pi}^{pi} exp(Q / alpha).

Which action the critic is evaluated at: `r u(theta)` with `r = radius`,
default 1, the unit vector, which lies in the action box `[-1, 1]^2` where
the critic is trained. The env's dynamics depend on `a / |a|` only, so the
true `Q(s, a) = Q(s, u(theta(a)))` for every `a != 0` and a learned critic
should be (nearly) constant along each ray; the policy's directions
`atan2(a_y, a_x)` of its executed actions estimate the same density. The
alternative, the marginal over `theta` of `exp(Q(s, a) / alpha)` on the box,
`∫_0^{R(theta)} exp(Q(s, r u) / alpha) r dr` with `R = 1 / max(|cos|,
|sin|)`, would multiply a ray-constant critic's density by the box's
geometric factor `R(theta)^2 / 2` (twice the weight on the diagonals), a
property of the action parametrisation rather than of the critic; and DQS's
sampler draws `x_0` in `R^2` before the `tanh` squash, so its ray has no
fixed end. So the unit vector is the comparison for sampled directions;
`radius` lets a caller check that a learned critic is indeed ray-constant
(equal densities at two radii). Caveat: the sampler targets `exp(Q(s, x) /
alpha)` over the pre-squash `x` and executes `tanh(x)`, whose direction
differs from `x`'s by a few degrees for `|x| <~ 1` (towards the diagonals).

Everything is discretised on `G` equal bins of `[-pi, pi)` whose centres
(`angle_grid`) are the evaluation points; densities are normalised by the
midpoint rule (`sum_j p_j * 2 pi / G = 1`, spectrally accurate for a smooth
periodic `Q`), and a sample's histogram uses the same bins, so the
discrepancy is one number per state: the total variation
`0.5 sum_j |hist_j - p_j 2 pi / G|` in `[0, 1]`. `sampling_floor` gives the
TV that exact draws of the same count would score (finite-sample noise).

All functions are pure and jittable (`num_angles`, counts static).
"""

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from experiments.gmm.metrics import BatchedQFn
from dqs_jax.types import PRNGKey


class DirectionDensity(NamedTuple):
    """A critic's Boltzmann density over directions at `S` states.

    Attributes:
      angles: `[G]` bin centres in `(-pi, pi)` (`angle_grid`).
      density: `[S, G]` float32, `p(theta_j | s)` w.r.t. arc length: each
        row sums to `G / (2 pi)`.
      q_values: `[S, G]` float32, `Q(s, radius * u(theta_j))`.
    """

    angles: jax.Array
    density: jax.Array
    q_values: jax.Array


def _check_num_angles(num_angles: int) -> None:
    if num_angles < 2:
        raise ValueError(f"num_angles must be >= 2, got {num_angles}.")


def angle_grid(num_angles: int) -> jax.Array:
    """`[G]` centres `theta_j = -pi + (j + 1/2) 2 pi / G` of `G` equal bins
    of `[-pi, pi)`, float32."""
    _check_num_angles(num_angles)
    width = 2.0 * math.pi / num_angles
    return (-math.pi + (jnp.arange(num_angles, dtype=jnp.float32) + 0.5)
            * width).astype(jnp.float32)


def unit_vectors(angles: jax.Array) -> jax.Array:
    """`angles [...]` -> `[..., 2]` unit vectors `(cos, sin)`."""
    return jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def boltzmann_direction_density(q_fn: BatchedQFn, states: jax.Array,
                                temperature, num_angles: int,
                                radius: float = 1.0) -> DirectionDensity:
    """`p(theta | s) ∝ exp(Q(s, radius * u(theta)) / temperature)` on the
    grid (module docstring: why the unit vector).

    Args:
      q_fn: `q_fn(states [K, o], actions [K, 2]) -> [K]`, called once with
        `K = S * G` (state `i` repeated for its `G` directions, state-major).
      states: `[S, o]`.
      temperature: positive scalar `alpha`.
      num_angles: `G` (static), bins of `[-pi, pi)`.
      radius: length of the evaluated actions (static), default 1.

    Returns:
      `DirectionDensity(angles [G], density [S, G], q_values [S, G])`.
    """
    chex.assert_rank(states, 2)
    angles = angle_grid(num_angles)
    num_states = states.shape[0]
    actions = radius * unit_vectors(angles)  # [G, 2]
    q = q_fn(jnp.repeat(states, num_angles, axis=0),
             jnp.tile(actions, (num_states, 1)))
    chex.assert_shape(q, (num_states * num_angles,))
    q = q.reshape(num_states, num_angles).astype(jnp.float32)
    logits = q / temperature
    log_z = (jax.nn.logsumexp(logits, axis=-1, keepdims=True)
             + math.log(2.0 * math.pi / num_angles))
    return DirectionDensity(angles, jnp.exp(logits - log_z), q)


def direction_angles(actions: jax.Array) -> jax.Array:
    """`actions [..., 2]` -> `[...]` directions `atan2(a_y, a_x)` in
    `[-pi, pi]` (what the GMM env executes, `a / |a|`)."""
    chex.assert_axis_dimension(actions, -1, 2)
    return jnp.arctan2(actions[..., 1], actions[..., 0])


def _bin_fractions(bins: jax.Array, num_angles: int) -> jax.Array:
    """`bins [S, N]` int indices -> `[S, G]` fractions in each bin."""
    counts = jax.vmap(lambda b: jnp.bincount(b, length=num_angles))(bins)
    return (counts / bins.shape[1]).astype(jnp.float32)


def direction_histogram(angles: jax.Array, num_angles: int) -> jax.Array:
    """Fractions of `angles [S, N]` in each of the `G` bins of `angle_grid`:
    `[S, G]` float32, rows summing to 1 (`pi` falls in the first bin, as
    `-pi`)."""
    chex.assert_rank(angles, 2)
    _check_num_angles(num_angles)
    width = 2.0 * math.pi / num_angles
    bins = jnp.floor((angles + math.pi) / width).astype(jnp.int32)
    return _bin_fractions(jnp.mod(bins, num_angles), num_angles)


def bin_probabilities(density: jax.Array) -> jax.Array:
    """`density [S, G]` (per radian) -> `[S, G]` bin masses `p_j 2 pi / G`."""
    chex.assert_rank(density, 2)
    return density * (2.0 * math.pi / density.shape[-1])


def total_variation(density: jax.Array, angles: jax.Array) -> jax.Array:
    """`0.5 sum_j |hist_j - p_j 2 pi / G|` per state, in `[0, 1]`.

    Args:
      density: `[S, G]` (`DirectionDensity.density`).
      angles: `[S, N]` sampled directions at the same states.

    Returns:
      `[S]` float32: 0 for a histogram equal to the bin masses, 1 for
      disjoint supports.
    """
    chex.assert_rank([density, angles], 2)
    chex.assert_equal_shape_prefix([density, angles], prefix_len=1)
    return _tv(density, direction_histogram(angles, density.shape[-1]))


def _tv(density: jax.Array, fractions: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.abs(fractions - bin_probabilities(density)),
                         axis=-1)


def sampling_floor(key: PRNGKey, density: jax.Array, num_samples: int,
                   num_repeats: int = 32) -> jax.Array:
    """Mean `total_variation` of `num_samples` exact draws of the binned
    density, over `num_repeats` repeats: the value a perfect sampler scores
    with that many samples (finite-sample noise, not a bias).

    Args:
      key: PRNG key.
      density: `[S, G]`.
      num_samples: `N` (static).
      num_repeats: `R` (static).

    Returns:
      `[S]` float32.
    """
    chex.assert_rank(density, 2)
    num_states, num_angles = density.shape
    cdf = jnp.cumsum(bin_probabilities(density), axis=-1)
    uniforms = jax.random.uniform(key, (num_states, num_repeats, num_samples))
    bins = jax.vmap(jnp.searchsorted)(cdf, uniforms * cdf[:, -1:, None])
    bins = jnp.minimum(bins, num_angles - 1)  # [S, R, N], inverse CDF

    def tv(bins_r):  # [S, N] -> [S]
        return _tv(density, _bin_fractions(bins_r, num_angles))

    return jnp.mean(jax.vmap(tv, in_axes=1)(bins), axis=0)


def count_modes(density: jax.Array, min_fraction: float = 0.1) -> jax.Array:
    """Modes of a circular density: the number of circular runs of grid
    points with `p >= min_fraction * max p` (connected components of that
    super-level set; 1 for a density above the level everywhere).

    Args:
      density: `[S, G]`.
      min_fraction: level in `(0, 1]`, relative to each row's maximum.

    Returns:
      `[S]` int32.
    """
    chex.assert_rank(density, 2)
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got "
                         f"{min_fraction}.")
    above = density >= min_fraction * jnp.max(density, axis=-1,
                                              keepdims=True)
    starts = jnp.sum(above & ~jnp.roll(above, 1, axis=-1), axis=-1)
    return jnp.maximum(starts, jnp.any(above, axis=-1)).astype(jnp.int32)


def sample_directions(q_fn: BatchedQFn, states: jax.Array, temperature,
                      key: PRNGKey, num_angles: int,
                      greedy: bool = False) -> jax.Array:
    """Unit actions drawn from the critic's binned Boltzmann density over
    directions: a bin `j` with probability `p_j 2 pi / G`, then a uniform
    angle inside it (`greedy`: the centre of the most likely bin). The
    exact Boltzmann policy of `q_fn` up to the grid, against which a
    learned sampler's behaviour can be compared.

    Args:
      q_fn: as in `boltzmann_direction_density`.
      states: `[S, o]`.
      temperature: positive scalar `alpha`.
      key: PRNG key.
      num_angles: `G` (static).
      greedy: static; the argmax direction instead of a draw.

    Returns:
      `[S, 2]` float32 unit vectors.
    """
    density = boltzmann_direction_density(q_fn, states, temperature,
                                          num_angles)
    if greedy:
        return unit_vectors(density.angles[jnp.argmax(density.density, -1)])
    bin_key, offset_key = jax.random.split(key)
    bins = jax.random.categorical(bin_key, jnp.log(density.density), axis=-1)
    width = 2.0 * math.pi / num_angles
    offsets = jax.random.uniform(offset_key, bins.shape, jnp.float32,
                                 -0.5 * width, 0.5 * width)
    return unit_vectors(density.angles[bins] + offsets)
