"""The host training loop: act, step, learn, evaluate, log and checkpoint,
for N >= 1 seeds in lockstep, with exact resume from the last checkpoint.

Seed `i` of a run is the run `seed + i`: its own host environment and
evaluation environment, agent state, replay buffer (or rollout) and key.
Every device call serves all seeds at once (`training.learners`); one seed
is N = 1, with no seed axis on the device. `Run` holds the phases of a run
(restore, step, end of episode, evaluate, progress, checkpoint) and writes
files through `training.outputs` (where they go: `training.layout`);
`training.recovery` turns SIGTERM/SIGINT into a checkpoint and a clean stop,
and skips damaged checkpoints on resume.

Outputs: `<workdir>/config.json`, `checkpoints/` (one checkpoint holds every
seed), and for one seed `metrics.jsonl`, `tensorboard/` and
`learning_curve.png` in the workdir; for N seeds the same files per seed in
`<workdir>/seed_<i>/` (with that seed's config.json).
"""

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
from dqs_jax.training import (files, learners, provenance, recovery,
                              tracking)
from dqs_jax.training.layout import (checkpoint_tree, new_progress,
                                     prepare_run_workdir, restored_seeds,
                                     seed_dir)
from dqs_jax.training.lock import WorkdirLock
from dqs_jax.training.outputs import Outputs, format_duration, format_return
from dqs_jax.training.progress import SeedProgress, evaluate, evaluation_seed
from dqs_jax.training.settings import RunSettings
from dqs_jax.types import Batch


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite."""


_split_keys = jax.jit(jax.vmap(lambda key: jax.random.split(key, 3)))


class Run:
    """One session of a run: its environments, agent, learner and outputs."""

    def __init__(self, settings: RunSettings, argv: Optional[List[str]]):
        self.settings = s = settings
        self.spec = agents.get_agent(s.agent)
        agent_config = s.resolved_agent_config()
        self.workdir = prepare_run_workdir(s, argv)
        self.seeds = [s.seed + i for i in range(s.num_seeds)]
        self.envs = [registry.make_env(s.env, seed) for seed in self.seeds]
        self.eval_envs = [registry.make_env(s.env, seed + 1)
                          for seed in self.seeds]
        self.obs_dim = self.envs[0].observation_size
        self.act_dim = self.envs[0].action_size
        keys = [jax.random.split(jax.random.PRNGKey(seed))
                for seed in self.seeds]
        self.learner = learners.make_learner(
            self.spec, agent_config, self.obs_dim, self.act_dim,
            s.replay_size, s.batch_size, s.seed_steps, s.num_seeds,
            s.shard_seeds, s.update_every)
        self.state = self.learner.init_states([
            self.spec.init(agent_config, self.obs_dim, self.act_dim, k[0])
            for k in keys])
        names = self.learner.metric_names(self.state)
        self.progress = [new_progress(env.reset(), k[1], names)
                         for env, k in zip(self.envs, keys)]
        self.checkpointer = Checkpointer(os.path.join(self.workdir,
                                                      "checkpoints"))
        resume_step = self._restore()
        if resume_step is not None:
            provenance.record_restart(self.workdir, resume_step)
        self.outputs = self._open_outputs(resume_step)
        self.start_session()

    def _open_outputs(self, resume_step: Optional[int]) -> List[Outputs]:
        """Each seed's outputs: the workdir for one seed, `seed_<i>/` (with
        that seed's config.json) for N."""
        s = self.settings
        flat = s.flat_config()
        outputs = []
        for i, seed in enumerate(self.seeds):
            folder, config = self.workdir, flat
            if s.num_seeds > 1:
                folder, config = (seed_dir(self.workdir, i),
                                  dict(flat, seed=seed, num_seeds=1))
                os.makedirs(folder, exist_ok=True)
                files.write_json(os.path.join(folder, "config.json"), {
                    "flat_config": config, "seed_index": i,
                    "parent": self.workdir})
            tracker = None
            if s.wandb is not None:
                tracker = tracking.WandbTracker(
                    s.wandb, folder, f"{s.agent}_{s.env}_seed{seed}",
                    dict(config, workdir=folder))
            outputs.append(Outputs(folder, f"{s.agent} on {s.env}, seed "
                                   f"{seed}", resume_step, tracker))
        return outputs

    def start_session(self) -> None:
        self.session_start = time.time()
        self.interval = [self.session_start, 0, 0]  # time, steps, updates
        self.row = [self.session_start, 0, 0]

    @property
    def env_step(self) -> int:
        return self.progress[0].env_step

    def _tree(self) -> Dict[str, Any]:
        return checkpoint_tree(self.state, self.learner, self.progress,
                               self.envs)

    def _restore(self) -> Optional[int]:
        """Restores the newest intact checkpoint; its step, or None."""
        found = recovery.restore_newest_intact(self.checkpointer, self._tree())
        if found is None:
            return None
        step, restored = found
        self.state = self.learner.place(restored["agent"])
        self.learner.restore(restored[self.learner.data_name])
        seeds = restored_seeds(restored, len(self.seeds))
        self.progress = [SeedProgress.from_tree(p) for p, _ in seeds]
        for env, (_, env_state) in zip(self.envs, seeds):
            env.set_state(env_state)
        print(f"resuming from step {step} ({self.workdir})", flush=True)
        return step

    def close_outputs(self) -> None:
        for outputs in self.outputs:
            outputs.close()

    def _learn_failed(self, bad: Dict[str, float], where: str
                      ) -> NonFiniteLossError:
        self.close_outputs()
        last = self.checkpointer.latest_step()
        first = self.progress[0]
        return NonFiniteLossError(
            f"Non-finite loss{where} at env step {first.env_step + 1} (update "
            f"{first.num_updates + 1}): "
            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            + ". Stopping. The last good checkpoint is "
            + (self.checkpointer.path(last) if last is not None else
               "none (no checkpoint was written yet)") + ".")

    def step(self) -> None:
        """One env step of every seed, whatever learning it triggers, and
        the end of the episodes that end."""
        progress = self.progress
        split = np.asarray(_split_keys(np.stack([p.key for p in progress])))
        for p, keys in zip(progress, split):
            p.key = keys[0]
        env_step = progress[0].env_step
        observations = np.stack([p.observation for p in progress])
        actions, extras = self.learner.act(self.state, observations,
                                           split[:, 1], env_step)
        results = [env.step(a) for env, a in zip(self.envs, actions)]
        dones = np.asarray([r.terminated or r.truncated for r in results])
        transitions = Batch(
            observations, actions,
            np.asarray([r.reward for r in results], np.float32),
            np.asarray([r.discount for r in results], np.float32),
            np.stack([r.observation for r in results]))
        self.state, metrics = self.learner.observe(
            self.state, transitions, dones, extras, split[:, 2], env_step)
        if metrics is not None:
            self._add_metrics(metrics)
        for p, result in zip(progress, results):
            p.advance(result.reward, result.observation)
        self.interval[1] += 1
        self.row[1] += 1
        if dones.any():
            self._end_episodes(np.flatnonzero(dones), time.time())

    def _add_metrics(self, metrics: Dict[str, np.ndarray]) -> None:
        """Adds metrics `{name: [N]}` to each seed's sums; NaN check."""
        for i, p in enumerate(self.progress):
            values = {k: float(v[i]) for k, v in metrics.items()}
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:
                raise self._learn_failed(bad, f" in seed {self.seeds[i]}"
                                         if len(self.seeds) > 1 else "")
            p.add_metrics(values)
        self.interval[2] += 1
        self.row[2] += 1

    def _end_episodes(self, seeds: np.ndarray, now: float) -> None:
        """Writes the train rows of the seeds whose episode ended; resets
        their envs."""
        elapsed = max(now - self.row[0], 1e-9)
        rates = dict(env_steps_per_sec=self.row[1] / elapsed,
                     updates_per_sec=self.row[2] / elapsed)
        for i in seeds:
            p = self.progress[i]
            self.outputs[i].write(p.end_episode(
                rates, p.wall_time + now - self.session_start,
                self.envs[i].reset()))
        self.row = [now, 0, 0]

    def evaluate(self) -> None:
        """Deterministic episodes of every seed; eval rows and curves."""
        step, start = self.env_step, time.time()
        for env, seed in zip(self.eval_envs, self.seeds):
            env.seed(evaluation_seed(seed, step))
        returns = evaluate(self.eval_envs, self.learner.act_deterministic,
                           self.state, self.settings.eval_episodes)
        now = time.time()
        for p, outputs, seed_returns in zip(self.progress, self.outputs,
                                            returns):
            outputs.write(p.eval_row(seed_returns, now - start,
                                     p.wall_time + now - self.session_start))
            outputs.plot()
        if len(returns) == 1:
            print(f"[eval] step {step}: return {np.mean(returns[0]):.1f} ± "
                  f"{np.std(returns[0]):.1f} over {len(returns[0])} episodes",
                  flush=True)
        else:
            means = ", ".join(f"{np.mean(r):.1f}" for r in returns)
            print(f"[eval] step {step}: return per seed [{means}] over "
                  f"{self.settings.eval_episodes} episodes each", flush=True)

    def log_progress(self, now: float) -> None:
        """One progress line: steps, episodes, returns, rates, ETA."""
        progress, max_steps = self.progress, self.settings.max_steps
        first = progress[0]
        elapsed = max(now - self.interval[0], 1e-9)
        rate = self.interval[1] / elapsed
        eta = format_duration((max_steps - first.env_step) / rate)
        if len(progress) == 1:
            print(f"step {first.env_step}/{max_steps} | episode "
                  f"{first.episode} | updates {first.num_updates} | last "
                  f"return {format_return(first.last_episode_return)} | eval "
                  f"{format_return(first.last_eval_return)} | {rate:.1f} "
                  f"steps/s, {self.interval[2] / elapsed:.1f} updates/s | ETA "
                  f"{eta}", flush=True)
        else:
            last = np.mean([p.last_episode_return for p in progress])
            evals = np.mean([p.last_eval_return for p in progress])
            print(f"step {first.env_step}/{max_steps} x {len(progress)} seeds "
                  f"| episode {first.episode} | updates {first.num_updates} | "
                  f"mean last return {format_return(last)} | mean eval "
                  f"{format_return(evals)} | {rate * len(progress):.1f} env "
                  f"steps/s in total | ETA {eta}", flush=True)
        self.interval = [now, 0, 0]

    def checkpoint(self) -> None:
        saved = [p.wall_time for p in self.progress]
        elapsed = time.time() - self.session_start
        for p, wall in zip(self.progress, saved):
            p.wall_time = wall + elapsed
        self.checkpointer.save(self.env_step, self._tree())
        for p, wall in zip(self.progress, saved):
            p.wall_time = wall

    def summary(self, stopped_by: Optional[int], curves: Optional[List[str]]
                ) -> Dict[str, Any]:
        """The summary `train` returns: per-seed entries are lists for N
        seeds (`seeds`, `final_eval_return`, `metrics`, `learning_curve`),
        plain values for one."""
        finals = []
        for outputs in self.outputs:
            evals = [r for r in outputs.log.rows() if r["kind"] == "eval"]
            finals.append(evals[-1]["eval_return_mean"] if evals else None)
        paths = [o.log.path for o in self.outputs]
        one = len(self.seeds) == 1
        summary = {
            "workdir": self.workdir,
            "env_steps": self.env_step,
            "num_updates": self.progress[0].num_updates,
            "final_eval_return": finals[0] if one else finals,
            "metrics": paths[0] if one else paths,
            "learning_curve": (curves[0] if one and curves else curves),
            "checkpoints": self.checkpointer.directory,
            "state": self.state,
            "stopped_by": stopped_by,
        }
        if not one:
            summary["seeds"] = list(self.seeds)
        return summary

    def finish(self, stopped: bool) -> Optional[List[str]]:
        """Final plots (unless stopped) and closed outputs; the plots' paths."""
        curves = None if stopped else [o.plot() for o in self.outputs]
        self.close_outputs()
        return curves

    def _announce(self) -> None:
        s = self.settings
        if self.env_step >= s.max_steps:
            print(f"Run already at step {self.env_step} >= --max_steps="
                  f"{s.max_steps}; raise --max_steps to continue.")
            return
        seeds = (f" x {s.num_seeds} seeds ({s.seed}..{s.seed + s.num_seeds - 1})"
                 if s.num_seeds > 1 else "")
        print(f"Training {s.agent} on {s.env}{seeds} (obs {self.obs_dim}, "
              f"act {self.act_dim}) from step {self.env_step} to "
              f"{s.max_steps}; outputs in {self.workdir}", flush=True)
        if self.spec.on_policy and s.seed_steps:
            print(f"Note: {s.agent} is on-policy; --seed_steps does not "
                  "apply (it acts with its policy from the first step).",
                  flush=True)

    def run(self, stop: recovery.StopSignals) -> Dict[str, Any]:
        """Steps to `max_steps`, or until `stop` is requested: then after the
        current step, checkpoints it like a periodic checkpoint and prints
        one line. Returns the summary of `train`."""
        s = self.settings
        self._announce()
        while self.env_step < s.max_steps and not stop.requested:
            self.step()
            step = self.env_step
            if step % s.eval_every == 0 or step == s.max_steps:
                self.evaluate()
            if step % s.log_interval == 0:
                self.log_progress(time.time())
            if step % s.checkpoint_every == 0 or step == s.max_steps:
                self.checkpoint()
        # A stop request after the last step changes nothing: the run is done.
        stopped_by = stop.signum if self.env_step < s.max_steps else None
        if stopped_by is not None:
            if self.checkpointer.latest_step() != self.env_step:
                self.checkpoint()
            print(f"preempted at step {self.env_step}; rerun the same "
                  "command to resume", file=sys.stderr, flush=True)
        curves = self.finish(stopped_by is not None)
        self.checkpointer.close()
        return self.summary(stopped_by, curves)


def train(settings: RunSettings, argv: Optional[List[str]] = None
          ) -> Dict[str, Any]:
    """Runs (or resumes) training; returns a summary of the final state
    (`Run.summary`).

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
      WorkdirLockedError: another live process runs in the workdir.
      OSError: the workdir cannot be created or written.
    """
    settings.validate()
    with WorkdirLock(settings.workdir), recovery.StopSignals() as stop:
        return Run(settings, argv).run(stop)
