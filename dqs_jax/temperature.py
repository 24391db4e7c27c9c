"""Temperatures: DQS's Boltzmann schedule (docs/algorithm.md §7) and the
automatic entropy temperature of SAC and DACER (Haarnoja et al. 2018, "SAC
and applications", eq. 18), one optimiser step on

  `L(log_alpha) = log_alpha * (sg(H) - H_target)`,

so `dL/dlog_alpha = H - H_target`: alpha rises when the policy's entropy
`H` is below the target and falls above it (SAC: H from the batch's
log-probabilities; DACER: from a mixture fit to sampled actions).
"""

from typing import Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from dqs_jax.optim import apply_gradients


def log_linear_temperature(step, init_temperature: float,
                           final_temperature: float, anneal_steps: int):
    """`alpha(step) = exp(lerp(log a0, log a1, min(step / T, 1)))`.

    Constant `init_temperature` when `anneal_steps <= 0` or `a0 == a1`.

    Args:
      step: integer step count, scalar or any shape.
      init_temperature: `a0 > 0`.
      final_temperature: `a1 > 0`.
      anneal_steps: `T`, the number of steps to go from `a0` to `a1`.

    Returns:
      float32 temperature, same shape as `step`.
    """
    if init_temperature <= 0 or final_temperature <= 0:
        raise ValueError(
            "temperatures must be positive, got init_temperature="
            f"{init_temperature}, final_temperature={final_temperature}.")
    step = jnp.asarray(step, jnp.float32)
    if anneal_steps <= 0:
        return jnp.full(step.shape, init_temperature, jnp.float32)
    frac = jnp.clip(step / anneal_steps, 0.0, 1.0)
    log_a0 = jnp.log(jnp.float32(init_temperature))
    log_a1 = jnp.log(jnp.float32(final_temperature))
    return jnp.exp(log_a0 + frac * (log_a1 - log_a0))


def temperature_loss(log_temperature: jax.Array, entropy: jax.Array,
                     target_entropy: float) -> jax.Array:
    """`log_alpha * (sg(H) - H_target)` for scalars `log_temperature` and
    `entropy`; a scalar."""
    chex.assert_rank([log_temperature, entropy], 0)
    return log_temperature * (jax.lax.stop_gradient(entropy) - target_entropy)


def temperature_step(optimizer: optax.GradientTransformation,
                     log_temperature: jax.Array, opt_state: optax.OptState,
                     entropy: jax.Array, target_entropy: float
                     ) -> Tuple[jax.Array, optax.OptState, jax.Array]:
    """One `optimizer` step on `temperature_loss`.

    Args:
      optimizer: the temperature's optimiser (Adam in SAC and DACER).
      log_temperature: scalar `log_alpha`.
      opt_state: `optimizer`'s state for `log_temperature`.
      entropy: scalar entropy estimate `H` (no gradient flows into it).
      target_entropy: `H_target`.

    Returns:
      `(log_temperature, opt_state, loss)`, the loss at the old value.
    """
    loss, grad = jax.value_and_grad(temperature_loss)(
        log_temperature, entropy, target_entropy)
    log_temperature, opt_state = apply_gradients(optimizer, grad, opt_state,
                                                 log_temperature)
    return log_temperature, opt_state, loss
