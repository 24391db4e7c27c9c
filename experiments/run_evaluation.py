"""Evaluates a trained single-seed run of `experiments.train` again from its
newest intact checkpoint, optionally with evaluation-only settings of the
agent changed (the logic of `experiments.evaluate_run`, importable without
its flags)."""

import dataclasses
import os

import jax
import numpy as np

from dqs_jax import agents
from dqs_jax.checkpoint import Checkpointer
from dqs_jax.envs import registry
from experiments import learners, recovery, run_io
from experiments.loop_state import evaluate, evaluation_seed
from experiments.online_loop import (agent_config_from_flat,
                                     checkpoint_tree, new_loop_state)

# Agent config fields that change how a trained agent evaluates, not what
# it learned.
ALLOWED = ("eval_start", "num_sampling_steps")


def parse_overrides(items, config_cls) -> dict:
    """`["field=value", ...]` -> typed overrides; ValueError if not allowed."""
    defaults = config_cls()
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in ALLOWED:
            raise ValueError(f"--set={item!r}: expected field=value with "
                             f"field in {ALLOWED}.")
        if not hasattr(defaults, name):
            raise ValueError(f"{config_cls.__name__} has no field {name!r}.")
        out[name] = type(getattr(defaults, name))(value)
    return out


def evaluate_run(workdir: str, num_episodes: int, overrides: dict) -> dict:
    """Restores `workdir`'s newest intact checkpoint and evaluates its
    deterministic policy for `num_episodes` episodes (the run's evaluation
    seed for that step) with the agent config's `overrides` applied (a
    damaged newer checkpoint is set aside, as a resume would do)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: not a run folder.")
    flat = run_io.read_json(path)["flat_config"]
    if flat.get("num_seeds", 1) != 1:
        raise ValueError("multi-seed runs: evaluate a single-seed run.")
    spec = agents.get_agent(flat["agent"])
    config = agent_config_from_flat(flat)
    env = registry.make_env(flat["env"], flat["seed"])
    eval_env = registry.make_env(flat["env"], flat["seed"] + 1)
    agent_key, loop_key = jax.random.split(jax.random.PRNGKey(flat["seed"]))
    state = spec.init(config, env.observation_size, env.action_size,
                      agent_key)
    learner = learners.make_learner(
        spec, config, env.observation_size, env.action_size,
        flat["replay_size"], flat["batch_size"], flat["seed_steps"])
    template = checkpoint_tree(
        state, learner, new_loop_state(env.reset(), loop_key,
                                       learner.metric_names(state)), env)
    found = recovery.restore_newest_intact(
        Checkpointer(os.path.join(workdir, "checkpoints")), template)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints.")
    step, restored = found
    state = restored["agent"].replace(
        config=dataclasses.replace(config, **overrides))
    eval_env.seed(evaluation_seed(flat["seed"], step))
    returns = evaluate(eval_env, learner.act_fn, state, num_episodes)
    return {"workdir": os.path.abspath(workdir), "step": step,
            "overrides": overrides, "returns": [float(r) for r in returns],
            "mean": float(np.mean(returns)), "std": float(np.std(returns))}
