"""Shared data types."""

from typing import Any, Callable, Dict, NamedTuple

import chex
import jax

PRNGKey = jax.Array
Params = Any
Metrics = Dict[str, jax.Array]
# `log_density(action [d]) -> scalar`, an unnormalised log-density.
LogDensityFn = Callable[[jax.Array], jax.Array]


class Batch(NamedTuple):
    """A batch of transitions, leading axis `B`.

    Attributes:
      observations: `[B, o]` float.
      actions: `[B, d]` float, the executed (squashed) actions.
      rewards: `[B]` float.
      discounts: `[B]` float; 0 only at true termination, 1 otherwise
        (including time-limit truncation).
      next_observations: `[B, o]` float.
    """

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    discounts: jax.Array
    next_observations: jax.Array


def check_batch(batch: Batch, obs_dim: int, act_dim: int) -> None:
    """Asserts (chex) that `batch` holds `B` transitions of these sizes."""
    chex.assert_rank(list(batch), [2, 2, 1, 1, 2])
    batch_size = batch.observations.shape[0]
    chex.assert_shape(batch.observations, (batch_size, obs_dim))
    chex.assert_shape(batch.next_observations, (batch_size, obs_dim))
    chex.assert_shape(batch.actions, (batch_size, act_dim))
    chex.assert_shape([batch.rewards, batch.discounts], (batch_size,))


class PolicyStep(NamedTuple):
    """What an on-policy agent's `explore` returns besides the env actions.

    Attributes:
      actions: `[N, d]` the policy's raw samples (e.g. an unbounded Gaussian
        sample, before clipping to the action box), as stored in a `Rollout`.
      log_probs: `[N]` `log pi(actions | obs)` under the acting policy.
      values: `[N]` the value estimates `V(obs)`.
    """

    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array


class Rollout(NamedTuple):
    """`T` consecutive on-policy transitions of one environment, in order.

    Attributes:
      observations: `[T, o]`.
      actions: `[T, d]` raw policy samples (`PolicyStep.actions`).
      log_probs: `[T]` their log-probabilities when they were taken.
      values: `[T]` `V(observations)` when they were taken.
      rewards: `[T]`.
      discounts: `[T]` 0 at true termination only, 1 otherwise (also at
        time-limit truncation, which bootstraps from `next_observations`).
      dones: `[T]` 1.0 where the episode ended at this step (termination or
        truncation; the next row starts a new episode), else 0.0.
      next_observations: `[T, o]` the observation after each step (the final
        one of the episode where `dones`, not the reset observation).
    """

    observations: jax.Array
    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array
    rewards: jax.Array
    discounts: jax.Array
    dones: jax.Array
    next_observations: jax.Array


def check_rollout(rollout: Rollout, obs_dim: int, act_dim: int) -> None:
    """Asserts (chex) that `rollout` holds `T` transitions of these sizes."""
    chex.assert_rank(list(rollout), [2, 2, 1, 1, 1, 1, 1, 2])
    length = rollout.observations.shape[0]
    chex.assert_shape([rollout.observations, rollout.next_observations],
                      (length, obs_dim))
    chex.assert_shape(rollout.actions, (length, act_dim))
    chex.assert_shape([rollout.log_probs, rollout.values, rollout.rewards,
                       rollout.discounts, rollout.dones], (length,))


class StepInfo(NamedTuple):
    """Per-environment-step outputs of the jitted loops (stacked `[T]` by
    `loop.run_steps`)."""

    reward: jax.Array
    done: jax.Array
    episode_return: jax.Array  # the finished episode's return where done
    # The update's metrics; zeros in the seed phase. On-policy loops: those
    # of the update that consumed the step's rollout.
    metrics: Dict[str, jax.Array]
