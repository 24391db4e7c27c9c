"""Learning test: iDEM on a fixed 2-D four-mode mixture gets the proportions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dqs_jax import energy_sampler, mixtures


def test_mixture_log_density_matches_scipy():
    gmm = mixtures.four_mode_gmm()
    points = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    expected = np.log(sum(
        w * stats.multivariate_normal(m, mixtures.FOUR_MODE_STD**2).pdf(points)
        for m, w in zip(mixtures.FOUR_MODE_MEANS, mixtures.FOUR_MODE_WEIGHTS)))
    np.testing.assert_allclose(jax.vmap(gmm.log_prob)(points), expected,
                               rtol=1e-5)


def test_mode_proportions_of_exact_samples():
    samples = mixtures.four_mode_gmm().sample(
        seed=jax.random.PRNGKey(0), sample_shape=20000)
    props = mixtures.mode_proportions(samples, mixtures.FOUR_MODE_MEANS)
    np.testing.assert_allclose(props, mixtures.FOUR_MODE_WEIGHTS, atol=0.015)


@pytest.mark.slow  # Trains a sampler: a learning test.
def test_idem_sampler_recovers_mode_proportions():
    config = energy_sampler.EnergySamplerConfig()
    target = mixtures.four_mode_gmm()
    params, losses = jax.jit(lambda k: energy_sampler.fit_energy_sampler(
        target.log_prob, 2, k, config))(jax.random.PRNGKey(0))
    losses = np.asarray(losses)
    assert np.all(np.isfinite(losses))
    assert losses[-200:].mean() < 0.5 * losses[:200].mean()
    samples = energy_sampler.sample_energy_sampler(
        params, 4000, 2, jax.random.PRNGKey(1), config)
    props = mixtures.mode_proportions(samples, mixtures.FOUR_MODE_MEANS)
    np.testing.assert_allclose(props, mixtures.FOUR_MODE_WEIGHTS, atol=0.1)
    # Samples sit in the modes, not between them.
    dist = jnp.min(jnp.linalg.norm(
        samples[:, None] - jnp.asarray(mixtures.FOUR_MODE_MEANS), axis=-1), 1)
    assert float(jnp.mean(dist < 3 * mixtures.FOUR_MODE_STD)) > 0.9
