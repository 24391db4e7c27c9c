r"""Evaluates a trained run of `experiments.train` again, from its newest
intact checkpoint, optionally with some of the agent's evaluation-only
settings changed (e.g. DQS's `eval_start`):

    python -m experiments.dmc.evaluate_run --workdir=runs/cheetah \
        --eval_episodes=10 --set=eval_start=hashed

The episodes are those of the run's own evaluation at that step (same eval
env seed), so with no `--set` the mean return equals the run's last
evaluation row when `--eval_episodes` is the run's. Prints the returns and,
with `--out`, writes them as JSON. The run's files are not changed.

Only settings that leave the trained parameters meaningful may be changed:
`ALLOWED` (per agent config field).
"""

import dataclasses
import os
import sys

from absl import app, flags
import jax
import numpy as np

from dqs_jax import agents
from dqs_jax.checkpoint import Checkpointer
from dqs_jax.envs import registry
from dqs_jax.training import files, learners, recovery
from dqs_jax.training.progress import evaluate, evaluation_seed
from dqs_jax.training.layout import checkpoint_tree, new_progress
from dqs_jax.training.settings import agent_config_from_flat

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
    flat = files.read_json(path)["flat_config"]
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
        state, learner, [new_progress(env.reset(), loop_key,
                                      learner.metric_names(state))], [env])
    found = recovery.restore_newest_intact(
        Checkpointer(os.path.join(workdir, "checkpoints")), template)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints.")
    step, restored = found
    state = restored["agent"].replace(
        config=dataclasses.replace(config, **overrides))
    eval_env.seed(evaluation_seed(flat["seed"], step))
    returns = evaluate([eval_env], learner.act_deterministic, state,
                       num_episodes)[0]
    return {"workdir": os.path.abspath(workdir), "step": step,
            "overrides": overrides, "returns": [float(r) for r in returns],
            "mean": float(np.mean(returns)), "std": float(np.std(returns))}


FLAGS = flags.FLAGS


def _define_flags():
    """The binary's flags (defined only when it runs, so that importing
    this module defines none)."""
    flags.DEFINE_string("workdir", None, "A single-seed run's folder "
                        "(with config.json and checkpoints/).")
    flags.DEFINE_integer("eval_episodes", 10, "Episodes.")
    flags.DEFINE_multi_string(
        "set", [], f"field=value for one of {ALLOWED} (repeatable).")
    flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir or FLAGS.eval_episodes < 1:
        raise app.UsageError("--workdir is required; --eval_episodes >= 1.")
    try:
        flat = files.read_json(os.path.join(FLAGS.workdir, "config.json"))
        spec = agents.get_agent(flat["flat_config"]["agent"])
        overrides = parse_overrides(FLAGS.set, spec.config_cls)
        result = evaluate_run(FLAGS.workdir, FLAGS.eval_episodes, overrides)
    except (OSError, ValueError, recovery.NoIntactCheckpointError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"step {result['step']}, {overrides or 'as trained'}: return "
          f"{result['mean']:.1f} ± {result['std']:.1f} over "
          f"{len(result['returns'])} episodes", flush=True)
    if FLAGS.out:
        files.write_json(FLAGS.out, result)
        print(f"Wrote {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
