"""Key-free determinism: PRNG keys derived from the data itself.

A policy whose deterministic action must not depend on the caller's key but
whose sampler needs randomness (a diffusion chain started from noise) can
seed each row from its observation: the action is then a fixed function of
the observation alone, whatever the batch around it.
"""

import chex
import jax
import jax.numpy as jnp

_GOLDEN = 0x9E3779B9


def fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser, elementwise on uint32 arrays."""
    chex.assert_type(h, jnp.uint32)
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def observation_keys(observations: jax.Array, salt: int = 0) -> jax.Array:
    """One PRNG key per row, hashed from the row's float32 bits.

    `seed = fmix32(sum_i fmix32(bits_i + golden * (i + 1)))` (uint32
    arithmetic), key `= fold_in(PRNGKey(salt), seed)`. Equal rows get equal
    keys; a row's key does not depend on the other rows.

    Args:
      observations: `[N, o]` (cast to float32).
      salt: seeds the base key (static int).

    Returns:
      `[N]` PRNG keys (`[N, 2]` uint32 raw keys).
    """
    chex.assert_rank(observations, 2)
    bits = jax.lax.bitcast_convert_type(observations.astype(jnp.float32),
                                        jnp.uint32)
    position = jnp.arange(bits.shape[-1], dtype=jnp.uint32) + jnp.uint32(1)
    mixed = fmix32(bits + jnp.uint32(_GOLDEN) * position)
    seeds = fmix32(jnp.sum(mixed, axis=-1, dtype=jnp.uint32))
    return jax.vmap(jax.random.fold_in, (None, 0))(
        jax.random.PRNGKey(salt), seeds)
