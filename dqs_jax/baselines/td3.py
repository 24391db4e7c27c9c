"""TD3 (Fujimoto et al., 2018) with the DQS agent's `init / update / act`.

Follows the official code (github.com/sfujim/TD3, `TD3.py` and `main.py`),
not the paper's older settings; the update is shared with DDPG in
`dqs_jax.baselines.deterministic`. Per `update` (one per environment step):

- Critic: twin critics regressed on
  `y = r + gamma * m * min_j Qbar_j(s', a')`, with the smoothed target action
  `a' = clip(mu'(s') + clip(N(0, (0.2 max_action)^2), +-0.5 max_action),
  +-max_action)`; loss `sum_j mean_B (Q_j - y)^2`.
- Actor and targets: when the 1-based update count is a multiple of
  `policy_delay` (2: the 2nd, 4th, ... update, as `total_it % policy_freq`
  in the official code), one step on `-mean_B Q_1(s, mu(s))` (critic 1 only,
  not the min; against the critic just updated), then Polyak updates of the
  actor and critic targets. On the other updates they stay unchanged.
- Acting: `clip(mu(s) + N(0, (0.1 max_action)^2), +-max_action)`;
  evaluation `mu(s)`.
"""

import dataclasses
from typing import Tuple

import jax

from dqs_jax.baselines import deterministic as base
from dqs_jax.types import Batch, Metrics, PRNGKey

TD3State = base.DeterministicState


@dataclasses.dataclass(frozen=True)
class TD3Config(base.DeterministicConfig):
    """TD3 hyper-parameters; defaults are the official code's (2x256 ReLU,
    Adam 3e-4, tau 0.005, delay 2, target noise 0.2 clipped at 0.5,
    exploration 0.1, noise scales times `max_action`, twin critics)."""

    policy_delay: int = 2  # actor + target updates every d-th update
    target_noise: float = 0.2  # std of the target smoothing / max_action
    target_noise_clip: float = 0.5  # its bound / max_action

    def __post_init__(self):
        super().__post_init__()
        self._check_schedule()


def _check(config) -> None:
    if not isinstance(config, TD3Config):
        raise TypeError(f"td3 needs a TD3Config, got {type(config).__name__}.")


def init(config: TD3Config, obs_dim: int, act_dim: int,
         key: PRNGKey) -> TD3State:
    """Fresh actor, critics (`[E, ...]` stacked) and equal targets,
    `step == 0`; see `deterministic.init`."""
    _check(config)
    return base.init(config, obs_dim, act_dim, key)


def update(state: TD3State, batch: Batch) -> Tuple[TD3State, Metrics]:
    """One TD3 update on a `Batch` of `B` transitions (`[B, o]`, `[B, d]`,
    `[B]`, `[B]`, `[B, o]`); see `deterministic.update`.

    Returns:
      `(new_state, metrics)`: `critic_loss`, `actor_loss` (the actor
      objective on this batch every update; a step is taken only on delayed
      updates), `q_mean`, `target_q_mean`, `critic_grad_norm`.
    """
    _check(state.config)
    return base.update(state, batch)


def act(state: TD3State, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """`[N, o]` -> `[N, d]` actions in `[-max_action, max_action]`: `mu(s)`
    if `deterministic` (key unused), else `mu(s)` plus clipped Gaussian
    exploration noise; see `deterministic.act`."""
    return base.act(state, observations, key, deterministic)
