"""Matplotlib figures shared by the experiment binaries (headless: Agg)."""

import os
from typing import Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def density_contours(ax, log_density_fn: Callable[[np.ndarray], np.ndarray],
                     lims: Sequence[float], resolution: int = 200,
                     levels: int = 20) -> None:
    """Filled contours of `exp(log_density)`; `log_density_fn([N, 2]) -> [N]`."""
    xs = np.linspace(lims[0], lims[1], resolution)
    grid_x, grid_y = np.meshgrid(xs, xs)
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)
    density = np.exp(np.asarray(log_density_fn(points))).reshape(grid_x.shape)
    ax.contourf(grid_x, grid_y, density, levels=levels, cmap="Blues")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal")


def scatter(ax, points: np.ndarray, label: Optional[str] = None,
            color: str = "tab:red", size: float = 2.0) -> None:
    """Scatter of `points [N, 2]`."""
    points = np.asarray(points)
    ax.scatter(points[:, 0], points[:, 1], s=size, c=color, alpha=0.6,
               label=label, linewidths=0)


def save(fig, path: str) -> str:
    """Writes `fig` to `path` (folders created), closes it, returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return os.path.abspath(path)


def learning_curve(rows, path: str, title: str = "") -> str:
    """Episode return against env steps from metrics rows: train episodes and
    evaluation means (± std). Returns the absolute path written."""
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if train:
        ax.plot([r["step"] for r in train], [r["episode_return"] for r in train],
                ".", color="tab:gray", alpha=0.5, label="train episode")
    if evals:
        steps = np.array([r["step"] for r in evals])
        mean = np.array([r["eval_return_mean"] for r in evals])
        std = np.array([r["eval_return_std"] for r in evals])
        ax.plot(steps, mean, "-o", color="tab:blue", label="evaluation mean")
        ax.fill_between(steps, mean - std, mean + std, color="tab:blue",
                        alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(loc="best")
    return save(fig, path)
