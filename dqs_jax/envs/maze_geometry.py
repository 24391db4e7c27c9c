"""The two-goal maze of DQS Sec. 5.2 as data, and pure-numpy trajectory tools.

The map (docs/algorithm.md §10C; the authors' `POINTMAZE_MAP`) in
gymnasium-robotics' format: 1 wall, 0 free, "r" the start cell, "g" a goal
cell. Cells are `(row, col)`, row 0 at the top. With gymnasium-robotics'
scaling 1, the centre of cell `(row, col)` is `x = col + 0.5 - W/2`,
`y = H/2 - (row + 0.5)`, here `x = col - 4`, `y = 4 - row`:

    col: 0 1 2 3 4 5 6 7 8
    row 0  1 1 1 1 1 1 1 1 1
    row 1  1 g 0 0 0 0 1 0 1     top-left goal (1, 1) at (-3, 3)
    row 2  1 0 1 1 0 0 1 0 1
    row 3  1 0 0 0 0 0 1 0 1
    row 4  1 0 0 0 r 0 0 0 1     start (4, 4) at (0, 0)
    row 5  1 0 1 0 0 0 0 0 1
    row 6  1 0 1 1 0 0 1 0 1
    row 7  1 0 0 0 0 1 1 g 1     bottom-right goal (7, 7) at (3, -3)
    row 8  1 1 1 1 1 1 1 1 1

The top-left goal cell has two free neighbours, so a trajectory reaches it
either along the top row from the right (last through cell (1, 2)) or up the
left column from below (last through cell (2, 1)); `top_left_route` tells
which. The bottom-right goal is reachable only from (6, 7).
"""

from typing import Dict, List, Optional, Tuple, Union

import numpy as np

MAP_ROWS: Tuple[str, ...] = (
    "111111111",
    "1g0000101",
    "101100101",
    "100000101",
    "1000r0001",
    "101000001",
    "101100101",
    "1000011g1",
    "111111111",
)
HEIGHT, WIDTH = len(MAP_ROWS), len(MAP_ROWS[0])
WALLS = np.array([[c == "1" for c in row] for row in MAP_ROWS])  # [H, W]
START_CELL = (4, 4)
GOAL_CELLS = np.array([[1, 1], [7, 7]])  # [2, 2] (row, col)
GOAL_NAMES = ("top-left", "bottom-right")
TOP_LEFT, BOTTOM_RIGHT = 0, 1
# Reward and detection radius around a goal (gymnasium-robotics' 0.45).
GOAL_RADIUS = 0.45
# The free neighbours of the top-left goal cell, by route.
ROUTE_CELLS: Dict[str, Tuple[int, int]] = {
    "top_row": (1, 2),      # along the top row, from the right
    "left_column": (2, 1),  # up the left column, from below
}


def maze_map() -> List[List[Union[int, str]]]:
    """The map as gymnasium-robotics' `maze_map` (a fresh list of lists of
    1, 0, "r" and "g")."""
    return [[int(c) if c in "01" else c for c in row] for row in MAP_ROWS]


def cell_to_xy(cells) -> np.ndarray:
    """`[..., 2]` integer `(row, col)` cells to `[..., 2]` float64 `(x, y)`
    cell centres."""
    cells = np.asarray(cells)
    return np.stack([cells[..., 1] + 0.5 - WIDTH / 2,
                     HEIGHT / 2 - (cells[..., 0] + 0.5)], axis=-1
                    ).astype(np.float64)


def xy_to_cell(xy) -> np.ndarray:
    """`[..., 2]` `(x, y)` positions to `[..., 2]` int64 `(row, col)` cells
    (gymnasium-robotics' `cell_xy_to_rowcol`, vectorised)."""
    xy = np.asarray(xy, np.float64)
    return np.stack([np.floor(HEIGHT / 2 - xy[..., 1]),
                     np.floor(xy[..., 0] + WIDTH / 2)], axis=-1
                    ).astype(np.int64)


GOAL_CENTRES = cell_to_xy(GOAL_CELLS)  # [2, 2] (x, y): (-3, 3), (3, -3)


def _positions(positions) -> np.ndarray:
    positions = np.asarray(positions, np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(
            f"Expected `[T, 2]` (x, y) positions, got shape {positions.shape}"
            " (for `[T, 4]` observations pass `obs[:, :2]`).")
    return positions


def goal_entry_step(positions, goal: int) -> int:
    """First index `t` of `positions [T, 2]` within `GOAL_RADIUS` of goal
    `goal`'s centre (0 top-left, 1 bottom-right); -1 if never."""
    if goal not in (TOP_LEFT, BOTTOM_RIGHT):
        raise ValueError(f"goal must be 0 ({GOAL_NAMES[0]}) or 1 "
                         f"({GOAL_NAMES[1]}), got {goal!r}.")
    distance = np.linalg.norm(_positions(positions) - GOAL_CENTRES[goal],
                              axis=-1)
    inside = np.flatnonzero(distance <= GOAL_RADIUS)
    return int(inside[0]) if inside.size else -1


def first_goal(positions) -> int:
    """The goal a trajectory `[T, 2]` reached first: 0 (top-left), 1
    (bottom-right) or -1 (none); reached means within `GOAL_RADIUS` of the
    goal cell's centre (the goal discs are disjoint)."""
    steps = [goal_entry_step(positions, g) for g in (TOP_LEFT, BOTTOM_RIGHT)]
    reached = [(t, g) for g, t in enumerate(steps) if t >= 0]
    return min(reached)[1] if reached else -1


def top_left_route(positions) -> Optional[str]:
    """How a trajectory `[T, 2]` first entered the top-left goal.

    Returns "top_row" if, of the goal cell's two free neighbours, the last
    one visited before the first entry into the goal disc is (1, 2) (along
    the top row, from the right); "left_column" if it is (2, 1) (up the
    left column, from below); None if the trajectory never enters the disc
    or visits neither neighbour before it.
    """
    positions = _positions(positions)
    entry = goal_entry_step(positions, TOP_LEFT)
    if entry < 0:
        return None
    cells = xy_to_cell(positions[:entry])
    last, route = -1, None
    for name, cell in ROUTE_CELLS.items():
        visits = np.flatnonzero(np.all(cells == cell, axis=-1))
        if visits.size and visits[-1] > last:
            last, route = int(visits[-1]), name
    return route
