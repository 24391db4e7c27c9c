"""The statistics of the maze experiment (pure numpy): which goal each
evaluation episode reached first, by which route it entered the top-left
goal, and their fractions per seed and over seeds.

Outcomes are `maze_geometry.first_goal` of an episode's `(x, y)` path:
"top-left", "bottom-right" or "neither". Among the episodes whose first
goal is the top-left one, routes are `maze_geometry.top_left_route`:
"top_row" (entered from (1, 2), along the top row from the right),
"left_column" (from (2, 1), up the left column) or "unknown" (neither
neighbour visited before entering; not expected with a ball that moves at
most 0.05 per step).
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from dqs_jax.envs import maze_geometry

NEITHER = "neither"
OUTCOMES: Tuple[str, ...] = maze_geometry.GOAL_NAMES + (NEITHER,)
UNKNOWN_ROUTE = "unknown"
ROUTES: Tuple[str, ...] = tuple(maze_geometry.ROUTE_CELLS) + (UNKNOWN_ROUTE,)


def episode_outcomes(positions) -> Tuple[np.ndarray, List[Optional[str]]]:
    """First goals and top-left routes of `N` episodes.

    Args:
      positions: `[N, T, 2]` `(x, y)` of the ball, the reset position first.

    Returns:
      `(first_goals [N] int: 0 top-left, 1 bottom-right, -1 neither,
      routes: N entries, a name of `ROUTES` where the first goal is the
      top-left one, else None)`.
    """
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError("Expected `[N, T, 2]` positions, got shape "
                         f"{positions.shape}.")
    goals = np.array([maze_geometry.first_goal(p) for p in positions],
                     np.int64).reshape(len(positions))
    routes = [(maze_geometry.top_left_route(p) or UNKNOWN_ROUTE)
              if g == maze_geometry.TOP_LEFT else None
              for p, g in zip(positions, goals)]
    return goals, routes


def _fractions(counts: Mapping[str, int]) -> Optional[Dict[str, float]]:
    total = sum(counts.values())
    return ({k: v / total for k, v in counts.items()} if total else None)


def seed_summary(positions, returns, episode_goals) -> Dict[str, Any]:
    """Goal and route counts and fractions of one seed's evaluation.

    Args:
      positions: `[N, T, 2]` paths (see `episode_outcomes`).
      returns: `[N]` episode returns.
      episode_goals: `[N]` int, the goal the env drew for each episode
        (0 top-left, 1 bottom-right; the rewarded one).

    Returns:
      `{episodes, goal_counts, goal_fractions (sum to 1), goals_reached
      (how many of the 2 goals some episode reached first),
      top_left_route_counts (sum to goal_counts["top-left"]),
      top_left_route_fractions (None without a top-left episode),
      mean_return, std_return, rewarded_fraction (return > 0),
      episode_goal_fractions}`.
    """
    goals, routes = episode_outcomes(positions)
    returns = np.asarray(returns, np.float64).reshape(-1)
    episode_goals = np.asarray(episode_goals).reshape(-1)
    if not len(goals) == len(returns) == len(episode_goals) > 0:
        raise ValueError(f"{len(goals)} paths, {len(returns)} returns and "
                         f"{len(episode_goals)} episode goals: need the "
                         "same number, at least 1.")
    goal_counts = {name: int(np.sum(goals == index))
                   for index, name in enumerate(maze_geometry.GOAL_NAMES)}
    goal_counts[NEITHER] = int(np.sum(goals < 0))
    route_counts = {name: routes.count(name) for name in ROUTES}
    episode_counts = {name: int(np.sum(episode_goals == index))
                      for index, name in enumerate(maze_geometry.GOAL_NAMES)}
    return {
        "episodes": len(goals),
        "goal_counts": goal_counts,
        "goal_fractions": _fractions(goal_counts),
        "goals_reached": sum(goal_counts[g] > 0
                             for g in maze_geometry.GOAL_NAMES),
        "top_left_route_counts": route_counts,
        "top_left_route_fractions": _fractions(route_counts),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "rewarded_fraction": float(np.mean(returns > 0)),
        "episode_goal_fractions": _fractions(episode_counts),
    }


def _mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """`{mean, std (ddof 0), seeds}` over the values given (None: no
    seeds)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "seeds": 0}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "seeds": len(values)}


def aggregate(summaries: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Mean and std (ddof 0) over seeds of each `seed_summary` statistic.

    Route fractions average over the seeds with a top-left episode (their
    count is `seeds`); `pooled_route_fractions` pools the episodes of all
    seeds. `seeds_reaching_both_goals` counts seeds with `goals_reached`
    of 2.
    """
    if not summaries:
        raise ValueError("aggregate needs at least one seed summary.")
    routes = [s["top_left_route_fractions"] for s in summaries]
    pooled = {name: sum(s["top_left_route_counts"][name] for s in summaries)
              for name in ROUTES}
    return {
        "seeds": len(summaries),
        "episodes": sum(s["episodes"] for s in summaries),
        "goal_fractions": {name: _mean_std(
            [s["goal_fractions"][name] for s in summaries])
            for name in OUTCOMES},
        "top_left_route_fractions": {name: _mean_std(
            [None if r is None else r[name] for r in routes])
            for name in ROUTES},
        "pooled_route_fractions": _fractions(pooled),
        "seeds_reaching_both_goals": sum(s["goals_reached"] == 2
                                         for s in summaries),
        "mean_return": _mean_std([s["mean_return"] for s in summaries]),
        "rewarded_fraction": _mean_std([s["rewarded_fraction"]
                                        for s in summaries]),
    }


def _pm(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def describe(agg: Mapping[str, Any]) -> List[str]:
    """Two lines of text: goal fractions, then top-left route fractions
    (mean ± std over seeds)."""
    goals = ", ".join(f"{name} {_pm(agg['goal_fractions'][name])}"
                      for name in OUTCOMES)
    routes = agg["top_left_route_fractions"]
    shown = [name for name in ROUTES if name != UNKNOWN_ROUTE
             or (routes[name]["mean"] or 0) > 0]
    route_text = ", ".join(f"{name.replace('_', ' ')} {_pm(routes[name])}"
                           for name in shown)
    seeds = routes[ROUTES[0]]["seeds"]
    return [goals, f"top-left routes: {route_text} ({seeds} of "
                   f"{agg['seeds']} seeds)"]
