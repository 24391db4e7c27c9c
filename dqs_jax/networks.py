"""The score network (SPEC §8), the critic ensemble (SPEC §6), the
noise-prediction network of the DDPM baselines and PPO's Gaussian policy and
value networks."""

import math
from typing import Callable, Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from dqs_jax.initializers import KERNEL_INITS, get_kernel_init  # noqa: F401

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu,
               "tanh": jnp.tanh, "mish": jax.nn.mish}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called `name` (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of "
                         f"{sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def sinusoidal_embedding(x: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal features of a scalar: `[...] -> [..., dim]`.

    Half the features are `sin(x f_k)`, half `cos(x f_k)`, with frequencies
    `f_k = exp(-ln(1000) k / (half - 1))`, `k = 0 .. half - 1`.
    """
    if dim < 4 or dim % 2:
        raise ValueError(f"embedding dim must be even and >= 4, got {dim}.")
    half = dim // 2
    freqs = jnp.exp(-math.log(1000.0) * jnp.arange(half) / (half - 1))
    args = jnp.asarray(x, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class ScoreNetwork(nn.Module):
    """`s_theta(x, t, obs, temperature)`: the policy's conditional score.

    Inputs are concatenated (state, noisy action, sinusoidal embeddings of `t`
    and of the temperature), projected to `hidden_dims[0]` (followed by
    `input_activation` unless None), then passed through residual blocks
    `h + act(Dense(h))` (one per entry of `hidden_dims`, all of the same
    width), then a linear output of size `d`. Every kernel starts from
    `kernel_init` (a name in `KERNEL_INITS`).

    Call shapes: `x [..., d]`, `t [...]` or scalar, `obs [..., o]`,
    `temperature [...]` or scalar; returns `[..., d]`.
    """

    hidden_dims: Sequence[int] = (256, 256)
    embed_dim: int = 128
    activation: str = "gelu"
    input_activation: Optional[str] = None
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x, t, obs, temperature):
        if len(set(self.hidden_dims)) != 1:
            raise ValueError("ScoreNetwork's residual blocks need equal widths, "
                             f"got hidden_dims={tuple(self.hidden_dims)}.")
        batch_shape = x.shape[:-1]
        t_emb = jnp.broadcast_to(sinusoidal_embedding(t, self.embed_dim),
                                 batch_shape + (self.embed_dim,))
        temp_emb = jnp.broadcast_to(
            sinusoidal_embedding(temperature, self.embed_dim),
            batch_shape + (self.embed_dim,))
        obs = jnp.broadcast_to(obs, batch_shape + obs.shape[-1:])
        h = jnp.concatenate([obs, x, t_emb, temp_emb], axis=-1)

        def init(inputs):
            return get_kernel_init(self.kernel_init, inputs.shape[-1])

        h = nn.Dense(self.hidden_dims[0], name="input", **init(h))(h)
        if self.input_activation is not None:
            h = get_activation(self.input_activation)(h)
        for i, width in enumerate(self.hidden_dims):
            h = h + get_activation(self.activation)(
                nn.Dense(width, name=f"block_{i}", **init(h))(h))
        return nn.Dense(x.shape[-1], name="output", **init(h))(h)


def conditioned_score_fn(net: ScoreNetwork, params, obs: jax.Array,
                         temperature) -> Callable[[jax.Array, jax.Array],
                                                  jax.Array]:
    """`score_fn(x [N, d], t scalar) -> [N, d]` equal (to float rounding)
    to `net.apply(params, x, t, obs, temperature)` for fixed `obs [N, o]`
    and `temperature` (scalar or `[N]`), for a sampler's loop.

    The input layer `W [o + d + 2e, H]` is applied as `obs W_o + emb(temp)
    W_temp + b` (once, here) `+ x W_x + emb(t) W_t` (per call), so a
    sampling step costs `d + e` instead of `o + d + 2e` input rows.
    """
    chex.assert_rank(obs, 2)
    p = params["params"]
    kernel, e = p["input"]["kernel"], net.embed_dim
    o, d = obs.shape[-1], p["output"]["bias"].shape[-1]
    w_obs, w_x, w_t, w_temp = jnp.split(kernel, [o, o + d, o + d + e],
                                        axis=0)
    temp_emb = sinusoidal_embedding(temperature, e)
    cond = obs @ w_obs + temp_emb @ w_temp + p["input"]["bias"]  # [N, H]
    act = get_activation(net.activation)
    act_in = (None if net.input_activation is None
              else get_activation(net.input_activation))

    @jax.named_scope("ScoreNetwork")
    def score_fn(x, t):
        h = cond + x @ w_x + sinusoidal_embedding(t, e) @ w_t
        if act_in is not None:
            h = act_in(h)
        for i in range(len(net.hidden_dims)):
            block = p[f"block_{i}"]
            with jax.named_scope(f"block_{i}"):
                h = h + act(h @ block["kernel"] + block["bias"])
        return h @ p["output"]["kernel"] + p["output"]["bias"]

    return score_fn


class MLP(nn.Module):
    """Plain MLP: `[..., n] -> [..., output_dim]`.

    `init` (a name in `KERNEL_INITS`) initialises every layer; otherwise
    `kernel_init` / `output_kernel_init` (optional) initialise the hidden and
    the output layers' kernels (default: flax's LeCun normal), biases 0.
    """

    hidden_dims: Sequence[int]
    output_dim: int
    activation: str = "relu"
    kernel_init: Optional[nn.initializers.Initializer] = None
    output_kernel_init: Optional[nn.initializers.Initializer] = None
    init: Optional[str] = None

    def _dense_kwargs(self, x, output: bool):
        if self.init is not None:
            return get_kernel_init(self.init, x.shape[-1])
        kernel = self.output_kernel_init if output else self.kernel_init
        return {} if kernel is None else {"kernel_init": kernel}

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        for width in self.hidden_dims:
            x = act(nn.Dense(width, **self._dense_kwargs(x, False))(x))
        return nn.Dense(self.output_dim, **self._dense_kwargs(x, True))(x)


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy with a state-independent log-std (PPO):
    `obs [..., o] -> (mean [..., d], log_std [..., d])`.

    The mean is an MLP with orthogonal kernels (gain `sqrt 2`, output layer
    `head_gain`) and zero biases; `log_std` is one parameter `[d]` starting
    at `init_log_std` (CleanRL's `ppo_continuous_action`).
    """

    hidden_dims: Sequence[int]
    act_dim: int
    activation: str = "tanh"
    init_log_std: float = 0.0
    head_gain: float = 0.01

    @nn.compact
    def __call__(self, obs):
        mean = MLP(self.hidden_dims, self.act_dim, self.activation,
                   kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                   output_kernel_init=nn.initializers.orthogonal(
                       self.head_gain))(obs)
        log_std = self.param("log_std", nn.initializers.constant(
            self.init_log_std), (self.act_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueNetwork(nn.Module):
    """`V(s)`: `obs [..., o] -> [...]`, an MLP with orthogonal kernels (gain
    `sqrt 2`, output layer `head_gain`) and zero biases."""

    hidden_dims: Sequence[int]
    activation: str = "tanh"
    head_gain: float = 1.0

    @nn.compact
    def __call__(self, obs):
        return MLP(self.hidden_dims, 1, self.activation,
                   kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                   output_kernel_init=nn.initializers.orthogonal(
                       self.head_gain))(obs)[..., 0]


class Critic(nn.Module):
    """`Q(s, a)`: MLP on `[s, a]`; `obs [..., o]`, `act [..., d]` -> `[...]`.
    `kernel_init` (a name in `KERNEL_INITS`) for every layer."""

    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "relu"
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, obs, actions):
        inputs = jnp.concatenate([obs, actions], axis=-1)
        return MLP(self.hidden_dims, 1, self.activation,
                   init=self.kernel_init)(inputs)[..., 0]


class CriticEnsemble(nn.Module):
    """`num_critics` independent critics, vmapped over their parameters.

    `obs [..., o]`, `act [..., d]` -> `[..., E]` with `E = num_critics`.
    """

    hidden_dims: Sequence[int] = (256, 256)
    num_critics: int = 2
    activation: str = "relu"
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, obs, actions):
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=-1,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_dims, self.activation, self.kernel_init,
                        name="ensemble")(obs, actions)


class NoisePredictionMLP(nn.Module):
    """`eps_theta(x, t, obs)`: the conditional noise predictor of a DDPM policy.

    The step `t` goes through a sinusoidal embedding of size
    `time_embed_dim` and an MLP (`time_mlp_dims`, none if empty); its
    output is concatenated with `x` and `obs` and fed to an MLP of
    `hidden_dims` with a linear output of size `d` (the DACER/DIPO/QSM
    layout; Mish by default as in their official code). Every layer starts
    from `kernel_init` (a name in `KERNEL_INITS`).

    Call shapes: `x [..., d]`, `t [...]` or scalar (int or float step),
    `obs [..., o]`; returns `[..., d]`.
    """

    hidden_dims: Sequence[int] = (256, 256)
    time_embed_dim: int = 16
    time_mlp_dims: Sequence[int] = (32,)
    activation: str = "mish"
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x, t, obs):
        act = get_activation(self.activation)
        batch_shape = x.shape[:-1]
        t_emb = sinusoidal_embedding(t, self.time_embed_dim)
        for i, width in enumerate(self.time_mlp_dims):
            t_emb = nn.Dense(width, name=f"time_{i}", **get_kernel_init(
                self.kernel_init, t_emb.shape[-1]))(t_emb)
            t_emb = act(t_emb) if i < len(self.time_mlp_dims) - 1 else t_emb
        t_emb = jnp.broadcast_to(t_emb, batch_shape + t_emb.shape[-1:])
        obs = jnp.broadcast_to(obs, batch_shape + obs.shape[-1:])
        h = jnp.concatenate([x, obs, t_emb], axis=-1)
        return MLP(self.hidden_dims, x.shape[-1], self.activation,
                   init=self.kernel_init, name="denoiser")(h)
