"""Config dicts built from the code's own defaults (one source of truth):
`RunSettings` for a run, each agent's config dataclass for its
hyper-parameters."""

import dataclasses
from typing import Any, Dict, Mapping, Optional

import ml_collections

from dqs_jax import agents

# RunSettings fields that a config file does not set (per invocation).
_NOT_IN_CONFIG = ("agent", "agent_config", "workdir", "overwrite")


def dataclass_dict(instance: Any, skip=()) -> Dict[str, Any]:
    """`{field: value}` of a dataclass instance (shallow)."""
    return {f.name: getattr(instance, f.name)
            for f in dataclasses.fields(instance) if f.name not in skip}


def experiment_config(agent: str, run: Optional[Dict[str, Any]] = None,
                      agent_overrides: Optional[Dict[str, Any]] = None
                      ) -> ml_collections.ConfigDict:
    """`{agent_name, run: RunSettings fields, agent: the agent's config
    fields}`: the code's defaults with `run` / `agent_overrides` applied."""
    from dqs_jax.training import RunSettings

    spec = agents.get_agent(agent)
    run_fields = dataclass_dict(RunSettings(), skip=_NOT_IN_CONFIG)
    unknown = set(run or {}) - set(run_fields)
    if unknown:
        raise ValueError(f"not run settings: {sorted(unknown)}")
    run_fields.update(run or {})
    agent_fields = dataclass_dict(spec.make_config(**(agent_overrides or {})))
    return ml_collections.ConfigDict(
        {"agent_name": agent, "run": run_fields, "agent": agent_fields})


def preset_config(presets: Mapping[str, Dict[str, Any]],
                  preset: Optional[str], default: str = "cpu"
                  ) -> ml_collections.ConfigDict:
    """A copy of `presets[preset or default]` as a ConfigDict; ValueError
    naming the choices for an unknown preset."""
    name = preset or default
    if name not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose from "
                         f"{sorted(presets)}.")
    return ml_collections.ConfigDict(dict(presets[name]))
