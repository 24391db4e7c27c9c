"""A tiny pure-JAX reaching task for fast learning tests and smoke runs.

A point moves in the box `[-1, 1]^dim`: `s' = clip(s + step_size * a, -1, 1)`
for actions `a` in `[-1, 1]^dim`, and the reward is `-||s' - goal||`. Episodes
start uniformly in the box and end by time-limit truncation after `horizon`
steps (discount stays 1). With `horizon=1` it is a contextual bandit whose
best action moves straight toward the goal.

A policy that reaches the goal and stays there earns close to 0 per step; a
uniform random policy earns about `-0.8` per step for `dim=2` (tests measure
it rather than assume it).
"""

from typing import NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp

from dqs_jax.envs import functional
from dqs_jax.types import PRNGKey


class ReachState(NamedTuple):
    """`position [dim]` float32 and `t` (int32 scalar, steps taken)."""

    position: jax.Array
    t: jax.Array


def environment(dim: int = 2, horizon: int = 10, step_size: float = 0.5,
                goal: float = 0.5) -> functional.JaxEnv:
    """The reaching task as a `JaxEnv` (goal at `goal * ones(dim)`)."""
    if dim < 1 or horizon < 1 or not step_size > 0 or not -1 <= goal <= 1:
        raise ValueError("reach.environment needs dim >= 1, horizon >= 1, "
                         f"step_size > 0 and |goal| <= 1, got {dim}, "
                         f"{horizon}, {step_size}, {goal}.")
    target = jnp.full((dim,), goal, jnp.float32)

    def reset(key: PRNGKey) -> Tuple[ReachState, jax.Array]:
        position = jax.random.uniform(key, (dim,), jnp.float32, -1.0, 1.0)
        return ReachState(position, jnp.zeros((), jnp.int32)), position

    def step(state: ReachState, action: jax.Array):
        chex.assert_shape(action, (dim,))
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        position = jnp.clip(state.position + step_size * action, -1.0, 1.0)
        t = state.t + 1
        reward = -jnp.linalg.norm(position - target)
        done = t >= horizon
        return (ReachState(position, t), position, reward,
                jnp.ones((), jnp.float32), done)

    return functional.JaxEnv(reset, step, dim, dim, horizon)
