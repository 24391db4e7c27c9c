"""DDPG, the "OurDDPG" variant of the TD3 repository (Fujimoto et al., 2018,
github.com/sfujim/TD3 `OurDDPG.py`), with the DQS agent's interface.

Per `update` (one per environment step; shared code in
`dqs_jax.baselines.deterministic`): critic step on
`y = r + gamma * m * Qbar(s', mu'(s'))` (no target smoothing), then one
actor step on `-mean_B Q(s, mu(s))` against the updated critic and
Polyak updates of both targets, every update (no delay). Acting:
`clip(mu(s) + N(0, (0.1 max_action)^2), +-max_action)`; evaluation `mu(s)`.

`num_critics` is 1 by default (the original). With `E > 1` critics (the DQS
paper's double-Q for every method) the target uses `min_j Qbar_j` and the
actor maximises `Q_1` only, as TD3 does: DDPG with `E = 2` is then exactly
TD3 without target smoothing and without delay.
"""

import dataclasses
from typing import ClassVar, Tuple

import jax

from dqs_jax.baselines import deterministic as base
from dqs_jax.types import Batch, Metrics, PRNGKey

DDPGState = base.DeterministicState


@dataclasses.dataclass(frozen=True)
class DDPGConfig(base.DeterministicConfig):
    """DDPG hyper-parameters; defaults are OurDDPG's (2x256 ReLU, Adam 3e-4
    for both nets, tau 0.005, exploration N(0, 0.1^2) times `max_action`,
    one critic). The class constants below are not hyper-parameters (not
    fields, hence not flags): they switch TD3's additions off."""

    num_critics: int = 1
    policy_delay: ClassVar[int] = 1
    target_noise: ClassVar[float] = 0.0
    target_noise_clip: ClassVar[float] = 0.0


def _check(config) -> None:
    if not isinstance(config, DDPGConfig):
        raise TypeError(
            f"ddpg needs a DDPGConfig, got {type(config).__name__}.")


def init(config: DDPGConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> DDPGState:
    """Fresh actor, critic(s) and equal targets, `step == 0`; see
    `base.init`."""
    _check(config)
    return base.init(config, obs_dim, act_dim, key)


def update(state: DDPGState, batch: Batch) -> Tuple[DDPGState, Metrics]:
    """One DDPG update on a `Batch` of `B` transitions (`[B, o]`, `[B, d]`,
    `[B]`, `[B]`, `[B, o]`); see `deterministic.update`.

    Returns:
      `(new_state, metrics)`: `critic_loss`, `actor_loss`, `q_mean`,
      `target_q_mean`, `critic_grad_norm`.
    """
    _check(state.config)
    return base.update(state, batch)


def act(state: DDPGState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """`[N, o]` -> `[N, d]` actions in `[-max_action, max_action]`: `mu(s)`
    if `deterministic` (key unused), else `mu(s)` plus clipped Gaussian
    exploration noise; see `deterministic.act`."""
    return base.act(state, observations, key, deterministic)
