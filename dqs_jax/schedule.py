"""Geometric variance-exploding noise schedule (docs/algorithm.md §2; the
paper's Eq. (1)-(2))."""

import dataclasses
import math

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class GeometricSchedule:
    """Forward SDE `dx = g(t) dW` on `t in [0, 1]` with a geometric noise level.

    With `r = sigma_max / sigma_min`:
      `g(t) = sigma_min * r**t * sqrt(2 ln r)`,
      `h(t) = ∫_0^t g(u)^2 du = sigma_min**2 * (r**(2t) - 1)`,
    so the marginal at time `t` is `p_0 * N(0, h(t) I)`.

    Frozen (hashable), so it can be a static argument of jitted functions.
    Both methods are elementwise: `t` of any shape gives the same shape.
    """

    sigma_min: float = 1e-5
    sigma_max: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                "GeometricSchedule needs 0 < sigma_min < sigma_max, got "
                f"sigma_min={self.sigma_min}, sigma_max={self.sigma_max}.")

    @property
    def log_ratio(self) -> float:
        """`ln(sigma_max / sigma_min)`."""
        return math.log(self.sigma_max / self.sigma_min)

    def g(self, t):
        """Diffusion coefficient `g(t)`; `t`: any shape, returns that shape."""
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return (self.sigma_min * jnp.exp(t * self.log_ratio)
                * math.sqrt(2.0 * self.log_ratio))

    def h(self, t):
        """Added variance `h(t)`, `h(0) = 0`; `t`: any shape, returns that shape."""
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        # expm1 keeps h accurate for small t, where r**(2t) - 1 cancels.
        return self.sigma_min**2 * jnp.expm1(2.0 * t * self.log_ratio)
