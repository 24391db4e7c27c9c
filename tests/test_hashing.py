"""Observation-seeded PRNG keys."""

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import hashing


def py_fmix32(h):
    """MurmurHash3 fmix32 with Python ints."""
    m = 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    return h ^ (h >> 16)


def test_fmix32_matches_the_reference():
    values = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF, 123456789]
    got = hashing.fmix32(jnp.asarray(values, jnp.uint32))
    assert [int(v) for v in got] == [py_fmix32(v) for v in values]
    assert py_fmix32(1) == 0x514E28B7  # Published test vector.


def test_observation_keys():
    obs = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
    keys = np.asarray(hashing.observation_keys(obs))
    assert keys.shape == (50, 2) and keys.dtype == np.uint32
    # The hash by hand for row 0.
    bits = np.asarray(obs[0], np.float32).view(np.uint32).astype(object)
    seed = py_fmix32(sum(py_fmix32(int(b + 0x9E3779B9 * (i + 1)) & 0xFFFFFFFF)
                         for i, b in enumerate(bits)) & 0xFFFFFFFF)
    np.testing.assert_array_equal(keys[0], jax.random.fold_in(
        jax.random.PRNGKey(0), np.uint32(seed)))
    # Per row: unaffected by the rest of the batch, equal for equal rows.
    np.testing.assert_array_equal(
        hashing.observation_keys(obs[7:9]), keys[7:9])
    dup = hashing.observation_keys(jnp.stack([obs[3], obs[3]]))
    np.testing.assert_array_equal(dup[0], dup[1])
    assert len({tuple(k) for k in keys}) == 50
    # One ulp, a swap of coordinates and another salt all change the key.
    nudged = obs.at[0, 1].set(jnp.nextafter(obs[0, 1], jnp.inf))
    swapped = obs[:, ::-1]
    assert not np.array_equal(hashing.observation_keys(nudged)[0], keys[0])
    assert not np.array_equal(hashing.observation_keys(swapped)[0], keys[0])
    assert not np.array_equal(hashing.observation_keys(obs, salt=1)[0],
                              keys[0])
