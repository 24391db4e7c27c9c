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
from typing import Dict, List

from absl import app, flags

from dqs_jax.training import files, lock
from experiments.configs import agent_flags, loader
from experiments.dmc import launch, sweep

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
    "jobs", 1, "--launcher=local: runs at a time; each then keeps XLA's CPU "
    "work on one thread (see docs/performance.md for what it gains on 2 "
    "cores).", lower_bound=1)
_LAUNCHER = flags.DEFINE_enum(
    "launcher", "local", launch.LAUNCHERS,
    "local: subprocesses on this machine (--jobs at a time); slurm: a SLURM "
    "job array through submitit, one run per task; submitit_local: "
    "submitit's local executor (real subprocesses, no scheduler); debug: "
    "submitit in process.")
_WAIT = flags.DEFINE_boolean(
    "wait", False, "--launcher=slurm: wait for the jobs and print the table "
    "(the other launchers always wait).")
_WANDB = agent_flags.WandbFlags(
    "Every run logs to Weights & Biases (experiments.train --wandb), one "
    "W&B run per run, grouped by sweep.",
    "W&B group (with --wandb; default: the sweep folder's name).")
_DEFAULT_CLUSTER = launch.ClusterSettings()
_CLUSTER_FLAGS = {
    "partition": flags.DEFINE_string("partition", None, "SLURM partition."),
    "account": flags.DEFINE_string("account", None, "SLURM account."),
    "qos": flags.DEFINE_string("qos", None, "SLURM quality of service."),
    "gpus_per_run": flags.DEFINE_integer(
        "gpus_per_run", _DEFAULT_CLUSTER.gpus_per_run, "GPUs per run."),
    "cpus_per_run": flags.DEFINE_integer(
        "cpus_per_run", _DEFAULT_CLUSTER.cpus_per_run, "CPUs per run."),
    "mem_gb": flags.DEFINE_integer("mem_gb", _DEFAULT_CLUSTER.mem_gb,
                                   "Memory per run, GB."),
    "time_min": flags.DEFINE_integer(
        "time_min", _DEFAULT_CLUSTER.time_min, "Time limit per job, minutes "
        "(a longer run is checkpointed and requeued)."),
    "array_parallelism": flags.DEFINE_integer(
        "array_parallelism", _DEFAULT_CLUSTER.array_parallelism,
        "Runs of the job array at once."),
    "max_timeouts": flags.DEFINE_integer(
        "max_timeouts", _DEFAULT_CLUSTER.max_timeouts,
        "Requeues after a time limit, per run."),
    "extra": flags.DEFINE_multi_string(
        "launcher_args", [], "key=value: another #SBATCH parameter "
        "(repeatable), e.g. constraint=a100."),
}
# Flags of the submitit launchers without a scheduler.
_LOCAL_SUBMITIT_FLAGS = ("time_min", "max_timeouts")


def cluster_settings() -> launch.ClusterSettings:
    """The cluster flags as settings; UsageError for flags that the chosen
    launcher does not use, or bad values."""
    launcher = _LAUNCHER.value
    allowed = {"slurm": set(_CLUSTER_FLAGS),
               "submitit_local": set(_LOCAL_SUBMITIT_FLAGS)}.get(launcher,
                                                                 set())
    given = sorted(flags.FLAGS[holder.name].name for name, holder in
                   _CLUSTER_FLAGS.items()
                   if flags.FLAGS[holder.name].present and name not in allowed)
    if given:
        raise app.UsageError(
            f"--{', --'.join(given)} "
            f"{'does' if len(given) == 1 else 'do'} not apply to "
            f"--launcher={launcher} (cluster flags are for --launcher=slurm).")
    if _WAIT.present and launcher != "slurm":
        raise app.UsageError("--wait applies to --launcher=slurm only.")
    if _JOBS.present and launcher != "local":
        raise app.UsageError("--jobs applies to --launcher=local only.")
    try:
        return launch.ClusterSettings(**{
            name: (tuple(holder.value) if name == "extra" else holder.value)
            for name, holder in _CLUSTER_FLAGS.items()})
    except ValueError as e:
        raise app.UsageError(str(e)) from None


def add_wandb_flags(runs: List[Dict]) -> None:
    """With --wandb, each run's command logs to W&B: group = the sweep, run
    name = `<agent>_<env>_seed<seed>`."""
    try:
        tracking = _WANDB.settings()
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    if tracking is None:
        return
    group = tracking.group or os.path.basename(os.path.abspath(_WORKDIR.value))
    for run in runs:
        run["cmd"] += ["--wandb", f"--wandb_project={tracking.project}",
                       f"--wandb_group={group}",
                       f"--wandb_name={run['agent']}_{run['env']}_seed"
                       f"{run['seed']}"]
        if tracking.entity:
            run["cmd"].append(f"--wandb_entity={tracking.entity}")


def _runs_to_launch(runs: List[Dict], max_steps: int) -> List[Dict]:
    """The unfinished runs whose workdir no live process holds."""
    todo = []
    for run in runs:
        if sweep.progress(run, max_steps)["state"] == "done":
            continue
        holder = lock.is_locked(run["workdir"])
        if holder is not None:
            print(f"skipping {run['workdir']}: in use by {holder}",
                  flush=True)
            continue
        todo.append(run)
    return todo


def _submitit_folder() -> str:
    """Where submitit keeps the sweep's job logs and `jobs.json`."""
    return os.path.join(os.path.abspath(_WORKDIR.value), "submitit")


def _job_name(spec: Dict) -> str:
    """`dqs-<preset>`: the SLURM job name of the sweep's runs."""
    return f"dqs-{os.path.splitext(os.path.basename(spec['preset']))[0]}"


def _launch_submitit(runs: List[Dict], spec: Dict,
                     cluster: launch.ClusterSettings) -> int:
    """Submits `runs` through submitit; the number of failed runs (0 when
    slurm jobs are left running without --wait)."""
    folder = _submitit_folder()
    records_path = os.path.join(folder, "jobs.json")
    records = (files.read_json(records_path)
               if os.path.exists(records_path) else {})
    launcher = _LAUNCHER.value
    if launcher == "slurm":
        busy = launch.active_jobs(folder, records)
        for workdir, job_id in sorted(busy.items()):
            print(f"skipping {workdir}: SLURM job {job_id} is still queued "
                  "or running", flush=True)
        runs = [r for r in runs if r["workdir"] not in busy]
    if not runs:
        return 0
    executor = launch.make_executor(launcher, folder, cluster,
                                    _job_name(spec))
    jobs = executor.map_array(launch.RunJob(), runs)
    records.update({run["workdir"]: job.job_id
                    for run, job in zip(runs, jobs)})
    os.makedirs(folder, exist_ok=True)
    files.write_json(records_path, records)
    print(f"submitted {len(jobs)} runs ({launcher}): jobs "
          f"{', '.join(job.job_id for job in jobs)}; logs in {folder}",
          flush=True)
    if launcher == "slurm" and not _WAIT.value:
        print(f"watch: python -m experiments.reproduce "
              f"--workdir={_WORKDIR.value} --status")
        return 0
    failures = 0
    for run, job in zip(runs, jobs):
        try:
            job.result()
        except Exception as e:  # pylint: disable=broad-except
            failures += 1
            last = str(e).strip().splitlines()[-1] if str(e).strip() else e
            print(f"  run {run['workdir']} failed (job {job.job_id}): "
                  f"{last}", file=sys.stderr, flush=True)
    return failures


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
    add_wandb_flags(runs)
    cluster = cluster_settings()
    if _DRY_RUN.value:
        for run in runs:
            print(" ".join(shlex.quote(c) for c in run["cmd"]))
        if _LAUNCHER.value == "slurm":
            print(f"# sbatch file of the job array ({len(runs)} runs, one "
                  "per task):")
            print(launch.sbatch_script(_submitit_folder(), cluster,
                                       _job_name(spec), len(runs)))
        print(f"{len(runs)} runs", file=sys.stderr)
        return
    if _STATUS.value:
        print(sweep.status_table(runs, spec["max_steps"]))
        return
    try:
        files.check_writable_dir(_WORKDIR.value)
        sweep_lock = lock.WorkdirLock(_WORKDIR.value, what="sweep").acquire()
    except (ValueError, lock.WorkdirLockedError) as e:
        raise app.UsageError(str(e)) from None
    try:
        files.write_json(sweep_json, {
            **{k: list(v) if isinstance(v, tuple) else v
               for k, v in spec.items() if k != "agent_flags"},
            "agent_flags": {k: list(v) for k, v in spec["agent_flags"].items()},
            "extra_flags": list(extra), "versions": files.versions(),
            "launcher": _LAUNCHER.value})
        start = time.perf_counter()
        todo = _runs_to_launch(runs, spec["max_steps"])
        if _LAUNCHER.value == "local":
            failures = sweep.execute(todo, spec["max_steps"], _JOBS.value)
        else:
            failures = _launch_submitit(todo, spec, cluster)
            if _LAUNCHER.value == "slurm" and not _WAIT.value:
                return
    finally:
        sweep_lock.release()
    print(sweep.status_table(runs, spec["max_steps"]))
    print(f"Sweep {_WORKDIR.value}: {(time.perf_counter() - start) / 60:.1f} "
          f"min this call; report: python -m experiments.report "
          f"--sweep={_WORKDIR.value}")
    if failures:
        raise SystemExit(f"{failures} runs failed; rerun the same command "
                         "to retry them.")


if __name__ == "__main__":
    app.run(main)
