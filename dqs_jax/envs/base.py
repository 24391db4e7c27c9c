"""What the stateful envs of the online loop (`dmc`, `maze`) return, and
the input checks they share."""

from typing import NamedTuple

import numpy as np


class StepResult(NamedTuple):
    """The outcome of one `step` of a stateful env.

    Attributes:
      observation: `[o]` float32, the observation after the step.
      reward: the reward of the transition.
      discount: 0.0 only at true termination; 1.0 otherwise (including a
        time-limit truncation).
      terminated: the episode ended in a terminal state (discount 0).
      truncated: the episode ended at the time limit (and not terminated).
    """

    observation: np.ndarray
    reward: float
    discount: float
    terminated: bool
    truncated: bool


def checked_action(name: str, action, size: int) -> np.ndarray:
    """`action` as `[size]` float64 clipped to `[-1, 1]`; ValueError naming
    the env `name` on another shape."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (size,):
        raise ValueError(f"{name}: expected an action of shape ({size},), "
                         f"got {action.shape}.")
    return np.clip(action, -1.0, 1.0)


def check_in_episode(name: str, in_episode: bool) -> None:
    """RuntimeError unless an episode of the env `name` is in progress."""
    if not in_episode:
        raise RuntimeError(
            f"{name}: step() called with no episode in progress; call "
            "reset() first (the previous episode ended or the environment "
            "was never reset).")
