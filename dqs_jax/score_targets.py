"""The batched score targets of the DQS update: the energy `min_j Q_j /
alpha` of the critic ensemble and the estimator `DQSConfig.estimator`
selects, as a `losses.TargetFn`.

Estimators (`estimator.SCORE_ESTIMATORS` per example; here batched by
`batched_estimator` in chunks of `chunk_size` draws):
- `"idem"`: the paper's estimate (i.i.d. draws, gradient form);
- `"antithetic"`, `"qmc"`: the same form on antithetic or randomised Sobol
  draws;
- `"control_variate"`: the Stein control-variate blend of the gradient and
  Tweedie forms (antithetic draws);
- `"adaptive"`: K by noise level. With stratified times, row `i` of the
  batch has `t` in `[i/B, (i+1)/B)`; rows whose stratum ends at or below
  `adaptive_low_time` use `adaptive_low_samples` antithetic draws, those
  below `adaptive_mid_time` `adaptive_mid_samples`, the rest
  `num_mc_samples` with the control variate. At small noise the K draws
  nearly coincide (`S = grad E(x_t) + O(h)`), so few suffice there.
"""

from typing import Any, List, Tuple

import jax
import jax.numpy as jnp

from dqs_jax import batched_estimator, losses
from dqs_jax.networks import get_activation
from dqs_jax.types import Params

PRECISIONS = {"float32": None, "bfloat16": jnp.bfloat16}
ESTIMATORS = ("idem", "antithetic", "qmc", "control_variate", "adaptive")
_NOISE = {"idem": "gaussian", "antithetic": "antithetic", "qmc": "qmc"}


def energy_q(config: Any, critic_params: Params):
    """`q(obs [B, o], points [B, M, d]) -> [B, M]`: the Q of the iDEM energy,
    min over the ensemble (`energy_action` and `estimator_precision`
    applied); `config` a `DQSConfig`."""
    activation = get_activation(config.critic_activation)
    dtype = PRECISIONS[config.estimator_precision]

    def q(observations, points):
        if config.energy_action == "clip":
            points = jnp.clip(points, -config.max_action, config.max_action)
        return batched_estimator.ensemble_min_q(
            critic_params, observations, points, activation, dtype)

    return q


def energy_value_and_grad(config: Any, critic_params: Params,
                          temperature: jax.Array
                          ) -> batched_estimator.BatchedValueAndGrad:
    """`(obs [B, o], points [B, M, d]) -> (q / alpha [B, M], its gradient
    [B, M, d])` for the energy of `energy_q` and `temperature [B]`, by
    `batched_estimator.ensemble_min_q_and_grad`."""
    activation = get_activation(config.critic_activation)
    dtype = PRECISIONS[config.estimator_precision]
    inv = 1.0 / temperature

    def value_and_grad(observations, points):
        clip_vjp = None
        if config.energy_action == "clip":
            points, clip_vjp = jax.vjp(lambda p: jnp.clip(
                p, -config.max_action, config.max_action), points)
        q, grads = batched_estimator.ensemble_min_q_and_grad(
            critic_params, observations, points, activation, dtype)
        if clip_vjp is not None:
            (grads,) = clip_vjp(grads)
        return q * inv[:, None], grads * inv[:, None, None]

    return value_and_grad


# Draws per chunk when `mc_chunk_size == 0`: about this many activations
# per hidden layer (B x chunk x H), 2 MB of float32, which measured fastest
# on CPU (larger chunks fall out of cache, smaller ones pay loop overhead).
AUTO_CHUNK_ACTIVATIONS = 2**19


def chunk_size(config: Any, batch_size: int) -> int:
    """Draws per chunk of the estimate for a batch of `batch_size`:
    `config.mc_chunk_size`, or if 0 the automatic size above."""
    if config.mc_chunk_size > 0:
        return config.mc_chunk_size
    width = max(config.critic_hidden_dims)
    return max(1, AUTO_CHUNK_ACTIVATIONS // (batch_size * width))


def row_groups(config: Any, batch_size: int) -> List[Tuple[int, str, int]]:
    """`[(rows, estimator, K), ...]`: consecutive row groups of a batch of
    `batch_size` and how each is estimated (module docstring; the optional
    small-noise speed mode uses K = 0, the gradient at `x_t`)."""
    groups = []
    n = config.num_small_noise(batch_size)
    if n:
        groups.append((n, "gradient", 0))
    if config.estimator != "adaptive":
        groups.append((batch_size - n, config.estimator,
                       config.num_mc_samples))
    else:
        ends = [(i + 1) / batch_size for i in range(batch_size)]
        low = sum(end <= config.adaptive_low_time for end in ends)
        mid = sum(end <= config.adaptive_mid_time for end in ends) - low
        groups += [(low, "antithetic", config.adaptive_low_samples),
                   (mid, "antithetic", config.adaptive_mid_samples),
                   (batch_size - low - mid, "control_variate",
                    config.num_mc_samples)]
    return [g for g in groups if g[0] > 0]


def estimate_targets(estimator: str, num_samples: int, chunk_size: int,
                     value_and_grad, observations, x_t, h, key):
    """`[B, d]` targets of one (non-adaptive) estimator for a batch:
    `estimator` in `ESTIMATORS[:4]` or `"gradient"` (K = 0, the gradient at
    `x_t`); `value_and_grad` a `batched_estimator.BatchedValueAndGrad`."""
    if estimator == "gradient":
        return value_and_grad(observations, x_t[:, None])[1][:, 0]
    if estimator == "control_variate":
        return batched_estimator.chunked_control_variate_targets(
            value_and_grad, observations, x_t, h, key, num_samples,
            chunk_size)
    return batched_estimator.chunked_idem_targets(
        value_and_grad, observations, x_t, h, key, num_samples, chunk_size,
        noise=_NOISE[estimator])


def idem_target_fn(config: Any, critic_params: Params) -> losses.TargetFn:
    """The batched score-target function `update` uses (a
    `losses.TargetFn`) for `config` (a `DQSConfig`) and the critic
    `critic_params`. With `estimator="idem"` it is the estimate of
    `losses.idem_targets` of the ensemble-min Q."""
    def target_fn(observations, x_t, h, temperature, key):
        groups = row_groups(config, x_t.shape[0])
        num_keyed = sum(g[1] != "gradient" for g in groups)
        keys = iter([key] if num_keyed == 1 else
                    list(jax.random.split(key, num_keyed)))
        targets, start = [], 0
        for rows, estimator, num_samples in groups:
            rows_ = slice(start, start + rows)
            start += rows
            group_key = None if estimator == "gradient" else next(keys)
            value_and_grad = energy_value_and_grad(
                config, critic_params, temperature[rows_])
            targets.append(estimate_targets(
                estimator, num_samples, chunk_size(config, rows),
                value_and_grad,
                observations[rows_], x_t[rows_], h[rows_], group_key))
        return jnp.concatenate(targets) if len(targets) > 1 else targets[0]

    return target_fn
