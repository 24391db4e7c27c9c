"""`RunSettings`: everything that defines a training run (the flags of
`experiments.train`), validated, and its flat form recorded in config.json."""

import dataclasses
from typing import Any, Dict

import jax

from dqs_jax import agents
from dqs_jax.envs import registry

# Settings that may change between a run and its resumption.
RESUMABLE_CHANGES = ("max_steps", "log_interval", "shard_seeds")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """One run: env, agent (and its config), budget, evaluation, outputs.

    `seed_steps`, `replay_size` and `update_every` apply to off-policy
    agents; on-policy agents (PPO) act with their own policy from the first
    step.
    `num_seeds > 1` trains seeds `seed, ..., seed + num_seeds - 1` in one
    process (one vmapped device call per step for all of them).
    """

    env: str = "dmc:cheetah-run"
    agent: str = "dqs"
    seed: int = 0
    max_steps: int = 250_000
    seed_steps: int = 10_000
    # Env steps per learning step after the seed phase: 1 (the paper's) is
    # one update per env step; N > 1 updates on every N-th step only (a
    # replay ratio of 1/N: more experience for the same number of updates).
    update_every: int = 1
    batch_size: int = 256
    replay_size: int = 250_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 10_000
    log_interval: int = 1_000
    workdir: str = "runs/default"
    overwrite: bool = False
    agent_config: Any = None  # The agent's config dataclass; None: defaults.
    num_seeds: int = 1  # > 1: seeds seed, ..., seed + N - 1 in one process.
    shard_seeds: bool = False  # Spread the seeds over all devices.
    # Track the run in Weights & Biases (`tracking.WandbSettings`); not
    # part of what the run computes, so it may change on resume.
    wandb: Any = None

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting."""
        registry.validate_env_name(self.env)
        agents.get_agent(self.agent)
        for name in ("max_steps", "update_every", "batch_size", "replay_size",
                     "eval_every", "eval_episodes", "checkpoint_every",
                     "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got "
                                 f"{getattr(self, name)}.")
        if self.seed_steps < 0:
            raise ValueError(f"--seed_steps must be >= 0, got {self.seed_steps}.")
        if not self.workdir:
            raise ValueError("--workdir must not be empty.")
        if self.num_seeds < 1:
            raise ValueError(
                f"--num_seeds must be a positive integer, got {self.num_seeds}.")
        if self.shard_seeds and self.num_seeds == 1:
            raise ValueError("--shard_seeds needs --num_seeds > 1.")
        if self.shard_seeds and self.num_seeds % jax.device_count():
            raise ValueError(
                f"--shard_seeds: --num_seeds={self.num_seeds} is not "
                f"divisible by the {jax.device_count()} devices.")

    def resolved_agent_config(self):
        if self.agent_config is not None:
            return self.agent_config
        return agents.get_agent(self.agent).make_config()

    def flat_config(self) -> Dict[str, Any]:
        """Run settings and agent hyper-parameters in one flat dict
        (`num_seeds`, `shard_seeds` and `update_every` only where not
        their defaults, so that workdirs of earlier versions still
        resume)."""
        run = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("agent_config", "workdir", "overwrite",
                                 "wandb")}
        if self.num_seeds == 1:
            del run["num_seeds"]
        if not self.shard_seeds:
            del run["shard_seeds"]
        if self.update_every == 1:
            del run["update_every"]
        hyper = dataclasses.asdict(self.resolved_agent_config())
        return {**run, **hyper}


def agent_config_from_flat(flat: Dict[str, Any]):
    """The agent config recorded in a run's config.json `flat_config`."""
    spec = agents.get_agent(flat.get("agent", "dqs"))
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    return spec.make_config(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in flat.items() if k in fields})

