"""Shared data types."""

from typing import Any, Callable, Dict, NamedTuple

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
