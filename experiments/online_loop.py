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
from experiments.recovery import NoIntactCheckpointError
from experiments.run_outputs import (ConfigMismatchError, Outputs,
                                     format_duration, format_return,
                                     prepare_workdir)

__all__ = ["ConfigMismatchError", "NoIntactCheckpointError",
           "NonFiniteLossError", "RunSettings", "LoopState", "evaluate",
           "evaluation_seed", "train"]

EVAL_KEY = learners.EVAL_KEY
# Flags that may change between a run and its resumption.
RESUMABLE_CHANGES = ("max_steps", "log_interval")


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

    def resolved_agent_config(self):
        if self.agent_config is not None:
            return self.agent_config
        return agents.get_agent(self.agent).make_config()

    def flat_config(self) -> Dict[str, Any]:
        """Run settings and agent hyper-parameters in one flat dict."""
        run = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("agent_config", "workdir", "overwrite")}
        hyper = dataclasses.asdict(self.resolved_agent_config())
        return {**run, **hyper}


@dataclasses.dataclass
class LoopState:
    """Host-side counters of the loop; all of it goes into checkpoints."""

    env_step: int
    episode: int
    episode_return: float
    episode_length: int
    observation: np.ndarray
    key: np.ndarray
    num_updates: int
    metric_sums: Dict[str, float]
    metric_count: int
    last_episode_return: float
    last_eval_return: float
    wall_time: float  # Seconds spent in earlier sessions of this run.

    def to_tree(self) -> Dict[str, Any]:
        tree = {f.name: np.asarray(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name != "metric_sums"}
        tree["metric_sums"] = {k: np.asarray(v, np.float64)
                               for k, v in self.metric_sums.items()}
        return tree

    @classmethod
    def from_tree(cls, tree: Dict[str, Any]) -> "LoopState":
        values = {}
        for f in dataclasses.fields(cls):
            value = tree[f.name]
            if f.name == "metric_sums":
                value = {k: float(v) for k, v in value.items()}
            elif f.type in ("int", int):
                value = int(value)
            elif f.type in ("float", float):
                value = float(value)
            else:
                value = np.asarray(value)
            values[f.name] = value
        return cls(**values)


def evaluation_seed(seed: int, env_step: int) -> int:
    """The eval env's seed for the evaluation at `env_step` (resume-proof)."""
    return int(np.random.SeedSequence([seed, 1, env_step]).generate_state(1)[0])


def evaluate(env, act_fn, state, num_episodes: int) -> List[float]:
    """Returns of `num_episodes` episodes with the deterministic policy."""
    returns = []
    for _ in range(num_episodes):
        obs, total = env.reset(), 0.0
        while True:
            action = np.asarray(act_fn(state, obs[None], EVAL_KEY,
                                       deterministic=True)[0])
            result = env.step(action)
            total += result.reward
            if result.terminated or result.truncated:
                break
            obs = result.observation
        returns.append(total)
    return returns


class _Run:
    """One session of a run: its environments, agent, learner and outputs."""

    def __init__(self, settings: RunSettings, argv: Optional[List[str]]):
        self.settings = settings
        self.spec = agents.get_agent(settings.agent)
        agent_config = settings.resolved_agent_config()
        self.workdir = os.path.abspath(settings.workdir)
        prepare_workdir(settings.workdir, {
            "flat_config": settings.flat_config(),
            "agent_config_class": type(agent_config).__name__,
            "versions": run_io.versions(),
            "command": argv,
        }, settings.overwrite, RESUMABLE_CHANGES)
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
        self.loop = LoopState(
            env_step=0, episode=0, episode_return=0.0, episode_length=0,
            observation=self.env.reset(), key=np.asarray(loop_key),
            num_updates=0,
            metric_sums={k: 0.0 for k in
                         self.learner.metric_names(self.state)},
            metric_count=0, last_episode_return=float("nan"),
            last_eval_return=float("nan"), wall_time=0.0)
        self.checkpointer = Checkpointer(os.path.join(self.workdir,
                                                      "checkpoints"))
        resume_step = self._restore()
        self.outputs = Outputs(self.workdir,
                               f"{settings.agent} on {settings.env}",
                               resume_step)
        self.session_start = time.time()
        self.interval = [self.session_start, 0, 0]  # time, steps, updates
        self.row = [self.session_start, 0, 0]

    def _tree(self) -> Dict[str, Any]:
        return {"agent": self.state, self.learner.data_name: self.learner.data,
                "loop": self.loop.to_tree(), "env": self.env.get_state()}

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

    def _learn_failed(self, bad: Dict[str, float]) -> NonFiniteLossError:
        self.outputs.close()
        last = self.checkpointer.latest_step()
        return NonFiniteLossError(
            f"Non-finite loss at env step {self.loop.env_step + 1} (update "
            f"{self.loop.num_updates + 1}): "
            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            + ". Stopping. The last good checkpoint is "
            + (self.checkpointer.path(last) if last is not None else
               "none (no checkpoint was written yet)") + ".")

    def step(self) -> bool:
        """One env step and whatever learning it triggers; True at an
        episode end."""
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
            loop.num_updates += 1
            self.interval[2] += 1
            self.row[2] += 1
            for k, v in metrics.items():
                loop.metric_sums[k] += v
            loop.metric_count += 1
        loop.env_step += 1
        self.interval[1] += 1
        self.row[1] += 1
        loop.episode_return += result.reward
        loop.episode_length += 1
        loop.observation = result.observation
        return done

    def end_episode(self, now: float) -> None:
        """Writes the train row of the finished episode and resets the env."""
        loop = self.loop
        row = {"kind": "train", "step": loop.env_step, "episode": loop.episode,
               "episode_return": loop.episode_return,
               "episode_length": loop.episode_length,
               "num_updates": loop.num_updates}
        if loop.metric_count:
            row.update({k: v / loop.metric_count
                        for k, v in sorted(loop.metric_sums.items())})
        elapsed = max(now - self.row[0], 1e-9)
        row.update(env_steps_per_sec=self.row[1] / elapsed,
                   updates_per_sec=self.row[2] / elapsed,
                   wall_time=loop.wall_time + now - self.session_start)
        self.outputs.write(row)
        self.row = [now, 0, 0]
        loop.last_episode_return = loop.episode_return
        loop.metric_sums = {k: 0.0 for k in loop.metric_sums}
        loop.metric_count = 0
        loop.episode += 1
        loop.episode_return, loop.episode_length = 0.0, 0
        loop.observation = self.env.reset()

    def evaluate(self) -> None:
        step, start = self.loop.env_step, time.time()
        self.eval_env.seed(evaluation_seed(self.settings.seed, step))
        returns = evaluate(self.eval_env, self.learner.act_fn, self.state,
                           self.settings.eval_episodes)
        self.loop.last_eval_return = float(np.mean(returns))
        now = time.time()
        self.outputs.write({
            "kind": "eval", "step": step, "num_updates": self.loop.num_updates,
            "eval_return_mean": float(np.mean(returns)),
            "eval_return_std": float(np.std(returns)),
            "eval_returns": [float(r) for r in returns],
            "eval_seconds": now - start,
            "wall_time": self.loop.wall_time + now - self.session_start})
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
        saved_wall = self.loop.wall_time
        self.loop.wall_time = saved_wall + time.time() - self.session_start
        self.checkpointer.save(self.loop.env_step, self._tree())
        self.loop.wall_time = saved_wall

    def run(self, stop: recovery.StopSignals) -> Dict[str, Any]:
        """Steps to `max_steps`, or until `stop` is requested: then after the
        current step, checkpoints it like a periodic checkpoint and prints
        one line. Returns the summary of `train`."""
        s = self.settings
        if self.loop.env_step >= s.max_steps:
            print(f"Run already at step {self.loop.env_step} >= --max_steps="
                  f"{s.max_steps}; raise --max_steps to continue.")
        else:
            print(f"Training {s.agent} on {s.env} (obs {self.obs_dim}, act "
                  f"{self.act_dim}) from step {self.loop.env_step} to "
                  f"{s.max_steps}; outputs in {self.workdir}", flush=True)
            if self.spec.on_policy and s.seed_steps:
                print(f"Note: {s.agent} is on-policy; --seed_steps does not "
                      "apply (it acts with its policy from the first step).",
                      flush=True)
        while self.loop.env_step < s.max_steps and not stop.requested:
            done = self.step()
            step, now = self.loop.env_step, time.time()
            if done:
                self.end_episode(now)
            if step % s.eval_every == 0 or step == s.max_steps:
                self.evaluate()
            if step % s.log_interval == 0:
                self.log_progress(time.time())
            if step % s.checkpoint_every == 0 or step == s.max_steps:
                self.checkpoint()
        # A stop request after the last step changes nothing: the run is done.
        stopped_by = (stop.signum if self.loop.env_step < s.max_steps
                      else None)
        if stopped_by is not None:
            if self.checkpointer.latest_step() != self.loop.env_step:
                self.checkpoint()
            print(f"preempted at step {self.loop.env_step}; rerun the same "
                  "command to resume", file=sys.stderr, flush=True)
        curve = None if stopped_by is not None else self.outputs.plot()
        self.outputs.close()
        self.checkpointer.close()
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
    with recovery.StopSignals() as stop:
        return _Run(settings, argv).run(stop)
