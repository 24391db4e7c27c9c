"""The direction-density diagnostic against critics with closed-form
Boltzmann densities over directions (von Mises and a two-bump mixture)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments.gmm import direction_density as dd

ALPHA = 2.0
G = 360
N = 2000


def von_mises_critic(states, actions):
    """`Q(s, a) = alpha * s . a / |a|`: at state `s` the Boltzmann density
    over directions is von Mises(mu = angle of s, kappa = |s|), whatever
    `|a|` is."""
    unit = actions / jnp.linalg.norm(actions, axis=-1, keepdims=True)
    return ALPHA * jnp.sum(states * unit, axis=-1)


def polar(mu, kappa):
    return [kappa * math.cos(mu), kappa * math.sin(mu)]


# Directions of the modes (one wrapping around -pi / pi) and concentrations.
MUS = np.array([0.7, -2.9, 3.1])
KAPPAS = np.array([4.0, 1.5, 20.0])
STATES = jnp.array([polar(m, k) for m, k in zip(MUS, KAPPAS)], jnp.float32)


def test_grid_and_directions():
    angles = np.asarray(dd.angle_grid(8))
    np.testing.assert_allclose(angles, -np.pi + (np.arange(8) + 0.5)
                               * np.pi / 4, atol=1e-6)
    np.testing.assert_allclose(
        dd.direction_angles(dd.unit_vectors(jnp.asarray(angles))), angles,
        atol=1e-6)
    # Every bin centre lands in its own bin; +pi and -pi share the first.
    hist = dd.direction_histogram(jnp.asarray(angles)[None], 8)
    np.testing.assert_array_equal(hist, np.full((1, 8), 1 / 8))
    edge = dd.direction_histogram(jnp.array([[np.pi, -np.pi]]), 8)
    np.testing.assert_array_equal(edge[0], [1, 0, 0, 0, 0, 0, 0, 0])


def test_von_mises_density_matches_closed_form():
    @jax.jit
    def densities(states):
        def density(temperature, radius):
            return dd.boltzmann_direction_density(
                von_mises_critic, states, temperature, G, radius)
        result = density(ALPHA, 1.0)
        return (result, density(ALPHA, 0.5).density,
                density(2 * ALPHA, 1.0).density,
                dd.count_modes(result.density))

    result, half, hot, modes = densities(STATES)
    chex.assert_shape([result.density, result.q_values], (3, G))
    theta = np.asarray(result.angles, np.float64)
    expected = np.stack([stats.vonmises.pdf(theta, k, loc=m)
                         for m, k in zip(MUS, KAPPAS)])
    np.testing.assert_allclose(result.density, expected, rtol=2e-4,
                               atol=1e-7)
    np.testing.assert_allclose(
        np.sum(result.density, axis=-1) * 2 * np.pi / G, 1.0, atol=1e-5)
    expected_q = ALPHA * KAPPAS[:, None] * np.cos(theta - MUS[:, None])
    np.testing.assert_allclose(result.q_values, expected_q, rtol=1e-5,
                               atol=1e-4)
    # This critic is constant along rays: any radius gives the same density.
    np.testing.assert_allclose(half, result.density, rtol=1e-5)
    # Doubling the temperature halves the concentration.
    np.testing.assert_allclose(
        hot[0], stats.vonmises.pdf(theta, KAPPAS[0] / 2, loc=MUS[0]),
        rtol=2e-4)
    np.testing.assert_array_equal(modes, [1, 1, 1])


def test_total_variation_separates_right_and_wrong_samples():
    @jax.jit
    def density_and_floor(states, key):
        density = dd.boltzmann_direction_density(von_mises_critic, states,
                                                 ALPHA, 72).density
        return density, dd.sampling_floor(key, density, N)

    density, floor = density_and_floor(STATES, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    exact = np.stack([rng.vonmises(m, k, N) for m, k in zip(MUS, KAPPAS)])
    shifted = np.stack([rng.vonmises(m + 1.0, k, N)
                        for m, k in zip(MUS, KAPPAS)])
    uniform = rng.uniform(-np.pi, np.pi, (3, N))
    samples = jnp.asarray(np.stack([exact, shifted, uniform]), jnp.float32)
    tv_exact, tv_shifted, tv_uniform = np.asarray(jax.jit(jax.vmap(
        dd.total_variation, in_axes=(None, 0)))(density, samples))
    assert np.all(floor > 0.01) and np.all(floor < 0.1), floor
    # Exact draws score the finite-sample floor (within noise) ...
    assert np.all(tv_exact < 2.0 * floor) and np.all(tv_exact > 0.5 * floor)
    # ... wrong ones far more.
    assert np.all(tv_shifted > 0.35) and np.all(tv_uniform > 0.35)


def test_bimodal_critic_keeps_both_modes():
    mus, kappa, weights = np.array([-1.2, 2.0]), 6.0, np.array([0.3, 0.7])

    def critic(states, actions):
        del states
        theta = dd.direction_angles(actions)[:, None]
        return ALPHA * jax.nn.logsumexp(
            kappa * jnp.cos(theta - mus), b=weights, axis=-1)

    rng = np.random.default_rng(1)
    which = rng.random(N) < weights[0]
    mixture = np.where(which, rng.vonmises(mus[0], kappa, N),
                       rng.vonmises(mus[1], kappa, N))
    one_bump = rng.vonmises(mus[1], kappa, N)

    @jax.jit
    def diagnose(samples):
        result = dd.boltzmann_direction_density(critic, jnp.zeros((1, 2)),
                                                ALPHA, G)
        tv = jax.vmap(dd.total_variation, in_axes=(None, 0))(
            result.density, samples)
        return result, dd.count_modes(result.density), tv[:, 0]

    result, modes, (tv_mixture, tv_one_bump) = diagnose(
        jnp.asarray([mixture[None], one_bump[None]], jnp.float32))
    theta = np.asarray(result.angles, np.float64)
    expected = sum(w * stats.vonmises.pdf(theta, kappa, loc=m)
                   for w, m in zip(weights, mus))
    np.testing.assert_allclose(result.density[0], expected, rtol=2e-4,
                               atol=1e-7)
    assert int(modes[0]) == 2
    assert float(tv_mixture) < 0.15
    assert float(tv_one_bump) > 0.25  # The missing bump's mass, 0.3.


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_angles"):
        dd.angle_grid(1)
    with pytest.raises(ValueError, match="min_fraction"):
        dd.count_modes(jnp.ones((1, 4)), 0.0)
    with pytest.raises(AssertionError):
        dd.total_variation(jnp.ones((2, 4)), jnp.zeros((3, 5)))


def test_sample_directions_draws_the_von_mises_density():
    """Exact draws of the binned density: unit vectors whose angles pass a
    Kolmogorov-Smirnov test against the von Mises closed form (the in-bin
    jitter makes them continuous); greedy is the mode, up to half a bin."""
    n = 4000

    @jax.jit
    def draw(key):
        states = jnp.repeat(STATES, n, axis=0)
        return (dd.sample_directions(von_mises_critic, states, ALPHA, key,
                                     G),
                dd.sample_directions(von_mises_critic, STATES, ALPHA, key, G,
                                     greedy=True))

    actions, greedy = draw(jax.random.PRNGKey(3))
    np.testing.assert_allclose(np.linalg.norm(actions, axis=-1), 1.0,
                               atol=1e-6)
    angles = np.asarray(dd.direction_angles(actions)).reshape(3, n)
    for theta, mu, kappa in zip(angles, MUS, KAPPAS):
        cdf = lambda x, m=mu, k=kappa: stats.vonmises.cdf(x, k, loc=m)
        # Compare on the circle cut opposite the mode (no wrap-around).
        cut = np.mod(theta - mu + np.pi, 2 * np.pi) - np.pi + mu
        p = stats.kstest(cut, lambda x: cdf(x) - cdf(mu - np.pi)).pvalue
        assert p > 1e-3, (mu, kappa, p)
    wrapped = np.mod(np.asarray(dd.direction_angles(greedy)) - MUS + np.pi,
                     2 * np.pi) - np.pi
    assert np.all(np.abs(wrapped) <= np.pi / G + 1e-5), wrapped
