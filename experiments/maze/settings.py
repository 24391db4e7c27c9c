"""The settings of the maze experiment (`MazeSettings`) and of its runs
(presets: config files in `experiments/configs/maze/`)."""

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from dqs_jax import agents
from dqs_jax import training

ENV = "maze:two-goal"
_POSITIVE = ("num_seeds", "max_steps", "update_every", "batch_size",
             "replay_size", "hidden_dim", "num_mc_samples", "eval_episodes",
             "train_eval_every", "train_eval_episodes")
_FLOATS = ("init_temperature", "final_temperature")


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
            "off-policy agents (replay, seed phase, updates between env "
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


def _field(default, help_text: str):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class MazeSettings:
    """What a maze experiment runs; the defaults are the `cpu` preset (2
    CPU cores): DQS and the four baselines of the paper's figure, 100k env
    steps with one update every 4 (22.5k updates after 10k seed steps),
    DQS's temperature annealed 10 -> 0.1 over 15k updates, then held
    (docs/results/maze.md says how this was chosen). Presets are config
    files in `experiments/configs/maze/`. Validated on construction
    (ValueError naming the flag)."""

    agents: Tuple[str, ...] = _field(
        ("dqs", "sac", "qsm", "dacer", "dipo"), "Agents to train (off-policy only), with equal "
        "budgets.")
    num_seeds: int = _field(3, "Seeds per agent: 0, 1, ..., num_seeds - 1.")
    max_steps: int = _field(100_000, "Environment steps per run.")
    seed_steps: int = _field(10_000, "Initial uniform-random steps (no "
                             "updates) per run.")
    update_every: int = _field(4, "Env steps per learning step after the "
                               "seed phase (1: one update per step).")
    batch_size: int = _field(128, "Transitions per update.")
    replay_size: int = _field(100_000, "Replay buffer capacity.")
    hidden_dim: int = _field(128, "Width of the 2 hidden layers of every "
                             "actor and critic.")
    num_mc_samples: int = _field(32, "DQS's K, Monte Carlo samples of the "
                                 "score estimate.")
    init_temperature: float = _field(10.0, "DQS's temperature at update 0.")
    final_temperature: float = _field(0.1, "DQS's temperature after "
                                      "temperature_anneal_steps.")
    temperature_anneal_steps: int = _field(
        15_000, "Updates over which DQS's temperature goes log-linearly "
        "from init to final (0: constant init_temperature).")
    eval_episodes: int = _field(100, "Stochastic evaluation episodes per "
                                "agent and seed after training.")
    plot_episodes: int = _field(30, "Trajectories drawn per panel (seed "
                                "0's first ones).")
    train_eval_every: int = _field(
        10_000, "Env steps between the runs' deterministic evaluations, "
        "checkpoints and progress lines.")
    train_eval_episodes: int = _field(4, "Episodes per deterministic "
                                      "evaluation during training.")

    def __post_init__(self):
        validate(dataclasses.asdict(self))


FIELDS = {f.name: f.metadata["help"] for f in dataclasses.fields(MazeSettings)}


def resolve(base: Mapping[str, Any],
            overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """`base` (a preset or config dict) with the non-None `overrides`
    applied, validated by `MazeSettings`; `agents` becomes a tuple of names.

    Raises:
      ValueError: an unknown field, or a bad value (the message names the
        flag).
    """
    settings = dict(base)
    settings.update({k: v for k, v in (overrides or {}).items()
                     if v is not None})
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise ValueError(f"maze settings: unknown {unknown}; the fields are "
                         f"{sorted(FIELDS)}.")
    if isinstance(settings.get("agents"), str):
        settings["agents"] = settings["agents"].split(",")
    if "agents" in settings:
        settings["agents"] = tuple(settings["agents"])
    for name in _FLOATS:
        if name in settings:
            settings[name] = float(settings[name])
    return dataclasses.asdict(MazeSettings(**settings))


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
        seed_steps=s["seed_steps"], update_every=s["update_every"],
        batch_size=s["batch_size"],
        replay_size=s["replay_size"], eval_every=every,
        eval_episodes=s["train_eval_episodes"], checkpoint_every=every,
        log_interval=every, workdir=run_dir(workdir, method, seed),
        agent_config=agent_config(method, s))
