"""Soft Actor-Critic with the DQS agent's interface (`init / update / act`).

Tanh-Gaussian actor, clipped double-Q ensemble critic with the soft TD target
`y = r + gamma * mask * (min_j Qbar_j(s', a') - alpha * log pi(a'|s'))`,
`a' ~ pi(.|s')`, and automatic entropy temperature with target entropy
`-d` by default (Haarnoja et al., 2018). One `update` does, in order: a
critic step, an actor step against the updated critic, a temperature step on
the entropy of the actor step's samples, and a Polyak target update.

Actions are `a = max_action * tanh(x)`, `x ~ N(mean(s), std(s)^2)`;
`log pi(a|s)` is the density of the executed action `a`, including the
`log max_action` term of the change of variables.
"""

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import losses
from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import MLP, CriticEnsemble
from dqs_jax.optim import apply_gradients
from dqs_jax.temperature import temperature_step
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of SAC (2x256 MLPs, lr 3e-4, double Q;
    docs/algorithm.md §10B).

    `target_entropy=None` means `-act_dim`. The actor's log-std is squashed
    smoothly into `[log_std_min, log_std_max]` (see `TanhGaussianActor`).
    Hashable: a static field of `SACState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # actor
    critic_hidden_dims: Tuple[int, ...] = (256, 256)
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    init_temperature: float = 1.0
    target_entropy: Optional[float] = None  # None: -act_dim
    max_action: float = 1.0
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    # Initialisation of every Dense layer of actor and critic, a name in
    # `initializers.KERNEL_INITS`: "lecun_normal" (Flax's default);
    # "orthogonal" (gain sqrt 2) is the SAC of the DQS authors' lab, and
    # "xavier_uniform" jaxrl5's (docs/defaults.md, "Baselines").
    kernel_init: str = "lecun_normal"

    def __post_init__(self):
        for name in ("hidden_dims", "critic_hidden_dims"):
            dims = tuple(int(w) for w in getattr(self, name))
            if not dims or min(dims) < 1:
                raise ValueError(f"SACConfig.{name} must be a non-empty "
                                 f"sequence of positive widths, got {dims}.")
            object.__setattr__(self, name, dims)
        if int(self.num_critics) < 1:
            raise ValueError(f"SACConfig.num_critics must be >= 1, got "
                             f"{self.num_critics}.")
        positive = ("actor_lr", "critic_lr", "temperature_lr",
                    "init_temperature", "max_action")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"SACConfig.{name} must be > 0, got {getattr(self, name)}.")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"SACConfig.discount must be in [0, 1], got "
                             f"{self.discount}.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(
                f"SACConfig.tau must be in (0, 1], got {self.tau}.")
        if self.target_entropy is not None and not math.isfinite(
                self.target_entropy):
            raise ValueError("SACConfig.target_entropy must be None or finite, "
                             f"got {self.target_entropy}.")
        check_kernel_init("SACConfig.kernel_init", self.kernel_init)
        if not self.log_std_min < self.log_std_max:
            raise ValueError("SACConfig.log_std_min must be < log_std_max, got "
                             f"{self.log_std_min}, {self.log_std_max}.")

    def entropy_target(self, act_dim: int) -> float:
        """The target entropy for `act_dim`-dimensional actions."""
        if self.target_entropy is None:
            return -float(act_dim)
        return float(self.target_entropy)


class TanhGaussianActor(nn.Module):
    """Gaussian over pre-squash actions: `obs [..., o]` -> `(mean, log_std)`.

    Both outputs are `[..., act_dim]`. An MLP gives `mean` and a raw `u`;
    `log_std = log_std_min + (log_std_max - log_std_min) (tanh(u) + 1) / 2`,
    a smooth map onto `(log_std_min, log_std_max)`.
    """

    hidden_dims: Sequence[int]
    act_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    activation: str = "relu"
    kernel_init: str = "lecun_normal"  # a name in `KERNEL_INITS`

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_dims, 2 * self.act_dim, self.activation,
                  init=self.kernel_init)(obs)
        mean, raw = jnp.split(out, 2, axis=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min
                                            ) * (jnp.tanh(raw) + 1.0)
        return mean, log_std


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array,
                           log_std: jax.Array,
                           max_action: float = 1.0) -> jax.Array:
    """`log pi(a)` of `a = max_action * tanh(x)`, `x ~ N(mean, diag(std^2))`.

    `log N(x; mean, std) - sum_i [log max_action + log(1 - tanh(x_i)^2)]`,
    with the stable form `log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x))`
    (finite for any `x`).

    Args:
      pre_tanh: `[..., d]`, the Gaussian sample `x`.
      mean: `[..., d]`.
      log_std: `[..., d]`.
      max_action: action scale.

    Returns:
      `[...]` log-densities of the squashed actions.
    """
    chex.assert_equal_shape([pre_tanh, mean, log_std])
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * jnp.square(z) - log_std - _HALF_LOG_TWO_PI
    log_det = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(
        -2.0 * pre_tanh)) + math.log(max_action)
    return jnp.sum(gaussian - log_det, axis=-1)


def sample_tanh_gaussian(mean: jax.Array, log_std: jax.Array, key: PRNGKey,
                         max_action: float = 1.0
                         ) -> Tuple[jax.Array, jax.Array]:
    """Reparameterised sample and its log-density.

    Args:
      mean: `[..., d]`.
      log_std: `[..., d]`.
      key: PRNG key.
      max_action: action scale.

    Returns:
      `(actions [..., d] in [-max_action, max_action], log_prob [...])`.
    """
    chex.assert_equal_shape([mean, log_std])
    x = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape,
                                                    mean.dtype)
    return (max_action * jnp.tanh(x),
            tanh_gaussian_log_prob(x, mean, log_std, max_action))


@flax.struct.dataclass
class SACState:
    """Everything `update` changes, as one pytree; config and dims static."""

    actor_params: Params
    critic_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_temperature: jax.Array  # float32 scalar, log alpha
    temperature_opt_state: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: SACConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)

    @property
    def temperature(self) -> jax.Array:
        """Current entropy temperature `alpha = exp(log_temperature)`."""
        return jnp.exp(self.log_temperature)


def actor_network(config: SACConfig, act_dim: int) -> TanhGaussianActor:
    """The actor module `config` describes."""
    return TanhGaussianActor(config.hidden_dims, act_dim, config.log_std_min,
                             config.log_std_max,
                             kernel_init=config.kernel_init)


def critic_network(config: SACConfig) -> CriticEnsemble:
    """The critic ensemble module `config` describes (ReLU MLPs)."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          kernel_init=config.kernel_init)


def _optimisers(config: SACConfig):
    return (optax.adam(config.actor_lr), optax.adam(config.critic_lr),
            optax.adam(config.temperature_lr))


def init(config: SACConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> SACState:
    """Fresh parameters, optimiser states, target critic and temperature.

    Args:
      config: hyper-parameters.
      obs_dim: `o`, flat observation size.
      act_dim: `d`, action size.
      key: PRNG key; the state keeps a split of it for later updates.

    Returns:
      A `SACState` with `step == 0` and `temperature == init_temperature`.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, act_dim), jnp.float32)
    actor_params = actor_network(config, act_dim).init(actor_key, obs)
    critic_params = critic_network(config).init(critic_key, obs, act)
    log_temperature = jnp.asarray(math.log(config.init_temperature),
                                  jnp.float32)
    actor_opt, critic_opt, temperature_opt = _optimisers(config)
    return SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        # A copy, not an alias, so that the state can be donated to jit.
        target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        log_temperature=log_temperature,
        temperature_opt_state=temperature_opt.init(log_temperature),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def update(state: SACState, batch: Batch) -> Tuple[SACState, Metrics]:
    """One SAC update: critic, actor, temperature, Polyak target.

    Pure; `jax.jit(update)` compiles once per batch shape.

    Args:
      state: current training state.
      batch: `Batch` of `B` transitions (`[B, o]`, `[B, d]`, `[B]`, `[B]`,
        `[B, o]`), actions in `[-max_action, max_action]`.

    Returns:
      `(new_state, metrics)`, metrics a flat dict of float32 scalars;
      `temperature` is the value used in this update's losses.
    """
    check_batch(batch, state.obs_dim, state.act_dim)
    config = state.config
    actor_net = actor_network(config, state.act_dim)
    critic_net = critic_network(config)
    actor_opt, critic_opt, temperature_opt = _optimisers(config)
    key, next_key, actor_key = jax.random.split(state.key, 3)
    alpha = jnp.exp(state.log_temperature)

    # Critic: soft TD target with a' ~ pi(.|s') from the current actor.
    next_mean, next_log_std = actor_net.apply(state.actor_params,
                                              batch.next_observations)
    next_actions, next_log_prob = sample_tanh_gaussian(
        next_mean, next_log_std, next_key, config.max_action)

    def target_q(obs, act):
        return critic_net.apply(state.target_critic_params, obs, act)

    def critic_objective(params):
        return losses.td_loss_with_aux(
            lambda o, a: critic_net.apply(params, o, a), target_q,
            batch.observations, batch.actions, batch.rewards, batch.discounts,
            batch.next_observations, next_actions, config.discount,
            next_value_bonus=-alpha * next_log_prob)

    (critic_loss, critic_aux), critic_grads = jax.value_and_grad(
        critic_objective, has_aux=True)(state.critic_params)
    critic_params, critic_opt_state = apply_gradients(
        critic_opt, critic_grads, state.critic_opt_state, state.critic_params)

    # Actor: minimise E[alpha log pi(a|s) - min_j Q_j(s, a)], reparameterised.
    def actor_objective(params):
        mean, log_std = actor_net.apply(params, batch.observations)
        actions, log_prob = sample_tanh_gaussian(mean, log_std, actor_key,
                                                 config.max_action)
        q = jnp.min(critic_net.apply(critic_params, batch.observations,
                                     actions), axis=-1)
        loss = jnp.mean(alpha * log_prob - q)
        return loss, (-jnp.mean(log_prob), jnp.mean(log_std))

    (actor_loss, (entropy, mean_log_std)), actor_grads = jax.value_and_grad(
        actor_objective, has_aux=True)(state.actor_params)
    actor_params, actor_opt_state = apply_gradients(
        actor_opt, actor_grads, state.actor_opt_state, state.actor_params)

    # Temperature: alpha rises if the entropy is below target.
    log_temperature, temperature_opt_state, temperature_loss = (
        temperature_step(temperature_opt, state.log_temperature,
                         state.temperature_opt_state, entropy,
                         config.entropy_target(state.act_dim)))

    target_params = optax.incremental_update(
        critic_params, state.target_critic_params, config.tau)

    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=target_params,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        log_temperature=log_temperature,
        temperature_opt_state=temperature_opt_state,
        step=state.step + 1,
        key=key,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "temperature_loss": temperature_loss,
        "temperature": alpha,
        "entropy": entropy,
        "mean_log_std": mean_log_std,
        "q_mean": critic_aux["q_mean"],
        "target_q_mean": critic_aux["target_mean"],
        "critic_grad_norm": optax.global_norm(critic_grads),
        "actor_grad_norm": optax.global_norm(actor_grads),
    }
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, metrics


def act(state: SACState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions from the tanh-Gaussian policy.

    Args:
      state: training state.
      observations: `[N, o]`.
      key: PRNG key (unused when `deterministic`).
      deterministic: if True, `max_action * tanh(mean)`; a Python bool
        (static under `jax.jit`).

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    mean, log_std = actor_network(state.config, state.act_dim).apply(
        state.actor_params, observations)
    if deterministic:
        return state.config.max_action * jnp.tanh(mean)
    return sample_tanh_gaussian(mean, log_std, key, state.config.max_action)[0]
