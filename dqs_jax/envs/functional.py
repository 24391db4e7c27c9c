"""The interface of pure-JAX environments (jit/vmap/scan-able)."""

from typing import Any, Callable, NamedTuple, Tuple

import jax

EnvState = Any


class JaxEnv(NamedTuple):
    """A functional environment.

    Attributes:
      reset: `key -> (env_state, obs [o])`.
      step: `(env_state, action [d]) -> (env_state, obs [o], reward, discount,
        done)`; reward/discount float32 scalars, done bool; discount is 0 only
        at true termination. `step` does not reset: loops call `reset`.
      obs_dim: `o`.
      act_dim: `d`.
      max_episode_steps: an upper bound on episode length.
    """

    reset: Callable[[jax.Array], Tuple[EnvState, jax.Array]]
    step: Callable[[EnvState, jax.Array], Tuple[EnvState, jax.Array,
                                                 jax.Array, jax.Array,
                                                 jax.Array]]
    obs_dim: int
    act_dim: int
    max_episode_steps: int
