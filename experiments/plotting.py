"""Matplotlib figures shared by the experiment binaries (headless: Agg)."""

from typing import Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (the binaries' pyplot)
import numpy as np  # noqa: E402

from dqs_jax.training import curves  # noqa: E402


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


save = curves.save_figure  # Writes a figure, closes it; its path.
learning_curve = curves.learning_curve
