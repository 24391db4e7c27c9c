"""Q-score matching (Psenka et al., ICML 2024): a noise predictor regressed
onto the critic's scaled action gradient at noised actions.

Importable by any agent: `q_action_gradient` (mean over an ensemble) and
`score_matching_loss_with_aux` (the QSM actor loss). `baselines.qsm` is the
agent built on them.
"""

from typing import Callable, Dict, Tuple

import chex
import jax
import jax.numpy as jnp

from dqs_jax import ddpm
from dqs_jax.types import PRNGKey

# `q_fn(observations [B, o], actions [B, d]) -> [B, E]`, an ensemble of E.
BatchedEnsembleQFn = Callable[[jax.Array, jax.Array], jax.Array]
# `eps_fn(x [B, d], t [B] int32, observations [B, o]) -> [B, d]`.
ConditionalEpsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def q_action_gradient(q_fn: BatchedEnsembleQFn, observations: jax.Array,
                      actions: jax.Array) -> jax.Array:
    """`mean_j grad_a Q_j(s_b, a_b)` per example (QSM's mean over critics).

    Args:
      q_fn: `(observations [B, o], actions [B, d]) -> [B, E]`, acting on each
        row independently.
      observations: `[B, o]`.
      actions: `[B, d]`.

    Returns:
      `[B, d]` action gradients.
    """
    chex.assert_rank([observations, actions], 2)

    def total(a):
        q = q_fn(observations, a)
        chex.assert_rank(q, 2)
        chex.assert_axis_dimension(q, 0, actions.shape[0])
        return jnp.sum(jnp.mean(q, axis=-1))

    return jax.grad(total)(actions)


def score_matching_loss_with_aux(eps_fn: ConditionalEpsFn,
                                 q_fn: BatchedEnsembleQFn,
                                 schedule: ddpm.DDPMSchedule,
                                 observations: jax.Array, actions: jax.Array,
                                 key: PRNGKey, q_score_scale: float
                                 ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """The QSM actor loss (Psenka et al. 2024, Alg. 1; official code).

    `t ~ U{0..T-1}`, `a_t = q_sample(a, t, eps)` (`ddpm.diffuse`),
    `g = sg(mean_j grad_a Q_j(s, a_t))`,
    `L = mean_b mean_d (eps_fn(a_t, t, s) + M_q g)^2`.

    Args:
      eps_fn: `(a_t [B, d], t [B] int32, observations [B, o]) -> [B, d]`.
      q_fn: `(observations [B, o], actions [B, d]) -> [B, E]` (row-wise).
      schedule: the beta schedule.
      observations: `[B, o]`.
      actions: `[B, d]` clean replay actions in the diffusion's box.
      key: PRNG key for `t` and `eps`.
      q_score_scale: `M_q`.

    Returns:
      `(loss, {'q_grad_norm', 'eps_norm'})`: scalar loss; mean L2 norms of
      `g` and of the prediction.
    """
    chex.assert_rank([observations, actions], 2)
    chex.assert_equal_shape_prefix([observations, actions], prefix_len=1)
    t, _, noisy = ddpm.diffuse(schedule, actions, key)
    g = jax.lax.stop_gradient(q_action_gradient(q_fn, observations, noisy))
    prediction = eps_fn(noisy, t, observations)
    chex.assert_equal_shape([prediction, g])
    loss = jnp.mean(jnp.square(prediction + q_score_scale * g))
    aux = {"q_grad_norm": jnp.mean(jnp.linalg.norm(g, axis=-1)),
           "eps_norm": jnp.mean(jnp.linalg.norm(prediction, axis=-1))}
    return loss, aux
