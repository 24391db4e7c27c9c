"""What the stateful envs of the online loop (`dmc`, `maze`) return."""

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
