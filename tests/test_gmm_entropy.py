"""The GMM entropy estimator of DACER (dqs_jax.gmm_entropy)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from dqs_jax import gmm_entropy as ge

HALF_LOG_2PIE = 0.5 * (1.0 + math.log(2.0 * math.pi))


def gaussian_entropy(cov):
    d = cov.shape[0]
    return d * HALF_LOG_2PIE + 0.5 * np.linalg.slogdet(cov)[1]


def random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


def f32(x):
    return jnp.asarray(x, jnp.float32)


_entropy = jax.jit(ge.gmm_entropy, static_argnums=(2, 3))


def entropy(x, seed, num_components=3, num_iters=30):
    """Jitted `gmm_entropy` (eager calls dispatch op by op: slow)."""
    return float(_entropy(f32(x), jax.random.PRNGKey(seed), num_components,
                          num_iters))


def test_single_gaussian_is_fitted_exactly_with_one_component():
    d = 3
    rng = np.random.default_rng(d)
    cov, mu = random_cov(rng, d), rng.normal(size=d)
    x = rng.multivariate_normal(mu, cov, size=1000)
    gmm = jax.jit(ge.fit_gmm, static_argnums=(2, 3))(
        f32(x), jax.random.PRNGKey(0), 1, 3)
    # One component: the ML fit is the sample mean and (biased) covariance.
    np.testing.assert_allclose(gmm.weights, [1.0], rtol=1e-6)
    np.testing.assert_allclose(gmm.means[0], x.mean(0), atol=1e-4)
    np.testing.assert_allclose(gmm.covariances[0],
                               np.cov(x.T, bias=True) + 1e-6 * np.eye(d),
                               rtol=1e-3, atol=1e-4)
    h = float(ge.mixture_entropy_bound(gmm))
    truth = gaussian_entropy(cov)
    assert abs(h - truth) < 0.05 * abs(truth), (h, truth)


def test_three_components_over_one_gaussian_overestimate_by_at_most_ln3():
    """With K = 3 on a single Gaussian the estimate is H(X) + E H(Z|X):
    above the truth, by less than ln 3 (the official estimator's bias)."""
    rng = np.random.default_rng(1)
    cov = random_cov(rng, 3)
    x = rng.multivariate_normal(np.zeros(3), cov, size=1000)
    truth = gaussian_entropy(cov)
    for seed in range(3):
        h = entropy(x, seed)
        assert truth - 0.05 < h < truth + math.log(3.0), (h, truth)


# Well separated components in d = 3 (centres 8 to 10 apart, stds <= 0.7).
SEPARATED = (
    (np.array([-4.0, 0.0, 0.0]), np.diag([0.3, 0.2, 0.5])),
    (np.array([4.0, 0.0, 1.0]),
     np.array([[0.4, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.3]])),
    (np.array([0.0, 5.0, -1.0]), 0.25 * np.eye(3)),
)


def mixture_samples(rng, weights, n):
    labels = rng.choice(len(weights), size=n, p=weights)
    return np.stack([rng.multivariate_normal(*SEPARATED[k]) for k in labels])


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.7, 0.3),
                                     (0.3, 0.3, 0.4)])
def test_separated_mixture_entropy(weights):
    """Separated components: H = sum_k w_k H_k - sum_k w_k ln w_k exactly
    (up to exp(-distance^2) overlaps); fit with K = number of components."""
    rng = np.random.default_rng(len(weights))
    x = mixture_samples(rng, weights, 1000)
    truth = sum(w * gaussian_entropy(c) for w, (_, c) in
                zip(weights, SEPARATED)) - sum(w * math.log(w)
                                               for w in weights)
    for seed in range(3):
        h = entropy(x, seed, len(weights))
        assert abs(h - truth) < 0.10 * abs(truth), (h, truth)
        assert abs(h - truth) < 0.05  # In fact far tighter.


def test_entropy_bound_is_mixture_entropy_plus_label_entropy():
    """`mixture_entropy_bound = H(X) + E_X H(Z|X)` for overlapping
    components, both terms by Monte Carlo with scipy densities."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]])
    covs = np.stack([np.eye(2), np.array([[0.5, 0.2], [0.2, 0.4]]),
                     0.3 * np.eye(2)])
    rng = np.random.default_rng(3)
    n = 200_000
    labels = rng.choice(3, size=n, p=weights)
    x = means[labels] + np.einsum(
        "nij,nj->ni", np.linalg.cholesky(covs)[labels],
        rng.normal(size=(n, 2)))
    log_joint = np.stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(x)
                          for w, m, c in zip(weights, means, covs)], axis=-1)
    log_mix = special.logsumexp(log_joint, axis=-1)
    posterior = np.exp(log_joint - log_mix[:, None])
    h_mix = -np.mean(log_mix)
    h_label = -np.mean(np.sum(special.xlogy(posterior, posterior), axis=-1))
    got = float(ge.mixture_entropy_bound(ge.GaussianMixture(
        f32(weights), f32(means), f32(covs))))
    np.testing.assert_allclose(got, h_mix + h_label, atol=0.01)
    assert h_label > 0.2  # The components really overlap.


def test_component_log_densities_match_scipy():
    rng = np.random.default_rng(4)
    means = rng.normal(size=(3, 4))
    covs = np.stack([random_cov(rng, 4) for _ in range(3)])
    x = rng.normal(size=(10, 4))
    got = ge.component_log_densities(f32(x), f32(means),
                                     jnp.linalg.cholesky(f32(covs)))
    expected = np.stack([stats.multivariate_normal(m, c).logpdf(x)
                         for m, c in zip(means, covs)], axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_degenerate_and_clipped_samples_stay_finite():
    """Identical points (a collapsed policy) and points piled on the box
    faces (clipped actions) give finite, very low estimates."""
    same = np.full((1000, 3), 0.3)
    h = entropy(same, 0)
    # All mass in one regularised component: 3/2 (1 + ln 2pi) + 3/2 ln 1e-6.
    expected = 3 * HALF_LOG_2PIE + 1.5 * math.log(1e-6)
    np.testing.assert_allclose(h, expected, atol=0.05)
    rng = np.random.default_rng(6)
    clipped = np.clip(rng.normal(0.9, 0.3, size=(1000, 3)), -1, 1)
    assert np.isfinite(entropy(clipped, 1))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fit_gmm"):
        ge.fit_gmm(jnp.zeros((2, 2)), jax.random.PRNGKey(0), 3)
    with pytest.raises(ValueError, match="fit_gmm"):
        ge.fit_gmm(jnp.zeros((9, 2)), jax.random.PRNGKey(0), 3, -1)
