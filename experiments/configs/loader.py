"""Config files and presets: one mechanism for every binary.

A config file is a Python file with `get_config(arg)` returning an
`ml_collections.ConfigDict` (the form `--config=<file>[:arg]` loads, with
`--config.<field>=...` overrides). A preset is such a file in
`experiments/configs/<kind>/<name>.py` (kinds: `sweeps`, `gmm`, `maze`),
named on the command line as `--preset=<name>`; its fields are those of the
binary's settings dataclass, which holds the defaults and validates.
"""

import dataclasses
import importlib.util
import os
from typing import Any, Dict, List, Optional

import ml_collections

from dqs_jax import agents, training

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


def preset_names(kind: str) -> List[str]:
    """The presets of `kind`: the file names in `configs/<kind>/`."""
    folder = os.path.join(CONFIG_DIR, kind)
    return sorted(name[:-3] for name in os.listdir(folder)
                  if name.endswith(".py") and not name.startswith("_"))


def preset_path(kind: str, name: str) -> str:
    """The file of preset `name` of `kind`; ValueError naming the presets."""
    if name not in preset_names(kind):
        raise ValueError(f"unknown preset {name!r}; choose from "
                         f"{preset_names(kind)} (files in "
                         f"experiments/configs/{kind}/).")
    return os.path.join(CONFIG_DIR, kind, f"{name}.py")


def load_file(path: str, arg: Optional[str] = None
              ) -> ml_collections.ConfigDict:
    """`get_config(arg)` (or `get_config()`) of the config file `path`;
    ValueError naming the file when it is missing or has no `get_config`."""
    if not os.path.isfile(path):
        raise ValueError(f"config file {path} not found.")
    spec = importlib.util.spec_from_file_location(
        "_config_" + os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} defines no get_config().")
    return module.get_config() if arg is None else module.get_config(arg)


def load_preset(kind: str, name: str) -> Dict[str, Any]:
    """The fields preset `name` of `kind` sets, as plain Python values
    (lists as tuples)."""
    return plain(load_file(preset_path(kind, name)).to_dict())


def plain(value: Any) -> Any:
    """`value` with lists turned into tuples, recursively (ConfigDicts hold
    tuples as lists after a round trip)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value


def as_config(settings: Any) -> ml_collections.ConfigDict:
    """A settings dataclass as the ConfigDict a config file returns."""
    return ml_collections.ConfigDict(dataclasses.asdict(settings))


# RunSettings fields that a config file does not set (per invocation).
_NOT_IN_CONFIG = ("agent", "agent_config", "workdir", "overwrite", "wandb")


def dataclass_dict(instance: Any, skip=()) -> Dict[str, Any]:
    """`{field: value}` of a dataclass instance (shallow)."""
    return {f.name: getattr(instance, f.name)
            for f in dataclasses.fields(instance) if f.name not in skip}


def experiment_config(agent: str, run: Optional[Dict[str, Any]] = None,
                      agent_overrides: Optional[Dict[str, Any]] = None
                      ) -> ml_collections.ConfigDict:
    """`{agent_name, run: RunSettings fields, agent: the agent's config
    fields}`: the code's defaults with `run` / `agent_overrides` applied."""
    spec = agents.get_agent(agent)
    run_fields = dataclass_dict(training.RunSettings(), skip=_NOT_IN_CONFIG)
    unknown = set(run or {}) - set(run_fields)
    if unknown:
        raise ValueError(f"not run settings: {sorted(unknown)}")
    run_fields.update(run or {})
    agent_fields = dataclass_dict(spec.make_config(**(agent_overrides or {})))
    return ml_collections.ConfigDict(
        {"agent_name": agent, "run": run_fields, "agent": agent_fields})


def check_config_argv(argv: List[str], flag: str = "config") -> None:
    """Loads the file of `--<flag>=<file>[:arg]` in `argv` once before absl
    does, so that a missing or broken file ends in one line naming it and
    its problem (SystemExit 1) instead of a traceback at flag parsing."""
    for i, item in enumerate(argv[1:], 1):
        if item == f"--{flag}" and i + 1 < len(argv):
            value = argv[i + 1]
        elif item.startswith(f"--{flag}="):
            value = item.split("=", 1)[1]
        else:
            continue
        path, _, arg = value.partition(":")
        try:
            load_file(path, arg or None)
        except Exception as e:  # pylint: disable=broad-except
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise SystemExit(f"ERROR: --{flag}={value}: {type(e).__name__}"
                             f"{': ' + first if first else ''}") from None
