"""Tables and aggregates of a sweep folder; writes every report output.

`experiments.report` is its command line; see there for the outputs.
"""

import csv
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from experiments.dmc import stats as rl_stats
from experiments.dmc import report_plots
from experiments.dmc import report_runs
from experiments.dmc import sweep_results as sr

CONFIDENCE = report_plots.CONFIDENCE  # of every interval in the report


def cell_text(cell, expected_seeds: int) -> str:
    """`'412.3 ± 20.1'`, marked `(at 40k)` / `(n=2)` when short; `–`."""
    if cell is None:
        return "–"
    n = cell.values.size
    text = f"{cell.values.mean():.1f}"
    if n > 1:
        text += f" ± {cell.values.std(ddof=1):.1f}"
    marks = [] if cell.at_target else [f"at {sr.format_step(cell.step)}"]
    if n < expected_seeds:
        marks.append(f"n={n}")
    return text + (f" ({', '.join(marks)})" if marks else "")


def paper_best(paper, task: str, target: int):
    """`(agent, return)` of the paper's best agent at `target`, or None."""
    found = [(ret, agent) for (t, agent, step), ret in paper.items()
             if t == task and step == target]
    return (max(found)[1], max(found)[0]) if found else None


def return_table(sweep: sr.Sweep, paper, target: int) -> List[str]:
    """Markdown lines: one row per task, per agent ours and the paper's."""
    head = ["task"]
    for agent in sweep.agents:
        head += [agent, f"{agent} (paper)"]
    head.append("paper's best")
    lines = [f"### Return at {sr.format_step(target)} env steps", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for task in sweep.tasks:
        row = [task]
        for agent in sweep.agents:
            runs = sweep.curves.get((agent, task))
            row.append(cell_text(sr.cell(runs, target) if runs else None,
                                 len(sweep.seeds)))
            ret = paper.get((task, agent, target))
            row.append("–" if ret is None else f"{ret:.2f}")
        best = paper_best(paper, task, target)
        row.append("–" if best is None else f"{best[1]:.2f} ({best[0]})")
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def csv_rows(sweep: sr.Sweep, paper, targets: Sequence[int]) -> List[Dict]:
    """report.csv: one row per (target step, task), column groups per agent
    (`<agent>_mean/_std/_n/_step/_paper`; `_step` is the step used)."""
    rows = []
    for target in targets:
        for task in sweep.tasks:
            row = {"target_step": target, "task": task}
            for agent in sweep.agents:
                runs = sweep.curves.get((agent, task))
                c = sr.cell(runs, target) if runs else None
                n = 0 if c is None else c.values.size
                row.update({
                    f"{agent}_mean": "" if c is None else c.values.mean(),
                    f"{agent}_std": c.values.std(ddof=1) if n > 1 else "",
                    f"{agent}_n": n,
                    f"{agent}_step": "" if c is None else c.step,
                    f"{agent}_paper": paper.get((task, agent, target), "")})
            best = paper_best(paper, task, target)
            row["paper_best_agent"] = "" if best is None else best[0]
            row["paper_best_return"] = "" if best is None else best[1]
            rows.append(row)
    return rows


def aggregates(sweep: sr.Sweep, paper, targets: Sequence[int],
               num_samples: int, seed: int) -> List[Dict]:
    """Per target step and agent: mean and IQM of normalised scores over the
    normalisable tasks, with stratified-bootstrap CIs; the paper's mean."""
    out = []
    for target in targets:
        for agent in sweep.agents:
            scores, tasks, cells = sr.score_matrix(sweep, agent, target)
            if not tasks:
                continue
            row = {"target_step": target, "agent": agent,
                   "num_tasks": len(tasks),
                   "num_runs": int(np.isfinite(scores).sum())}
            for name, stat in (("mean", rl_stats.mean_score),
                               ("iqm", rl_stats.iqm)):
                point, lower, upper = rl_stats.stratified_bootstrap_ci(
                    scores, stat, num_samples, CONFIDENCE, seed)
                row.update({name: float(point), f"{name}_lower": float(lower),
                            f"{name}_upper": float(upper)})
            ours = [paper.get((t, agent, target)) for t in tasks]
            row["paper_mean"] = ("" if None in ours else float(np.mean(
                [r / sr.normaliser(t) for r, t in zip(ours, tasks)])))
            row["short_cells"] = "; ".join(
                f"{t} at {sr.format_step(c.step)}"
                for t, c in zip(tasks, cells) if not c.at_target)
            out.append(row)
    return out


def aggregate_table(rows: List[Dict], target: int) -> List[str]:
    lines = [f"### Aggregates at {sr.format_step(target)} env steps "
             "(normalised score = return / 1000)", "",
             "| agent | tasks | runs | mean [95% CI] | IQM [95% CI] | "
             "paper mean | cells at fewer steps |", "|---" * 7 + "|"]
    for r in rows:
        if r["target_step"] != target:
            continue
        paper_mean = ("–" if r["paper_mean"] == ""
                      else f"{r['paper_mean']:.3f}")
        lines.append(
            f"| {r['agent']} | {r['num_tasks']} | {r['num_runs']} | "
            f"{r['mean']:.3f} [{r['mean_lower']:.3f}, {r['mean_upper']:.3f}] "
            f"| {r['iqm']:.3f} [{r['iqm_lower']:.3f}, {r['iqm_upper']:.3f}] "
            f"| {paper_mean} | {r['short_cells'] or '–'} |")
    return lines + [""]


def markdown(sweep: sr.Sweep, paper, targets, agg_rows, num_samples,
             seed) -> str:
    n_seeds = len(sweep.seeds)
    lines = [f"# Report: {sweep.path}", "",
             f"Agents: {', '.join(sweep.agents)}. Tasks: "
             f"{', '.join(sweep.tasks)}. Seeds: {', '.join(sweep.seeds)}. "
             f"Sweep settings: {sr.describe(sweep)}.", "",
             "## Returns", "",
             "Mean ± sample standard deviation (ddof=1) over seeds of the "
             "deterministic evaluation return at exactly the given env step. "
             "**(at 40k)**: the run did not reach the step; the value is at "
             "the largest evaluation step all its seeds reached. "
             f"**(n=2)**: fewer than the sweep's {n_seeds} seeds. "
             f"–: no data. *(paper)*: {sr.PAPER_SOURCE} (mean over seeds; "
             "for PPO the paper's step counts network updates); *paper's "
             "best*: its best agent at that step.", ""]
    for target in targets:
        lines += return_table(sweep, paper, target)
    lines += ["## Per seed", "",
              "The evaluation return of each seed (10-episode mean of the "
              "deterministic policy, the values behind the table above).",
              ""]
    for target in targets:
        lines += report_runs.per_seed_table(sweep, target)
    lines += ["## Ordering", "",
              "Per task, the agents by mean return over seeds, beside the "
              "paper's order of the same agents, and our leader's margin "
              "over our runner-up with a 95% percentile bootstrap CI "
              f"({num_samples} resamples, seeds drawn with replacement per "
              "agent): a CI that excludes 0 separates the two.", ""]
    for target in targets:
        lines += report_runs.ordering_table(sweep, paper, target,
                                            num_samples, seed, CONFIDENCE)
    lines += ["## Aggregates", "",
              "Over the DMC tasks each agent has data for: mean (over tasks "
              "of the mean over seeds) and IQM (interquartile mean of all "
              "seed x task scores) of the normalised score, with 95% "
              f"percentile CIs from {num_samples} stratified bootstrap "
              "resamples (seeds drawn with replacement within each task, "
              f"independently per task; seed {seed}), after Agarwal et al. "
              "2021, *Deep Reinforcement Learning at the Edge of the "
              "Statistical Precipice*. *paper mean*: the paper's returns / "
              "1000 averaged over the same tasks (means only, no CI).", ""]
    for target in targets:
        lines += aggregate_table(agg_rows, target)
    lines += ["## Figures", "",
              "- `learning_curves.png`: mean return over seeds against env "
              "steps, 95% bootstrap CI over seeds; × the paper's numbers.",
              "- `performance_profile.png`: fraction of runs with normalised "
              "score > tau, 95% stratified-bootstrap CI bands.", ""]
    if sweep.wall_times:
        lines += ["Each run's training wall time: `wall_times.csv` (not "
                  "here, so that a rerun of the same sweep reproduces this "
                  "file exactly).", ""]
    if sweep.missing:
        lines += ["## Missing runs", ""] + [f"- {m}" for m in sweep.missing]
        lines.append("")
    return "\n".join(lines)


def write_csv(path: str, rows: List[Dict]) -> None:
    fields = list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in row.items()})


def write_report(sweep_dir: str, out_dir: str,
                 targets: Optional[Sequence[int]] = None,
                 num_samples: int = 2000, seed: int = 0) -> List[str]:
    """Writes every output of the report; returns their paths. `targets`
    (env steps of the tables) default to `sr.default_targets`."""
    sweep = sr.load_sweep(sweep_dir)
    paper = sr.paper_results()
    targets = sorted(set(targets or sr.default_targets(sweep)))
    os.makedirs(out_dir, exist_ok=True)
    agg_rows = aggregates(sweep, paper, targets, num_samples, seed)
    paths = [os.path.join(out_dir, name) for name in (
        "report.md", "report.csv", "aggregates.csv", "per_seed.csv",
        "wall_times.csv")]
    with open(paths[0], "w") as f:
        f.write(markdown(sweep, paper, targets, agg_rows, num_samples, seed))
    write_csv(paths[1], csv_rows(sweep, paper, targets))
    write_csv(paths[2], agg_rows)
    write_csv(paths[3], report_runs.per_seed_rows(sweep, targets))
    write_csv(paths[4], report_runs.wall_time_rows(sweep))
    paths.append(report_plots.learning_curves(
        sweep, paper, targets, os.path.join(out_dir, "learning_curves.png"),
        num_samples, seed))
    paths.append(report_plots.performance_profiles(
        sweep, targets, os.path.join(out_dir, "performance_profile.png"),
        num_samples, seed))
    return paths


def run(sweep_dir: str, out_dir: str, targets: Optional[Sequence[int]],
        num_samples: int, seed: int) -> List[str]:
    """`write_report`, with a one-line `SystemExit` for bad input."""
    if num_samples < 1:
        raise SystemExit("report: need --bootstrap_samples >= 1.")
    try:
        return write_report(sweep_dir, out_dir, targets, num_samples, seed)
    except sr.SweepError as e:
        raise SystemExit(f"report: {e}") from None
