"""The settings of the maze experiment and its runs: the flag-free library
of `experiments.maze` (presets in `experiments/configs/maze.py`)."""

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional

from dqs_jax import agents
from dqs_jax import training
from experiments.configs.maze import FIELDS

ENV = "maze:two-goal"
_POSITIVE = ("num_seeds", "max_steps", "batch_size", "replay_size",
             "hidden_dim", "num_mc_samples", "eval_episodes",
             "train_eval_every", "train_eval_episodes")
_FLOATS = ("init_temperature", "final_temperature")


def resolve(base: Mapping[str, Any],
            overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """`base` (a preset or config dict) with the non-None `overrides`
    applied, validated; `agents` becomes a tuple of names.

    Raises:
      ValueError: a missing or unknown field, or a bad value (the message
        names the flag).
    """
    settings = dict(base)
    settings.update({k: v for k, v in (overrides or {}).items()
                     if v is not None})
    missing = sorted(set(FIELDS) - set(settings))
    unknown = sorted(set(settings) - set(FIELDS))
    if missing or unknown:
        raise ValueError(f"maze settings: missing {missing}, unknown "
                         f"{unknown}; the fields are {sorted(FIELDS)}.")
    if isinstance(settings["agents"], str):
        settings["agents"] = settings["agents"].split(",")
    settings["agents"] = tuple(settings["agents"])
    for name in _FLOATS:
        settings[name] = float(settings[name])
    validate(settings)
    return settings


def validate(s: Mapping[str, Any]) -> None:
    """Raises ValueError naming the first bad setting of `s`."""
    names = s["agents"]
    if not names:
        raise ValueError("--agents must name at least one agent.")
    unknown = [n for n in names if n not in agents.agent_names()]
    if unknown:
        raise ValueError(f"--agents: unknown {unknown}; choose from "
                         f"{agents.agent_names()}.")
    if len(set(names)) != len(names):
        raise ValueError(f"--agents lists an agent twice: {list(names)}.")
    on_policy = [n for n in names if agents.get_agent(n).on_policy]
    if on_policy:
        raise ValueError(
            f"--agents: {on_policy} on-policy; the maze experiment compares "
            "off-policy agents (replay, seed phase, one update per env "
            "step) with equal budgets.")
    for name in _POSITIVE:
        if int(s[name]) < 1:
            raise ValueError(f"--{name} must be >= 1, got {s[name]}.")
    if not 0 <= s["seed_steps"] < s["max_steps"]:
        raise ValueError(f"--seed_steps must be in [0, --max_steps) = [0, "
                         f"{s['max_steps']}), got {s['seed_steps']}.")
    for name in _FLOATS:
        if not s[name] > 0:
            raise ValueError(f"--{name} must be > 0, got {s[name]}.")
    for name in ("temperature_anneal_steps", "plot_episodes"):
        if s[name] < 0:
            raise ValueError(f"--{name} must be >= 0, got {s[name]}.")


def agent_config(method: str, s: Mapping[str, Any]):
    """`method`'s config: its own defaults, 2 hidden layers of
    `hidden_dim` units in every network; for DQS also K and the annealed
    temperature."""
    spec = agents.get_agent(method)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    hidden = (int(s["hidden_dim"]),) * 2
    overrides = {k: hidden for k in ("hidden_dims", "critic_hidden_dims")
                 if k in fields}
    if method == "dqs":
        overrides.update(
            num_mc_samples=s["num_mc_samples"],
            init_temperature=s["init_temperature"],
            final_temperature=s["final_temperature"],
            temperature_anneal_steps=s["temperature_anneal_steps"])
    return spec.make_config(**overrides)


def run_dir(workdir: str, method: str, seed: int) -> str:
    """`<workdir>/runs/<method>/seed_<seed>`."""
    return os.path.join(workdir, "runs", method, f"seed_{seed}")


def run_settings(method: str, seed: int, s: Mapping[str, Any],
                 workdir: str) -> training.RunSettings:
    """The `training.train` run of `method` and `seed` on the maze (resumable
    in its own `run_dir`)."""
    every = int(s["train_eval_every"])
    return training.RunSettings(
        env=ENV, agent=method, seed=seed, max_steps=s["max_steps"],
        seed_steps=s["seed_steps"], batch_size=s["batch_size"],
        replay_size=s["replay_size"], eval_every=every,
        eval_episodes=s["train_eval_episodes"], checkpoint_every=every,
        log_interval=every, workdir=run_dir(workdir, method, seed),
        agent_config=agent_config(method, s))
