"""Boltzmann temperature schedule (SPEC §7)."""

import jax.numpy as jnp


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
