"""Registry of agents sharing the `init / update / act` interface.

An agent is a config dataclass plus three pure functions:
  `init(config, obs_dim, act_dim, key) -> state`,
  `update(state, batch) -> (state, metrics)`,
  `act(state, observations [N, o], key, deterministic=False) -> [N, d]`.
Training loops take an `Agent` and never name a specific algorithm.
"""

import dataclasses
from typing import Any, Callable, Dict, List


@dataclasses.dataclass(frozen=True)
class Agent:
    """One algorithm: its config class and its pure functions."""

    name: str
    config_cls: Any
    init: Callable[..., Any]
    update: Callable[..., Any]
    act: Callable[..., Any]

    def make_config(self, **overrides):
        """The config with the given fields changed (unknown names raise)."""
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{self.name} has no hyper-parameter(s) {unknown}; "
                             f"known: {sorted(known)}.")
        return self.config_cls(**overrides)


def _dqs() -> Agent:
    from dqs_jax import agent
    return Agent("dqs", agent.DQSConfig, agent.init, agent.update, agent.act)


def _sac() -> Agent:
    from dqs_jax.baselines import sac
    return Agent("sac", sac.SACConfig, sac.init, sac.update, sac.act)


_FACTORIES: Dict[str, Callable[[], Agent]] = {"dqs": _dqs, "sac": _sac}


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
