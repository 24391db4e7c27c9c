"""The environment loop of `experiments.train`: act, step, store, update,
evaluate, log and checkpoint, with exact resume from the last checkpoint.

All learning lives in `dqs_jax` (the agent's `update` / `act`, the replay
buffer); this module only orchestrates and writes files.
"""

import dataclasses
import math
import os
import shutil
import time
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from dqs_jax import agents, replay
from dqs_jax.checkpoint import Checkpointer
from dqs_jax.envs import registry
from dqs_jax.types import Batch
from experiments import plotting, run_io

EVAL_KEY = jax.random.PRNGKey(0)  # Unused by the deterministic sampler.
# Flags that may change between a run and its resumption.
RESUMABLE_CHANGES = ("max_steps", "log_interval")


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different configuration."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that defines a run (the absl flags of `experiments.train`)."""

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


def _make_train_step(spec: agents.Agent, batch_size: int):
    def train_step(state, buffer, transition, key):
        buffer = replay.insert(buffer, transition)
        return agents.train_step(spec, state, buffer, key, batch_size)
    return jax.jit(train_step, donate_argnums=(0, 1))


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


def _format_return(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "n/a"


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class _Outputs:
    """metrics.jsonl, TensorBoard scalars and the learning-curve PNG."""

    def __init__(self, workdir: str, title: str, resume_step: Optional[int]):
        from tensorboardX import SummaryWriter
        self.log = run_io.MetricsLog(os.path.join(workdir, "metrics.jsonl"))
        if resume_step is not None:
            self.log.truncate_after(resume_step)
        self.writer = SummaryWriter(
            os.path.join(workdir, "tensorboard"),
            purge_step=None if resume_step is None else resume_step + 1)
        self.curve_path = os.path.join(workdir, "learning_curve.png")
        self.title = title

    def write(self, row: Dict[str, Any]) -> None:
        self.log.append(row)
        for name, value in row.items():
            if name not in ("kind", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{row['kind']}/{name}", value,
                                       row["step"])

    def plot(self) -> str:
        self.writer.flush()
        return plotting.learning_curve(self.log.rows(), self.curve_path,
                                       self.title)

    def close(self) -> None:
        self.writer.close()


def _prepare_workdir(settings: RunSettings, config: Dict[str, Any]) -> None:
    workdir = settings.workdir
    config_path = os.path.join(workdir, "config.json")
    if settings.overwrite and os.path.isdir(workdir):
        for name in ("checkpoints", "tensorboard"):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        for name in ("metrics.jsonl", "config.json", "learning_curve.png"):
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
    elif os.path.exists(config_path):
        old = run_io.read_json(config_path).get("flat_config", {})
        diffs = run_io.config_differences(old, config["flat_config"],
                                          ignore=RESUMABLE_CHANGES)
        if diffs:
            listed = "; ".join(f"--{k}: {a!r} in the workdir, {b!r} now"
                               for k, a, b in diffs)
            raise ConfigMismatchError(
                f"{os.path.abspath(workdir)} holds a run with a different "
                f"configuration ({listed}). Use another --workdir, or "
                "--overwrite to discard that run. Only --max_steps may change "
                "when resuming.")
    os.makedirs(workdir, exist_ok=True)
    run_io.write_json(config_path, config)


def train(settings: RunSettings, argv: Optional[List[str]] = None
          ) -> Dict[str, Any]:
    """Runs (or resumes) training; returns a summary of the final state.

    Raises:
      ValueError: bad settings (raised before any work).
      ConfigMismatchError: the workdir holds a different run.
      NonFiniteLossError: a loss became NaN/inf (the last checkpoint is kept).
    """
    settings.validate()
    spec = agents.get_agent(settings.agent)
    agent_config = settings.resolved_agent_config()
    workdir = os.path.abspath(settings.workdir)
    config = {
        "flat_config": settings.flat_config(),
        "agent_config_class": type(agent_config).__name__,
        "versions": run_io.versions(),
        "command": argv,
    }
    _prepare_workdir(settings, config)

    env = registry.make_env(settings.env, settings.seed)
    eval_env = registry.make_env(settings.env, settings.seed + 1)
    obs_dim, act_dim = env.observation_size, env.action_size
    agent_key, loop_key = jax.random.split(jax.random.PRNGKey(settings.seed))
    state = spec.init(agent_config, obs_dim, act_dim, agent_key)
    buffer = replay.init(settings.replay_size, obs_dim, act_dim)
    loop = LoopState(
        env_step=0, episode=0, episode_return=0.0, episode_length=0,
        observation=env.reset(), key=np.asarray(loop_key), num_updates=0,
        metric_sums={k: 0.0 for k in _metric_names(spec, state, buffer,
                                                   settings.batch_size)},
        metric_count=0, last_episode_return=float("nan"),
        last_eval_return=float("nan"), wall_time=0.0)

    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    resume_step = checkpointer.latest_step()
    if resume_step is not None:
        target = {"agent": state, "replay": buffer, "loop": loop.to_tree(),
                  "env": env.get_state()}
        restored = checkpointer.restore(target, resume_step)
        state, buffer = restored["agent"], restored["replay"]
        loop = LoopState.from_tree(restored["loop"])
        env.set_state(restored["env"])
        print(f"resuming from step {resume_step} ({workdir})", flush=True)
    outputs = _Outputs(workdir, f"{settings.agent} on {settings.env}",
                       resume_step)

    act_fn = jax.jit(spec.act, static_argnames="deterministic")
    insert_fn = jax.jit(replay.insert, donate_argnums=0)
    train_step = _make_train_step(spec, settings.batch_size)

    session_start = time.time()
    interval_start, interval_steps, interval_updates = session_start, 0, 0
    row_start, row_steps, row_updates = session_start, 0, 0
    if loop.env_step >= settings.max_steps:
        print(f"Run already at step {loop.env_step} >= --max_steps="
              f"{settings.max_steps}; raise --max_steps to continue.")
    else:
        print(f"Training {settings.agent} on {settings.env} (obs {obs_dim}, "
              f"act {act_dim}) from step {loop.env_step} to "
              f"{settings.max_steps}; outputs in {workdir}", flush=True)

    while loop.env_step < settings.max_steps:
        key, act_key, update_key = jax.random.split(loop.key, 3)
        loop.key = np.asarray(key)
        if loop.env_step < settings.seed_steps:
            action = jax.random.uniform(act_key, (act_dim,), minval=-1.0,
                                        maxval=1.0)
        else:
            action = act_fn(state, loop.observation[None], act_key)[0]
        action = np.asarray(action, np.float32)
        result = env.step(action)
        transition = Batch(loop.observation, action, np.float32(result.reward),
                           np.float32(result.discount), result.observation)
        if loop.env_step >= settings.seed_steps:
            state, buffer, metrics = train_step(state, buffer, transition,
                                                update_key)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
            if bad:
                outputs.close()
                last = checkpointer.latest_step()
                raise NonFiniteLossError(
                    f"Non-finite loss at env step {loop.env_step + 1} (update "
                    f"{loop.num_updates + 1}): "
                    + ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
                    + ". Stopping. The last good checkpoint is "
                    + (checkpointer.path(last) if last is not None else
                       "none (no checkpoint was written yet)") + ".")
            loop.num_updates += 1
            interval_updates += 1
            row_updates += 1
            for k, v in metrics.items():
                loop.metric_sums[k] += v
            loop.metric_count += 1
        else:
            buffer = insert_fn(buffer, transition)

        loop.env_step += 1
        interval_steps += 1
        row_steps += 1
        loop.episode_return += result.reward
        loop.episode_length += 1
        step = loop.env_step
        now = time.time()

        if result.terminated or result.truncated:
            row = {"kind": "train", "step": step, "episode": loop.episode,
                   "episode_return": loop.episode_return,
                   "episode_length": loop.episode_length,
                   "num_updates": loop.num_updates}
            if loop.metric_count:
                row.update({k: v / loop.metric_count
                            for k, v in sorted(loop.metric_sums.items())})
            elapsed = max(now - row_start, 1e-9)
            row.update(env_steps_per_sec=row_steps / elapsed,
                       updates_per_sec=row_updates / elapsed,
                       wall_time=loop.wall_time + now - session_start)
            outputs.write(row)
            row_start, row_steps, row_updates = now, 0, 0
            loop.last_episode_return = loop.episode_return
            loop.metric_sums = {k: 0.0 for k in loop.metric_sums}
            loop.metric_count = 0
            loop.episode += 1
            loop.episode_return, loop.episode_length = 0.0, 0
            loop.observation = env.reset()
        else:
            loop.observation = result.observation

        if step % settings.eval_every == 0 or step == settings.max_steps:
            eval_start = time.time()
            eval_env.seed(evaluation_seed(settings.seed, step))
            returns = evaluate(eval_env, act_fn, state, settings.eval_episodes)
            loop.last_eval_return = float(np.mean(returns))
            now = time.time()
            outputs.write({
                "kind": "eval", "step": step,
                "eval_return_mean": float(np.mean(returns)),
                "eval_return_std": float(np.std(returns)),
                "eval_returns": [float(r) for r in returns],
                "eval_seconds": now - eval_start,
                "wall_time": loop.wall_time + now - session_start})
            outputs.plot()
            print(f"[eval] step {step}: return {np.mean(returns):.1f} ± "
                  f"{np.std(returns):.1f} over {len(returns)} episodes",
                  flush=True)

        if step % settings.log_interval == 0:
            rate = interval_steps / max(now - interval_start, 1e-9)
            print(f"step {step}/{settings.max_steps} | episode {loop.episode} "
                  f"| last return {_format_return(loop.last_episode_return)} | "
                  f"eval {_format_return(loop.last_eval_return)} | "
                  f"{rate:.1f} steps/s, "
                  f"{interval_updates / max(now - interval_start, 1e-9):.1f} "
                  f"updates/s | ETA "
                  f"{_format_duration((settings.max_steps - step) / rate)}",
                  flush=True)
            interval_start, interval_steps, interval_updates = now, 0, 0

        if step % settings.checkpoint_every == 0 or step == settings.max_steps:
            saved_wall = loop.wall_time
            loop.wall_time = saved_wall + time.time() - session_start
            checkpointer.save(step, {"agent": state, "replay": buffer,
                                     "loop": loop.to_tree(),
                                     "env": env.get_state()})
            loop.wall_time = saved_wall

    curve = outputs.plot()
    outputs.close()
    checkpointer.close()
    rows = outputs.log.rows()
    evals = [r for r in rows if r["kind"] == "eval"]
    summary = {
        "workdir": workdir,
        "env_steps": loop.env_step,
        "num_updates": loop.num_updates,
        "final_eval_return": evals[-1]["eval_return_mean"] if evals else None,
        "metrics": outputs.log.path,
        "learning_curve": curve,
        "checkpoints": checkpointer.directory,
        "state": state,
    }
    return summary


def _metric_names(spec, state, buffer, batch_size: int) -> List[str]:
    """Names of the scalars `spec.update` returns (traced, not run)."""
    _, _, metrics = jax.eval_shape(
        lambda s, b: agents.train_step(spec, s, b, EVAL_KEY, batch_size),
        state, buffer)
    return sorted(metrics)
