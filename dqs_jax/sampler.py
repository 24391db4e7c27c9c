"""Reverse-time samplers of the variance-exploding SDE (docs/algorithm.md
§5; the paper's Eq. (3))."""

from typing import Callable

import jax
import jax.numpy as jnp

from dqs_jax.schedule import GeometricSchedule
from dqs_jax.types import PRNGKey

# `score_fn(x [..., d], t scalar) -> [..., d]`.
ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


def reverse_times(num_steps: int) -> jax.Array:
    """`[num_steps]` times `1, 1 - dt, ..., dt` with `dt = 1 / num_steps`."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    return 1.0 - jnp.arange(num_steps, dtype=jnp.float32) / num_steps


def _check_x_init(x_init: jax.Array) -> None:
    if jnp.ndim(x_init) < 1:
        raise ValueError(
            f"x_init must have shape [..., d], got shape {jnp.shape(x_init)}.")


def sample_reverse_sde(score_fn: ScoreFn, x_init: jax.Array,
                       schedule: GeometricSchedule, num_steps: int,
                       key: PRNGKey, noise_scale: float = 1.0) -> jax.Array:
    """Euler–Maruyama integration of the reverse SDE from `t = 1` to `t = 0`.

    For `t_k = 1, 1 - dt, ..., dt`:
    `x <- x + g(t_k)^2 score_fn(x, t_k) dt + noise_scale g(t_k) sqrt(dt) z`,
    `z ~ N(0, I)`, as one `jax.lax.scan`. `noise_scale=0.0` gives a
    deterministic sampler whose result does not depend on `key`.

    Args:
      score_fn: `(x [..., d], t scalar) -> [..., d]`.
      x_init: `[..., d]` starting point, typically drawn from `N(0, h(1) I)`.
      schedule: the noise schedule.
      num_steps: number of Euler steps, static.
      key: PRNG key for the step noise.
      noise_scale: diffusion scale `c` (1 for acting, 0 for evaluation).

    Returns:
      `x_0`, same shape and dtype as `x_init`.
    """
    _check_x_init(x_init)
    dt = 1.0 / num_steps
    times = reverse_times(num_steps)
    # Step k's noise is `normal(split(key, num_steps)[k])`, drawn for all
    # steps at once before the loop (the same numbers, one RNG call).
    # With a static `noise_scale == 0` no noise is drawn (adding `0 * z` is
    # exact, so the result is the same).
    if isinstance(noise_scale, (int, float)) and noise_scale == 0:
        noise = jnp.zeros((num_steps,) + x_init.shape, x_init.dtype)
    else:
        keys = jax.random.split(key, num_steps)
        noise = jax.vmap(lambda k: jax.random.normal(
            k, x_init.shape, x_init.dtype))(keys)

    def step(x, inputs):
        t, z = inputs
        g = schedule.g(t)
        drift = g**2 * score_fn(x, t) * dt
        x = x + drift + noise_scale * g * jnp.sqrt(dt) * z
        return x.astype(x_init.dtype), None

    x_0, _ = jax.lax.scan(step, x_init, (times, noise))
    return x_0


def sample_probability_flow(score_fn: ScoreFn, x_init: jax.Array,
                            schedule: GeometricSchedule,
                            num_steps: int) -> jax.Array:
    """Euler integration of the probability-flow ODE from `t = 1` to `t = 0`.

    `x <- x + 0.5 g(t_k)^2 score_fn(x, t_k) dt`: a deterministic alternative
    to `sample_reverse_sde(..., noise_scale=0.0)`.

    Args:
      score_fn: `(x [..., d], t scalar) -> [..., d]`.
      x_init: `[..., d]` starting point.
      schedule: the noise schedule.
      num_steps: number of Euler steps, static.

    Returns:
      `x_0`, same shape and dtype as `x_init`.
    """
    _check_x_init(x_init)
    dt = 1.0 / num_steps

    def step(x, t):
        x = x + 0.5 * schedule.g(t)**2 * score_fn(x, t) * dt
        return x.astype(x_init.dtype), None

    x_0, _ = jax.lax.scan(step, x_init, reverse_times(num_steps))
    return x_0
