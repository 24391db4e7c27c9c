"""Dense-layer initialisations by name: the conventions of the references
the agents are compared with (docs/defaults.md, "Baselines").

| name | kernel | bias | used by |
|---|---|---|---|
| `lecun_normal` | truncated normal, std `1/sqrt(fan_in)` | 0 | Flax's default |
| `orthogonal` | orthogonal, gain `sqrt 2` | 0 | the DQS authors' code |
| `xavier_uniform` | `U(+-sqrt(6 / (fan_in + fan_out)))` | 0 | jaxrl5 (QSM) |
| `pytorch` | `U(+-1/sqrt(fan_in))` | `U(+-1/sqrt(fan_in))` | `torch.nn.Linear` (TD3, DDPG) |
| `haiku` | normal truncated at 2 sd of scale `1/sqrt(fan_in)` (sd `0.88/sqrt(fan_in)`) | 0 | `hk.Linear` (DACER) |
| `dipo` | `N(0, 1/(4 fan_in))` | 0 | DIPO's `init_weights` |
"""

import math
from typing import Any, Dict, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

KERNEL_INITS = ("lecun_normal", "orthogonal", "xavier_uniform", "pytorch",
                "haiku", "dipo")

# Standard deviation of a unit normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def check_kernel_init(owner: str, name: str) -> None:
    """Raises a ValueError naming `owner` unless `name` is in
    `KERNEL_INITS`."""
    if name not in KERNEL_INITS:
        raise ValueError(f"{owner} must be one of {KERNEL_INITS}, got "
                         f"{name!r}.")


def _uniform_bias(fan_in: int) -> nn.initializers.Initializer:
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def get_kernel_init(name: str, fan_in: Optional[int] = None
                    ) -> Dict[str, Any]:
    """`nn.Dense` keyword arguments (`kernel_init`, and `bias_init` where
    the convention has one) for the initialisation `name` (one of
    `KERNEL_INITS`) of a layer with `fan_in` inputs; `{}` for Flax's
    default. `fan_in` is needed only by `"pytorch"` (its bias)."""
    check_kernel_init("kernel_init", name)
    if name == "lecun_normal":
        return {}
    if name == "orthogonal":
        return {"kernel_init": nn.initializers.orthogonal(math.sqrt(2.0))}
    if name == "xavier_uniform":
        return {"kernel_init": nn.initializers.xavier_uniform()}
    if name == "haiku":
        return {"kernel_init": nn.initializers.variance_scaling(
            _TRUNCATED_STD ** 2, "fan_in", "truncated_normal")}
    if name == "dipo":
        return {"kernel_init": nn.initializers.variance_scaling(
            0.25, "fan_in", "normal")}
    if fan_in is None or fan_in < 1:
        raise ValueError(f"kernel_init 'pytorch' needs the layer's fan_in, "
                         f"got {fan_in}.")
    return {"kernel_init": nn.initializers.variance_scaling(
        1.0 / 3.0, "fan_in", "uniform"), "bias_init": _uniform_bias(fan_in)}
