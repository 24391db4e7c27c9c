"""Shared data types."""

from typing import Any, Callable, Dict, NamedTuple

import chex
import jax

PRNGKey = jax.Array
Params = Any
Metrics = Dict[str, jax.Array]
# `log_density(action [d]) -> scalar`, an unnormalised log-density.
LogDensityFn = Callable[[jax.Array], jax.Array]


class Batch(NamedTuple):
    """A batch of transitions, leading axis `B`.

    Attributes:
      observations: `[B, o]` float.
      actions: `[B, d]` float, the executed (squashed) actions.
      rewards: `[B]` float.
      discounts: `[B]` float; 0 only at true termination, 1 otherwise
        (including time-limit truncation).
      next_observations: `[B, o]` float.
    """

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    discounts: jax.Array
    next_observations: jax.Array


def check_batch(batch: Batch, obs_dim: int, act_dim: int) -> None:
    """Asserts (chex) that `batch` holds `B` transitions of these sizes."""
    chex.assert_rank(list(batch), [2, 2, 1, 1, 2])
    batch_size = batch.observations.shape[0]
    chex.assert_shape(batch.observations, (batch_size, obs_dim))
    chex.assert_shape(batch.next_observations, (batch_size, obs_dim))
    chex.assert_shape(batch.actions, (batch_size, act_dim))
    chex.assert_shape([batch.rewards, batch.discounts], (batch_size,))
