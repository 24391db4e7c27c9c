"""Policy-gradient pieces: GAE, PPO's clipped losses, diagonal Gaussians.

Like `losses.py`, plain functions of arrays that any on-policy agent can use.
Sources: GAE (Schulman et al., 2016, arXiv:1506.02438); PPO's clipped
surrogate (Schulman et al., 2017, arXiv:1707.06347, Eq. 7); value clipping,
per-minibatch advantage normalisation and the `approx_kl` estimator as in
CleanRL's `ppo_continuous_action.py` ("The 37 implementation details of
PPO", Huang et al., 2022).
"""

import math
from typing import Tuple

import chex
import jax
import jax.numpy as jnp

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def gae_advantages(rewards: jax.Array, values: jax.Array,
                   next_values: jax.Array, discounts: jax.Array,
                   dones: jax.Array, gamma: float, lam: float
                   ) -> Tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates of one trajectory segment.

    `delta_t = r_t + gamma * discount_t * V(s'_t) - V(s_t)` and
    `A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}` (`A_T = 0`), as a
    reverse `lax.scan`; returns `R_t = A_t + V(s_t)`. A time-limit truncation
    (`discount 1`, `done 1`) bootstraps from `V(s'_t)` but cuts the recursion;
    a termination has `discount 0`. The segment's last step bootstraps from
    `next_values[-1]` whatever its `done`.

    Args:
      rewards: `[T]`.
      values: `[T]`, `V(s_t)`.
      next_values: `[T]`, `V(s'_t)` of the observation after step `t` (the
        episode's final one where `done_t`).
      discounts: `[T]`, 0 at true termination, else 1.
      dones: `[T]`, 1 (or True) where the episode ends at step `t`.
      gamma: discount factor.
      lam: GAE's lambda.

    Returns:
      `(advantages [T], returns [T])`.
    """
    chex.assert_rank([rewards, values, next_values, discounts, dones], 1)
    chex.assert_equal_shape([rewards, values, next_values, discounts, dones])
    dtype = rewards.dtype
    deltas = (rewards + gamma * discounts.astype(dtype) * next_values
              - values)
    continues = gamma * lam * (1.0 - dones.astype(dtype))

    def body(next_advantage, x):
        delta, cont = x
        advantage = delta + cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(body, jnp.zeros((), dtype),
                                 (deltas, continues), reverse=True)
    return advantages, advantages + values


def normalize_advantages(advantages: jax.Array,
                         eps: float = 1e-8) -> jax.Array:
    """`(A - mean A) / (std A + eps)` over `[B]`, with the unbiased (ddof 1)
    std as CleanRL's `torch.std`; needs `B >= 2`."""
    chex.assert_rank(advantages, 1)
    return ((advantages - jnp.mean(advantages))
            / (jnp.std(advantages, ddof=1) + eps))


def ppo_clip_loss(log_probs: jax.Array, old_log_probs: jax.Array,
                  advantages: jax.Array, clip_eps: float) -> jax.Array:
    """PPO's clipped surrogate, as a loss to minimise (PPO paper, Eq. 7).

    `rho = exp(log_probs - old_log_probs)`;
    loss = `-mean min(rho A, clip(rho, 1 - eps, 1 + eps) A)`.

    Args:
      log_probs: `[B]`, `log pi(a|s)` under the policy being optimised.
      old_log_probs: `[B]`, under the policy that acted (no gradient).
      advantages: `[B]` (no gradient).
      clip_eps: `eps > 0`.

    Returns:
      Scalar loss.
    """
    chex.assert_rank([log_probs, old_log_probs, advantages], 1)
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    ratio = jnp.exp(log_probs - jax.lax.stop_gradient(old_log_probs))
    advantages = jax.lax.stop_gradient(advantages)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))


def clipped_value_loss(values: jax.Array, old_values: jax.Array,
                       returns: jax.Array, clip_eps: float) -> jax.Array:
    """CleanRL's clipped value loss:
    `1/2 mean max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)`.

    Args:
      values: `[B]`, `V(s)` under the parameters being optimised.
      old_values: `[B]`, `V(s)` when the rollout was collected (no gradient).
      returns: `[B]`, the regression targets (no gradient).
      clip_eps: `eps > 0`.

    Returns:
      Scalar loss.
    """
    chex.assert_rank([values, old_values, returns], 1)
    chex.assert_equal_shape([values, old_values, returns])
    old_values = jax.lax.stop_gradient(old_values)
    returns = jax.lax.stop_gradient(returns)
    clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(jnp.square(values - returns),
                                      jnp.square(clipped - returns)))


def gaussian_log_prob(x: jax.Array, mean: jax.Array,
                      log_std: jax.Array) -> jax.Array:
    """`log N(x; mean, diag(exp(log_std)^2))` of `x, mean [..., d]`
    (`log_std` broadcastable to them); returns `[...]`."""
    chex.assert_equal_shape([x, mean])
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - _HALF_LOG_TWO_PI,
                   axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian, `sum_i (log_std_i + 1/2 log(2 pi e))`:
    `[..., d] -> [...]`."""
    return jnp.sum(log_std + 0.5 + _HALF_LOG_TWO_PI, axis=-1)


def approx_kl(log_ratio: jax.Array) -> jax.Array:
    """`mean((rho - 1) - log rho)` of `log rho = log pi - log pi_old [B]`: an
    unbiased, non-negative estimate of `KL(pi_old || pi)` (Schulman's "k3",
    CleanRL's `approx_kl`)."""
    chex.assert_rank(log_ratio, 1)
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def explained_variance(predictions: jax.Array,
                       targets: jax.Array) -> jax.Array:
    """`1 - var(targets - predictions) / var(targets)` over `[T]`; 0 where
    `var(targets) = 0` (CleanRL gives NaN; 0 keeps metrics finite)."""
    chex.assert_rank([predictions, targets], 1)
    chex.assert_equal_shape([predictions, targets])
    var_targets = jnp.var(targets)
    safe = jnp.where(var_targets > 0, var_targets, 1.0)
    return jnp.where(var_targets > 0,
                     1.0 - jnp.var(targets - predictions) / safe, 0.0)
