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


def scale_observations(env: JaxEnv, scale: float) -> JaxEnv:
    """`env` whose observations are multiplied by the constant `scale`
    (e.g. `1 / BOX` to give networks inputs of order one); rewards,
    dynamics and env states are unchanged."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    if scale == 1.0:
        return env

    def reset(key):
        env_state, obs = env.reset(key)
        return env_state, obs * scale

    def step(env_state, action):
        env_state, obs, reward, discount, done = env.step(env_state, action)
        return env_state, obs * scale, reward, discount, done

    return env._replace(reset=reset, step=step)
