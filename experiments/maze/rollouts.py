"""Stochastic evaluation episodes of a trained agent on the maze, `N` envs
in lockstep (one batched `act` call per step), with explicit seeds: env `i`
of the evaluation of training seed `s` is seeded with `episode_seeds(s,
N)[i]` (the same goals and starts for every method), the policy's noise
with `eval_key(s)` folded with the step index."""

from typing import Any, Callable, List, NamedTuple, Sequence

import jax
import numpy as np

from dqs_jax.envs import maze_geometry, registry

_EVAL_STREAM = 2  # Separates these seeds from the training run's.


class Episodes(NamedTuple):
    """`N` evaluation episodes of `T` steps.

    Attributes:
      positions: `[N, T + 1, 2]` float32 `(x, y)` of the ball, the reset
        position first; an episode that terminated early repeats its last
        position.
      goals: `[N]` int, the goal the env drew (0 top-left, 1 bottom-right).
      returns: `[N]` float64 sums of rewards.
      lengths: `[N]` int steps taken.
    """

    positions: np.ndarray
    goals: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray


def episode_seeds(seed: int, num: int) -> List[int]:
    """The `num` env seeds of the evaluation of training seed `seed`."""
    return [int(s) for s in np.random.SeedSequence(
        [seed, _EVAL_STREAM]).generate_state(num)]


def eval_key(seed: int) -> jax.Array:
    """The policy's PRNG key for the evaluation of training seed `seed`."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL_STREAM)


def make_envs(env_name: str, num: int) -> list:
    """`num` envs `env_name` (reseeded by `rollout`)."""
    return [registry.make_env(env_name, i) for i in range(num)]


def goal_index(goal_xy) -> int:
    """The goal cell (0 top-left, 1 bottom-right) nearest to `(x, y)`."""
    return int(np.argmin(np.linalg.norm(
        maze_geometry.GOAL_CENTRES - np.asarray(goal_xy), axis=-1)))


def rollout(envs: Sequence[Any], act_fn: Callable, state: Any,
            key: jax.Array, seeds: Sequence[int]) -> Episodes:
    """One stochastic episode per env, all envs stepping together.

    Args:
      envs: `N` maze envs (`registry.make_env("maze:...")`), all with the
        same `max_episode_steps` `T`.
      act_fn: `act(state, observations [N, o], key, deterministic=False)
        -> [N, 2]` (an agent's `act`, jitted or not).
      state: the agent's state.
      key: PRNG key; step `t` uses `fold_in(key, t)`.
      seeds: `N` env seeds, applied before the reset.
    """
    if len(envs) != len(seeds) or not envs:
        raise ValueError(f"{len(envs)} envs and {len(seeds)} seeds: need "
                         "the same number, at least 1.")
    steps = envs[0].max_episode_steps
    for env, seed in zip(envs, seeds):
        env.seed(seed)
    obs = np.stack([env.reset() for env in envs])
    goals = np.array([goal_index(env.goal) for env in envs])
    positions = np.empty((len(envs), steps + 1, 2), np.float32)
    positions[:, 0] = obs[:, :2]
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), np.int64)
    alive = np.ones(len(envs), bool)
    for t in range(steps):
        actions = np.asarray(act_fn(state, obs, jax.random.fold_in(key, t),
                                    deterministic=False))
        for i in np.flatnonzero(alive):
            result = envs[i].step(actions[i])
            obs[i] = result.observation
            returns[i] += result.reward
            lengths[i] += 1
            alive[i] = not (result.terminated or result.truncated)
        positions[:, t + 1] = obs[:, :2]
    return Episodes(positions, goals, returns, lengths)
