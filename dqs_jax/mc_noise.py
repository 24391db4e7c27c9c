"""Standard-normal draws for the K-sample score estimates.

Each function maps `(key, num, dim, dtype)` to `[num, dim]` draws whose
every row is marginally `N(0, I)`, so any of them can replace
`jax.random.normal` inside a Monte Carlo average:

- `gaussian`: i.i.d. normals (`jax.random.normal(key, (num, dim))`, the
  iDEM estimate's draws, bit for bit).
- `antithetic`: pairs `(eps, -eps)` (Hammersley & Morton 1956). They cancel
  every odd term of the integrand's Taylor expansion around `x_t`, at no
  cost.
- `qmc`: randomised quasi-Monte Carlo: the first `num` points of an
  unscrambled Sobol sequence (Sobol' 1967; scipy's Joe-Kuo direction
  numbers), randomised per key by a random digital shift (XOR with one
  uniform 32-bit word per dimension; Owen 2003, "Quasi-Monte Carlo
  sampling"), mapped through the normal quantile. Every point is then
  uniform on the 2^-24 grid (unbiased), while the set keeps the net's
  stratification.
"""

import functools
from typing import Callable, Dict
import warnings

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri
import numpy as np

from dqs_jax.types import PRNGKey

# `noise(key, num, dim, dtype) -> [num, dim]` standard-normal draws.
NoiseFn = Callable[[PRNGKey, int, int, jnp.dtype], jax.Array]

_MANTISSA_BITS = 24  # float32 resolves 24 bits of a number in [0, 1).


def gaussian(key: PRNGKey, num: int, dim: int,
             dtype=jnp.float32) -> jax.Array:
    """`[num, dim]` i.i.d. `N(0, 1)`."""
    return jax.random.normal(key, (num, dim), dtype)


def antithetic(key: PRNGKey, num: int, dim: int,
               dtype=jnp.float32) -> jax.Array:
    """`[num, dim]`: `ceil(num / 2)` i.i.d. normals `z`, then `-z` (the
    last pair loses its negative half when `num` is odd)."""
    half = jax.random.normal(key, ((num + 1) // 2, dim), dtype)
    return jnp.concatenate([half, -half])[:num]


@functools.lru_cache(maxsize=64)
def sobol_integers(num: int, dim: int) -> np.ndarray:
    """`[num, dim]` uint32: the first `num` points of the unscrambled Sobol
    sequence in `dim` dimensions, as 32-bit binary fractions (host
    constant, computed once per shape)."""
    if num < 1 or dim < 1:
        raise ValueError(f"num and dim must be >= 1, got {num}, {dim}.")
    from scipy.stats import qmc  # Host-only dependency, imported on use.
    m = max(int(np.ceil(np.log2(num))), 0)
    with warnings.catch_warnings():  # A prefix of a 2^m net is fine here.
        warnings.simplefilter("ignore")
        points = qmc.Sobol(dim, scramble=False).random_base2(m)[:num]
    return np.floor(points * 2.0**32).astype(np.uint64).astype(np.uint32)


def qmc(key: PRNGKey, num: int, dim: int, dtype=jnp.float32) -> jax.Array:
    """`[num, dim]` randomised Sobol normals (module docstring)."""
    base = jnp.asarray(sobol_integers(num, dim))
    shift = jax.random.bits(key, (dim,), jnp.uint32)
    bits = (base ^ shift) >> (32 - _MANTISSA_BITS)
    uniform = (bits.astype(jnp.float32) + 0.5) * 2.0**-_MANTISSA_BITS
    return ndtri(uniform).astype(dtype)


NOISES: Dict[str, NoiseFn] = {"gaussian": gaussian, "antithetic": antithetic,
                              "qmc": qmc}


def get_noise(name: str) -> NoiseFn:
    """The draw function `name`; ValueError listing the valid names."""
    if name not in NOISES:
        raise ValueError(f"Unknown noise {name!r}; valid: {sorted(NOISES)}.")
    return NOISES[name]
