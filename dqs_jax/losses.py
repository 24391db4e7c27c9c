"""The critic's TD loss (docs/algorithm.md §6, the paper's Eq. (7)) and the
score network's iDEM loss (docs/algorithm.md §4, the paper's Eq. (8)).

Both take plain callables over ONE example, so any agent can plug in its own
networks: close over the parameters to differentiate, e.g.
`jax.grad(lambda p: td_loss(lambda o, a: net.apply(p, o, a), ...))(params)`.
"""

from typing import Callable, Dict, Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from dqs_jax.estimator import SCORE_ESTIMATORS
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.types import PRNGKey

# `q_fn(obs [o], action [d]) -> [E]` (an ensemble of E values).
EnsembleQFn = Callable[[jax.Array, jax.Array], jax.Array]
# `q_fn(obs [o], action [d]) -> scalar`.
QFn = Callable[[jax.Array, jax.Array], jax.Array]
# `score_fn(x [d], t scalar, obs [o], temperature scalar) -> [d]`.
ConditionalScoreFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array],
                              jax.Array]

SCORE_LOSS_WEIGHT_OFFSET = 1e-3


def _check_transitions(observations, actions, rewards, discounts,
                       next_observations, next_actions):
    chex.assert_rank([observations, actions, rewards, discounts,
                      next_observations, next_actions], [2, 2, 1, 1, 2, 2])
    chex.assert_equal_shape([observations, next_observations])
    chex.assert_equal_shape([actions, next_actions])
    chex.assert_equal_shape_prefix(
        [observations, actions, rewards, discounts], prefix_len=1)


def td_loss_with_aux(q_fn: EnsembleQFn, target_q_fn: EnsembleQFn,
                     observations, actions, rewards, discounts,
                     next_observations, next_actions, gamma, *,
                     next_value_bonus: Optional[jax.Array] = None
                     ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """`td_loss` and `{'q_mean', 'target_mean'}` (scalars) for logging."""
    _check_transitions(observations, actions, rewards, discounts,
                       next_observations, next_actions)
    q = jax.vmap(q_fn)(observations, actions)  # [B, E]
    next_q = jax.vmap(target_q_fn)(next_observations, next_actions)  # [B, E']
    chex.assert_rank([q, next_q], 2)
    next_value = jnp.min(next_q, axis=-1)  # [B]
    if next_value_bonus is not None:
        chex.assert_equal_shape([next_value, next_value_bonus])
        next_value = next_value + next_value_bonus
    target = rewards + gamma * discounts * next_value
    target = jax.lax.stop_gradient(target)
    loss = jnp.mean(jnp.square(q - target[:, None]))
    return loss, {"q_mean": jnp.mean(q), "target_mean": jnp.mean(target)}


def td_loss(q_fn: EnsembleQFn, target_q_fn: EnsembleQFn, observations,
            actions, rewards, discounts, next_observations, next_actions,
            gamma, *, next_value_bonus: Optional[jax.Array] = None
            ) -> jax.Array:
    """Clipped double-Q TD loss of an ensemble critic (docs/algorithm.md §6;
    the paper's Eq. (7)).

    `y = rewards + gamma * discounts * min_E target_q_fn(next_obs, next_act)`
    (no gradient through `y`); loss = mean over batch and ensemble members of
    `(q_fn(obs, act) - y)^2`, each member regressed on the shared target.

    Args:
      q_fn: `(obs [o], action [d]) -> [E]`, the online ensemble, one example.
      target_q_fn: `(obs [o], action [d]) -> [E]`, the target ensemble.
      observations: `[B, o]`.
      actions: `[B, d]`.
      rewards: `[B]`.
      discounts: `[B]`, 0 at true termination only.
      next_observations: `[B, o]`.
      next_actions: `[B, d]`, e.g. sampled from the policy at the next state.
      gamma: scalar discount factor.
      next_value_bonus: optional `[B]` added to the min target value, e.g.
        `-alpha * log pi(a'|s')` for a soft (SAC) target. DQS uses none.

    Returns:
      Scalar loss.
    """
    return td_loss_with_aux(q_fn, target_q_fn, observations, actions, rewards,
                            discounts, next_observations, next_actions, gamma,
                            next_value_bonus=next_value_bonus)[0]


def idem_targets(q_fn: QFn, observations, noisy_actions, h, temperature,
                 key: PRNGKey, num_samples: int,
                 estimator: str = "idem") -> jax.Array:
    """Per-example iDEM score targets (docs/algorithm.md §3), without
    gradient.

    Args:
      q_fn: `(obs [o], action [d]) -> scalar`.
      observations: `[B, o]`.
      noisy_actions: `[B, d]`, the points `x_t`.
      h: `[B]`, the added variances `h(t)`.
      temperature: `[B]`.
      key: PRNG key.
      num_samples: K, static.
      estimator: a name in `estimator.SCORE_ESTIMATORS` (default the
        paper's iDEM estimate).

    Returns:
      `[B, d]` estimates of `grad log p_t(x_t)` for `p_0 ∝ exp(Q/temperature)`.
    """
    if estimator not in SCORE_ESTIMATORS:
        raise ValueError(f"Unknown estimator {estimator!r}; valid: "
                         f"{sorted(SCORE_ESTIMATORS)}.")
    score = SCORE_ESTIMATORS[estimator]

    def one(obs, x, h_t, temp, k):
        return score(lambda a: q_fn(obs, a) / temp, x, h_t, k, num_samples)

    keys = jax.random.split(key, noisy_actions.shape[0])
    targets = jax.vmap(one)(observations, noisy_actions, h, temperature, keys)
    return jax.lax.stop_gradient(targets)


def diffusion_times(key: PRNGKey, batch_size: int, stratified: bool = False,
                    dtype=jnp.float32) -> jax.Array:
    """`[B]` times in `[0, 1)`: i.i.d. uniform, or stratified with
    `t_i ~ U[i / B, (i + 1) / B)` (same marginal over a random index, lower
    variance; element `i`'s time is then known to lie in its stratum)."""
    u = jax.random.uniform(key, (batch_size,), dtype)
    if not stratified:
        return u
    return (jnp.arange(batch_size, dtype=dtype) + u) / batch_size


def idem_loss(score_fn: ConditionalScoreFn, q_fn: QFn, observations, actions,
              temperature, key: PRNGKey, *, schedule: GeometricSchedule,
              num_samples: int, stratified: bool = False) -> jax.Array:
    """Score-network regression on the iDEM estimate (docs/algorithm.md §4;
    the paper's Eq. (8)).

    Per example: `t ~ U[0, 1]`, `x_t = a + sqrt(h(t)) eps`,
    target `S_K(x_t, t)` for `p_0 ∝ exp(q_fn(obs, .) / temperature)`
    (stop-gradient); loss =
    `mean_B( (h(t) + 1e-3) * mean_d( (score_fn(x_t, t, obs, temp) - S_K)^2 ) )`.

    Args:
      score_fn: `(x [d], t scalar, obs [o], temperature scalar) -> [d]`.
      q_fn: `(obs [o], action [d]) -> scalar`, e.g. the ensemble minimum.
      observations: `[B, o]`.
      actions: `[B, d]`, the clean points `x_0` (e.g. replay actions).
      temperature: scalar or `[B]`, the Boltzmann temperature `alpha > 0`.
      key: PRNG key (times, noise and the K-sample estimate).
      schedule: the noise schedule (keyword-only).
      num_samples: K, static (keyword-only).
      stratified: stratify `t` over the batch (`diffusion_times`).

    Returns:
      Scalar loss.
    """
    return idem_loss_with_aux(score_fn, q_fn, observations, actions,
                              temperature, key, schedule=schedule,
                              num_samples=num_samples,
                              stratified=stratified)[0]


# `target_fn(observations [B, o], x_t [B, d], h [B], temperature [B], key)
# -> [B, d]`: an implementation of `idem_targets` for a fixed Q.
TargetFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, PRNGKey],
                    jax.Array]


def idem_loss_with_aux(score_fn: ConditionalScoreFn, q_fn: Optional[QFn],
                       observations, actions, temperature, key: PRNGKey, *,
                       schedule: GeometricSchedule, num_samples: int,
                       stratified: bool = False,
                       target_fn: Optional[TargetFn] = None
                       ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """`idem_loss` and `{'score_target_norm'}` (mean L2 norm) for logging.

    `target_fn`, if given, replaces `idem_targets(q_fn, ..., num_samples)`
    (e.g. a faster batched estimator); `q_fn` is then unused.
    """
    chex.assert_rank([observations, actions], 2)
    chex.assert_equal_shape_prefix([observations, actions], prefix_len=1)
    chex.assert_rank(temperature, {0, 1})
    batch_size = actions.shape[0]
    temperature = jnp.broadcast_to(jnp.asarray(temperature, actions.dtype),
                                   (batch_size,))
    t_key, eps_key, target_key = jax.random.split(key, 3)
    t = diffusion_times(t_key, batch_size, stratified, actions.dtype)
    h = schedule.h(t).astype(actions.dtype)
    eps = jax.random.normal(eps_key, actions.shape, actions.dtype)
    x_t = actions + jnp.sqrt(h)[:, None] * eps
    if target_fn is None:
        targets = idem_targets(q_fn, observations, x_t, h, temperature,
                               target_key, num_samples)
    else:
        targets = jax.lax.stop_gradient(
            target_fn(observations, x_t, h, temperature, target_key))
    predictions = jax.vmap(score_fn)(x_t, t, observations, temperature)
    chex.assert_equal_shape([predictions, targets])
    weight = h + SCORE_LOSS_WEIGHT_OFFSET
    per_example = jnp.mean(jnp.square(predictions - targets), axis=-1)
    loss = jnp.mean(weight * per_example)
    aux = {"score_target_norm": jnp.mean(jnp.linalg.norm(targets, axis=-1))}
    return loss, aux


# `policy_fn(obs [o]) -> action [d]`, a deterministic policy, one example.
PolicyFn = Callable[[jax.Array], jax.Array]


def smoothed_target_actions(target_actions: jax.Array, key: PRNGKey,
                            noise_std, noise_clip, max_action) -> jax.Array:
    """TD3's target policy smoothing (Fujimoto et al., 2018, Sec. 5.3).

    `a' = clip(target_actions + clip(noise_std * eps, -noise_clip,
    noise_clip), -max_action, max_action)` with
    `eps = jax.random.normal(key, target_actions.shape, dtype)`, i.e. the
    official code's `(randn * policy_noise).clamp(-c, c)`. All three scales
    are in action units (the official code multiplies its 0.2 / 0.5 by
    `max_action` before calling this).

    Args:
      target_actions: `[B, d]`, the target actor's actions `mu'(s')`.
      key: PRNG key of the noise.
      noise_std: scalar `>= 0`, the noise standard deviation `sigma~`.
      noise_clip: scalar `>= 0`, the noise bound `c`.
      max_action: scalar `> 0`, the action box half-width.

    Returns:
      `[B, d]` smoothed target actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(target_actions, 2)
    chex.assert_type(target_actions, float)
    for scalar in (noise_std, noise_clip, max_action):
        chex.assert_rank(scalar, 0)
    eps = jax.random.normal(key, target_actions.shape, target_actions.dtype)
    noise = jnp.clip(noise_std * eps, -noise_clip, noise_clip)
    return jnp.clip(target_actions + noise, -max_action, max_action)


def deterministic_policy_loss(q_fn: QFn, policy_fn: PolicyFn,
                              observations: jax.Array) -> jax.Array:
    """Deterministic policy-gradient actor loss `-mean_B Q(s, mu(s))`.

    Its gradient w.r.t. the policy's parameters is the deterministic policy
    gradient `-mean_B grad_a Q(s, a)|_{a=mu(s)} grad_theta mu(s)` (Silver et
    al., 2014; DDPG: Lillicrap et al., 2015, Eq. 6; TD3 uses `Q = Q_1`).
    Differentiate w.r.t. the parameters `policy_fn` closes over only: the
    critic is then held fixed (close over its parameters outside the
    differentiated argument, or stop its gradient).

    Args:
      q_fn: `(obs [o], action [d]) -> scalar`, e.g. one member of an
        ensemble, one example.
      policy_fn: `obs [o] -> action [d]`, one example.
      observations: `[B, o]`.

    Returns:
      Scalar loss.
    """
    chex.assert_rank(observations, 2)
    actions = jax.vmap(policy_fn)(observations)  # [B, d]
    chex.assert_rank(actions, 2)
    chex.assert_equal_shape_prefix([observations, actions], prefix_len=1)
    q = jax.vmap(q_fn)(observations, actions)  # [B]
    chex.assert_shape(q, (observations.shape[0],))
    return -jnp.mean(q)
