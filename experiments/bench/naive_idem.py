"""The iDEM estimate written as the paper states it, for benchmarks.

`S(x_t) = grad_x log sum_i exp(min_j Q_j(s, x + sqrt(h) eps_i) / alpha)`,
per example (`jax.vmap` over the batch), through the critic ensemble's own
Flax `apply` on the concatenated `[s, a]` input: the straightforward
implementation the batched estimator (`dqs_jax.batched_estimator`) is
measured against. Same draws as `losses.idem_targets`, so the two agree to
float tolerance.
"""

import jax
import jax.numpy as jnp

from dqs_jax import agent as dqs_agent
from dqs_jax import losses
from dqs_jax.types import Params


def naive_target_fn(config: dqs_agent.DQSConfig,
                    critic_params: Params) -> losses.TargetFn:
    """A `losses.TargetFn` (`[B, o], [B, d], [B], [B], key -> [B, d]`)."""
    net = dqs_agent.critic_network(config)
    k = config.num_mc_samples

    def one(obs, x_t, h, temperature, key):
        eps = jax.random.normal(key, (k,) + x_t.shape, x_t.dtype)

        def log_sum_exp(x):
            q = jax.vmap(lambda e: jnp.min(net.apply(
                critic_params, obs, x + jnp.sqrt(h) * e)))(eps)
            return jax.scipy.special.logsumexp(q / temperature)

        return jax.grad(log_sum_exp)(x_t)

    def target_fn(observations, x_t, h, temperature, key):
        keys = jax.random.split(key, x_t.shape[0])
        return jax.vmap(one)(observations, x_t, h, temperature, keys)

    return target_fn


def naive_update(state: dqs_agent.TrainState, batch):
    """`agent.update` with `naive_target_fn`'s targets."""
    return dqs_agent.update_with_target_fn(state, batch, naive_target_fn)
