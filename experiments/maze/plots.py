"""The figure of the maze experiment (paper Fig. 6 style): one panel per
method with the maze drawn from `maze_geometry`, evaluation trajectories
coloured by the goal they reached first, and the goal and route fractions
written under each panel."""

import textwrap
from typing import Mapping, Sequence, Tuple

import numpy as np

from dqs_jax.envs import maze_geometry
from experiments import plotting
from experiments.maze.summary import OUTCOMES

# Colours by outcome: top-left, bottom-right, neither.
COLORS = dict(zip(OUTCOMES, ("tab:blue", "tab:orange", "tab:gray")))
CAPTION_WIDTH = 52  # Characters per caption line (fits a panel's width).


def draw_maze(ax) -> None:
    """Walls, the two goal discs (radius `GOAL_RADIUS`) and the start cell,
    in world `(x, y)` coordinates."""
    h, w = maze_geometry.HEIGHT, maze_geometry.WIDTH
    ax.imshow(maze_geometry.WALLS.astype(float), cmap="Greys", vmin=0,
              vmax=1.4, origin="upper",
              extent=(-w / 2, w / 2, -h / 2, h / 2))
    for name, centre in zip(maze_geometry.GOAL_NAMES,
                            maze_geometry.GOAL_CENTRES):
        ax.add_patch(plotting.plt.Circle(
            tuple(centre), maze_geometry.GOAL_RADIUS, color=COLORS[name],
            alpha=0.35, zorder=1))
    start = maze_geometry.cell_to_xy(maze_geometry.START_CELL)
    ax.plot(*start, "k*", markersize=9, zorder=3)
    ax.set_xlim(-w / 2, w / 2)
    ax.set_ylim(-h / 2, h / 2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def trajectories_figure(path: str,
                        panels: Mapping[str, Tuple[np.ndarray, np.ndarray]],
                        captions: Mapping[str, Sequence[str]],
                        title: str = "") -> str:
    """Writes the figure; returns its absolute path.

    Args:
      path: the PNG to write.
      panels: per method, `(positions [n, T, 2], first_goals [n])` with
        first goals 0 (top-left), 1 (bottom-right) or -1 (neither).
      captions: per method, lines of text written under its panel.
      title: the figure's title.
    """
    num = len(panels)
    fig, axes = plotting.plt.subplots(1, num, figsize=(4.2 * num, 5.2),
                                      squeeze=False)
    for ax, (method, (positions, goals)) in zip(axes[0], panels.items()):
        draw_maze(ax)
        for path_xy, goal in zip(positions, goals):
            color = COLORS[OUTCOMES[goal]]  # OUTCOMES[-1] is "neither".
            ax.plot(path_xy[:, 0], path_xy[:, 1], color=color, alpha=0.6,
                    linewidth=0.9, zorder=2)
        ax.set_title(f"{method.upper()} ({len(positions)} episodes, seed 0)",
                     fontsize=10)
        lines = [textwrap.fill(line, CAPTION_WIDTH)
                 for line in captions.get(method, ())]
        ax.text(0.5, -0.03, "\n".join(lines), transform=ax.transAxes,
                ha="center", va="top", fontsize=7)
    handles = [plotting.plt.Line2D([], [], color=c, label=name)
               for name, c in COLORS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8,
               bbox_to_anchor=(0.5, 0.97), title="first goal reached",
               title_fontsize=8)
    if title:
        fig.suptitle(title, y=1.02, fontsize=11)
    return plotting.save(fig, path)
