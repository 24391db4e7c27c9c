"""Isotropic Gaussian mixtures: toy energies and ground truth for tests."""

from typing import Optional

import chex
import distrax
import jax
import jax.numpy as jnp

# The 2-D four-mode target of the demo and the tests: unequal weights, so a
# sampler must get the proportions right, not only find the modes.
FOUR_MODE_MEANS = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))
FOUR_MODE_WEIGHTS = (0.1, 0.2, 0.3, 0.4)
FOUR_MODE_STD = 0.4


def isotropic_gmm(means, std: float,
                  weights: Optional[jax.Array] = None
                  ) -> distrax.MixtureSameFamily:
    """Mixture of `N(mean_m, std^2 I)`; `means [M, d]`, `weights [M]` (equal if None)."""
    means = jnp.asarray(means, jnp.float32)
    chex.assert_rank(means, 2)
    num_modes = means.shape[0]
    if weights is None:
        weights = jnp.full((num_modes,), 1.0 / num_modes)
    weights = jnp.asarray(weights, jnp.float32)
    chex.assert_shape(weights, (num_modes,))
    return distrax.MixtureSameFamily(
        mixture_distribution=distrax.Categorical(probs=weights),
        components_distribution=distrax.MultivariateNormalDiag(
            means, jnp.full_like(means, std)))


def four_mode_gmm() -> distrax.MixtureSameFamily:
    """The 2-D four-mode target (`FOUR_MODE_*`)."""
    return isotropic_gmm(FOUR_MODE_MEANS, FOUR_MODE_STD, FOUR_MODE_WEIGHTS)


def nearest_mode(points: jax.Array, means) -> jax.Array:
    """Index of the closest mean: `points [N, d]`, `means [M, d]` -> `[N]` int."""
    chex.assert_rank(points, 2)
    sq_dist = jnp.sum(
        jnp.square(points[:, None, :] - jnp.asarray(means)[None]), axis=-1)
    return jnp.argmin(sq_dist, axis=-1)


def mode_proportions(points: jax.Array, means) -> jax.Array:
    """`[M]` fraction of `points [N, d]` whose nearest mean is each of `means [M, d]`."""
    num_modes = jnp.asarray(means).shape[0]
    counts = jnp.bincount(nearest_mode(points, means), length=num_modes)
    return counts / points.shape[0]
