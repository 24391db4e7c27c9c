"""Fit a diffusion sampler to a fixed, state-free energy with `idem_loss`.

The state-free special case of DQS (iDEM on a known log-density): used by
the demo and the tests, and handy for checking an energy before using it
as a critic.
"""

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import optax

from dqs_jax.losses import idem_loss
from dqs_jax.networks import ScoreNetwork
from dqs_jax.optim import apply_gradients
from dqs_jax.sampler import sample_reverse_sde
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.types import LogDensityFn, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class EnergySamplerConfig:
    """Settings of `fit_energy_sampler`.

    Training points `x_0` are uniform in `[-box, box]^d`: the iDEM target is a
    function of `(x_t, t)` only, so any `x_0` covering the support will do.
    """

    hidden_dims: Tuple[int, ...] = (128, 128)
    embed_dim: int = 64
    learning_rate: float = 1e-3
    batch_size: int = 256
    num_mc_samples: int = 256
    num_updates: int = 3000
    num_sampling_steps: int = 100
    box: float = 2.0
    sigma_min: float = 1e-5
    sigma_max: float = 1.0

    @property
    def schedule(self) -> GeometricSchedule:
        return GeometricSchedule(self.sigma_min, self.sigma_max)

    @property
    def network(self) -> ScoreNetwork:
        return ScoreNetwork(self.hidden_dims, self.embed_dim)


_NO_OBS = jnp.zeros((1,), jnp.float32)
_UNIT_TEMPERATURE = jnp.ones((), jnp.float32)


def fit_energy_sampler(log_density: LogDensityFn, dim: int, key: PRNGKey,
                       config: EnergySamplerConfig = EnergySamplerConfig()
                       ) -> Tuple[Params, jax.Array]:
    """Trains a score network towards `p ∝ exp(log_density)` on `R^dim`.

    Args:
      log_density: `[dim] -> scalar` unnormalised log-density.
      dim: dimension `d`.
      key: PRNG key.
      config: training settings.

    Returns:
      `(params, losses)`: score network parameters and `[num_updates]` losses.
    """
    net = config.network
    init_key, train_key = jax.random.split(key)
    params = net.init(init_key, jnp.zeros((1, dim)), jnp.zeros((1,)),
                      jnp.zeros((1, 1)), jnp.ones((1,)))
    optimiser = optax.adam(config.learning_rate)

    def loss_fn(p, k):
        x_key, loss_key = jax.random.split(k)
        x_0 = jax.random.uniform(x_key, (config.batch_size, dim),
                                 minval=-config.box, maxval=config.box)
        obs = jnp.zeros((config.batch_size, 1))
        return idem_loss(
            lambda x, t, o, temp: net.apply(p, x, t, o, temp),
            lambda o, a: log_density(a), obs, x_0, 1.0, loss_key,
            schedule=config.schedule, num_samples=config.num_mc_samples)

    def step(carry, k):
        p, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, k)
        return apply_gradients(optimiser, grads, opt_state, p), loss

    keys = jax.random.split(train_key, config.num_updates)
    (params, _), losses = jax.lax.scan(
        step, (params, optimiser.init(params)), keys)
    return params, losses


def sample_energy_sampler(params: Params, num: int, dim: int, key: PRNGKey,
                          config: EnergySamplerConfig = EnergySamplerConfig()
                          ) -> jax.Array:
    """`[num, dim]` samples of the fitted sampler by the reverse SDE."""
    init_key, sde_key = jax.random.split(key)
    x_init = (jnp.sqrt(config.schedule.h(1.0))
              * jax.random.normal(init_key, (num, dim)))

    def score_fn(x, t):
        return config.network.apply(params, x, t, _NO_OBS, _UNIT_TEMPERATURE)

    return sample_reverse_sde(score_fn, x_init, config.schedule,
                              config.num_sampling_steps, sde_key)
