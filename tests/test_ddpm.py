"""The DDPM schedules and reverse chains against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import ddpm
from dqs_jax.networks import NoisePredictionMLP


def test_vp_schedule_matches_the_formula():
    s = ddpm.DDPMSchedule(num_steps=5, kind="vp", beta_min=0.1, beta_max=10.0)
    i = np.arange(1, 6)
    expected = 1 - np.exp(-0.1 / 5 - 9.9 * (2 * i - 1) / 50)
    np.testing.assert_allclose(s.betas_numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(s.alpha_bars),
                               np.cumprod(1 - expected), rtol=1e-6)


def test_cosine_schedule_matches_the_formula():
    s = ddpm.DDPMSchedule(num_steps=100, kind="cosine")
    f = lambda u: math.cos((u / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa
    # abar_t = f(t + 1) / f(0) wherever beta was not clipped at 0.999.
    abar = np.asarray(s.alpha_bars, np.float64)
    for t in (0, 10, 50, 90):
        np.testing.assert_allclose(abar[t], f(t + 1) / f(0), rtol=1e-5)
    assert s.betas_numpy().max() <= 0.999


def test_posterior_coefficients_at_the_last_step():
    c1, c2, _ = ddpm.DDPMSchedule(num_steps=7).posterior_coefficients()
    # q(x_{-1} | x_0, x_0) is the point x_0: c1 = 1, c2 = 0 at t = 0.
    np.testing.assert_allclose(float(c1[0]), 1.0, rtol=1e-6)
    assert abs(float(c2[0])) < 1e-7


def test_bad_schedule_is_refused():
    with pytest.raises(ValueError, match="kind"):
        ddpm.DDPMSchedule(kind="sigmoid")
    with pytest.raises(ValueError, match="num_steps"):
        ddpm.DDPMSchedule(num_steps=0)


def exact_point_mass_eps(schedule, mu):
    abar = schedule.alpha_bars

    def eps_fn(x, t):
        return (x - jnp.sqrt(abar[t]) * mu) / jnp.sqrt(1 - abar[t])
    return eps_fn


@pytest.mark.parametrize("sampler", [ddpm.sample_eps_chain,
                                     ddpm.sample_posterior_chain])
@pytest.mark.parametrize("num_steps", [1, 5, 20])
def test_exact_noise_of_a_point_mass_gives_the_point(sampler, num_steps):
    schedule = ddpm.DDPMSchedule(num_steps=num_steps)
    mu = jnp.array([0.3, -0.6])
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    out = sampler(exact_point_mass_eps(schedule, mu), x, schedule,
                  jax.random.PRNGKey(1))
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to(mu, (64, 2)),
                               atol=2e-5)


# The eps chain's step variance beta_t is exact for N(0, I) data and gives the
# right spread at T = 20; the posterior chain's beta-tilde_t is the lower
# bound (Ho et al. 2020, Sec. 3.2): too narrow for few steps, exact as T grows.
@pytest.mark.parametrize("sampler,num_steps,std_tol", [
    (ddpm.sample_eps_chain, 20, 0.01),
    (ddpm.sample_posterior_chain, 500, 0.01)])
def test_exact_noise_of_a_gaussian_gives_its_moments(sampler, num_steps,
                                                     std_tol):
    schedule = ddpm.DDPMSchedule(num_steps=num_steps)
    mu, s = 0.1, 0.2  # Narrow enough that the clipping at +-1 is negligible.
    abar = schedule.alpha_bars

    def eps_fn(x, t):
        a = abar[t]
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s**2 + 1 - a)

    x = jax.random.normal(jax.random.PRNGKey(0), (8000, 1))
    out = np.asarray(sampler(eps_fn, x, schedule, jax.random.PRNGKey(1)))
    assert abs(out.mean() - mu) < 0.01
    assert abs(out.std() - s) < std_tol


def test_posterior_chain_is_narrow_with_few_steps():
    schedule = ddpm.DDPMSchedule(num_steps=20)
    abar = schedule.alpha_bars
    eps_fn = lambda x, t: jnp.sqrt(1 - abar[t]) * (  # noqa: E731
        x - jnp.sqrt(abar[t]) * 0.1) / (abar[t] * 0.04 + 1 - abar[t])
    x = jax.random.normal(jax.random.PRNGKey(0), (8000, 1))
    out = np.asarray(ddpm.sample_posterior_chain(eps_fn, x, schedule,
                                                 jax.random.PRNGKey(1)))
    assert 0.1 < out.std() < 0.18


def test_chains_equal_python_loops():
    schedule = ddpm.DDPMSchedule(num_steps=4, kind="cosine")
    w = jnp.array([[0.5, -0.2], [0.1, 0.3]])
    eps_fn = lambda x, t: jnp.tanh(x @ w) * (1.0 + 0.1 * t)  # noqa: E731
    x0 = jax.random.normal(jax.random.PRNGKey(0), (3, 2))
    key = jax.random.PRNGKey(2)
    betas, alphas = np.asarray(schedule.betas), np.asarray(schedule.alphas)
    abar = np.asarray(schedule.alpha_bars)
    c1, c2, log_var = (np.asarray(v) for v in
                       schedule.posterior_coefficients())
    keys = jax.random.split(key, 4)
    x_eps, x_post = np.asarray(x0), np.asarray(x0)
    for i, t in enumerate(range(3, -1, -1)):
        z = np.asarray(jax.random.normal(keys[i], x0.shape))
        e = np.asarray(eps_fn(jnp.asarray(x_eps), t))
        x_eps = (x_eps - betas[t] / np.sqrt(1 - abar[t]) * e) / np.sqrt(
            alphas[t]) + (t > 0) * np.sqrt(betas[t]) * z
        x_eps = np.clip(x_eps, -1, 1)
        e = np.asarray(eps_fn(jnp.asarray(x_post), t))
        x0_hat = np.clip(np.sqrt(1 / abar[t]) * x_post
                         - np.sqrt(1 / abar[t] - 1) * e, -1, 1)
        x_post = c1[t] * x0_hat + c2[t] * x_post + (t > 0) * np.exp(
            0.5 * log_var[t]) * z
    np.testing.assert_allclose(
        np.asarray(ddpm.sample_eps_chain(eps_fn, x0, schedule, key)), x_eps,
        atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ddpm.sample_posterior_chain(eps_fn, x0, schedule, key)),
        x_post, atol=1e-5)


def test_noise_prediction_loss_is_zero_for_the_exact_noise():
    schedule = ddpm.DDPMSchedule(num_steps=10)
    mu = jnp.array([[0.2, -0.4]])
    x_0 = jnp.broadcast_to(mu, (32, 2))
    abar = schedule.alpha_bars
    eps_fn = lambda x, t: (x - jnp.sqrt(abar[t])[:, None] * mu) / jnp.sqrt(
        1 - abar[t])[:, None]  # noqa: E731
    loss = ddpm.noise_prediction_loss(eps_fn, schedule, x_0,
                                      jax.random.PRNGKey(0))
    assert float(loss) < 1e-9
    wrong = ddpm.noise_prediction_loss(lambda x, t: jnp.zeros_like(x),
                                       schedule, x_0, jax.random.PRNGKey(0))
    assert 0.5 < float(wrong) < 1.5  # E||eps||^2 / d = 1.


def test_noise_prediction_network_shapes_and_time_dependence():
    net = NoisePredictionMLP(hidden_dims=(8, 8), time_embed_dim=8,
                             time_mlp_dims=(8, 4))
    x, obs = jnp.ones((5, 3)), jnp.ones((5, 4))
    params = net.init(jax.random.PRNGKey(0), x, jnp.zeros((5,), jnp.int32),
                      obs)
    out0 = net.apply(params, x, 0, obs)
    out3 = net.apply(params, x, jnp.full((5,), 3), obs)
    assert out0.shape == (5, 3)
    assert not np.allclose(np.asarray(out0), np.asarray(out3))
