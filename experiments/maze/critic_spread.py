"""How sharply DQS's policy can prefer one action: the spread of its critic
over the action box at a state, beside its temperature.

DQS samples `pi(a|s) ∝ exp(Q(s, a) / alpha)` (paper Eq. 3), so the odds of
its best action over its worst at `s` are `exp(spread / alpha)` with
`spread = max_a Q(s, a) - min_a Q(s, a)`. With a spread far below `alpha`
the policy is close to uniform, whatever the critic has learnt
(docs/results/maze.md, "How the cpu preset was chosen").
"""

from typing import Dict

import jax.numpy as jnp
import numpy as np

from dqs_jax import agent as dqs_agent
from dqs_jax import score_targets

# The ball at the start cell's centre, at rest: `[x, y, vx, vy]`.
START_OBSERVATION = np.zeros((4,), np.float32)


def action_grid(num: int = 21) -> np.ndarray:
    """`[num * num, 2]` float32: a `num x num` lattice of `[-1, 1]^2`."""
    if num < 2:
        raise ValueError(f"action_grid needs num >= 2, got {num}.")
    axis = np.linspace(-1.0, 1.0, num, dtype=np.float32)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)


def q_spread(state: dqs_agent.TrainState, observation: np.ndarray,
             num: int = 21) -> float:
    """`max - min` of DQS's energy `Q(s, a)` (min over the critic ensemble,
    as its score targets use it) over `action_grid(num)` at one
    `observation [o]`."""
    grid = action_grid(num)
    if state.act_dim != grid.shape[1]:
        raise ValueError(f"q_spread needs a 2-D action space, got "
                         f"act_dim={state.act_dim}.")
    observation = jnp.asarray(observation, jnp.float32).reshape(1, -1)
    q = score_targets.energy_q(state.config, state.critic_params)(
        observation, jnp.asarray(grid)[None])
    return float(jnp.max(q) - jnp.min(q))


def describe(state: dqs_agent.TrainState) -> Dict[str, float]:
    """`{final_temperature, q_spread_at_start}` of a trained DQS state."""
    return {"final_temperature": float(state.temperature),
            "q_spread_at_start": q_spread(state, START_OBSERVATION)}
