"""The iDEM estimate for a whole batch, fast and in bounded memory.

Same maths as `jax.vmap(idem_score)` (docs/algorithm.md §3, the paper's
Eq. (4)-(5)) with the same noise, but the
K noisy copies are processed in chunks by a `lax.scan` with an online
(streaming) softmax, so no `[B, K, ...]` activation is ever materialised: the
working set of a chunk stays in cache and peak memory does not grow with K.
`ensemble_min_q` evaluates the critic ensemble with its first layer split
into a state part (computed once per example) and an action part;
`ensemble_min_q_and_grad` adds its gradient in the actions, by a
hand-written backward pass.
"""

from typing import Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from dqs_jax import mc_noise
from dqs_jax.estimator import control_variate_combination
from dqs_jax.networks import Critic, CriticEnsemble
from dqs_jax.types import Params, PRNGKey

# `value_and_grad(obs [B, o], points [B, M, d]) -> (values [B, M],
# grads [B, M, d])`: the log-density (e.g. Q / alpha) and its gradient in
# the points.
BatchedValueAndGrad = Callable[[jax.Array, jax.Array],
                               Tuple[jax.Array, jax.Array]]


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of `n` that is `<= limit` (at least 1)."""
    for k in range(min(n, max(limit, 1)), 0, -1):
        if n % k == 0:
            return k
    return 1


def _chunked_noise(key: PRNGKey, batch: int, num_samples: int, dim: int,
                   chunk: int, noise: str, dtype) -> jax.Array:
    """`[K / chunk, B, chunk, d]` draws, row `b` from the `b`-th split of
    `key` (as `losses.idem_targets` splits it)."""
    draw = mc_noise.get_noise(noise)
    keys = jax.random.split(key, batch)
    eps = jax.vmap(lambda k: draw(k, num_samples, dim, dtype))(keys)
    return eps.reshape(batch, num_samples // chunk, chunk,
                       dim).transpose(1, 0, 2, 3)


def chunked_idem_targets(value_and_grad: BatchedValueAndGrad,
                         observations: jax.Array, x_t: jax.Array,
                         h: jax.Array, key: PRNGKey, num_samples: int,
                         chunk_size: int = 32,
                         noise: str = "gaussian") -> jax.Array:
    """`[B, d]` iDEM score estimates, K samples streamed in chunks.

    Equals `vmap(idem_score)` over the batch when `key` is split into `B`
    per-example keys the same way (`dqs_jax.losses.idem_targets`); with
    `noise="antithetic"` or `"qmc"` (`mc_noise`), `vmap(antithetic_score)`
    or `vmap(qmc_score)`.

    Args:
      value_and_grad: batched log-density and gradient (see module doc).
      observations: `[B, o]`.
      x_t: `[B, d]` noisy points.
      h: `[B]` added variances.
      key: PRNG key, split into `B` per-example keys.
      num_samples: K.
      chunk_size: samples per chunk; the largest divisor of K not above it is
        used.
      noise: the draws, a name in `mc_noise.NOISES`.

    Returns:
      `[B, d]`, without gradient.
    """
    chex.assert_rank([observations, x_t, h], [2, 2, 1])
    batch, dim = x_t.shape
    chunk = largest_divisor_at_most(num_samples, chunk_size)
    eps = _chunked_noise(key, batch, num_samples, dim, chunk, noise,
                         x_t.dtype)
    scale = jnp.sqrt(h).astype(x_t.dtype)[:, None, None]

    def body(carry, eps_chunk):
        running_max, total, weighted = carry
        points = x_t[:, None, :] + scale * eps_chunk  # [B, C, d]
        values, grads = value_and_grad(observations, points)
        new_max = jnp.maximum(running_max, jnp.max(values, axis=1))
        rescale = jnp.exp(running_max - new_max)  # [B]
        w = jnp.exp(values - new_max[:, None])  # [B, C]
        total = total * rescale + jnp.sum(w, axis=1)
        weighted = (weighted * rescale[:, None]
                    + jnp.einsum("bc,bcd->bd", w, grads))
        return (new_max, total, weighted), None

    init = (jnp.full((batch,), -jnp.inf, x_t.dtype),
            jnp.zeros((batch,), x_t.dtype), jnp.zeros((batch, dim), x_t.dtype))
    (_, total, weighted), _ = jax.lax.scan(body, init, eps)
    return jax.lax.stop_gradient(weighted / total[:, None])


def chunked_control_variate_targets(value_and_grad: BatchedValueAndGrad,
                                    observations: jax.Array, x_t: jax.Array,
                                    h: jax.Array, key: PRNGKey,
                                    num_samples: int, chunk_size: int = 32
                                    ) -> jax.Array:
    """`[B, d]` control-variate score estimates: `vmap(control_variate_score)`
    for a batch (same key splitting as `chunked_idem_targets`).

    The critic runs on chunks of `chunk_size` draws, as in
    `chunked_idem_targets`; the `[B, K]` values and `[B, K, d]` gradients
    are kept (small next to a chunk's activations) so that the fitted
    coefficient uses centred two-pass sums. Arguments as
    `chunked_idem_targets`.
    """
    chex.assert_rank([observations, x_t, h], [2, 2, 1])
    batch, dim = x_t.shape
    chunk = largest_divisor_at_most(num_samples, chunk_size)
    eps = _chunked_noise(key, batch, num_samples, dim, chunk, "antithetic",
                         x_t.dtype)
    scale = jnp.sqrt(h).astype(x_t.dtype)[:, None, None]

    def body(_, eps_chunk):
        return None, value_and_grad(observations,
                                    x_t[:, None, :] + scale * eps_chunk)

    _, (values, grads) = jax.lax.scan(body, None, eps)  # [N, B, C(, d)]
    values = values.transpose(1, 0, 2).reshape(batch, num_samples)
    grads = grads.transpose(1, 0, 2, 3).reshape(batch, num_samples, dim)
    eps = eps.transpose(1, 0, 2, 3).reshape(batch, num_samples, dim)
    targets = jax.vmap(control_variate_combination)(values, grads, eps, h)
    return jax.lax.stop_gradient(targets)


def ensemble_min_q(params: Params, observations: jax.Array, points: jax.Array,
                   activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                   dtype: Optional[jnp.dtype] = None) -> jax.Array:
    """`min_E Q_e(s_b, a_bm)` of a `networks.CriticEnsemble` for M actions per
    state: `observations [B, o]`, `points [B, M, d]` -> `[B, M]` float32.

    The first layer `W [o + d, H]` is split as `s W_s + a W_a`; `s W_s + b` is
    computed once per state, not once per action. `dtype=jnp.bfloat16` runs
    the matmuls in bfloat16 with float32 accumulation.
    """
    chex.assert_rank([observations, points], [2, 3])
    layers = CriticEnsemble.layer_params(params)
    obs_dim = observations.shape[-1]
    cast = (lambda x: x) if dtype is None else (lambda x: x.astype(dtype))
    f32 = jnp.float32

    # Ensemble axis first: XLA runs `[E, N, H] x [E, H, G]` as fast batched
    # GEMMs, while an ensemble axis in the middle costs transposes.
    first = layers[0]
    w_s, w_a = Critic.split_input_kernel(first["kernel"], obs_dim)
    state_part = jnp.einsum("bo,eoh->ebh", cast(observations), cast(w_s),
                            preferred_element_type=f32)
    state_part = state_part + first["bias"][:, None, :]
    x = activation(state_part[:, :, None] + jnp.einsum(
        "bmd,edh->ebmh", cast(points), cast(w_a),
        preferred_element_type=f32))  # [E, B, M, H]
    for layer in layers[1:-1]:
        x = activation(jnp.einsum("ebmh,ehg->ebmg", cast(x),
                                  cast(layer["kernel"]),
                                  preferred_element_type=f32)
                       + layer["bias"][:, None, None, :])
    last = layers[-1]
    q = jnp.einsum("ebmh,eho->ebmo", cast(x), cast(last["kernel"]),
                   preferred_element_type=f32)[..., 0]
    q = q + last["bias"][:, None, None, 0]  # [E, B, M]
    return jnp.min(q, axis=0)


def _value_and_slope(activation, z):
    """`(activation(z), activation'(z))` elementwise."""
    return jax.jvp(activation, (z,), (jnp.ones_like(z),))


def ensemble_min_q_and_grad(
        params: Params, observations: jax.Array, points: jax.Array,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
        dtype: Optional[jnp.dtype] = None) -> Tuple[jax.Array, jax.Array]:
    """`min_E Q_e(s_b, a_bm)` and its gradient in `a_bm`: `observations
    [B, o]`, `points [B, M, d]` -> `([B, M], [B, M, d])`, float32.

    Equals `ensemble_min_q` and its `jax.vjp` (the gradient of the minimum
    is the minimising member's; the first wins ties), computed member by
    member as plain 2-D matmuls with the backward pass written out:
    `g_L = act'(z_L) w_out`, `g_l = (g_{l+1} W_{l+1}^T) act'(z_l)`,
    `grad = g_1 W_a^T`. That avoids the transposes and elementwise passes
    of the autodiff form (docs/performance.md).
    `dtype=jnp.bfloat16` runs the matmuls in bfloat16 with float32
    accumulation.
    """
    chex.assert_rank([observations, points], [2, 3])
    batch, num, dim = points.shape
    obs_dim = observations.shape[-1]
    layers = CriticEnsemble.layer_params(params)
    f32 = jnp.float32
    cast = (lambda x: x) if dtype is None else (lambda x: x.astype(dtype))

    def mm(x, w):
        return jnp.matmul(cast(x), cast(w), preferred_element_type=f32)

    best_q = best_g = None
    for e in range(layers[0]["kernel"].shape[0]):
        kernels = [layer["kernel"][e] for layer in layers]
        biases = [layer["bias"][e] for layer in layers]
        w_s, w_a = Critic.split_input_kernel(kernels[0], obs_dim)
        with jax.named_scope(f"critic{e}_forward"):
            state_part = mm(observations, w_s) + biases[0]  # [B, H]
            z = (state_part[:, None, :] + mm(points, w_a)).reshape(
                batch * num, -1)
            x, slope = _value_and_slope(activation, z)
            slopes = [slope]
            for kernel, bias in zip(kernels[1:-1], biases[1:-1]):
                x, slope = _value_and_slope(activation, mm(x, kernel) + bias)
                slopes.append(slope)
            q = mm(x, kernels[-1])[:, 0] + biases[-1][0]  # [N]
        with jax.named_scope(f"critic{e}_backward"):
            g = slopes[-1] * kernels[-1][:, 0]
            for kernel, slope in zip(reversed(kernels[1:-1]),
                                     reversed(slopes[:-1])):
                g = mm(g, kernel.T) * slope
            g = mm(g, w_a.T)  # [N, d]
        if best_q is None:
            best_q, best_g = q, g
        else:
            lower = q < best_q
            best_q = jnp.where(lower, q, best_q)
            best_g = jnp.where(lower[:, None], g, best_g)
    return best_q.reshape(batch, num), best_g.reshape(batch, num, dim)


def scaled_value_and_grad(q_fn: Callable[[jax.Array, jax.Array], jax.Array],
                          temperature: jax.Array) -> BatchedValueAndGrad:
    """`(obs, points) -> (q / temperature, d(q / temperature)/d points)` for a
    batched `q_fn(obs [B, o], points [B, M, d]) -> [B, M]`; `temperature
    [B]`."""
    def value_and_grad(obs, points):
        values, vjp = jax.vjp(lambda p: q_fn(obs, p), points)
        (grads,) = vjp(jnp.ones_like(values))
        inv = (1.0 / temperature).astype(values.dtype)
        return values * inv[:, None], grads * inv[:, None, None]

    return value_and_grad
