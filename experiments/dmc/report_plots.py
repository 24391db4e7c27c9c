"""Figures of `experiments.report`: learning curves, performance profiles."""

import math
from typing import Dict, Sequence

from matplotlib import ticker
import numpy as np

from experiments.dmc import stats as rl_stats
from experiments import plotting
from experiments.dmc import sweep_results as sr

plt = plotting.plt  # Agg backend, set by `experiments.plotting`.
CONFIDENCE = 0.95


def curve_matrix(runs: Dict[str, sr.Curve]):
    """`(steps [E], returns [seeds, E])` over the union of eval steps; NaN
    where a seed has no evaluation at that step."""
    steps = np.array(sorted({int(s) for st, _ in runs.values() for s in st}))
    returns = np.full((len(runs), steps.size), np.nan)
    for i, (st, ret) in enumerate(runs.values()):
        returns[i, np.searchsorted(steps, st)] = ret
    return steps, returns


def _plot_agent(ax, runs, color, num_samples: int, seed: int) -> bool:
    """Draws one agent's mean and CI; True if some step lacks a seed (then
    the dashed line shows where)."""
    steps, returns = curve_matrix(runs)
    mean, lower, upper = rl_stats.task_means_ci(returns, num_samples,
                                                CONFIDENCE, seed)
    every_seed = np.isfinite(returns).all(axis=0)
    partial = not every_seed.all()
    if partial:
        ax.plot(steps, mean, "--", color=color, lw=1, alpha=0.7)
    ax.plot(steps, np.where(every_seed, mean, np.nan), "-", color=color,
            lw=1.8)
    ax.fill_between(steps, lower, upper, color=color, alpha=0.2, lw=0)
    return partial


def legend_handles(colors: Dict[str, str], partial: bool, paper: bool):
    """One entry per agent, plus the dashed line and the paper's markers
    only when some panel draws them."""
    handles = [plt.Line2D([], [], color=color, lw=1.8, label=agent)
               for agent, color in colors.items()]
    if partial:
        handles.append(plt.Line2D([], [], color="k", ls="--", lw=1,
                                  label="dashed: not every seed got there"))
    if paper:
        handles.append(plt.Line2D(
            [], [], color="k", ls="", marker="x", mew=2,
            label="paper, agent's colour (arXiv:2410.01312)"))
    return handles


def learning_curves(sweep: sr.Sweep, paper, targets: Sequence[int], path: str,
                    num_samples: int = 2000, seed: int = 0) -> str:
    """One panel per task, one line per agent; returns the path written."""
    ncols = min(4, len(sweep.tasks))
    nrows = math.ceil(len(sweep.tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows),
                             squeeze=False)
    colors = {agent: f"C{i % 10}" for i, agent in enumerate(sweep.agents)}
    drew = {"partial": False, "paper": False}
    for ax, task in zip(axes.flat, sweep.tasks):
        for agent in sweep.agents:
            runs = sweep.curves.get((agent, task))
            if runs and _plot_agent(ax, runs, colors[agent], num_samples,
                                    seed):
                drew["partial"] = True
            for target in targets:
                ret = paper.get((task, agent, target))
                if ret is not None:
                    ax.plot(target, ret, "x", color=colors[agent], ms=8, mew=2)
                    drew["paper"] = True
        if not ax.lines:
            ax.text(0.5, 0.5, "no evaluated run", ha="center",
                    transform=ax.transAxes)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda x, _: sr.format_step(int(x))))
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(sweep.tasks):]:
        ax.axis("off")
    handles = legend_handles(colors, drew["partial"], drew["paper"])
    fig.legend(handles=handles, loc="upper center", ncol=min(
        len(handles), 6), bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle("Evaluation return: mean over seeds; shaded: 95% "
                 f"percentile-bootstrap CI over seeds ({num_samples} "
                 "resamples)")
    fig.tight_layout()
    return plotting.save(fig, path)


def performance_profiles(sweep: sr.Sweep, targets: Sequence[int], path: str,
                         num_samples: int = 2000, seed: int = 0) -> str:
    """One panel per target step: fraction of runs with normalised score
    > tau against tau, one line per agent; returns the path written."""
    taus = np.linspace(0.0, 1.0, 101)
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4),
                             squeeze=False)
    for ax, target in zip(axes[0], targets):
        title = f"at {sr.format_step(target)} env steps"
        for i, agent in enumerate(sweep.agents):
            scores, tasks, cells = sr.score_matrix(sweep, agent, target)
            if not tasks:
                continue
            point, lower, upper = rl_stats.stratified_bootstrap_ci(
                scores, lambda s: rl_stats.performance_profile(s, taus),
                num_samples, CONFIDENCE, seed)
            short = any(not c.at_target for c in cells)
            label = f"{agent} ({len(tasks)} tasks{', *' if short else ''})"
            ax.plot(taus, point, color=f"C{i % 10}", lw=1.8, label=label)
            ax.fill_between(taus, lower, upper, color=f"C{i % 10}", alpha=0.2,
                            lw=0)
            if short:
                title = (f"at {sr.format_step(target)} env steps\n* some "
                         "runs at fewer steps (see report.md)")
        if ax.lines:
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no DMC task reached", ha="center",
                    transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("normalised score τ (return / 1000)")
        ax.set_ylabel("fraction of runs with score > τ")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.suptitle("Performance profiles; shaded: 95% stratified-bootstrap CI "
                 f"({num_samples} resamples)")
    fig.tight_layout()
    return plotting.save(fig, path)
