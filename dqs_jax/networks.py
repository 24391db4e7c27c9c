"""The score network (docs/algorithm.md §8), the critic ensemble (§6), the
noise-prediction network of the DDPM baselines and PPO's Gaussian policy and
value networks."""

import functools
import itertools
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

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
    and of the temperature: `INPUTS`, in this order), projected to
    `hidden_dims[0]` (followed by `input_activation` unless None), then
    passed through residual blocks `h + act(Dense(h))` (one per entry of
    `hidden_dims`, all of the same width), then a linear output of size `d`.
    Every kernel starts from `kernel_init` (a name in `KERNEL_INITS`).

    The layers are `INPUT_LAYER`, `block_name(i)` and `OUTPUT_LAYER`; what
    follows the input projection is written once, in `trunk`, which both
    `__call__` and `conditioned_score_fn` run.

    Call shapes: `x [..., d]`, `t [...]` or scalar, `obs [..., o]`,
    `temperature [...]` or scalar; returns `[..., d]`.
    """

    hidden_dims: Sequence[int] = (256, 256)
    embed_dim: int = 128
    activation: str = "gelu"
    input_activation: Optional[str] = None
    kernel_init: str = "lecun_normal"

    # The input layer's kernel rows, in order (keys of `input_features`).
    INPUTS = ("obs", "x", "t", "temperature")
    INPUT_LAYER = "input"
    OUTPUT_LAYER = "output"

    @staticmethod
    def block_name(i: int) -> str:
        """The name of the `i`-th residual block's Dense layer."""
        return f"block_{i}"

    @classmethod
    def action_dim(cls, params) -> int:
        """`d`, the output size, of the network with variables `params`."""
        return params["params"][cls.OUTPUT_LAYER]["bias"].shape[-1]

    @nn.nowrap
    def input_features(self, x=None, t=None, obs=None, temperature=None):
        """`{name: array}` for the names in `INPUTS` whose input is given:
        `obs`, `x` and the sinusoidal embeddings `[..., embed_dim]` of `t`
        and `temperature`, not broadcast against each other."""
        inputs = {"obs": obs, "x": x, "t": t, "temperature": temperature}
        embedded = ("t", "temperature")
        return {name: (sinusoidal_embedding(value, self.embed_dim)
                       if name in embedded else value)
                for name, value in inputs.items() if value is not None}

    @nn.nowrap
    def check_hidden_dims(self) -> None:
        """Raises a ValueError unless the residual blocks' widths agree."""
        if len(set(self.hidden_dims)) != 1:
            raise ValueError("ScoreNetwork's residual blocks need equal widths, "
                             f"got hidden_dims={tuple(self.hidden_dims)}.")

    @nn.nowrap
    def dense(self, name: str, width: int, fan_in: int, **kwargs) -> nn.Dense:
        """The Dense layer `name` with `width` outputs and `fan_in` inputs,
        initialised by `kernel_init`."""
        return nn.Dense(width, name=name,
                        **get_kernel_init(self.kernel_init, fan_in), **kwargs)

    @nn.nowrap
    def trunk(self, h, out_dim: int,
              apply_dense: Callable[[str, int, jax.Array], jax.Array]):
        """Everything after the input layer's affine map: `h [..., H]`, the
        input projection before `input_activation`, -> `[..., out_dim]`.
        `apply_dense(name, width, inputs)` applies the Dense layer `name`."""
        self.check_hidden_dims()
        if self.input_activation is not None:
            h = get_activation(self.input_activation)(h)
        act = get_activation(self.activation)
        for i, width in enumerate(self.hidden_dims):
            h = h + act(apply_dense(self.block_name(i), width, h))
        return apply_dense(self.OUTPUT_LAYER, out_dim, h)

    @nn.compact
    def __call__(self, x, t, obs, temperature):
        self.check_hidden_dims()
        batch_shape = x.shape[:-1]
        features = self.input_features(x, t, obs, temperature)
        h = jnp.concatenate([
            jnp.broadcast_to(features[name],
                             batch_shape + features[name].shape[-1:])
            for name in self.INPUTS], axis=-1)

        def apply_dense(name, width, inputs):
            return self.dense(name, width, inputs.shape[-1])(inputs)

        h = apply_dense(self.INPUT_LAYER, self.hidden_dims[0], h)
        return self.trunk(h, x.shape[-1], apply_dense)


def conditioned_score_fn(net: ScoreNetwork, params, obs: jax.Array,
                         temperature) -> Callable[[jax.Array, jax.Array],
                                                  jax.Array]:
    """`score_fn(x [N, d], t scalar) -> [N, d]` equal (to float rounding)
    to `net.apply(params, x, t, obs, temperature)` for fixed `obs [N, o]`
    and `temperature` (scalar or `[N]`), for a sampler's loop.

    The input layer `W [o + d + 2e, H]` is applied as `obs W_o + emb(temp)
    W_temp + b` (once, here) `+ x W_x + emb(t) W_t` (per call), so a
    sampling step costs `d + e` instead of `o + d + 2e` input rows; the
    rest is `net.trunk` on `params`' Dense layers (`inputs @ kernel +
    bias`, what `net.dense` computes).
    """
    chex.assert_rank(obs, 2)
    p = params["params"]
    input_layer = p[net.INPUT_LAYER]
    # The kernel's rows by input, in the order `__call__` concatenates them.
    shapes = jax.eval_shape(
        net.input_features,
        jax.ShapeDtypeStruct((net.action_dim(params),), jnp.float32),
        jax.ShapeDtypeStruct((), jnp.float32), obs, temperature)
    widths = {name: shape.shape[-1] for name, shape in shapes.items()}
    offsets = list(itertools.accumulate(widths[n] for n in net.INPUTS))
    w = dict(zip(net.INPUTS, jnp.split(input_layer["kernel"], offsets[:-1],
                                       axis=0)))
    conditioning = ("obs", "temperature")
    fixed = net.input_features(obs=obs, temperature=temperature)
    cond = functools.reduce(jnp.add, [fixed[name] @ w[name]
                                      for name in conditioning])
    cond = cond + input_layer["bias"]  # [N, H]
    per_step = [n for n in net.INPUTS if n not in conditioning]

    def apply_dense(name, width, inputs):
        # `net.dense`'s affine map on `params`, without the per-call
        # bookkeeping of `nn.Dense.apply` (several times an eager step).
        layer = p[name]
        chex.assert_shape(layer["bias"], (width,))
        return inputs @ layer["kernel"] + layer["bias"]

    @jax.named_scope("ScoreNetwork")
    def score_fn(x, t):
        features = net.input_features(x=x, t=t)
        h = cond
        for name in per_step:
            h = h + features[name] @ w[name]
        return net.trunk(h, x.shape[-1], apply_dense)

    return score_fn


class MLP(nn.Module):
    """Plain MLP: `[..., n] -> [..., output_dim]`.

    `init` (a name in `KERNEL_INITS`) initialises every layer; otherwise
    `kernel_init` / `output_kernel_init` (optional) initialise the hidden and
    the output layers' kernels (default: flax's LeCun normal), biases 0.
    The Dense layers are `layer_name(0)`, `layer_name(1)`, ... in call order,
    the output layer last (`layer_params` lists them).
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

    @staticmethod
    def layer_name(i: int) -> str:
        """The name of the `i`-th Dense layer (Flax's automatic name)."""
        return f"Dense_{i}"

    @classmethod
    def layer_params(cls, params) -> List[Any]:
        """An MLP's layers' parameters `{"kernel", "bias"}`, in call order,
        from its parameter dict `params` (leaves may carry leading axes,
        e.g. an ensemble's). Raises a ValueError on other keys."""
        layers = []
        while cls.layer_name(len(layers)) in params:
            layers.append(params[cls.layer_name(len(layers))])
        if not layers or len(layers) != len(params):
            raise ValueError("Not the parameters of an MLP: keys "
                             f"{sorted(params)}.")
        return layers

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        for i, width in enumerate(self.hidden_dims):
            x = act(nn.Dense(width, name=self.layer_name(i),
                             **self._dense_kwargs(x, False))(x))
        return nn.Dense(self.output_dim,
                        name=self.layer_name(len(self.hidden_dims)),
                        **self._dense_kwargs(x, True))(x)


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

    MLP_NAME = "MLP_0"  # Flax's automatic name

    @classmethod
    def layer_params(cls, params) -> List[Any]:
        """The MLP's layers (`MLP.layer_params`) from a `Critic`'s parameter
        dict (without the `"params"` level)."""
        return MLP.layer_params(params[cls.MLP_NAME])

    @staticmethod
    def split_input_kernel(kernel: jax.Array, obs_dim: int
                           ) -> Tuple[jax.Array, jax.Array]:
        """`(W_s, W_a)`: the first layer's kernel `[..., o + d, H]` split
        into its state and action rows (the order `__call__` concatenates
        them in)."""
        return kernel[..., :obs_dim, :], kernel[..., obs_dim:, :]

    @nn.compact
    def __call__(self, obs, actions):
        inputs = jnp.concatenate([obs, actions], axis=-1)
        return MLP(self.hidden_dims, 1, self.activation,
                   init=self.kernel_init, name=self.MLP_NAME)(inputs)[..., 0]


class CriticEnsemble(nn.Module):
    """`num_critics` independent critics, vmapped over their parameters.

    `obs [..., o]`, `act [..., d]` -> `[..., E]` with `E = num_critics`.
    `layer_params` gives the members' layers stacked on a leading `E` axis.
    """

    hidden_dims: Sequence[int] = (256, 256)
    num_critics: int = 2
    activation: str = "relu"
    kernel_init: str = "lecun_normal"

    ENSEMBLE_NAME = "ensemble"

    @classmethod
    def layer_params(cls, params) -> List[Any]:
        """The members' layers `{"kernel": [E, n, m], "bias": [E, m]}`, in
        call order, from a `CriticEnsemble`'s variables `params`; the first
        layer's kernel splits by `Critic.split_input_kernel`."""
        return Critic.layer_params(params["params"][cls.ENSEMBLE_NAME])

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
                        name=self.ENSEMBLE_NAME)(obs, actions)


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
