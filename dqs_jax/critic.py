"""The TD step of an ensemble critic, shared by the actor-critic agents."""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import optax

from dqs_jax import losses
from dqs_jax.optim import apply_gradients
from dqs_jax.types import Batch, Metrics, Params


def critic_step(critic_net: nn.Module, optimiser: optax.GradientTransformation,
                params: Params, opt_state: optax.OptState,
                target_params: Params, batch: Batch, next_actions: jax.Array,
                discount: float, *, loss_scale: float = 1.0,
                reward_scale: float = 1.0,
                next_value_bonus: Optional[jax.Array] = None
                ) -> Tuple[Params, Any, Metrics]:
    """One optimiser step on `loss_scale * losses.td_loss` (docs/algorithm.md
    §6; the paper's Eq. (7)).

    `y = reward_scale * r + discount * m * (min_j Qbar_j(s', a') + bonus)`;
    `loss_scale = E` turns the mean over the `E` members into the sum over
    members that some official codes use.

    Args:
      critic_net: `apply(params, obs [o], act [d]) -> [E]` (vmapped over B).
      optimiser: the critic's optimiser.
      params: online critic parameters.
      opt_state: their optimiser state.
      target_params: target critic parameters.
      batch: `Batch` of `B` transitions.
      next_actions: `[B, d]` actions at `batch.next_observations`.
      discount: scalar gamma.
      loss_scale: multiplies the loss.
      reward_scale: multiplies the rewards.
      next_value_bonus: optional `[B]` added to the target value (SAC).

    Returns:
      `(params, opt_state, metrics)` with float32 scalars `critic_loss`,
      `q_mean`, `target_q_mean`, `critic_grad_norm`.
    """
    def objective(p):
        loss, aux = losses.td_loss_with_aux(
            lambda o, a: critic_net.apply(p, o, a),
            lambda o, a: critic_net.apply(target_params, o, a),
            batch.observations, batch.actions, reward_scale * batch.rewards,
            batch.discounts, batch.next_observations, next_actions, discount,
            next_value_bonus=next_value_bonus)
        return loss_scale * loss, aux

    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(params)
    params, opt_state = apply_gradients(optimiser, grads, opt_state, params)
    return params, opt_state, {
        "critic_loss": loss, "q_mean": aux["q_mean"],
        "target_q_mean": aux["target_mean"],
        "critic_grad_norm": optax.global_norm(grads)}
