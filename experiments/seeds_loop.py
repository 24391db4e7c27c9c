"""N seeds in one process (`experiments.train --num_seeds=N`).

Seed `i` is the run `--seed=<seed + i>`: its own dm_control environment and
evaluation environment on the host, its own agent state, replay buffer and
key, stepped in lockstep with the others. Every device call is one
`jax.vmap` over the seeds (`experiments.seed_learners`), so the device sees
N times the work per call and the host's per-call overhead is shared.

Outputs: `<workdir>/config.json` for the whole run, and per seed
`<workdir>/seed_<i>/` with config.json (that seed's flat config),
metrics.jsonl, tensorboard/ and learning_curve.png, the same files as a
single-seed run. One checkpoint under `<workdir>/checkpoints/` holds every
seed (stacked agent states and buffers, each seed's loop and env state), so
resume, preemption and damaged-checkpoint handling are those of
`experiments.online_loop`.

Seed `i` matches the single-seed run with `--seed=<seed + i>` up to float
reassociation: the keys, the data and the order of operations per seed are
the same, but XLA compiles a batched matmul for the vmapped calls, whose
sums may be ordered differently (see tests/test_seeds_loop.py for the
tolerance).
"""

import math
import os
import time
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from dqs_jax.checkpoint import Checkpointer
from dqs_jax.envs import registry
from dqs_jax.types import Batch
from experiments import online_loop, recovery, run_io, seed_learners
from experiments.loop_state import LoopState, evaluation_seed
from experiments.run_outputs import Outputs, format_duration, format_return


_split_keys = jax.jit(jax.vmap(lambda key: jax.random.split(key, 3)))


def seed_dir(workdir: str, index: int) -> str:
    """The outputs folder of seed `index` of an N-seed run."""
    return os.path.join(workdir, f"seed_{index}")


def evaluate_seeds(envs: List[Any], act_fn, states: Any,
                   num_episodes: int) -> List[List[float]]:
    """Returns `[N][num_episodes]` of deterministic episodes, the N envs in
    lockstep with one `act_fn(states, observations [N, o]) -> [N, d]` call
    per step (a finished env waits for the others)."""
    returns: List[List[float]] = [[] for _ in envs]
    for _ in range(num_episodes):
        observations = [env.reset() for env in envs]
        totals = [0.0] * len(envs)
        active = set(range(len(envs)))
        while active:
            actions = act_fn(states, np.stack(observations))
            for i in sorted(active):
                result = envs[i].step(actions[i])
                totals[i] += result.reward
                if result.terminated or result.truncated:
                    active.discard(i)
                else:
                    observations[i] = result.observation
        for i, total in enumerate(totals):
            returns[i].append(total)
    return returns


class SeedsRun(online_loop._Run):  # pylint: disable=protected-access
    """One session of an N-seed run (see the module docstring)."""

    def __init__(self, settings: online_loop.RunSettings,
                 argv: Optional[List[str]]):
        # pylint: disable=super-init-not-called
        self.settings = settings
        self.spec = online_loop.agents.get_agent(settings.agent)
        agent_config = settings.resolved_agent_config()
        self.workdir = online_loop.prepare_run_workdir(settings, argv)
        self.seeds = [settings.seed + i for i in range(settings.num_seeds)]
        self.envs = [registry.make_env(settings.env, s) for s in self.seeds]
        self.eval_envs = [registry.make_env(settings.env, s + 1)
                          for s in self.seeds]
        self.obs_dim = self.envs[0].observation_size
        self.act_dim = self.envs[0].action_size
        keys = [jax.random.split(jax.random.PRNGKey(s)) for s in self.seeds]
        self.learner = seed_learners.make_seeds_learner(
            self.spec, agent_config, self.obs_dim, self.act_dim,
            settings.replay_size, settings.batch_size, settings.seed_steps,
            settings.num_seeds, settings.shard_seeds)
        self.state = self.learner.place(seed_learners.stack_trees([
            self.spec.init(agent_config, self.obs_dim, self.act_dim, k[0])
            for k in keys]))
        names = self.learner.metric_names(self.state)
        self._loops = [online_loop.new_loop_state(env.reset(), k[1], names)
                       for env, k in zip(self.envs, keys)]
        self.checkpointer = Checkpointer(os.path.join(self.workdir,
                                                      "checkpoints"))
        resume_step = self._restore()
        flat = settings.flat_config()
        self.outputs_per_seed = []
        for i, seed in enumerate(self.seeds):
            folder = seed_dir(self.workdir, i)
            os.makedirs(folder, exist_ok=True)
            run_io.write_json(os.path.join(folder, "config.json"), {
                "flat_config": dict(flat, seed=seed, num_seeds=1),
                "seed_index": i, "parent": self.workdir})
            self.outputs_per_seed.append(Outputs(
                folder, f"{settings.agent} on {settings.env}, seed {seed}",
                resume_step))
        self.start_session()

    @property
    def loops(self) -> List[LoopState]:
        return self._loops

    def _tree(self) -> Dict[str, Any]:
        return {"agent": self.state, self.learner.data_name: self.learner.data,
                "loops": {str(i): loop.to_tree()
                          for i, loop in enumerate(self._loops)},
                "envs": {str(i): env.get_state()
                         for i, env in enumerate(self.envs)}}

    def _restore(self) -> Optional[int]:
        found = recovery.restore_newest_intact(self.checkpointer, self._tree())
        if found is None:
            return None
        step, restored = found
        self.state = self.learner.place(restored["agent"])
        self.learner.restore(restored[self.learner.data_name])
        self._loops = [LoopState.from_tree(restored["loops"][str(i)])
                       for i in range(len(self.seeds))]
        for i, env in enumerate(self.envs):
            env.set_state(restored["envs"][str(i)])
        print(f"resuming from step {step} ({self.workdir})", flush=True)
        return step

    def close_outputs(self) -> None:
        for outputs in self.outputs_per_seed:
            outputs.close()

    def step(self) -> None:
        loops = self._loops
        split = np.asarray(_split_keys(np.stack([loop.key for loop in loops])))
        for loop, keys in zip(loops, split):
            loop.key = keys[0]
        env_step = loops[0].env_step
        observations = np.stack([loop.observation for loop in loops])
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
            self._add_metrics(jax.device_get(metrics))
        for loop, result in zip(loops, results):
            loop.advance(result.reward, result.observation)
        self.interval[1] += 1
        self.row[1] += 1
        if dones.any():
            self._end_episodes(np.flatnonzero(dones), time.time())

    def _end_episodes(self, seeds: np.ndarray, now: float) -> None:
        """Writes the train rows of the seeds whose episode ended; resets
        their envs."""
        elapsed = max(now - self.row[0], 1e-9)
        rates = dict(env_steps_per_sec=self.row[1] / elapsed,
                     updates_per_sec=self.row[2] / elapsed)
        for i in seeds:
            loop = self._loops[i]
            self.outputs_per_seed[i].write(loop.end_episode(
                rates, loop.wall_time + now - self.session_start,
                self.envs[i].reset()))
        self.row = [now, 0, 0]

    def _add_metrics(self, metrics: Dict[str, np.ndarray]) -> None:
        """Adds metrics `{name: [N]}` to each seed's sums; NaN check."""
        for i, loop in enumerate(self._loops):
            values = {k: float(v[i]) for k, v in metrics.items()}
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:
                raise self._learn_failed(bad, f" in seed {self.seeds[i]}")
            loop.add_metrics(values)
        self.interval[2] += 1
        self.row[2] += 1

    def evaluate(self) -> None:
        step, start = self._loops[0].env_step, time.time()
        for env, seed in zip(self.eval_envs, self.seeds):
            env.seed(evaluation_seed(seed, step))
        returns = evaluate_seeds(self.eval_envs,
                                 self.learner.act_deterministic, self.state,
                                 self.settings.eval_episodes)
        now = time.time()
        for loop, outputs, seed_returns in zip(
                self._loops, self.outputs_per_seed, returns):
            outputs.write(loop.eval_row(
                seed_returns, now - start,
                loop.wall_time + now - self.session_start))
            outputs.plot()
        means = ", ".join(f"{np.mean(r):.1f}" for r in returns)
        print(f"[eval] step {step}: return per seed [{means}] over "
              f"{self.settings.eval_episodes} episodes each", flush=True)

    def log_progress(self, now: float) -> None:
        loops, max_steps = self._loops, self.settings.max_steps
        elapsed = max(now - self.interval[0], 1e-9)
        rate = self.interval[1] / elapsed
        last = np.mean([loop.last_episode_return for loop in loops])
        evals = np.mean([loop.last_eval_return for loop in loops])
        print(f"step {loops[0].env_step}/{max_steps} x {len(loops)} seeds | "
              f"episode {loops[0].episode} | updates {loops[0].num_updates} "
              f"| mean last return {format_return(last)} | mean eval "
              f"{format_return(evals)} | {rate * len(loops):.1f} env steps/s "
              f"in total | ETA "
              f"{format_duration((max_steps - loops[0].env_step) / rate)}",
              flush=True)
        self.interval = [now, 0, 0]

    def finish(self, stopped: bool) -> Optional[List[str]]:
        curves = None if stopped else [o.plot() for o in self.outputs_per_seed]
        self.close_outputs()
        return curves

    def summary(self, stopped_by: Optional[int], curve: Any
                ) -> Dict[str, Any]:
        """As the single-seed summary, with a list per seed where it
        differs (`final_eval_return`, `metrics`, `learning_curve`)."""
        finals = []
        for outputs in self.outputs_per_seed:
            evals = [r for r in outputs.log.rows() if r["kind"] == "eval"]
            finals.append(evals[-1]["eval_return_mean"] if evals else None)
        return {
            "workdir": self.workdir,
            "seeds": list(self.seeds),
            "env_steps": self._loops[0].env_step,
            "num_updates": self._loops[0].num_updates,
            "final_eval_return": finals,
            "metrics": [o.log.path for o in self.outputs_per_seed],
            "learning_curve": curve,
            "checkpoints": self.checkpointer.directory,
            "state": self.state,
            "stopped_by": stopped_by,
        }
