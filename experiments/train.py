r"""Train an agent online on a DeepMind Control Suite task.

    python -m experiments.train --env=dmc:cheetah-run --workdir=runs/cheetah

Flags set the run (env, steps, batch, replay, evaluation, checkpoints) and
every hyper-parameter of the agent's config (e.g. `--num_mc_samples=1000`);
unset hyper-parameters take the agent's defaults (docs/defaults.md). Running
the same command again with the same `--workdir` resumes from the last
checkpoint; raising only `--max_steps` extends a finished run.

SIGTERM or SIGINT (a batch system's preemption, Ctrl-C) stops the run after
the current environment step: it writes a checkpoint of that step, prints
`preempted at step N; rerun the same command to resume` on stderr and exits
with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), the code a
shell reports for a process killed by that signal. Not 0: the run is not
finished, and a job controller or a retry loop that reruns failed commands
(a Kubernetes Job, `until python -m experiments.train ...; do :; done`)
must not take it for done; not 1 either, which means an error.

A damaged newest checkpoint is reported in one line, renamed
`<step>.damaged` and the run resumes from the newest intact one; when none
is intact the binary prints one line and exits with 1, touching none.

Outputs under `--workdir`: config.json (with the run's provenance and
restarts), metrics.jsonl (train and eval rows), tensorboard/,
learning_curve.png and checkpoints/. One process at a time holds a
workdir (a second is refused in one line); `--wandb` also logs to Weights
& Biases. The loop itself is the library's `dqs_jax.training.train`; this
binary turns flags (and `--config` files) into its `RunSettings`.

`--num_seeds=N` trains seeds `--seed`, ..., `--seed + N - 1` in one process:
N host environments stepped in lockstep and one vmapped `act` / `update` over
the seeds per step (`dqs_jax.training`); each seed's outputs go to
`<workdir>/seed_<i>/`, one checkpoint holds them all, and resume works as
above. `--shard_seeds` spreads the seeds over all devices.
"""

import dataclasses
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags as ml_config_flags  # noqa: E402

from dqs_jax import agents  # noqa: E402
from experiments.configs import agent_flags as config_flags
from experiments.configs import loader
from dqs_jax import training
from dqs_jax.training import files

_DEFAULTS = training.RunSettings()
_ENV = flags.DEFINE_string(
    "env", _DEFAULTS.env, "Environment, `<family>:<name>`, e.g. "
    "dmc:cheetah-run (every dm_control.suite.ALL_TASKS entry as "
    "dmc:<domain>-<task>).")
_AGENT = flags.DEFINE_string("agent", _DEFAULTS.agent,
                             f"Agent: one of {agents.agent_names()}.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of everything.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", _DEFAULTS.max_steps,
                                  "Environment steps to train for.")
_SEED_STEPS = flags.DEFINE_integer(
    "seed_steps", _DEFAULTS.seed_steps,
    "Initial steps with uniform random actions and no updates.")
_UPDATE_EVERY = flags.DEFINE_integer(
    "update_every", _DEFAULTS.update_every,
    "Env steps per learning step after the seed phase (off-policy agents): "
    "1, the paper's, updates on every step; N > 1 on every N-th step.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                                   "Transitions per update.")
_REPLAY_SIZE = flags.DEFINE_integer("replay_size", _DEFAULTS.replay_size,
                                    "Replay buffer capacity.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                                   "Env steps between evaluations.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes",
                                      _DEFAULTS.eval_episodes,
                                      "Episodes per evaluation.")
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", _DEFAULTS.checkpoint_every,
    "Env steps between checkpoints (the last 2 are kept).")
_LOG_INTERVAL = flags.DEFINE_integer("log_interval", _DEFAULTS.log_interval,
                                     "Env steps between progress lines.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder; default runs/<agent>_<env>_seed<seed>.")
_NUM_SEEDS = flags.DEFINE_integer(
    "num_seeds", _DEFAULTS.num_seeds,
    "Seeds run at once in this process (seeds --seed .. --seed + N - 1): N "
    "host environments, one vmapped act/update per step; outputs per seed "
    "in <workdir>/seed_<i>/, one checkpoint for all.")
_SHARD_SEEDS = flags.DEFINE_boolean(
    "shard_seeds", _DEFAULTS.shard_seeds,
    "Spread the seeds over all devices (--num_seeds divisible by their "
    "count).")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Discard a different run found in --workdir.")
_MATMUL_PRECISION = config_flags.define_matmul_precision_flag(
    "JAX's default float32 matmul precision: on recent NVIDIA GPUs "
    "'default' lets XLA use TF32 for float32 matmuls, 'highest' keeps full "
    "float32 (docs/gpu.md); no effect on CPU. Recorded in config.json.")
_WANDB = config_flags.WandbFlags(
    "Also log to Weights & Biases: the config, every metrics row and the "
    "learning curve; a resumed run continues its W&B run "
    "(WANDB_MODE=offline: no network, `wandb sync` later).",
    "W&B group, e.g. a sweep (with --wandb).",
    "W&B run name (with --wandb; default <agent>_<env>_seed<seed>).")

_CONFIG = ml_config_flags.DEFINE_config_file(
    "config", None, "An experiment config file, e.g. "
    "experiments/configs/dmc.py (or dmc.py:sac for another agent); its "
    "fields are overridable as --config.run.max_steps=... and "
    "--config.agent.num_mc_samples=...; run and agent flags set "
    "explicitly on the command line win over it.")

# One flag per hyper-parameter of every registered agent; the agent this
# command line names first, so that `--agent=sac --help` shows SAC's
# defaults.
_NAMED = config_flags.agent_from_argv(sys.argv, _DEFAULTS.agent)
CONFIG_CLASSES = tuple(agents.get_agent(name).config_cls for name in sorted(
    agents.agent_names(), key=lambda name: (name != _NAMED, name != "dqs",
                                            name)))
_AGENT_FLAGS = config_flags.define_config_flags(CONFIG_CLASSES)
flags.adopt_module_key_flags(config_flags)  # Listed by --help.


_RUN_FLAGS = (_ENV, _SEED, _MAX_STEPS, _SEED_STEPS, _UPDATE_EVERY,
              _BATCH_SIZE, _REPLAY_SIZE, _EVAL_EVERY, _EVAL_EPISODES,
              _CHECKPOINT_EVERY, _LOG_INTERVAL, _NUM_SEEDS, _SHARD_SEEDS)


def _from_config():
    """`(agent name, run settings, agent overrides)` of `--config` (empty
    without one)."""
    config = _CONFIG.value
    if config is None:
        return None, {}, {}
    run, overrides = dict(config.run), dict(config.agent)
    name = config.agent_name
    if _AGENT.present and _AGENT.value != name:
        raise ValueError(f"--agent={_AGENT.value} but the config's agent "
                         f"section is for {name}; load it as "
                         f"--config=<file>:{_AGENT.value}.")
    fields = {f.name for f in dataclasses.fields(
        agents.get_agent(name).config_cls)}
    unknown = (set(overrides) - fields) | (set(run) - {
        flag.name for flag in _RUN_FLAGS})
    if unknown:
        raise ValueError(f"--config sets unknown fields {sorted(unknown)}.")
    return name, run, {k: tuple(v) if isinstance(v, list) else v
                       for k, v in overrides.items()}


def settings_from_flags() -> training.RunSettings:
    """RunSettings from the parsed flags (over `--config` if given);
    ValueError on bad values."""
    name, run, overrides = _from_config()
    agent = _AGENT.value if name is None or _AGENT.present else name
    spec = agents.get_agent(agent)
    overrides.update(config_flags.config_overrides(spec.config_cls,
                                                   _AGENT_FLAGS))
    value = {flag.name: (run[flag.name] if flag.name in run
                         and not flag.present else flag.value)
             for flag in _RUN_FLAGS}
    workdir = _WORKDIR.value or os.path.join(
        "runs", f"{agent}_{value['env'].replace(':', '_')}_seed"
        f"{value['seed']}")
    settings = training.RunSettings(
        agent=agent, workdir=workdir, overwrite=_OVERWRITE.value,
        agent_config=spec.make_config(**overrides), wandb=_WANDB.settings(),
        **value)
    settings.validate()
    return settings


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Quiet orbax's INFO lines.
    try:
        settings = settings_from_flags()
        files.check_writable_dir(settings.workdir)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config_flags.apply_matmul_precision(_MATMUL_PRECISION.value)
    try:
        summary = training.train(settings, argv=sys.argv)
    except (training.ConfigMismatchError,
            training.NoIntactCheckpointError,
            training.NonFiniteLossError,
            training.WorkdirLockedError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    if summary["stopped_by"] is not None:  # The loop printed its line.
        sys.exit(128 + summary["stopped_by"])
    final = summary["final_eval_return"]
    show = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    per_seed = isinstance(final, list)
    print(f"Done: {summary['env_steps']} env steps, {summary['num_updates']} "
          f"updates{' per seed' if per_seed else ''}; final evaluation return "
          + (f"per seed [{', '.join(show(v) for v in final)}]" if per_seed
             else show(final)) + ".")
    where = "seed_<i>/{metrics.jsonl, learning_curve.png, tensorboard/}, " \
        if per_seed else "metrics.jsonl, learning_curve.png, tensorboard/, "
    print(f"Outputs: {summary['workdir']} ({where}checkpoints/, config.json)")


if __name__ == "__main__":
    loader.check_config_argv(sys.argv)
    app.run(main)
