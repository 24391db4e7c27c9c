"""The runs of a DMC sweep (tasks x agents x seeds) and their progress:
the logic of `experiments.reproduce` (presets: config files in
`experiments/configs/sweeps/`)."""


import concurrent.futures
import dataclasses
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app

from dqs_jax import agents
from dqs_jax.training import files
from experiments.configs import loader

PAPER_TASKS = ("cheetah-run", "finger-spin", "finger-turn_hard", "fish-swim",
               "hopper-hop", "quadruped-run", "reacher-hard", "walker-run")
# The CPU sizes shared by the CPU presets: 2x128 networks, batch 128.
SMALL_NETS = ("--hidden_dims=128,128", "--critic_hidden_dims=128,128",
              "--batch_size=128")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: tasks x agents x seeds, each run one `experiments.train`.

    Presets are config files in `experiments/configs/sweeps/`. `flags` go
    to every run, `agent_flags[agent]` to that agent's runs, and an agent
    given as `agent@variant` adds `variants[variant]` (its own folder).
    """

    tasks: Tuple[str, ...]
    agents: Tuple[str, ...]
    seeds: Tuple[int, ...] = (0, 1, 2)
    max_steps: int = 100_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    flags: Tuple[str, ...] = ()
    agent_flags: Dict[str, Tuple[str, ...]] = dataclasses.field(
        default_factory=dict)
    variants: Dict[str, Tuple[str, ...]] = dataclasses.field(
        default_factory=dict)

    def __post_init__(self):
        if not self.tasks or not self.agents or not self.seeds:
            raise ValueError("a sweep needs tasks, agents and seeds.")
        unknown = sorted({split_label(a)[0] for a in self.agents}
                         - set(agents.agent_names()))
        if unknown:
            raise ValueError(f"unknown agents {unknown}; choose from "
                             f"{agents.agent_names()}.")
        bad = sorted(a for a in self.agents if split_label(a)[1]
                     and split_label(a)[1] not in self.variants)
        if bad:
            raise ValueError(
                f"unknown variants {bad}; this sweep defines "
                f"{sorted(self.variants) or 'none'} (agent@variant).")
        if not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds must be integers >= 0, got {self.seeds}.")
        for name in ("max_steps", "eval_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got "
                                 f"{getattr(self, name)}.")
        flags_ = list(self.flags) + [f for group in (
            *self.agent_flags.values(), *self.variants.values())
            for f in group]
        if not all(isinstance(f, str) and f.startswith("--") for f in flags_):
            raise ValueError(f"sweep flags must be --flag=value strings, "
                             f"got {flags_}.")


VARIANT_SEP = "@"


def sweep_run_dir(root: str, agent: str, env: str, seed) -> str:
    """The workdir of one run of a sweep:
    `<root>/<agent>/<env with ':' as '_'>/seed_<seed>`."""
    return os.path.join(root, agent, env.replace(":", "_"), f"seed_{seed}")


def split_label(label: str) -> Tuple[str, str]:
    """`(agent, variant)` of a sweep label `agent` or `agent@variant`."""
    agent, _, variant = label.partition(VARIANT_SEP)
    return agent, variant


def resolve(preset: str, tasks: Optional[Sequence[str]] = None,
            agent_names: Optional[Sequence[str]] = None,
            seeds: Optional[Sequence[str]] = None,
            max_steps: Optional[int] = None) -> Dict:
    """The preset (a name in `experiments/configs/sweeps/`, or a config
    file's path) with overrides applied, validated by `SweepSpec`; as a
    dict with its `preset`. UsageError naming the problem."""
    try:
        if preset.endswith(".py"):
            fields = loader.plain(loader.load_file(preset).to_dict())
        else:
            fields = loader.load_preset("sweeps", preset)
        if tasks:
            fields["tasks"] = tuple(tasks)
        if agent_names:
            fields["agents"] = tuple(agent_names)
        if seeds:
            if not all(str(s).isdigit() for s in seeds):
                raise ValueError(f"--seeds must be integers, got {seeds}.")
            fields["seeds"] = tuple(int(s) for s in seeds)
        if max_steps is not None:
            fields["max_steps"] = max_steps
        spec = SweepSpec(**fields)
    except (TypeError, ValueError) as e:
        raise app.UsageError(f"sweep {preset}: {e}") from None
    return dict(dataclasses.asdict(spec), preset=preset)


def commands(spec: Dict, workdir: str, extra: Sequence[str] = ()
             ) -> List[Dict]:
    """One `{agent, env, seed, workdir, cmd}` per run of the sweep; `agent`
    is the label (`agent@variant` adds the preset's flags of that variant
    and has its own folder)."""
    runs = []
    for env in spec["tasks"]:
        for label in spec["agents"]:
            agent, variant = split_label(label)
            for seed in spec["seeds"]:
                run = sweep_run_dir(workdir, label, env, seed)
                cmd = [sys.executable, "-m", "experiments.train",
                       f"--agent={agent}", f"--env={env}", f"--seed={seed}",
                       f"--max_steps={spec['max_steps']}",
                       f"--eval_every={spec['eval_every']}",
                       f"--eval_episodes={spec['eval_episodes']}",
                       f"--workdir={run}", *spec["flags"],
                       *spec["agent_flags"].get(agent, ()),
                       *spec.get("variants", {}).get(variant, ()), *extra]
                runs.append(dict(agent=label, env=env, seed=seed,
                                 workdir=run, cmd=cmd))
    return runs


def progress(run: Dict, max_steps: int) -> Dict:
    """`{state, step, return}` of a run: done, partial or pending."""
    rows = files.eval_rows(run["workdir"])
    if not rows:
        started = os.path.exists(os.path.join(run["workdir"], "config.json"))
        return dict(state="started" if started else "pending", step=0,
                    ret=None)
    last = rows[-1]
    state = "done" if last["step"] >= max_steps else "partial"
    return dict(state=state, step=last["step"], ret=last["eval_return_mean"])


def status_table(runs: List[Dict], max_steps: int) -> str:
    lines = [f"{'agent':8} {'env':24} {'seed':>4} {'state':8} {'step':>8} "
             f"{'return':>8}"]
    counts: Dict[str, int] = {}
    for run in runs:
        p = progress(run, max_steps)
        counts[p["state"]] = counts.get(p["state"], 0) + 1
        ret = "" if p["ret"] is None else f"{p['ret']:.1f}"
        lines.append(f"{run['agent']:8} {run['env']:24} {run['seed']:>4} "
                     f"{p['state']:8} {p['step']:>8} {ret:>8}")
    lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                 + f" of {len(runs)} runs")
    return "\n".join(lines)


# XLA flags that keep one run's CPU work on one thread, so that `jobs`
# concurrent runs share the cores instead of contending for all of them.
SINGLE_THREAD_XLA = ("--xla_cpu_multi_thread_eigen=false "
                     "intra_op_parallelism_threads=1")


def job_environment(jobs: int) -> Dict[str, str]:
    """The environment of each run: this one, plus `SINGLE_THREAD_XLA` in
    `XLA_FLAGS` when `jobs > 1`."""
    env = dict(os.environ)
    if jobs > 1:
        env["XLA_FLAGS"] = " ".join(
            f for f in (env.get("XLA_FLAGS", ""), SINGLE_THREAD_XLA) if f)
    return env


def execute(runs: List[Dict], max_steps: int, jobs: int = 1) -> int:
    """Runs what is not done, in order, `jobs` at a time; returns the
    number of failures."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}.")
    env = job_environment(jobs)
    todo = [(i, run) for i, run in enumerate(runs)
            if progress(run, max_steps)["state"] != "done"]

    def one(item) -> bool:
        i, run = item
        print(f"[{time.strftime('%H:%M:%S')}] run {i + 1}/{len(runs)}: "
              + " ".join(shlex.quote(c) for c in run["cmd"][1:]), flush=True)
        out = subprocess.run(run["cmd"], capture_output=True, text=True,
                             env=env)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
            print(f"  run {i + 1} failed (exit {out.returncode}):\n  "
                  + "\n  ".join(tail), file=sys.stderr, flush=True)
            return False
        p = progress(run, max_steps)
        print(f"  run {i + 1} {p['state']} at step {p['step']}, return "
              f"{p['ret']}", flush=True)
        return True

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return sum(not ok for ok in pool.map(one, todo))
