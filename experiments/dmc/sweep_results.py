"""Evaluation curves of a sweep folder, table cells and the paper's numbers.

A sweep folder (`experiments.reproduce`) holds
`<sweep>/<agent>/<env with ':' as '_'>/seed_<i>/metrics.jsonl`, and optionally
`<sweep>/sweep.json` (`{"tasks": [...], "agents": [...], "seeds": [...]}`).
"""

import csv
import dataclasses
import importlib.resources
import io
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from dqs_jax.training import files

PAPER_SOURCE = ('Jain, Akhound-Sadegh & Ravanbakhsh, "Sampling from '
                'Energy-based Policies using Diffusion", arXiv:2410.01312, '
                'Tables 1-2')
# Return scale per env family for normalised scores (DMC returns are in
# [0, 1000]); tasks of other families are left out of the aggregates.
NORMALISERS = {"dmc": 1000.0}
PAPER_STEPS = (100_000, 250_000)  # the env steps of the paper's Tables 1-2

Curve = Tuple[np.ndarray, np.ndarray]  # (eval steps [E], eval returns [E])


class SweepError(ValueError):
    """The sweep folder is missing or holds no evaluated run."""


@dataclasses.dataclass
class Sweep:
    """Evaluation curves: `curves[(agent, task)][seed] = (steps, returns)`.

    `agents` and `tasks` are those of sweep.json (in its order) and those
    found; an (agent, task) without an evaluated run has no key in `curves`.
    """
    path: str
    agents: List[str]
    tasks: List[str]
    seeds: List[str]              # expected seeds (sweep.json) or found ones
    curves: Dict[Tuple[str, str], Dict[str, Curve]]
    missing: List[str]            # expected or found runs without eval rows
    config: Dict
    # wall_times[(agent, task)][seed]: the run's training wall-clock seconds
    # so far (all its sessions), from its last metrics row.
    wall_times: Dict[Tuple[str, str], Dict[str, float]] = dataclasses.field(
        default_factory=dict)


@dataclasses.dataclass
class Cell:
    """Returns of one (agent, task) at one step: `values [n_seeds]`."""
    target: int
    step: int
    values: np.ndarray

    @property
    def at_target(self) -> bool:
        return self.step == self.target


def env_id(folder: str, tasks: List[str]) -> str:
    """The env id of a run folder: from sweep.json's tasks, else the first
    '_' read back as ':' (`dmc_finger-turn_hard` -> `dmc:finger-turn_hard`)."""
    for task in tasks:
        if task.replace(":", "_") == folder:
            return task
    prefix, sep, rest = folder.partition("_")
    return f"{prefix}:{rest}" if sep else folder


def read_run(path: str) -> Tuple[Optional[Curve], Optional[float]]:
    """`(curve, wall seconds)` of a metrics.jsonl: the eval `(steps,
    returns)` sorted by step (the last row of a repeated step wins; None
    without eval rows) and the largest `wall_time` of its rows (None
    without one)."""
    rows = list(files.MetricsLog(path).rows())
    by_step = {int(r["step"]): float(r["eval_return_mean"])
               for r in rows if r.get("kind") == "eval"}
    walls = [float(r["wall_time"]) for r in rows if "wall_time" in r]
    wall = max(walls) if walls else None
    if not by_step:
        return None, wall
    steps = np.array(sorted(by_step))
    return (steps, np.array([by_step[s] for s in steps])), wall


def _ordered(preferred: List[str], found) -> List[str]:
    return [x for x in preferred if x in found] + sorted(
        set(found) - set(preferred))


def load_sweep(path: str) -> Sweep:
    """Reads every `<agent>/<env>/seed_*/metrics.jsonl` under `path`."""
    if not os.path.isdir(path):
        raise SweepError(f"sweep folder {path!r} does not exist.")
    config_path = os.path.join(path, "sweep.json")
    config = files.read_json(config_path) if os.path.exists(
        config_path) else {}
    tasks_cfg = [str(t) for t in config.get("tasks", [])]
    curves: Dict[Tuple[str, str], Dict[str, Curve]] = {}
    wall_times: Dict[Tuple[str, str], Dict[str, float]] = {}
    found_runs, missing = set(), []
    for agent in sorted(os.listdir(path)):
        agent_dir = os.path.join(path, agent)
        if not os.path.isdir(agent_dir):
            continue
        for folder in sorted(os.listdir(agent_dir)):
            env_dir = os.path.join(agent_dir, folder)
            seeds = sorted(d for d in (os.listdir(env_dir) if os.path.isdir(
                env_dir) else []) if d.startswith("seed_"))
            for seed_dir in seeds:
                task, seed = env_id(folder, tasks_cfg), seed_dir[len("seed_"):]
                found_runs.add((agent, task, seed))
                curve, wall = read_run(os.path.join(env_dir, seed_dir,
                                                    "metrics.jsonl"))
                if wall is not None:
                    wall_times.setdefault((agent, task), {})[seed] = wall
                if curve is None:
                    missing.append(
                        f"{agent}/{folder}/{seed_dir} (no eval rows)")
                else:
                    curves.setdefault((agent, task), {})[seed] = curve
    if not curves:
        raise SweepError(f"no run with evaluation rows under {path!r} "
                         f"(expected <agent>/<env>/seed_<i>/metrics.jsonl).")
    agents_cfg = [str(a) for a in config.get("agents", [])]
    agents = _ordered(agents_cfg, {a for a, _ in curves} | set(agents_cfg))
    tasks = _ordered(tasks_cfg, {t for _, t in curves} | set(tasks_cfg))
    seeds = [str(s) for s in config.get("seeds", [])] or sorted(
        {s for runs in curves.values() for s in runs}, key=_seed_key)
    for agent in agents:
        for task in tasks:
            for seed in seeds:
                if (agent, task, seed) not in found_runs:
                    missing.append(f"{agent}/{task.replace(':', '_')}/"
                                   f"seed_{seed} (not started)")
    return Sweep(path, agents, tasks, seeds, curves, missing, config,
                 wall_times)


def _seed_key(seed: str):
    return (0, int(seed), "") if seed.isdigit() else (1, 0, seed)


def cell(runs: Dict[str, Curve], target: int) -> Optional[Cell]:
    """Returns at `target` env steps of every seed in `runs`, or, where a seed
    did not get there, at the largest eval step <= target that all seeds
    share. None if the seeds share no such step."""
    common = None
    for steps, _ in runs.values():
        kept = set(steps[steps <= target].tolist())
        common = kept if common is None else common & kept
    if not common:
        return None
    step = max(common)
    values = np.array([returns[np.flatnonzero(steps == step)[0]]
                       for steps, returns in runs.values()])
    return Cell(target, int(step), values)


def format_step(step: int) -> str:
    """`40000 -> '40k'`, `12500 -> '12.5k'`, `500 -> '500'`."""
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def normaliser(task: str) -> Optional[float]:
    return NORMALISERS.get(task.partition(":")[0])


def score_matrix(sweep: Sweep, agent: str, target: int
                 ) -> Tuple[np.ndarray, List[str], List[Cell]]:
    """Normalised scores `[runs, tasks]` (NaN-padded) of `agent` at `target`
    over the normalisable tasks it has a cell for; those tasks and cells."""
    tasks, cells = [], []
    for task in sweep.tasks:
        runs = sweep.curves.get((agent, task))
        c = cell(runs, target) if runs and normaliser(task) else None
        if c is not None:
            tasks.append(task)
            cells.append(c)
    if not cells:
        return np.zeros((0, 0)), [], []
    scores = np.full((max(c.values.size for c in cells), len(cells)), np.nan)
    for j, (task, c) in enumerate(zip(tasks, cells)):
        scores[:c.values.size, j] = c.values / normaliser(task)
    return scores, tasks, cells


def paper_results() -> Dict[Tuple[str, str, int], float]:
    """The paper's returns, `{(env id, agent, step): return}`, from the
    packaged `dqs_jax/data/paper_dmc_results.csv`."""
    text = (importlib.resources.files("dqs_jax")
            .joinpath("data", "paper_dmc_results.csv").read_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(rows[0]) != {"task", "agent", "step", "return",
                                    "source"}:
        raise ValueError("paper_dmc_results.csv: expected the columns "
                         "task,agent,step,return,source.")
    return {("dmc:" + r["task"], r["agent"], int(r["step"])):
            float(r["return"]) for r in rows}


def default_targets(sweep: Sweep) -> List[int]:
    """The paper's table steps (100k, 250k) up to the sweep's `max_steps`
    (sweep.json); `[max_steps]` if it is below both; both without one."""
    max_steps = sweep.config.get("max_steps")
    if max_steps is None:
        return list(PAPER_STEPS)
    return [s for s in PAPER_STEPS if s <= int(max_steps)] or [
        int(max_steps)]


def describe(sweep: Sweep) -> str:
    """One line: the sweep's settings from sweep.json, if any."""
    keys = ("preset", "max_steps", "eval_every")
    return json.dumps({k: sweep.config[k] for k in keys if k in sweep.config})
