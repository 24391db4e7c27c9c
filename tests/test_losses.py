"""td_loss and idem_loss against hand computations and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax.losses import idem_loss, td_loss
from dqs_jax.schedule import GeometricSchedule

RNG = np.random.default_rng(0)
B, O, D, E = 4, 3, 2, 2
OBS = RNG.normal(size=(B, O)).astype(np.float32)
ACT = RNG.normal(size=(B, D)).astype(np.float32)
REW = RNG.normal(size=(B,)).astype(np.float32)
DISC = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
NEXT_OBS = RNG.normal(size=(B, O)).astype(np.float32)
NEXT_ACT = RNG.normal(size=(B, D)).astype(np.float32)
W = RNG.normal(size=(E, O + D)).astype(np.float32)
W_TARGET = RNG.normal(size=(E, O + D)).astype(np.float32)


def linear_ensemble(w):
    return lambda o, a: jnp.asarray(w) @ jnp.concatenate([o, a])


def test_td_loss_matches_hand_computation():
    gamma = 0.9
    loss = td_loss(linear_ensemble(W), linear_ensemble(W_TARGET), OBS, ACT,
                   REW, DISC, NEXT_OBS, NEXT_ACT, gamma)
    total = 0.0
    for b in range(B):
        sa = np.concatenate([OBS[b], ACT[b]])
        next_sa = np.concatenate([NEXT_OBS[b], NEXT_ACT[b]])
        y = REW[b] + gamma * DISC[b] * min(W_TARGET[e] @ next_sa
                                           for e in range(E))
        total += sum((W[e] @ sa - y)**2 for e in range(E))
    np.testing.assert_allclose(loss, total / (B * E), rtol=1e-5)


def test_td_loss_under_jit_and_no_gradient_through_target():
    def loss_fn(w, w_target):
        return td_loss(linear_ensemble(w), linear_ensemble(w_target), OBS,
                       ACT, REW, DISC, NEXT_OBS, NEXT_ACT, 0.99)

    g_online, g_target = jax.jit(jax.grad(loss_fn, argnums=(0, 1)))(
        W, W_TARGET)
    np.testing.assert_array_equal(g_target, np.zeros_like(W_TARGET))
    assert np.all(np.abs(g_online) > 0)
    # d loss / d w_e = 2/(B E) sum_b (q_e - y_b) [s_b, a_b].
    sa = np.concatenate([OBS, ACT], -1)
    next_sa = np.concatenate([NEXT_OBS, NEXT_ACT], -1)
    y = REW + 0.99 * DISC * np.min(next_sa @ W_TARGET.T, -1)
    manual = 2 / (B * E) * ((sa @ W.T - y[:, None]).T @ sa)
    np.testing.assert_allclose(g_online, manual, rtol=1e-4)


def test_td_loss_shape_errors():
    with pytest.raises(AssertionError):
        td_loss(linear_ensemble(W), linear_ensemble(W_TARGET), OBS, ACT,
                REW[:3], DISC, NEXT_OBS, NEXT_ACT, 0.99)
    with pytest.raises(AssertionError):
        td_loss(linear_ensemble(W), linear_ensemble(W_TARGET), OBS, ACT,
                REW, DISC, NEXT_OBS[:, :2], NEXT_ACT, 0.99)


SCHEDULE = GeometricSchedule(1e-5, 1.0)


def test_idem_loss_closed_form_for_linear_energy():
    # Linear Q(s, a) = w.a: the estimate is w / alpha exactly for every K and
    # t, so with a zero score network the loss is
    # E_t[h(t) + 1e-3] * mean(w^2) / alpha^2, where
    # E_t[h(t)] = sigma_min^2 (r^2 - 1) / (2 ln r) - sigma_min^2.
    w, alpha, n = jnp.array([1.0, -2.0, 0.5]), 0.5, 40000
    obs = jnp.zeros((n, 1))
    actions = jax.random.normal(jax.random.PRNGKey(0), (n, 3))
    loss = idem_loss(lambda x, t, o, a: jnp.zeros_like(x),
                     lambda o, a: w @ a, obs, actions, alpha,
                     jax.random.PRNGKey(1), schedule=SCHEDULE, num_samples=4)
    r = SCHEDULE.sigma_max / SCHEDULE.sigma_min
    mean_h = SCHEDULE.sigma_min**2 * ((r**2 - 1) / (2 * np.log(r)) - 1)
    expected = (mean_h + 1e-3) * float(jnp.mean(w**2)) / alpha**2
    np.testing.assert_allclose(loss, expected, rtol=0.03)


def gaussian_problem(n=512):
    # Q(s, a) = -||a - s||^2 / 2 at temperature alpha: p_t(.|s) is
    # N(s, (alpha + h(t)) I) and the true score is -(x - s) / (alpha + h(t)).
    alpha = 0.3
    obs = jax.random.normal(jax.random.PRNGKey(2), (n, 2))
    actions = obs + jnp.sqrt(alpha) * jax.random.normal(
        jax.random.PRNGKey(3), (n, 2))
    q_fn = lambda o, a: -0.5 * jnp.sum(jnp.square(a - o))  # noqa: E731

    def scaled_true_score(scale, shift=0.0):
        def score_fn(x, t, o, temp):
            return scale * -(x - o) / (temp + SCHEDULE.h(t)) + shift
        return score_fn

    return alpha, obs, actions, q_fn, scaled_true_score


def test_idem_loss_minimised_at_true_score():
    alpha, obs, actions, q_fn, score = gaussian_problem()
    key = jax.random.PRNGKey(4)

    def loss(scale, shift=0.0):
        return float(idem_loss(score(scale, shift), q_fn, obs, actions, alpha,
                               key, schedule=SCHEDULE, num_samples=512))

    best = loss(1.0)
    for scale in (0.9, 1.1):
        assert loss(scale) > best
    for shift in (-0.3, 0.3):
        assert loss(1.0, shift) > best
    # The loss is quadratic in the scale c; its minimiser is near c = 1.
    def loss_of_scale(c):
        return idem_loss(score(c), q_fn, obs, actions, alpha, key,
                         schedule=SCHEDULE, num_samples=512)

    slope = jax.grad(loss_of_scale)(1.0)
    curvature = jax.grad(jax.grad(loss_of_scale))(1.0)
    assert abs(float(slope / curvature)) < 0.02


def test_idem_loss_gradient_flows_only_into_the_score():
    alpha, obs, actions, _, _ = gaussian_problem(64)

    def loss(score_scale, q_scale):
        return idem_loss(
            lambda x, t, o, temp: score_scale * x,
            lambda o, a: -q_scale * jnp.sum(jnp.square(a - o)), obs, actions,
            alpha, jax.random.PRNGKey(5), schedule=SCHEDULE, num_samples=8)

    g_score, g_q = jax.jit(jax.grad(loss, argnums=(0, 1)))(1.0, 1.0)
    assert float(g_q) == 0.0
    assert float(g_score) != 0.0


def test_idem_loss_temperature_scalar_or_batch():
    alpha, obs, actions, q_fn, score = gaussian_problem(32)
    args = dict(schedule=SCHEDULE, num_samples=16)
    key = jax.random.PRNGKey(6)
    scalar = idem_loss(score(1.0), q_fn, obs, actions, alpha, key, **args)
    batch = idem_loss(score(1.0), q_fn, obs, actions, jnp.full(32, alpha),
                      key, **args)
    np.testing.assert_allclose(scalar, batch, rtol=1e-6)
    # Boltzmann invariance: (2 Q, 2 alpha) targets the same distribution.
    def fixed_score(x, t, o, temp):
        return -(x - o) / (alpha + SCHEDULE.h(t))

    single = idem_loss(fixed_score, q_fn, obs, actions, alpha, key, **args)
    doubled = idem_loss(fixed_score, lambda o, a: 2 * q_fn(o, a), obs,
                        actions, 2 * alpha, key, **args)
    np.testing.assert_allclose(single, doubled, rtol=1e-5)
    with pytest.raises(AssertionError):
        idem_loss(score(1.0), q_fn, obs, actions[:8], alpha, key, **args)
    with pytest.raises(AssertionError):
        idem_loss(score(1.0), q_fn, obs, actions, jnp.ones((32, 1)), key,
                  **args)


def test_td_loss_next_value_bonus():
    # A soft target: y = r + gamma d (min_E Qbar - alpha log pi).
    bonus = jnp.asarray(RNG.normal(size=(B,)), jnp.float32)
    gamma = 0.9
    loss = td_loss(linear_ensemble(W), linear_ensemble(W_TARGET), OBS, ACT,
                   REW, DISC, NEXT_OBS, NEXT_ACT, gamma,
                   next_value_bonus=bonus)
    sa = np.concatenate([OBS, ACT], -1)
    next_sa = np.concatenate([NEXT_OBS, NEXT_ACT], -1)
    y = REW + gamma * DISC * (np.min(next_sa @ W_TARGET.T, -1) + bonus)
    np.testing.assert_allclose(loss, np.mean((sa @ W.T - y[:, None])**2),
                               rtol=1e-5)
