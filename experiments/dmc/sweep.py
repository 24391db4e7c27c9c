"""The runs of a DMC sweep (tasks x agents x seeds) and their progress:
the flag-free library of `experiments.reproduce` (presets documented
there)."""


import concurrent.futures
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app

from dqs_jax import agents
from dqs_jax.training import files

PAPER_TASKS = ("cheetah-run", "finger-spin", "finger-turn_hard", "fish-swim",
               "hopper-hop", "quadruped-run", "reacher-hard", "walker-run")
_SMALL_NETS = ("--hidden_dims=128,128", "--critic_hidden_dims=128,128",
               "--batch_size=128")

PRESETS: Dict[str, Dict] = {
    "paper": dict(tasks=tuple(f"dmc:{t}" for t in PAPER_TASKS),
                  agents=None, seeds=(0, 1, 2, 3, 4), max_steps=250_000,
                  eval_every=10_000, eval_episodes=10, flags=(),
                  agent_flags={}),
    "gpu": dict(tasks=("dmc:reacher-hard",), agents=("dqs", "sac"),
                seeds=(0, 1), max_steps=20_000, eval_every=2_500,
                eval_episodes=10, flags=("--seed_steps=5000",),
                agent_flags={}),
    # The paper's 100k-step comparison at CPU sizes: DQS, SAC and TD3 on
    # the two tasks of the paper's widest DQS margins, all agents at the
    # same sizes (2x128 networks, batch 128; DQS K = 32, 20 sampler steps),
    # the paper's 10k seed steps, evaluation every 10k steps (10 episodes).
    "cpu": dict(tasks=("dmc:cheetah-run", "dmc:reacher-hard"),
                agents=("dqs", "sac", "td3"), seeds=(0, 1, 2),
                max_steps=100_000, eval_every=10_000, eval_episodes=10,
                flags=_SMALL_NETS,
                agent_flags={"dqs": ("--num_mc_samples=32",
                                     "--num_sampling_steps=20")}),
    # A few minutes: the cpu preset's shape on one task, 2k steps.
    "smoke": dict(tasks=("dmc:reacher-hard",), agents=("dqs", "sac"),
                  seeds=(0, 1, 2), max_steps=2_000, eval_every=1_000,
                  eval_episodes=2, flags=("--seed_steps=500",) + _SMALL_NETS,
                  agent_flags={"dqs": ("--num_mc_samples=32",)}),
    # Issue 14: DQS with the reference implementation's network details
    # (this library's defaults) against the previous ones, at the CPU
    # config of the table, 5 seeds, on two tasks that learn within
    # 30k CPU steps.
    "parity": dict(tasks=("dmc:cheetah-run", "dmc:walker-walk"),
                   agents=("dqs@reference", "dqs@previous"),
                   seeds=(0, 1, 2, 3, 4), max_steps=30_000, eval_every=5_000,
                   eval_episodes=10,
                   flags=("--seed_steps=2000",) + _SMALL_NETS,
                   agent_flags={"dqs": ("--num_mc_samples=32",
                                        "--num_sampling_steps=20")},
                   variants={"reference": (),
                             "previous": ("--kernel_init=lecun_normal",
                                          "--score_input_activation=none")}),
    # Issue 14, baselines: SAC with the initialisation of the DQS authors'
    # lab's SAC (orthogonal sqrt(2), outputs included) against Flax's
    # default (this library's), at the parity preset's sizes and tasks.
    "init": dict(tasks=("dmc:cheetah-run", "dmc:walker-walk"),
                 agents=("sac@lecun_normal", "sac@orthogonal"),
                 seeds=(0, 1, 2, 3, 4), max_steps=30_000, eval_every=5_000,
                 eval_episodes=10,
                 flags=("--seed_steps=2000",) + _SMALL_NETS, agent_flags={},
                 variants={"lecun_normal": (),
                           "orthogonal": ("--kernel_init=orthogonal",)}),
}
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
    """The preset with overrides applied and validated."""
    spec = dict(PRESETS[preset], preset=preset)
    if tasks:
        spec["tasks"] = tuple(tasks)
    spec["agents"] = tuple(agent_names or spec["agents"]
                           or agents.agent_names())
    spec.setdefault("variants", {})
    unknown = sorted({split_label(a)[0] for a in spec["agents"]}
                     - set(agents.agent_names()))
    if unknown:
        raise app.UsageError(f"unknown agents {unknown}; choose from "
                             f"{agents.agent_names()}.")
    bad = sorted(a for a in spec["agents"]
                 if split_label(a)[1] and split_label(a)[1]
                 not in spec["variants"])
    if bad:
        raise app.UsageError(
            f"unknown variants {bad}; the {preset} preset defines "
            f"{sorted(spec['variants']) or 'none'} (agent@variant).")
    if seeds:
        if not all(s.isdigit() for s in seeds):
            raise app.UsageError(f"--seeds must be integers, got {seeds}.")
        spec["seeds"] = tuple(int(s) for s in seeds)
    if max_steps is not None:
        if max_steps < 1:
            raise app.UsageError(f"--max_steps must be >= 1, got {max_steps}.")
        spec["max_steps"] = max_steps
    return spec


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
