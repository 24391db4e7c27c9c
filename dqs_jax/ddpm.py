"""Discrete-time variance-preserving (DDPM) diffusion for action policies.

The pieces the diffusion-policy baselines share (QSM, DACER, DIPO): beta
schedules, the forward noising `q(a_t | a_0)`, and the two reverse chains of
their official code, each one `jax.lax.scan` over `t = T-1, ..., 0`.

Conventions (Ho et al., 2020): `t = 0..T-1`, `alpha_t = 1 - beta_t`,
`abar_t = prod_{s<=t} alpha_s`, `abar_{-1} = 1`, and
`a_t = sqrt(abar_t) a_0 + sqrt(1 - abar_t) eps`, `eps ~ N(0, I)`. A
noise-prediction network `eps_fn(x [N, d], t int32 scalar) -> [N, d]`
estimates `eps`; the score of the noised marginal is
`-eps / sqrt(1 - abar_t)`.
"""

import dataclasses
import math
from typing import Callable, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax.types import PRNGKey

# `eps_fn(x [N, d], t int32 scalar) -> [N, d]`, the predicted noise.
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]

BETA_SCHEDULES = ("vp", "cosine", "linear")
_LOG_VARIANCE_FLOOR = 1e-20


@dataclasses.dataclass(frozen=True)
class DDPMSchedule:
    """A `num_steps`-step beta schedule (hashable: a static argument).

    Kinds:
      "vp": the discretised VP SDE of QSM and DACER,
        `beta_i = 1 - exp(-b_min/T - (b_max - b_min)(2i - 1)/(2T^2))`,
        `i = 1..T` (Song et al. 2021; Psenka et al. 2023 official code).
      "cosine": `abar(u) = cos^2((u/T + s)/(1 + s) pi/2) / abar(0)`, `s =
        0.008`, `beta_t = min(1 - abar(t+1)/abar(t), 0.999)` (Nichol &
        Dhariwal 2021; DIPO).
      "linear": `beta` evenly spaced in `[beta_min, beta_max]` (DDPM's
        `1e-4 .. 0.02` for T = 1000; here `b_min/T .. b_max/T`).
    """

    num_steps: int = 20
    kind: str = "vp"
    beta_min: float = 0.1
    beta_max: float = 10.0

    def __post_init__(self):
        if int(self.num_steps) < 1:
            raise ValueError(f"DDPMSchedule.num_steps must be >= 1, got "
                             f"{self.num_steps}.")
        if self.kind not in BETA_SCHEDULES:
            raise ValueError(f"DDPMSchedule.kind must be one of "
                             f"{BETA_SCHEDULES}, got {self.kind!r}.")
        if not 0.0 < self.beta_min < self.beta_max:
            raise ValueError("DDPMSchedule needs 0 < beta_min < beta_max, got "
                             f"{self.beta_min}, {self.beta_max}.")

    def betas_numpy(self) -> np.ndarray:
        """`[T]` float64 betas."""
        n = int(self.num_steps)
        if self.kind == "vp":
            i = np.arange(1, n + 1, dtype=np.float64)
            return 1.0 - np.exp(-self.beta_min / n - (
                self.beta_max - self.beta_min) * (2 * i - 1) / (2 * n * n))
        if self.kind == "cosine":
            s = 0.008
            u = np.arange(n + 1, dtype=np.float64) / n
            abar = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
            return np.minimum(1.0 - abar[1:] / abar[:-1], 0.999)
        return np.linspace(self.beta_min / n, self.beta_max / n, n)

    @property
    def betas(self) -> jax.Array:
        """`[T]` float32."""
        return jnp.asarray(self.betas_numpy(), jnp.float32)

    @property
    def alphas(self) -> jax.Array:
        """`[T]` float32, `1 - beta_t`."""
        return jnp.asarray(1.0 - self.betas_numpy(), jnp.float32)

    @property
    def alpha_bars(self) -> jax.Array:
        """`[T]` float32, `abar_t = prod_{s<=t} alpha_s`."""
        return jnp.asarray(np.cumprod(1.0 - self.betas_numpy()), jnp.float32)

    def posterior_coefficients(self) -> Tuple[jax.Array, jax.Array,
                                              jax.Array]:
        """`(c1, c2, log_var)`, each `[T]` float32: the mean of
        `q(x_{t-1} | x_t, x_0)` is `c1_t x_0 + c2_t x_t` with
        `c1 = beta_t sqrt(abar_{t-1}) / (1 - abar_t)`,
        `c2 = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)`, and its
        variance `beta_t (1 - abar_{t-1}) / (1 - abar_t)` (log floored at
        1e-20)."""
        betas = self.betas_numpy()
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        c1 = betas * np.sqrt(abar_prev) / (1.0 - abar)
        c2 = (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)
        var = betas * (1.0 - abar_prev) / (1.0 - abar)
        log_var = np.log(np.maximum(var, _LOG_VARIANCE_FLOOR))
        return tuple(jnp.asarray(v, jnp.float32) for v in (c1, c2, log_var))


def q_sample(schedule: DDPMSchedule, x_0: jax.Array, t: jax.Array,
             noise: jax.Array) -> jax.Array:
    """`a_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise`.

    Args:
      schedule: the beta schedule.
      x_0: `[B, d]` clean actions.
      t: `[B]` int32 steps in `[0, T)`.
      noise: `[B, d]`.

    Returns:
      `[B, d]` noised actions.
    """
    chex.assert_rank([x_0, t, noise], [2, 1, 2])
    chex.assert_equal_shape([x_0, noise])
    abar = schedule.alpha_bars[t][:, None]
    return jnp.sqrt(abar) * x_0 + jnp.sqrt(1.0 - abar) * noise


def diffuse(schedule: DDPMSchedule, x_0: jax.Array, key: PRNGKey
            ) -> Tuple[jax.Array, jax.Array, jax.Array]:
    """Random training pairs: `t ~ U{0..T-1}`, `eps ~ N(0, I)`, `a_t`.

    Args:
      schedule: the beta schedule.
      x_0: `[B, d]` clean actions.
      key: PRNG key.

    Returns:
      `(t [B] int32, eps [B, d], a_t [B, d])`.
    """
    chex.assert_rank(x_0, 2)
    t_key, eps_key = jax.random.split(key)
    t = jax.random.randint(t_key, (x_0.shape[0],), 0, schedule.num_steps)
    eps = jax.random.normal(eps_key, x_0.shape, x_0.dtype)
    return t, eps, q_sample(schedule, x_0, t, eps)


def noise_prediction_loss(eps_fn: Callable[[jax.Array, jax.Array],
                                           jax.Array],
                          schedule: DDPMSchedule, x_0: jax.Array,
                          key: PRNGKey) -> jax.Array:
    """The DDPM denoising loss `mean ||eps - eps_fn(a_t, t)||^2 / d`.

    Args:
      eps_fn: `(a_t [B, d], t [B] int32) -> [B, d]`.
      schedule: the beta schedule.
      x_0: `[B, d]` target actions.
      key: PRNG key for `t` and `eps`.

    Returns:
      Scalar loss (mean over batch and action dimensions).
    """
    t, eps, x_t = diffuse(schedule, x_0, key)
    prediction = eps_fn(x_t, t)
    chex.assert_equal_shape([prediction, eps])
    return jnp.mean(jnp.square(prediction - eps))


def _reverse_steps(schedule: DDPMSchedule, key: PRNGKey):
    steps = jnp.arange(schedule.num_steps - 1, -1, -1, dtype=jnp.int32)
    return steps, jax.random.split(key, schedule.num_steps)


def sample_eps_chain(eps_fn: EpsFn, x_init: jax.Array,
                     schedule: DDPMSchedule, key: PRNGKey,
                     noise_scale: float = 1.0,
                     clip: float = 1.0) -> jax.Array:
    """QSM's reverse chain (official `ddpm_sampler`), one `lax.scan`.

    For `t = T-1, ..., 0`:
    `x <- (x - beta_t / sqrt(1 - abar_t) eps_fn(x, t)) / sqrt(alpha_t)
          + [t > 0] sqrt(beta_t) noise_scale z`, then `x <- clip(x, -clip,
    clip)`.

    Args:
      eps_fn: `(x [N, d], t int32 scalar) -> [N, d]`.
      x_init: `[N, d]`, typically `N(0, I)`.
      schedule: the beta schedule.
      key: PRNG key for the step noise.
      noise_scale: the sampler temperature `tau_s` (0: no step noise).
      clip: the action box half-width.

    Returns:
      `[N, d]` samples in `[-clip, clip]`.
    """
    chex.assert_rank(x_init, 2)
    betas, alphas, abar = schedule.betas, schedule.alphas, schedule.alpha_bars

    def step(x, inputs):
        t, step_key = inputs
        eps = eps_fn(x, t)
        x = (x - betas[t] / jnp.sqrt(1.0 - abar[t]) * eps) / jnp.sqrt(
            alphas[t])
        z = jax.random.normal(step_key, x.shape, x.dtype)
        x = x + jnp.where(t > 0, 1.0, 0.0) * jnp.sqrt(betas[t]) * (
            noise_scale * z)
        return jnp.clip(x, -clip, clip).astype(x_init.dtype), None

    x_0, _ = jax.lax.scan(step, x_init, _reverse_steps(schedule, key))
    return x_0


def sample_posterior_chain(eps_fn: EpsFn, x_init: jax.Array,
                           schedule: DDPMSchedule, key: PRNGKey,
                           noise_scale: float = 1.0,
                           clip: float = 1.0) -> jax.Array:
    """The DDPM posterior chain of DACER and DIPO, one `lax.scan`;
    differentiable in `eps_fn`'s parameters (DACER backpropagates through it).

    For `t = T-1, ..., 0`: `x0_hat = clip(sqrt(1/abar_t) x -
    sqrt(1/abar_t - 1) eps_fn(x, t), -clip, clip)`, then
    `x <- c1_t x0_hat + c2_t x + [t > 0] noise_scale exp(log_var_t / 2) z`
    (`DDPMSchedule.posterior_coefficients`).

    Args:
      eps_fn: `(x [N, d], t int32 scalar) -> [N, d]`.
      x_init: `[N, d]`, typically `N(0, I)`.
      schedule: the beta schedule.
      key: PRNG key for the step noise.
      noise_scale: multiplies the step noise (DIPO's `noise_ratio`; 0 gives a
        chain that depends on `key` only through `x_init`).
      clip: the action box half-width for `x0_hat`.

    Returns:
      `[N, d]` samples (inside `[-clip, clip]` up to the last step's
      noise-free combination, which stays in the box).
    """
    chex.assert_rank(x_init, 2)
    abar = schedule.alpha_bars
    c1, c2, log_var = schedule.posterior_coefficients()

    def step(x, inputs):
        t, step_key = inputs
        eps = eps_fn(x, t)
        x0_hat = jnp.clip(jnp.sqrt(1.0 / abar[t]) * x
                          - jnp.sqrt(1.0 / abar[t] - 1.0) * eps, -clip, clip)
        mean = c1[t] * x0_hat + c2[t] * x
        z = jax.random.normal(step_key, x.shape, x.dtype)
        x = mean + jnp.where(t > 0, 1.0, 0.0) * noise_scale * jnp.exp(
            0.5 * log_var[t]) * z
        return x.astype(x_init.dtype), None

    x_0, _ = jax.lax.scan(step, x_init, _reverse_steps(schedule, key))
    return x_0


# `eps_fn(x [N, d], t int32 scalar, obs [N, o]) -> [N, d]`: a
# state-conditional noise predictor.
ConditionalEpsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def sample_posterior_policy(eps_fn: ConditionalEpsFn, observations: jax.Array,
                            act_dim: int, schedule: DDPMSchedule,
                            key: PRNGKey, noise_scale: float = 1.0,
                            deterministic: bool = False,
                            clip: float = 1.0) -> jax.Array:
    """Actions of a DDPM policy for a batch of states: `x_T ~ N(0, I)`, the
    posterior chain (`sample_posterior_chain`), then a final clip to the box
    (DIPO's `Diffusion.sample`, DACER's sampler before its added noise).

    Args:
      eps_fn: `(x [N, d], t int32 scalar, obs [N, o]) -> [N, d]`.
      observations: `[N, o]`.
      act_dim: `d`.
      schedule: the beta schedule.
      key: PRNG key for `x_T` and the step noise (unused when
        `deterministic`).
      noise_scale: multiplies the step noise (DIPO's `noise_ratio`).
      deterministic: a Python bool: start from `x_T = 0` with no step noise,
        so that the result does not depend on `key`.
      clip: the action box half-width.

    Returns:
      `[N, d]` actions in `[-clip, clip]`.
    """
    chex.assert_rank(observations, 2)
    shape = (observations.shape[0], act_dim)
    if deterministic:
        x_init = jnp.zeros(shape, observations.dtype)
        key, noise_scale = jax.random.PRNGKey(0), 0.0
    else:
        init_key, key = jax.random.split(key)
        x_init = jax.random.normal(init_key, shape, observations.dtype)
    x_0 = sample_posterior_chain(lambda x, t: eps_fn(x, t, observations),
                                 x_init, schedule, key, noise_scale, clip)
    return jnp.clip(x_0, -clip, clip)
