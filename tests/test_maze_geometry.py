"""The two-goal maze's map as data and its pure-numpy trajectory tools: the
goal detector and the route classifier of the top-left goal."""

import numpy as np
import pytest

from dqs_jax.envs import maze_geometry as geo
from tests.helpers import (BOTTOM_RIGHT, LEFT_COLUMN, NOWHERE, TOP_ROW,
                           cells_path)


def test_map_and_coordinates():
    assert geo.maze_map()[1][1] == "g" and geo.maze_map()[4][4] == "r"
    assert geo.WALLS.shape == (9, 9) and (~geo.WALLS).sum() == 38
    np.testing.assert_array_equal(geo.GOAL_CENTRES, [[-3, 3], [3, -3]])
    np.testing.assert_array_equal(geo.cell_to_xy(geo.START_CELL), [0, 0])
    cells = np.argwhere(~geo.WALLS)
    np.testing.assert_array_equal(geo.xy_to_cell(geo.cell_to_xy(cells)),
                                  cells)


def test_paths_are_made_of_free_neighbouring_cells():
    for path in (TOP_ROW, LEFT_COLUMN, BOTTOM_RIGHT, NOWHERE):
        cells = geo.xy_to_cell(path)
        assert not geo.WALLS[cells[:, 0], cells[:, 1]].any()
        assert np.all(np.abs(np.diff(cells, axis=0)).sum(axis=1) == 1)


@pytest.mark.parametrize("path,goal,route", [
    (TOP_ROW, 0, "top_row"),
    (LEFT_COLUMN, 0, "left_column"),
    (BOTTOM_RIGHT, 1, None),
    (NOWHERE, -1, None),
])
def test_goal_detector_and_route_classifier(path, goal, route):
    assert geo.first_goal(path) == goal
    assert geo.top_left_route(path) == route
    assert geo.goal_entry_step(path, 0) == (len(path) - 1 if goal == 0
                                            else -1)


def test_detector_edge_cases():
    centre = geo.GOAL_CENTRES[0]
    # Radius 0.45, inclusive as the env's reward; dense paths as the env's.
    near = np.array([[0.0, 0.0], centre + [0.449, 0.0]])
    assert geo.first_goal(near) == 0
    assert geo.first_goal(np.array([centre + [0.451, 0.0]])) == -1
    # The last neighbour before the entry decides: top row, back down the
    # left column, then into the goal from below.
    detour = np.concatenate([TOP_ROW[:-1], [centre + [0.0, -0.48]],
                             cells_path((2, 1), (1, 1))])
    assert geo.top_left_route(detour) == "left_column"
    assert geo.top_left_route(TOP_ROW[-1:]) is None  # Starts inside.
    # Bottom-right first, then top-left: the first goal counts.
    both = np.concatenate([BOTTOM_RIGHT, BOTTOM_RIGHT[::-1], TOP_ROW])
    assert (geo.first_goal(both), geo.top_left_route(both)) == (1, "top_row")
    assert geo.first_goal(np.zeros((0, 2))) == -1
    with pytest.raises(ValueError, match=r"obs\[:, :2\]"):
        geo.first_goal(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="goal must be"):
        geo.goal_entry_step(TOP_ROW, 2)
