"""The report's per-run views of a sweep: per-seed returns, each task's
ordering of agents beside the paper's, and wall times."""

from typing import Dict, List, Sequence

import numpy as np

from experiments.dmc import stats as rl_stats
from experiments.dmc import sweep_results as sr


def per_seed_table(sweep: sr.Sweep, target: int) -> List[str]:
    """Markdown lines: one row per task and agent, one column per seed (at
    the cell's step, as in the returns table, marked when short)."""
    lines = [f"### Per-seed returns at {sr.format_step(target)} env steps",
             "", "| task | agent | " + " | ".join(
                 f"seed {s}" for s in sweep.seeds) + " |",
             "|---" * (2 + len(sweep.seeds)) + "|"]
    for task in sweep.tasks:
        for agent in sweep.agents:
            runs = sweep.curves.get((agent, task))
            c = sr.cell(runs, target) if runs else None
            if c is None:
                continue
            values = dict(zip(runs, c.values.tolist()))
            mark = "" if c.at_target else f" (at {sr.format_step(c.step)})"
            row = [task, agent + mark] + [
                "–" if s not in values else f"{values[s]:.1f}"
                for s in sweep.seeds]
            lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def per_seed_rows(sweep: sr.Sweep, targets: Sequence[int]) -> List[Dict]:
    """per_seed.csv: `target_step, task, agent, seed, step, return`."""
    rows = []
    for target in targets:
        for (agent, task), runs in sweep.curves.items():
            c = sr.cell(runs, target)
            if c is None:
                continue
            for seed, value in zip(runs, c.values.tolist()):
                rows.append({"target_step": target, "task": task,
                             "agent": agent, "seed": seed, "step": c.step,
                             "return": value})
    return rows


def _margin(leader: np.ndarray, runner_up: np.ndarray, num_samples: int,
            seed: int, confidence: float):
    """Difference of the two agents' mean returns with a bootstrap CI
    (seeds resampled independently per agent)."""
    size = max(leader.size, runner_up.size)
    matrix = np.full((size, 2), np.nan)
    matrix[:leader.size, 0], matrix[:runner_up.size, 1] = leader, runner_up
    return rl_stats.stratified_bootstrap_ci(
        matrix, lambda s: np.nanmean(s[:, 0]) - np.nanmean(s[:, 1]),
        num_samples, confidence, seed)


def ordering_table(sweep: sr.Sweep, paper, target: int, num_samples: int,
                   seed: int, confidence: float) -> List[str]:
    """Markdown lines: per task, the agents by mean return (ours), the
    paper's order of the same agents, whether the leader is the same, and
    our leader's margin over our runner-up with its bootstrap CI."""
    lines = [f"### Ordering at {sr.format_step(target)} env steps", "",
             "| task | ours (mean return) | paper | same leader | "
             f"leader - runner-up [{confidence:.0%} CI] |", "|---" * 5 + "|"]
    for task in sweep.tasks:
        cells = {a: sr.cell(sweep.curves[(a, task)], target)
                 for a in sweep.agents if (a, task) in sweep.curves}
        cells = {a: c for a, c in cells.items() if c is not None}
        if not cells:
            continue
        ours = sorted(cells, key=lambda a: -cells[a].values.mean())
        theirs = sorted((a for a in ours if (task, a, target) in paper),
                        key=lambda a: -paper[(task, a, target)])
        same = ("–" if len(theirs) < 2 or len(ours) < 2
                else "yes" if ours[0] == theirs[0] else "no")
        margin = "–"
        if len(ours) > 1:
            point, lower, upper = _margin(
                cells[ours[0]].values, cells[ours[1]].values, num_samples,
                seed, confidence)
            margin = f"{point:.1f} [{lower:.1f}, {upper:.1f}]"
        lines.append(
            f"| {task} | " + " > ".join(
                f"{a} ({cells[a].values.mean():.1f})" for a in ours)
            + " | " + (" > ".join(
                f"{a} ({paper[(task, a, target)]:.1f})" for a in theirs)
                or "–") + f" | {same} | {margin} |")
    return lines + [""]


def wall_time_rows(sweep: sr.Sweep) -> List[Dict]:
    """wall_times.csv: per run, `agent, task, seed, wall_minutes` (training
    wall-clock time over all its sessions, evaluations included)."""
    return [{"agent": agent, "task": task, "seed": seed,
             "wall_minutes": seconds / 60.0}
            for (agent, task), runs in sorted(sweep.wall_times.items())
            for seed, seconds in runs.items()]
