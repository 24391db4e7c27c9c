r"""Resumable sweep over tasks x agents x seeds: the paper's DMC tables.

    python -m experiments.reproduce --preset=smoke --workdir=runs/repro_smoke
    python -m experiments.reproduce --preset=paper --workdir=W --dry_run
    python -m experiments.reproduce --workdir=W --status
    python -m experiments.report --sweep=W       # tables and plots

Each run is one `experiments.train` process with its own workdir
`<workdir>/<agent>/<env with ':' as '_'>/seed_<i>`; a finished run (its
last evaluation at `max_steps`) is skipped, an unfinished one resumes from
its checkpoint, so rerunning the same command continues the sweep (also
after a preemption). `--jobs=N` runs N at a time (each single-threaded
on the CPU). `--dry_run` prints the commands, `--status` a table of
progress. Flags after `--` are passed to every run; `--tasks`, `--agents`,
`--seeds`, `--max_steps` override the preset. `<workdir>/sweep.json`
records what was asked.

Presets are config files in `experiments/configs/sweeps/` (each file's
docstring says what it runs): `paper` (Tables 1-2), `gpu`, `cpu` (the
100k-step comparison at CPU sizes), `smoke` (a few minutes), `parity`,
`init`. `--preset` also takes the path of a sweep config file of your own
(a `get_config()` returning the fields of `experiments.dmc.sweep.SweepSpec`).

An agent may be given as `agent@variant` (the `parity` and `init` presets'
agents): `--agent=agent` plus the flags the preset lists for that variant,
in the run folder `<workdir>/agent@variant/...`; reports show each label
as an agent.
"""

import os
import shlex
import sys
import time

from absl import app, flags

from dqs_jax.training import files
from experiments.configs import loader
from experiments.dmc import sweep

_PRESET = flags.DEFINE_string(
    "preset", "smoke", f"Sweep preset: one of {loader.preset_names('sweeps')} "
    "(experiments/configs/sweeps/), or a sweep config file's path.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder (required).")
_TASKS = flags.DEFINE_list("tasks", None, "Override the preset's tasks.")
_AGENTS = flags.DEFINE_list("agents", None, "Override the preset's agents.")
_SEEDS = flags.DEFINE_list("seeds", None, "Override the preset's seeds.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None,
                                  "Override the preset's steps per run.")
_DRY_RUN = flags.DEFINE_boolean("dry_run", False, "Print the commands only.")
_STATUS = flags.DEFINE_boolean("status", False, "Print progress only.")
_JOBS = flags.DEFINE_integer(
    "jobs", 1, "Runs at a time; each then keeps XLA's CPU work on one "
    "thread (see docs/performance.md for what it gains on 2 cores).",
    lower_bound=1)


def main(argv):
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required.")
    extra = argv[1:]
    sweep_json = os.path.join(_WORKDIR.value, "sweep.json")
    preset = _PRESET.value
    if _STATUS.value and os.path.exists(sweep_json):
        preset = files.read_json(sweep_json)["preset"]
    spec = sweep.resolve(preset, _TASKS.value, _AGENTS.value, _SEEDS.value,
                   _MAX_STEPS.value)
    if _STATUS.value and os.path.exists(sweep_json):
        spec = {**spec, **{k: v for k, v in files.read_json(
            sweep_json).items() if k in spec}}
    runs = sweep.commands(spec, _WORKDIR.value, extra)
    if _DRY_RUN.value:
        for run in runs:
            print(" ".join(shlex.quote(c) for c in run["cmd"]))
        print(f"{len(runs)} runs", file=sys.stderr)
        return
    if _STATUS.value:
        print(sweep.status_table(runs, spec["max_steps"]))
        return
    os.makedirs(_WORKDIR.value, exist_ok=True)
    files.write_json(sweep_json, {
        **{k: list(v) if isinstance(v, tuple) else v
           for k, v in spec.items() if k != "agent_flags"},
        "agent_flags": {k: list(v) for k, v in spec["agent_flags"].items()},
        "extra_flags": list(extra), "versions": files.versions()})
    start = time.perf_counter()
    failures = sweep.execute(runs, spec["max_steps"], _JOBS.value)
    print(sweep.status_table(runs, spec["max_steps"]))
    print(f"Sweep {_WORKDIR.value}: {(time.perf_counter() - start) / 60:.1f} "
          f"min this call; report: python -m experiments.report "
          f"--sweep={_WORKDIR.value}")
    if failures:
        raise SystemExit(f"{failures} runs failed; rerun the same command "
                         "to retry them.")


if __name__ == "__main__":
    app.run(main)
