"""MMD, mode coverage and the Boltzmann log-partition."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy.spatial import distance

from experiments.gmm import metrics
from dqs_jax.envs import gmm


def numpy_mmd(x, y, bandwidth=None):
    """Independent float64 reference (scipy distances, explicit means)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if bandwidth is None:
        bandwidth = np.median(distance.pdist(np.concatenate([x, y])))

    def k(a, b):
        return np.exp(-distance.cdist(a, b, "sqeuclidean")
                      / (2 * bandwidth ** 2))

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_mmd_is_exactly_zero_for_identical_sets():
    for n, d in ((200, 3), (57, 2), (1, 2)):
        x = jax.random.normal(jax.random.PRNGKey(n), (n, d)) * 5.0
        for fn in (metrics.mmd, jax.jit(metrics.mmd)):
            assert float(fn(x, x)) == 0.0
            assert float(fn(x, jnp.array(x))) == 0.0
            assert float(fn(x, x, 0.3)) == 0.0


def test_mmd_hand_example_with_the_median_heuristic():
    # Pooled 1-D points {0, 1, 3}: pair distances {1, 3, 2}, median 2.
    x, y = jnp.array([[0.0], [1.0]]), jnp.array([[3.0]])
    np.testing.assert_allclose(
        metrics.median_heuristic_bandwidth(jnp.concatenate([x, y])), 2.0)
    k = lambda d: math.exp(-d ** 2 / 8.0)  # noqa: E731  bw = 2
    expected = (2 + 2 * k(1)) / 4 + 1 - 2 * (k(3) + k(2)) / 2
    np.testing.assert_allclose(metrics.mmd(x, y), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(metrics.mmd)(x, y), expected,
                               rtol=1e-6)
    # Two single points at distance 5: 2 - 2 k(5) for any bandwidth.
    a, b = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]])
    np.testing.assert_allclose(metrics.mmd(a, b, bandwidth=2.5),
                               2 - 2 * math.exp(-25 / 12.5), rtol=1e-6)
    np.testing.assert_allclose(metrics.mmd(a, b),  # median = 5
                               2 - 2 * math.exp(-0.5), rtol=1e-6)


def test_mmd_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 2)).astype(np.float32)
    y = (rng.normal(size=(50, 2)) * 2 + 1).astype(np.float32)
    np.testing.assert_allclose(metrics.mmd(x, y), numpy_mmd(x, y), rtol=1e-4)
    np.testing.assert_allclose(metrics.mmd(x, y, bandwidth=0.7),
                               numpy_mmd(x, y, 0.7), rtol=1e-4)


def test_mmd_is_symmetric():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    y = rng.normal(loc=1.0, size=(60, 2)).astype(np.float32)
    np.testing.assert_allclose(metrics.mmd(x, y), metrics.mmd(y, x),
                               rtol=1e-5)
    np.testing.assert_allclose(metrics.mmd(x, y, 1.5),
                               metrics.mmd(y, x, 1.5), rtol=1e-5)
    assert float(metrics.mmd(x, y)) > 0.0


@pytest.mark.parametrize("bandwidth", [None, 1.0])
def test_mmd_grows_monotonically_with_a_shift(bandwidth):
    x = jax.random.normal(jax.random.PRNGKey(2), (300, 2))
    y0 = jax.random.normal(jax.random.PRNGKey(3), (300, 2))
    values = [float(metrics.mmd(x, y0 + jnp.array([s, 0.0]), bandwidth))
              for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[0] < 0.02 and values[-1] > 0.3


def test_mmd_checks_shapes():
    with pytest.raises(AssertionError):
        metrics.mmd(jnp.zeros((4, 2)), jnp.zeros((4, 3)))


def test_mode_coverage_of_ground_truth_samples_is_complete():
    samples = gmm.sample_gmm(jax.random.PRNGKey(4), 4000)
    coverage = metrics.mode_coverage(samples, gmm.gmm_means(), gmm.MODE_STD)
    assert coverage.dtype == jnp.int32 and int(coverage) == 40
    assert int(jax.jit(metrics.mode_coverage)(samples, gmm.gmm_means(),
                                              gmm.MODE_STD)) == 40


def test_mode_coverage_counts_only_the_modes_sampled():
    means = gmm.gmm_means()
    # Isolated modes (nearest other mean >= 7 away), points within 2 of them:
    # no point can be within 3 of another mean.
    dists = distance.squareform(distance.pdist(means))
    np.fill_diagonal(dists, np.inf)
    subset = np.flatnonzero(dists.min(1) >= 7.0)
    assert 10 <= len(subset) < 40
    rng = np.random.default_rng(5)
    noise = rng.normal(scale=0.7, size=(len(subset) * 50, 2))
    noise *= np.minimum(1.0, 2.0 / np.linalg.norm(noise, axis=-1))[:, None]
    points = (np.repeat(means[subset], 50, axis=0) + noise).astype(np.float32)
    assert int(metrics.mode_coverage(points, means, 1.0)) == len(subset)
    # Every other point dropped: still one point per mode left.
    assert int(metrics.mode_coverage(points[::2], means, 1.0)) == len(subset)
    # The two closest modes (1.18 apart) are both covered by one point.
    i, j = np.unravel_index(np.argmin(dists), dists.shape)
    midpoint = (means[i] + means[j])[None] / 2
    assert int(metrics.mode_coverage(midpoint, means, 1.0)) >= 2
    # One point collapsed to the box corner covers nothing.
    assert int(metrics.mode_coverage(jnp.full((5, 2), 50.0), means, 1.0)) == 0


def test_mode_coverage_radius_in_units_of_std():
    means = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = jnp.array([[2.9, 0.0], [10.0, 3.1], [0.0, 15.5]])
    assert int(metrics.mode_coverage(points, means, 1.0)) == 1
    assert int(metrics.mode_coverage(points, means, 1.0, radius=3.2)) == 2
    assert int(metrics.mode_coverage(points, means, 2.0)) == 3  # 6 > 5.5
    assert int(metrics.mode_coverage(points, means, 2.0, radius=2.0)) == 2


def test_unit_sphere_area():
    np.testing.assert_allclose(
        [metrics.unit_sphere_area(d) for d in (1, 2, 3, 4)],
        [2.0, 2 * math.pi, 4 * math.pi, 2 * math.pi ** 2], rtol=1e-12)


@pytest.mark.parametrize("act_dim, area", [(2, 2 * math.pi), (3, 4 * math.pi)])
def test_log_partition_of_a_constant_q(act_dim, area):
    def q_fn(states, actions):
        return jnp.full(actions.shape[:1], 1.5) + 0.0 * states[:, 0]

    out = metrics.log_partition(q_fn, jnp.zeros((4, 3)), 0.5,
                                jax.random.PRNGKey(6), num_actions=64,
                                act_dim=act_dim)
    assert out.shape == (4,) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, math.log(area) + 1.5 / 0.5, rtol=1e-6)


def _linear_q(kappa):
    """`Q(s, a) = kappa * a . s` for unit states `s`: a von Mises-Fisher."""
    return lambda states, actions: kappa * jnp.sum(states * actions, -1)


def test_log_partition_von_mises_2d():
    kappa, temperature = 1.5, 0.5  # Effective concentration 3.
    angles = jnp.array([0.0, 1.0, 2.5, -2.0])
    states = jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)
    fn = jax.jit(functools.partial(metrics.log_partition, _linear_q(kappa),
                                   num_actions=20000))
    out = fn(states, temperature, jax.random.PRNGKey(7))
    expected = math.log(2 * math.pi * special.i0(kappa / temperature))
    np.testing.assert_allclose(out, expected, atol=0.035)
    # A wrong area or a missing -log(A) would be off by far more.
    assert abs(float(jnp.mean(out)) - expected) < 0.015


def test_log_partition_von_mises_fisher_3d():
    kappa = 2.0
    states = jnp.eye(3)
    out = metrics.log_partition(_linear_q(kappa), states, 1.0,
                                jax.random.PRNGKey(8), num_actions=20000,
                                act_dim=3)
    expected = math.log(4 * math.pi * math.sinh(kappa) / kappa)
    np.testing.assert_allclose(out, expected, atol=0.035)


def test_log_partition_calls_q_fn_state_major():
    seen = {}

    def q_fn(states, actions):
        seen["shapes"] = (states.shape, actions.shape)
        seen["states"] = states
        np.testing.assert_allclose(jnp.linalg.norm(actions, axis=-1), 1.0,
                                   rtol=1e-5)
        return states[:, 0]  # Q(s, a) = s_0: log Z = log(2 pi) + s_0 / T.

    states = jnp.array([[1.0, 9.0], [-2.0, 9.0], [0.5, 9.0]])
    out = metrics.log_partition(q_fn, states, 2.0, jax.random.PRNGKey(9),
                                num_actions=5)
    assert seen["shapes"] == ((15, 2), (15, 2))
    np.testing.assert_array_equal(seen["states"][:5, 0], 1.0)
    np.testing.assert_array_equal(seen["states"][5:10, 0], -2.0)
    np.testing.assert_allclose(out, math.log(2 * math.pi)
                               + np.array([1.0, -2.0, 0.5]) / 2.0, rtol=1e-6)
