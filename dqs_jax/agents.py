"""Registry of agents sharing the `init / update / act` interface.

An agent is a config dataclass plus pure functions:
  `init(config, obs_dim, act_dim, key) -> state`,
  `update(state, data) -> (state, metrics)`, where `data` is a replay `Batch`
    (off-policy agents) or a `Rollout` (on-policy agents),
  `act(state, observations [N, o], key, deterministic=False) -> [N, d]`,
    actions inside the action box `[-1, 1]^d`.
On-policy agents (`on_policy=True`) also give
  `explore(state, observations [N, o], key) -> (env_actions [N, d],
    PolicyStep)`: the actions to send to the environment (inside the box) and
    what the `Rollout` stores of them (raw actions, log-probs, values);
  their config has a `rollout_length` field: steps collected per `update`.
Agents that rewrite their own replay data (DIPO) give
  `replay_update(state, buffer, key, batch_size) -> (state, buffer, metrics)`,
    which the loops call instead of `sample` + `update` (see `train_step`).
Training loops take an `Agent` and never name a specific algorithm.
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from dqs_jax import replay
from dqs_jax.types import Metrics, PRNGKey


@dataclasses.dataclass(frozen=True)
class Agent:
    """One algorithm: its config class and its pure functions."""

    name: str
    config_cls: Any
    init: Callable[..., Any]
    update: Callable[..., Any]
    act: Callable[..., Any]
    on_policy: bool = False
    explore: Optional[Callable[..., Any]] = None
    replay_update: Optional[Callable[..., Any]] = None

    def __post_init__(self):
        if self.on_policy and self.explore is None:
            raise ValueError(f"on-policy agent {self.name!r} needs `explore`.")
        if self.on_policy and self.replay_update is not None:
            raise ValueError(f"on-policy agent {self.name!r} has no replay.")

    def make_config(self, **overrides):
        """The config with the given fields changed (unknown names raise)."""
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{self.name} has no hyper-parameter(s) {unknown}; "
                             f"known: {sorted(known)}.")
        return self.config_cls(**overrides)


def train_step(agent: Agent, state: Any, buffer: replay.ReplayBuffer,
               key: PRNGKey, batch_size: int
               ) -> Tuple[Any, replay.ReplayBuffer, Metrics]:
    """One off-policy learning step on the replay buffer (pure, jit-able):
    `agent.replay_update` if the agent has one, else `update` on a uniform
    `replay.sample(buffer, key, batch_size)` (the buffer is returned as is).

    Returns:
      `(state, buffer, metrics)`.
    """
    if agent.on_policy:
        raise ValueError(f"{agent.name} is on-policy: it learns from Rollouts.")
    if agent.replay_update is not None:
        return agent.replay_update(state, buffer, key, batch_size)
    state, metrics = agent.update(state, replay.sample(buffer, key,
                                                       batch_size))
    return state, buffer, metrics


def _from_module(name: str, module: str, config_cls: str, **extra) -> Agent:
    """An `Agent` built from `module`'s `init / update / act` (and, where
    given as names in `extra`, its other functions)."""
    mod = importlib.import_module(module)
    options = {k: (getattr(mod, v) if isinstance(v, str) else v)
               for k, v in extra.items()}
    return Agent(name, getattr(mod, config_cls), mod.init, mod.update,
                 mod.act, **options)


_FACTORIES: Dict[str, Callable[[], Agent]] = {
    "dqs": lambda: _from_module("dqs", "dqs_jax.agent", "DQSConfig"),
    "sac": lambda: _from_module("sac", "dqs_jax.baselines.sac", "SACConfig"),
    "td3": lambda: _from_module("td3", "dqs_jax.baselines.td3", "TD3Config"),
    "ddpg": lambda: _from_module("ddpg", "dqs_jax.baselines.ddpg",
                                 "DDPGConfig"),
    "dipo": lambda: _from_module("dipo", "dqs_jax.baselines.dipo", "DIPOConfig",
                                 replay_update="replay_update"),
    "ppo": lambda: _from_module("ppo", "dqs_jax.baselines.ppo", "PPOConfig",
                                on_policy=True, explore="explore"),
    "qsm": lambda: _from_module("qsm", "dqs_jax.baselines.qsm", "QSMConfig"),
    "dacer": lambda: _from_module("dacer", "dqs_jax.baselines.dacer",
                                  "DACERConfig"),
}


def register_agent(name: str, factory: Callable[[], Agent]) -> None:
    """Makes `get_agent(name)` return `factory()`."""
    _FACTORIES[name] = factory


def agent_names() -> List[str]:
    return sorted(_FACTORIES)


def get_agent(name: str) -> Agent:
    """The agent called `name`; ValueError listing the known ones otherwise."""
    if name not in _FACTORIES:
        raise ValueError(f"Unknown agent {name!r}; choose one of "
                         f"{agent_names()}.")
    return _FACTORIES[name]()
