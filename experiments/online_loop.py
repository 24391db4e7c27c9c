"""The environment loop of `experiments.train`: act, step, learn, evaluate,
log and checkpoint, with exact resume from the last checkpoint.

All learning lives in `dqs_jax` (the agent's pure functions) and in
`experiments.learners` (replay or rollout storage); this module orchestrates
the phases of a run (`_Run`: restore, step, end of episode, evaluate,
progress, checkpoint) and writes files through `experiments.run_outputs`;
`experiments.recovery` turns SIGTERM/SIGINT into a checkpoint and a clean
stop, and skips damaged checkpoints on resume.
"""

import dataclasses
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from dqs_jax import agents
from dqs_jax.checkpoint import Checkpointer
from dqs_jax.envs import registry
from dqs_jax.types import Batch
from experiments import learners, recovery, run_io
from experiments.loop_state import LoopState, evaluate, evaluation_seed
from experiments.recovery import NoIntactCheckpointError
from experiments.run_outputs import (ConfigMismatchError, Outputs,
                                     format_duration, format_return,
                                     prepare_workdir)

__all__ = ["ConfigMismatchError", "NoIntactCheckpointError",
           "NonFiniteLossError", "RunSettings", "LoopState", "evaluate",
           "evaluation_seed", "train"]

EVAL_KEY = learners.EVAL_KEY
# Flags that may change between a run and its resumption.
RESUMABLE_CHANGES = ("max_steps", "log_interval", "shard_seeds")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that defines a run (the absl flags of `experiments.train`).

    `seed_steps` and `replay_size` apply to off-policy agents; on-policy
    agents (PPO) act with their own policy from the first step.
    """

    env: str = "dmc:cheetah-run"
    agent: str = "dqs"
    seed: int = 0
    max_steps: int = 250_000
    seed_steps: int = 10_000
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

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting."""
        registry.validate_env_name(self.env)
        agents.get_agent(self.agent)
        for name in ("max_steps", "batch_size", "replay_size", "eval_every",
                     "eval_episodes", "checkpoint_every", "log_interval"):
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
        (`num_seeds` and `shard_seeds` only where not 1 / False, so that
        single-seed workdirs of earlier versions still resume)."""
        run = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("agent_config", "workdir", "overwrite")}
        if self.num_seeds == 1:
            del run["num_seeds"]
        if not self.shard_seeds:
            del run["shard_seeds"]
        hyper = dataclasses.asdict(self.resolved_agent_config())
        return {**run, **hyper}


def agent_config_from_flat(flat: Dict[str, Any]):
    """The agent config recorded in a run's config.json `flat_config`."""
    spec = agents.get_agent(flat.get("agent", "dqs"))
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    return spec.make_config(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in flat.items() if k in fields})


def checkpoint_tree(state: Any, learner: Any, loop: LoopState,
                    env: Any) -> Dict[str, Any]:
    """What a single-seed run checkpoints: agent, replay or rollout, loop
    and env state (also the restore template)."""
    return {"agent": state, learner.data_name: learner.data,
            "loop": loop.to_tree(), "env": env.get_state()}


def new_loop_state(observation: np.ndarray, key: jax.Array,
                   metric_names: List[str]) -> LoopState:
    """The loop state of a run's first step."""
    return LoopState(
        env_step=0, episode=0, episode_return=0.0, episode_length=0,
        observation=observation, key=np.asarray(key), num_updates=0,
        metric_sums={k: 0.0 for k in metric_names}, metric_count=0,
        last_episode_return=float("nan"), last_eval_return=float("nan"),
        wall_time=0.0)


def prepare_run_workdir(settings: RunSettings, argv: Optional[List[str]]
                        ) -> str:
    """Creates the workdir, writes config.json; returns its absolute path."""
    prepare_workdir(settings.workdir, {
        "flat_config": settings.flat_config(),
        "agent_config_class": type(settings.resolved_agent_config()).__name__,
        "versions": run_io.versions(),
        "command": argv,
    }, settings.overwrite, RESUMABLE_CHANGES)
    return os.path.abspath(settings.workdir)


class _Run:
    """One session of a run: its environments, agent, learner and outputs.

    `experiments.seeds_loop` subclasses it for N seeds; `run` (the phases'
    order, preemption) and `checkpoint` serve both.
    """

    def __init__(self, settings: RunSettings, argv: Optional[List[str]]):
        self.settings = settings
        self.spec = agents.get_agent(settings.agent)
        agent_config = settings.resolved_agent_config()
        self.workdir = prepare_run_workdir(settings, argv)
        self.env = registry.make_env(settings.env, settings.seed)
        self.eval_env = registry.make_env(settings.env, settings.seed + 1)
        self.obs_dim = self.env.observation_size
        self.act_dim = self.env.action_size
        agent_key, loop_key = jax.random.split(
            jax.random.PRNGKey(settings.seed))
        self.state = self.spec.init(agent_config, self.obs_dim, self.act_dim,
                                    agent_key)
        self.learner = learners.make_learner(
            self.spec, agent_config, self.obs_dim, self.act_dim,
            settings.replay_size, settings.batch_size, settings.seed_steps)
        self.loop = new_loop_state(self.env.reset(), loop_key,
                                   self.learner.metric_names(self.state))
        self.checkpointer = Checkpointer(os.path.join(self.workdir,
                                                      "checkpoints"))
        resume_step = self._restore()
        self.outputs = Outputs(self.workdir,
                               f"{settings.agent} on {settings.env}",
                               resume_step)
        self.start_session()

    def start_session(self) -> None:
        self.session_start = time.time()
        self.interval = [self.session_start, 0, 0]  # time, steps, updates
        self.row = [self.session_start, 0, 0]

    @property
    def loops(self) -> List[LoopState]:
        """The loop state of each seed."""
        return [self.loop]

    def _tree(self) -> Dict[str, Any]:
        return checkpoint_tree(self.state, self.learner, self.loop, self.env)

    def _restore(self) -> Optional[int]:
        """Restores the newest intact checkpoint; its step, or None."""
        found = recovery.restore_newest_intact(self.checkpointer, self._tree())
        if found is None:
            return None
        step, restored = found
        self.state = restored["agent"]
        self.learner.restore(restored[self.learner.data_name])
        self.loop = LoopState.from_tree(restored["loop"])
        self.env.set_state(restored["env"])
        print(f"resuming from step {step} ({self.workdir})", flush=True)
        return step

    def close_outputs(self) -> None:
        self.outputs.close()

    def _learn_failed(self, bad: Dict[str, float], where: str = ""
                      ) -> NonFiniteLossError:
        self.close_outputs()
        last = self.checkpointer.latest_step()
        loop = self.loops[0]
        return NonFiniteLossError(
            f"Non-finite loss{where} at env step {loop.env_step + 1} (update "
            f"{loop.num_updates + 1}): "
            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            + ". Stopping. The last good checkpoint is "
            + (self.checkpointer.path(last) if last is not None else
               "none (no checkpoint was written yet)") + ".")

    def step(self) -> None:
        """One env step, whatever learning it triggers, and the episode's
        end if it ends."""
        loop = self.loop
        key, act_key, update_key = jax.random.split(loop.key, 3)
        loop.key = np.asarray(key)
        action, extras = self.learner.act(self.state, loop.observation,
                                          act_key, loop.env_step)
        result = self.env.step(action)
        done = bool(result.terminated or result.truncated)
        transition = Batch(loop.observation, action,
                           np.float32(result.reward),
                           np.float32(result.discount), result.observation)
        self.state, metrics = self.learner.observe(
            self.state, transition, done, extras, update_key, loop.env_step)
        if metrics is not None:
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
            if bad:
                raise self._learn_failed(bad)
            loop.add_metrics(metrics)
            self.interval[2] += 1
            self.row[2] += 1
        loop.advance(result.reward, result.observation)
        self.interval[1] += 1
        self.row[1] += 1
        if done:
            self.end_episode(time.time())

    def end_episode(self, now: float) -> None:
        """Writes the train row of the finished episode and resets the env."""
        elapsed = max(now - self.row[0], 1e-9)
        rates = dict(env_steps_per_sec=self.row[1] / elapsed,
                     updates_per_sec=self.row[2] / elapsed)
        self.outputs.write(self.loop.end_episode(
            rates, self.loop.wall_time + now - self.session_start,
            self.env.reset()))
        self.row = [now, 0, 0]

    def evaluate(self) -> None:
        step, start = self.loop.env_step, time.time()
        self.eval_env.seed(evaluation_seed(self.settings.seed, step))
        returns = evaluate(self.eval_env, self.learner.act_fn, self.state,
                           self.settings.eval_episodes)
        now = time.time()
        self.outputs.write(self.loop.eval_row(
            returns, now - start, self.loop.wall_time + now - self.session_start))
        self.outputs.plot()
        print(f"[eval] step {step}: return {np.mean(returns):.1f} ± "
              f"{np.std(returns):.1f} over {len(returns)} episodes",
              flush=True)

    def log_progress(self, now: float) -> None:
        loop, max_steps = self.loop, self.settings.max_steps
        elapsed = max(now - self.interval[0], 1e-9)
        rate = self.interval[1] / elapsed
        print(f"step {loop.env_step}/{max_steps} | episode {loop.episode} "
              f"| updates {loop.num_updates} | last return "
              f"{format_return(loop.last_episode_return)} | eval "
              f"{format_return(loop.last_eval_return)} | {rate:.1f} steps/s, "
              f"{self.interval[2] / elapsed:.1f} updates/s | ETA "
              f"{format_duration((max_steps - loop.env_step) / rate)}",
              flush=True)
        self.interval = [now, 0, 0]

    def checkpoint(self) -> None:
        saved = [loop.wall_time for loop in self.loops]
        elapsed = time.time() - self.session_start
        for loop, wall in zip(self.loops, saved):
            loop.wall_time = wall + elapsed
        self.checkpointer.save(self.loops[0].env_step, self._tree())
        for loop, wall in zip(self.loops, saved):
            loop.wall_time = wall

    def summary(self, stopped_by: Optional[int], curve: Optional[str]
                ) -> Dict[str, Any]:
        """The summary `train` returns."""
        evals = [r for r in self.outputs.log.rows() if r["kind"] == "eval"]
        return {
            "workdir": self.workdir,
            "env_steps": self.loop.env_step,
            "num_updates": self.loop.num_updates,
            "final_eval_return": (evals[-1]["eval_return_mean"] if evals
                                  else None),
            "metrics": self.outputs.log.path,
            "learning_curve": curve,
            "checkpoints": self.checkpointer.directory,
            "state": self.state,
            "stopped_by": stopped_by,
        }

    def finish(self, stopped: bool) -> Optional[str]:
        """Final plot (unless stopped) and closed outputs; the plot's path."""
        curve = None if stopped else self.outputs.plot()
        self.outputs.close()
        return curve

    def run(self, stop: recovery.StopSignals) -> Dict[str, Any]:
        """Steps to `max_steps`, or until `stop` is requested: then after the
        current step, checkpoints it like a periodic checkpoint and prints
        one line. Returns the summary of `train`."""
        s, first = self.settings, self.loops[0]
        seeds = (f" x {s.num_seeds} seeds ({s.seed}..{s.seed + s.num_seeds - 1})"
                 if s.num_seeds > 1 else "")
        if first.env_step >= s.max_steps:
            print(f"Run already at step {first.env_step} >= --max_steps="
                  f"{s.max_steps}; raise --max_steps to continue.")
        else:
            print(f"Training {s.agent} on {s.env}{seeds} (obs {self.obs_dim}, "
                  f"act {self.act_dim}) from step {first.env_step} to "
                  f"{s.max_steps}; outputs in {self.workdir}", flush=True)
            if self.spec.on_policy and s.seed_steps:
                print(f"Note: {s.agent} is on-policy; --seed_steps does not "
                      "apply (it acts with its policy from the first step).",
                      flush=True)
        while first.env_step < s.max_steps and not stop.requested:
            self.step()
            step = first.env_step
            if step % s.eval_every == 0 or step == s.max_steps:
                self.evaluate()
            if step % s.log_interval == 0:
                self.log_progress(time.time())
            if step % s.checkpoint_every == 0 or step == s.max_steps:
                self.checkpoint()
        # A stop request after the last step changes nothing: the run is done.
        stopped_by = (stop.signum if first.env_step < s.max_steps
                      else None)
        if stopped_by is not None:
            if self.checkpointer.latest_step() != first.env_step:
                self.checkpoint()
            print(f"preempted at step {first.env_step}; rerun the same "
                  "command to resume", file=sys.stderr, flush=True)
        curve = self.finish(stopped_by is not None)
        self.checkpointer.close()
        return self.summary(stopped_by, curve)


def train(settings: RunSettings, argv: Optional[List[str]] = None
          ) -> Dict[str, Any]:
    """Runs (or resumes) training; returns a summary of the final state.

    While it runs (main thread only), SIGTERM and SIGINT stop it after the
    current environment step with a checkpoint of that step; the summary's
    `stopped_by` is then the signal's number (None for a run that reached
    `max_steps`). The previous signal handlers are restored on return.

    Raises:
      ValueError: bad settings (raised before any work).
      ConfigMismatchError: the workdir holds a different run.
      NoIntactCheckpointError: every checkpoint in the workdir is damaged
        (none is touched).
      NonFiniteLossError: a loss became NaN/inf (the last checkpoint is kept).
    """
    settings.validate()
    if settings.num_seeds > 1:
        from experiments import seeds_loop  # It builds on this module.
        run_cls = seeds_loop.SeedsRun
    else:
        run_cls = _Run
    with recovery.StopSignals() as stop:
        return run_cls(settings, argv).run(stop)
