"""GAE, PPO losses and Gaussian helpers against loops and hand values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dqs_jax import policy_gradient as pg


def gae_python(rewards, values, next_values, discounts, dones, gamma, lam):
    """GAE by a plain backward loop."""
    advantages, next_advantage = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        delta = (rewards[t] + gamma * discounts[t] * next_values[t]
                 - values[t])
        next_advantage = delta + gamma * lam * (1 - dones[t]) * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values


def test_gae_matches_a_python_loop_across_episode_ends():
    rng = np.random.default_rng(0)
    length = 12
    values = rng.normal(size=length + 1)
    rewards = rng.normal(size=length)
    # Episode ends: step 3 terminates (discount 0), step 7 is truncated by a
    # time limit (discount 1, done), the segment ends mid-episode at 11.
    discounts = np.ones(length)
    discounts[3] = 0.0
    dones = np.zeros(length)
    dones[[3, 7]] = 1.0
    next_values = values[1:].copy()
    next_values[3] = 123.0  # Terminal: must not matter (discount 0).
    next_values[7] = -1.5  # V(final obs) of the truncated episode.
    gamma, lam = 0.9, 0.8
    got_adv, got_ret = jax.jit(pg.gae_advantages, static_argnums=(5, 6))(
        *(jnp.asarray(v, jnp.float32) for v in (
            rewards, values[:-1], next_values, discounts, dones)), gamma, lam)
    adv, ret = gae_python(rewards, values[:-1], next_values, discounts,
                          dones, gamma, lam)
    np.testing.assert_allclose(got_adv, adv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_ret, ret, rtol=1e-5, atol=1e-6)
    # Hand checks at the boundaries.
    np.testing.assert_allclose(got_adv[3], rewards[3] - values[3], rtol=1e-5)
    np.testing.assert_allclose(
        got_adv[7], rewards[7] + gamma * -1.5 - values[7], rtol=1e-5)
    np.testing.assert_allclose(
        got_adv[11], rewards[11] + gamma * values[12] - values[11],
        rtol=1e-5)
    # lambda = 1 and no ends: the discounted return minus V.
    r = jnp.ones(4)
    adv1, ret1 = pg.gae_advantages(r, jnp.zeros(4), jnp.zeros(4), r,
                                   jnp.zeros(4), 0.5, 1.0)
    np.testing.assert_allclose(ret1, [1.875, 1.75, 1.5, 1.0])
    np.testing.assert_allclose(adv1, ret1)


def test_ppo_clip_loss_hand_values():
    eps = 0.2
    ratios = np.array([1.1, 1.5, 1.5, 0.5, 0.5, 0.9])
    advantages = np.array([2.0, 2.0, -2.0, 2.0, -2.0, -1.0])
    # min(rA, clip(r)A): inside -> rA; r > 1+eps: A > 0 capped at 1.2 A,
    # A < 0 keeps rA; r < 1-eps: A > 0 keeps rA, A < 0 capped at 0.8 A.
    objective = np.array([2.2, 2.4, -3.0, 1.0, -1.6, -0.9])
    got = pg.ppo_clip_loss(jnp.log(jnp.asarray(ratios)), jnp.zeros(6),
                           jnp.asarray(advantages), eps)
    np.testing.assert_allclose(got, -objective.mean(), atol=1e-6)
    # Gradient: only unclipped terms (or clipped ones on the pessimistic
    # side) pass gradient: d/dlogp of -rA/n where not capped, else 0.
    grad = jax.grad(lambda lp: pg.ppo_clip_loss(
        lp, jnp.zeros(6), jnp.asarray(advantages), eps))(
            jnp.log(jnp.asarray(ratios)))
    passes = np.array([1, 0, 1, 1, 0, 1])
    np.testing.assert_allclose(grad, -passes * ratios * advantages / 6,
                               rtol=1e-5)


def test_clipped_value_loss_hand_values():
    old = jnp.array([0.0, 0.0, 1.0])
    returns = jnp.array([1.0, -1.0, 1.0])
    values = jnp.array([0.5, 0.1, 3.0])
    # Clipped values (eps 0.2): 0.2, 0.1, 1.2.
    # max((v-R)^2, (vc-R)^2): max(.25, .64), max(1.21, 1.21), max(4, .04).
    expected = 0.5 * np.mean([0.64, 1.21, 4.0])
    np.testing.assert_allclose(
        pg.clipped_value_loss(values, old, returns, 0.2), expected,
        rtol=1e-6)


def test_gaussian_log_prob_and_entropy_match_scipy():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(5, 3))
    log_std = rng.normal(size=3) * 0.5
    x = mean + np.exp(log_std) * rng.normal(size=(5, 3))
    got = pg.gaussian_log_prob(jnp.asarray(x), jnp.asarray(mean),
                               jnp.asarray(log_std))
    expected = stats.norm.logpdf(x, mean, np.exp(log_std)).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(
        pg.gaussian_entropy(jnp.asarray(log_std)),
        stats.norm.entropy(0, np.exp(log_std)).sum(), rtol=1e-5)


def test_normalize_advantages_approx_kl_explained_variance():
    adv = jnp.array([1.0, 2.0, 3.0, 6.0])
    a = np.asarray(adv)
    np.testing.assert_allclose(pg.normalize_advantages(adv),
                               (a - a.mean()) / (a.std(ddof=1) + 1e-8),
                               rtol=1e-6)
    log_ratio = jnp.array([0.0, 0.1, -0.2])
    lr = np.asarray(log_ratio, np.float64)
    np.testing.assert_allclose(pg.approx_kl(log_ratio),
                               np.mean(np.exp(lr) - 1 - lr), rtol=1e-5)
    assert float(pg.approx_kl(jnp.zeros(3))) == 0.0
    y = jnp.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(pg.explained_variance(y, y), 1.0)
    np.testing.assert_allclose(
        pg.explained_variance(jnp.zeros(3), y), 0.0, atol=1e-7)
    np.testing.assert_allclose(
        pg.explained_variance(y + 1.0, y), 1.0, rtol=1e-6)  # Offset-blind.
    assert float(pg.explained_variance(y, jnp.ones(3))) == 0.0  # Finite.


@pytest.mark.parametrize("bad", [(jnp.zeros(3), jnp.zeros(4)),
                                 (jnp.zeros((3, 1)), jnp.zeros((3, 1)))])
def test_shape_checks(bad):
    with pytest.raises(AssertionError):
        pg.ppo_clip_loss(bad[0], bad[1], bad[1], 0.2)
