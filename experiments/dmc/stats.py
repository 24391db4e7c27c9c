"""Aggregate RL results across runs and tasks (pure numpy).

The interquartile mean, stratified-bootstrap confidence intervals and
performance profiles of Agarwal et al. 2021, "Deep Reinforcement Learning at
the Edge of the Statistical Precipice" (NeurIPS; the `rliable` library).

Scores follow rliable's convention: a `[runs, tasks]` matrix, one column per
task, one row per run (seed). Unlike rliable, tasks may have different numbers
of runs: missing entries are NaN and are ignored everywhere (each task keeps
its own finite entries; a resample keeps the NaNs where they are).
"""

from typing import Callable, Tuple

import numpy as np


def _finite(scores: np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite scores.")
    return values


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all finite entries of `scores` (any shape).

    The mean of the middle 50% of the sorted, pooled scores: each of the `n`
    values spans a length-1 slot of `[0, n]` and is weighted by the part of
    its slot inside `[n/4, 3n/4]`, so boundary values count fractionally.
    For `n` divisible by 4 this is `scipy.stats.trim_mean(x, 0.25)` (what
    rliable computes); for other `n` it stays the mean of exactly half.
    """
    values = np.sort(_finite(scores))
    n = values.size
    slots = np.arange(n, dtype=np.float64)
    weights = np.clip(np.minimum(slots + 1, 0.75 * n)
                      - np.maximum(slots, 0.25 * n), 0.0, None)
    return float(np.dot(weights, values) / (0.5 * n))


def mean_score(scores: np.ndarray) -> float:
    """Mean over tasks of the per-task mean over runs; `scores [runs, tasks]`.

    Each task weighs the same whatever its number of runs (equal to the plain
    mean of a complete matrix). Tasks without a finite run are left out.
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_matrix(scores)
    present = np.isfinite(scores).any(axis=0)
    if not present.any():
        raise ValueError("no finite scores.")
    return float(np.mean(np.nanmean(scores[:, present], axis=0)))


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with score `> tau`, for each tau: `[len(taus)]`.

    `scores [runs, tasks]`; the fraction is taken per task, then averaged over
    tasks (rliable's run-score distribution when every task has all runs).
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_matrix(scores)
    taus = np.asarray(taus, dtype=np.float64)
    finite = np.isfinite(scores)
    present = finite.any(axis=0)
    if not present.any():
        raise ValueError("no finite scores.")
    with np.errstate(invalid="ignore"):
        above = scores[..., None] > taus            # [runs, tasks, T]; NaN: no
    fraction = above.sum(axis=0)[present] / finite.sum(axis=0)[present, None]
    return fraction.mean(axis=0)


def stratified_resamples(scores: np.ndarray, num_samples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Stratified bootstrap resamples: `[num_samples, runs, tasks]`.

    In each resample, each task's column holds its own finite runs drawn with
    replacement (as many as it has, independently of the other tasks); values
    never move between tasks and NaN entries stay where they are.
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_matrix(scores)
    out = np.full((num_samples,) + scores.shape, np.nan)
    for task in range(scores.shape[1]):
        rows = np.flatnonzero(np.isfinite(scores[:, task]))
        if rows.size == 0:
            continue
        picks = rng.integers(0, rows.size, size=(num_samples, rows.size))
        out[:, rows, task] = scores[rows[picks], task]
    return out


def percentile_interval(samples: np.ndarray, confidence: float = 0.95
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of `samples [num_samples, ...]`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    tail = 50.0 * (1.0 - confidence)
    lower, upper = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return lower, upper


def stratified_bootstrap_ci(
        scores: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
        num_samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(point, lower, upper)` of `statistic` with a percentile bootstrap CI.

    Args:
      scores: `[runs, tasks]` (NaN = missing run).
      statistic: maps a `[runs, tasks]` matrix to a scalar or an array
        (e.g. `iqm`, `mean_score`, `lambda s: performance_profile(s, taus)`).
      num_samples: bootstrap resamples (stratified over tasks).
      confidence: coverage of the two-sided interval.
      seed: seed of the resampling, so that reports are reproducible.

    Returns:
      `statistic(scores)` and the interval bounds, each of its shape.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    point = np.asarray(statistic(scores), dtype=np.float64)
    samples = stratified_resamples(scores, num_samples,
                                   np.random.default_rng(seed))
    stats = np.stack([np.asarray(statistic(s), dtype=np.float64)
                      for s in samples])
    lower, upper = percentile_interval(stats, confidence)
    return point, lower, upper


def task_means_ci(scores: np.ndarray, num_samples: int = 2000,
                  confidence: float = 0.95, seed: int = 0
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean over runs with a bootstrap CI over runs (vectorised).

    `scores [runs, columns]` (e.g. seeds x evaluation steps of one learning
    curve; NaN = missing). Returns `(mean, lower, upper)`, each `[columns]`;
    NaN for a column without finite entries.
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_matrix(scores)
    present = np.isfinite(scores).any(axis=0)
    mean = np.full(scores.shape[1], np.nan)
    lower, upper = mean.copy(), mean.copy()
    if present.any():
        sub = scores[:, present]
        samples = stratified_resamples(sub, num_samples,
                                       np.random.default_rng(seed))
        mean[present] = np.nanmean(sub, axis=0)
        lower[present], upper[present] = percentile_interval(
            np.nanmean(samples, axis=1), confidence)
    return mean, lower, upper


def _check_matrix(scores: np.ndarray) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores must be [runs, tasks], got shape "
                         f"{scores.shape}.")
