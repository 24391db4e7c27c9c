"""The maze experiment's statistics on hand-made trajectories: goal
fractions, top-left route fractions, their aggregates over seeds."""

import numpy as np
import pytest

from experiments.maze import summary as ms
from tests.helpers import BOTTOM_RIGHT, LEFT_COLUMN, NOWHERE, TOP_ROW

INSIDE = TOP_ROW[-1:]  # Starts inside the top-left disc: route unknown.


def stack(*paths, length=8):
    """`[N, length, 2]`: each path padded by repeating its last point."""
    return np.stack([np.concatenate([p, np.repeat(p[-1:], length - len(p),
                                                  axis=0)])
                     for p in paths])


SEED_A = stack(TOP_ROW, TOP_ROW, LEFT_COLUMN, BOTTOM_RIGHT, NOWHERE)
SEED_B = stack(BOTTOM_RIGHT, BOTTOM_RIGHT, NOWHERE, INSIDE)
SEED_C = stack(NOWHERE, BOTTOM_RIGHT)


def test_episode_outcomes():
    goals, routes = ms.episode_outcomes(SEED_A)
    np.testing.assert_array_equal(goals, [0, 0, 0, 1, -1])
    assert routes == ["top_row", "top_row", "left_column", None, None]
    goals, routes = ms.episode_outcomes(SEED_B)
    np.testing.assert_array_equal(goals, [1, 1, -1, 0])
    assert routes == [None, None, None, "unknown"]
    with pytest.raises(ValueError, match=r"\[N, T, 2\]"):
        ms.episode_outcomes(TOP_ROW)


def test_seed_summary_counts_and_fractions():
    s = ms.seed_summary(SEED_A, [10.0, 0.0, 5.0, 0.0, 0.0], [0, 1, 0, 1, 1])
    assert s["episodes"] == 5
    assert s["goal_counts"] == {"top-left": 3, "bottom-right": 1,
                                "neither": 1}
    assert s["goal_fractions"] == pytest.approx(
        {"top-left": 0.6, "bottom-right": 0.2, "neither": 0.2})
    assert s["goals_reached"] == 2
    assert s["top_left_route_counts"] == {"top_row": 2, "left_column": 1,
                                          "unknown": 0}
    assert s["top_left_route_fractions"] == pytest.approx(
        {"top_row": 2 / 3, "left_column": 1 / 3, "unknown": 0.0})
    assert s["mean_return"] == pytest.approx(3.0)
    assert s["std_return"] == pytest.approx(np.std([10, 0, 5, 0, 0]))
    assert s["rewarded_fraction"] == pytest.approx(0.4)
    assert s["episode_goal_fractions"] == pytest.approx(
        {"top-left": 0.4, "bottom-right": 0.6})
    # No top-left episode: no route fractions, zero counts.
    c = ms.seed_summary(SEED_C, [0.0, 3.0], [1, 1])
    assert c["top_left_route_fractions"] is None
    assert sum(c["top_left_route_counts"].values()) == 0
    assert c["goals_reached"] == 1
    with pytest.raises(ValueError, match="same number"):
        ms.seed_summary(SEED_C, [0.0], [1, 1])


def test_aggregate_over_seeds():
    summaries = [ms.seed_summary(SEED_A, np.zeros(5), np.zeros(5)),
                 ms.seed_summary(SEED_B, np.ones(4), np.zeros(4)),
                 ms.seed_summary(SEED_C, [2.0, 4.0], np.zeros(2))]
    agg = ms.aggregate(summaries)
    assert (agg["seeds"], agg["episodes"]) == (3, 11)
    top_left = agg["goal_fractions"]["top-left"]
    assert top_left["mean"] == pytest.approx(np.mean([0.6, 0.25, 0.0]))
    assert top_left["std"] == pytest.approx(np.std([0.6, 0.25, 0.0]))
    assert top_left["seeds"] == 3
    means = [agg["goal_fractions"][k]["mean"] for k in ms.OUTCOMES]
    assert sum(means) == pytest.approx(1.0)
    # Routes: over the 2 seeds with a top-left episode (A: 2/3, B: 0).
    top_row = agg["top_left_route_fractions"]["top_row"]
    assert top_row == pytest.approx({"mean": 1 / 3, "std": 1 / 3,
                                     "seeds": 2})
    assert agg["top_left_route_fractions"]["unknown"]["mean"] == (
        pytest.approx(0.5))
    # Pooled: 2 top row, 1 left column, 1 unknown.
    assert agg["pooled_route_fractions"] == pytest.approx(
        {"top_row": 0.5, "left_column": 0.25, "unknown": 0.25})
    assert agg["seeds_reaching_both_goals"] == 2  # A and B.
    assert agg["mean_return"]["mean"] == pytest.approx(np.mean([0, 1, 3]))
    assert agg["rewarded_fraction"]["mean"] == pytest.approx(
        np.mean([0, 1, 1]))
    lines = ms.describe(agg)
    assert lines[0].startswith(
        f"top-left {np.mean([0.6, 0.25, 0.0]):.2f} ± "
        f"{np.std([0.6, 0.25, 0.0]):.2f}, bottom-right")
    assert lines[1] == ("top-left routes: top row 0.33 ± 0.33, left column "
                        "0.17 ± 0.17, unknown 0.50 ± 0.50 (2 of 3 seeds)")
    with pytest.raises(ValueError, match="at least one"):
        ms.aggregate([])


def test_describe_without_top_left_episodes():
    agg = ms.aggregate([ms.seed_summary(SEED_C, [0.0, 1.0], [0, 1])])
    assert ms.describe(agg) == [
        "top-left 0.00 ± 0.00, bottom-right 0.50 ± 0.00, neither 0.50 ± "
        "0.00", "top-left routes: top row n/a, left column n/a (0 of 1 "
        "seeds)"]
