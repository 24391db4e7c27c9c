"""Running statistics against numpy over all the data seen."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import normalizer


def test_init_is_empty_and_normalize_is_then_the_identity():
    stats = normalizer.init(3)
    np.testing.assert_array_equal(stats.mean, np.zeros(3))
    np.testing.assert_array_equal(stats.var, np.ones(3))
    assert float(stats.count) == 0 and stats.mean.dtype == jnp.float32
    x = jnp.array([[1.0, -2.0, 30.0]])
    np.testing.assert_allclose(normalizer.normalize(stats, x), x, rtol=1e-7)
    np.testing.assert_allclose(normalizer.normalize(stats, x, clip=10.0),
                               [[1.0, -2.0, 10.0]], rtol=1e-7)
    assert normalizer.init(()).mean.shape == ()
    assert normalizer.init((2, 3)).var.shape == (2, 3)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_batches_match_numpy_moments_of_all_data(offset):
    rng = np.random.default_rng(0)
    scales = np.array([0.1, 1.0, 5.0, 20.0])
    batches = [offset + scales * rng.normal(size=(n, 4)) + rng.normal(size=4)
               for n in (1, 7, 64, 3, 200)]
    update = jax.jit(normalizer.update)
    stats = normalizer.init(4)
    for i, batch in enumerate(batches):
        stats = update(stats, jnp.asarray(batch, jnp.float32))
        seen = np.concatenate(batches[:i + 1])
        assert float(stats.count) == len(seen)
        # float32 data of size ~offset: mean to ~1e-7 * offset, var relative.
        np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5,
                                   atol=1e-5 * (1 + offset))
        if len(seen) > 1:
            np.testing.assert_allclose(stats.var, seen.var(0), rtol=2e-3,
                                       atol=1e-6 * (1 + offset) ** 2)
    # The first batch alone (one row): its moments exactly, variance 0.
    one = update(normalizer.init(4), jnp.asarray(batches[0], jnp.float32))
    np.testing.assert_array_equal(one.var, np.zeros(4))
    seen = np.concatenate(batches)
    x = jnp.asarray(seen[:5], jnp.float32)
    np.testing.assert_allclose(
        normalizer.normalize(stats, x),
        (seen[:5] - seen.mean(0)) / np.sqrt(seen.var(0) + normalizer.EPS),
        rtol=1e-3, atol=1e-3)


def test_update_order_does_not_matter():
    rng = np.random.default_rng(1)
    a, b = (jnp.asarray(rng.normal(size=(n, 2)), jnp.float32) for n in (5, 9))
    ab = normalizer.update(normalizer.update(normalizer.init(2), a), b)
    ba = normalizer.update(normalizer.update(normalizer.init(2), b), a)
    both = normalizer.update(normalizer.init(2), jnp.concatenate([a, b]))
    for s in (ab, ba):
        np.testing.assert_allclose(s.mean, both.mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s.var, both.var, rtol=1e-5)


def test_float64_statistics():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        data = 1e6 + rng.normal(size=(100, 2))
        stats = normalizer.init(2, jnp.float64)
        for chunk in np.split(data, 4):
            stats = normalizer.update(stats, jnp.asarray(chunk))
        assert stats.mean.dtype == jnp.float64
        np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-13)
        np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-9)


def test_scalar_stats_and_scale():
    returns = jnp.array([1.0, -3.0, 2.0, 4.0])
    stats = normalizer.update(normalizer.init(()), returns)
    np.testing.assert_allclose(stats.var, np.var(returns), rtol=1e-6)
    std = np.sqrt(np.var(returns) + normalizer.EPS)
    np.testing.assert_allclose(normalizer.scale(stats, returns),
                               returns / std, rtol=1e-6)
    np.testing.assert_allclose(normalizer.scale(stats, returns, clip=1.0),
                               np.clip(returns / std, -1, 1), rtol=1e-6)


def test_discounted_returns_restart_after_dones():
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    dones = jnp.array([0.0, 1.0, 0.0, 0.0, 1.0])
    gamma = 0.5
    expected, g = [], 10.0  # Carried in from the previous rollout.
    for r, d in zip(rewards.tolist(), dones.tolist()):
        g = r + gamma * g
        expected.append(g)
        g *= 1 - d
    final, got = normalizer.discounted_returns(jnp.asarray(10.0), rewards,
                                               dones, gamma)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got[:2], [6.0, 5.0])  # 1 + 5; 2 + 3.
    assert float(final) == 0.0
    final, _ = normalizer.discounted_returns(jnp.asarray(10.0), rewards,
                                             dones.at[-1].set(0.0), gamma)
    np.testing.assert_allclose(final, 5 + 0.5 * (4 + 0.5 * 3), rtol=1e-6)
