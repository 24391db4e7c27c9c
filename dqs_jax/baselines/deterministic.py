"""Deterministic actor-critic machinery shared by TD3 and DDPG.

A tanh actor `mu(s) = max_action * tanh(MLP(s))`, a critic ensemble of `E`
ReLU MLPs, target copies of both, and one `update` per environment step
(Fujimoto et al., 2018, official `TD3.py` / `OurDDPG.py`):

1. Critic step. `a' = mu'(s')`, smoothed by `losses.smoothed_target_actions`
   when `config.target_noise > 0` (TD3);
   `y = r + gamma * m * min_j Qbar_j(s', a')` (`losses.td_loss`); loss
   `sum_j mean_B (Q_j(s, a) - y)^2`, the official sum over critics.
2. Only on updates whose 1-based count `state.step + 1` is a multiple of
   `config.policy_delay` (the official `total_it % policy_freq == 0`): one
   actor step on `-mean_B Q_1(s, mu(s))` against the *updated* critic's
   first member (`losses.deterministic_policy_loss`), then Polyak updates
   `p' <- tau p + (1 - tau) p'` of the actor and critic targets. Otherwise
   the actor, its optimiser state and both targets stay bitwise unchanged.
   The branch is a `jax.lax.cond` on `state.step` (no branch at all when
   `policy_delay == 1`), so `update` stays one jittable call. (Under
   `jax.vmap` over seeds the batched predicate turns the cond into a select
   that computes both branches: same results, more work.)

The config (a `DeterministicConfig` subclass) provides `policy_delay`,
`target_noise` and `target_noise_clip`: as fields (TD3) or class constants
(DDPG). Noise scales are fractions of `max_action`, as in the official code.
"""

import dataclasses
import math
import numbers
from typing import Sequence, Tuple

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import critic, losses
from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import MLP, CriticEnsemble
from dqs_jax.optim import apply_gradients
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch


@dataclasses.dataclass(frozen=True)
class DeterministicConfig:
    """Fields shared by TD3 and DDPG (official TD3-repo values: 2x256 ReLU,
    Adam 3e-4, gamma 0.99, tau 0.005, exploration N(0, (0.1 max_action)^2)).

    Subclasses add `policy_delay: int`, `target_noise: float` and
    `target_noise_clip: float` (fractions of `max_action`) and validate them
    with `_check_schedule`. Hashable: a static field of the state.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # actor
    critic_hidden_dims: Tuple[int, ...] = (256, 256)
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    max_action: float = 1.0
    exploration_noise: float = 0.1  # std of the acting noise / max_action
    # Initialisation of every Dense layer (`initializers.KERNEL_INITS`):
    # Flax's default; "pytorch" (kernels and biases U(+-1/sqrt(fan_in))) is
    # the official TD3 code's (docs/defaults.md, "Baselines").
    kernel_init: str = "lecun_normal"

    def __post_init__(self):
        name = type(self).__name__
        for field in ("hidden_dims", "critic_hidden_dims"):
            dims = tuple(int(w) for w in getattr(self, field))
            if not dims or min(dims) < 1:
                raise ValueError(f"{name}.{field} must be a non-empty "
                                 f"sequence of positive widths, got {dims}.")
            object.__setattr__(self, field, dims)
        if int(self.num_critics) < 1:
            raise ValueError(f"{name}.num_critics must be >= 1, got "
                             f"{self.num_critics}.")
        for field in ("actor_lr", "critic_lr", "max_action"):
            value = getattr(self, field)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}.{field} must be finite and > 0, "
                                 f"got {value}.")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"{name}.discount must be in [0, 1], got "
                             f"{self.discount}.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"{name}.tau must be in (0, 1], got {self.tau}.")
        self._check_non_negative("exploration_noise")
        check_kernel_init(f"{name}.kernel_init", self.kernel_init)

    def _check_non_negative(self, field: str) -> None:
        value = getattr(self, field)
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{type(self).__name__}.{field} must be finite "
                             f"and >= 0, got {value}.")

    def _check_schedule(self) -> None:
        """Validates `policy_delay >= 1` and the target-noise scales."""
        delay = self.policy_delay
        if (not isinstance(delay, numbers.Integral) or isinstance(delay, bool)
                or delay < 1):
            raise ValueError(f"{type(self).__name__}.policy_delay must be an "
                             f"integer >= 1, got {self.policy_delay}.")
        self._check_non_negative("target_noise")
        self._check_non_negative("target_noise_clip")


class DeterministicActor(nn.Module):
    """`mu(s) = max_action * tanh(MLP(s))`: `obs [..., o]` -> `[..., d]`."""

    hidden_dims: Sequence[int]
    act_dim: int
    max_action: float = 1.0
    activation: str = "relu"
    kernel_init: str = "lecun_normal"  # a name in `KERNEL_INITS`

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_dims, self.act_dim, self.activation,
                  init=self.kernel_init)(obs)
        return self.max_action * jnp.tanh(out)


@flax.struct.dataclass
class DeterministicState:
    """Everything `update` changes, as one pytree; config and dims static."""

    actor_params: Params
    critic_params: Params
    target_actor_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: DeterministicConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)


def actor_network(config: DeterministicConfig,
                  act_dim: int) -> DeterministicActor:
    """The actor module `config` describes."""
    return DeterministicActor(config.hidden_dims, act_dim, config.max_action,
                              kernel_init=config.kernel_init)


def critic_network(config: DeterministicConfig) -> CriticEnsemble:
    """The critic ensemble module `config` describes (ReLU MLPs)."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          kernel_init=config.kernel_init)


def _optimisers(config: DeterministicConfig):
    return optax.adam(config.actor_lr), optax.adam(config.critic_lr)


def init(config: DeterministicConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> DeterministicState:
    """Fresh actor and critics, targets equal to them, Adam states.

    Args:
      config: hyper-parameters.
      obs_dim: `o`, flat observation size.
      act_dim: `d`, action size.
      key: PRNG key; the state keeps a split of it for later updates.

    Returns:
      A `DeterministicState` with `step == 0`.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    actor_params = actor_network(config, act_dim).init(actor_key, obs)
    critic_params = critic_network(config).init(
        critic_key, obs, jnp.zeros((1, act_dim), jnp.float32))
    actor_opt, critic_opt = _optimisers(config)
    copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # noqa: E731
    return DeterministicState(
        actor_params=actor_params,
        critic_params=critic_params,
        # Copies, not aliases, so that the state can be donated to jit.
        target_actor_params=copy(actor_params),
        target_critic_params=copy(critic_params),
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def actor_step(config: DeterministicConfig, act_dim: int,
               actor_params: Params, actor_opt_state: optax.OptState,
               q_fn: losses.QFn, observations: jax.Array
               ) -> Tuple[Params, optax.OptState, jax.Array]:
    """One Adam step of the actor on `-mean_B q_fn(s, mu(s))`.

    Args:
      config: hyper-parameters (actor network and `actor_lr`).
      act_dim: `d`.
      actor_params: current actor parameters.
      actor_opt_state: its Adam state.
      q_fn: `(obs [o], action [d]) -> scalar`, held fixed (e.g. `Q_1`).
      observations: `[B, o]`.

    Returns:
      `(actor_params, actor_opt_state, loss)`, the loss at the old params.
    """
    actor_net = actor_network(config, act_dim)

    def objective(params):
        return losses.deterministic_policy_loss(
            q_fn, lambda o: actor_net.apply(params, o), observations)

    loss, grads = jax.value_and_grad(objective)(actor_params)
    params, opt_state = apply_gradients(_optimisers(config)[0], grads,
                                        actor_opt_state, actor_params)
    return params, opt_state, loss


def _critic_step(state: DeterministicState, batch: Batch, key: PRNGKey):
    """Critic step (1. in the module docstring): `(params, opt_state, loss,
    aux, grad_norm)`."""
    config = state.config
    critic_net = critic_network(config)
    next_actions = actor_network(config, state.act_dim).apply(
        state.target_actor_params, batch.next_observations)
    if config.target_noise > 0:  # Static: TD3's target policy smoothing.
        next_actions = losses.smoothed_target_actions(
            next_actions, key, config.target_noise * config.max_action,
            config.target_noise_clip * config.max_action, config.max_action)

    # td_loss averages over members; the official loss sums them.
    params, opt_state, m = critic.critic_step(
        critic_net, _optimisers(config)[1], state.critic_params,
        state.critic_opt_state, state.target_critic_params, batch,
        next_actions, config.discount, loss_scale=config.num_critics)
    aux = {"q_mean": m["q_mean"], "target_mean": m["target_q_mean"]}
    return params, opt_state, m["critic_loss"], aux, m["critic_grad_norm"]


def update(state: DeterministicState, batch: Batch
           ) -> Tuple[DeterministicState, Metrics]:
    """One update: critic step, then (every `policy_delay`-th update) actor
    step and Polyak target updates; see the module docstring.

    Pure; `jax.jit(update)` compiles once per batch shape.

    Args:
      state: current training state.
      batch: `Batch` of `B` transitions (`[B, o]`, `[B, d]`, `[B]`, `[B]`,
        `[B, o]`), actions in `[-max_action, max_action]`.

    Returns:
      `(new_state, metrics)`, metrics a flat dict of float32 scalars, the
      same keys every call. `actor_loss` is `-mean_B Q_1(s, mu(s))` with the
      pre-step actor and the updated critic on every update, whether or not
      the actor steps (the loss of its step when it does).
    """
    check_batch(batch, state.obs_dim, state.act_dim)
    config = state.config
    key, noise_key = jax.random.split(state.key)
    critic_params, critic_opt_state, critic_loss, aux, critic_grad_norm = (
        _critic_step(state, batch, noise_key))
    critic_net = critic_network(config)
    actor_net = actor_network(config, state.act_dim)

    def q_1(obs, action):  # The updated critic's first member, as official.
        return critic_net.apply(critic_params, obs, action)[0]

    def step_actor_and_targets(actor_params, actor_opt_state, target_actor,
                               target_critic):
        actor_params, actor_opt_state, loss = actor_step(
            config, state.act_dim, actor_params, actor_opt_state, q_1,
            batch.observations)
        target_actor = optax.incremental_update(actor_params, target_actor,
                                                config.tau)
        target_critic = optax.incremental_update(critic_params, target_critic,
                                                 config.tau)
        return (actor_params, actor_opt_state, target_actor,
                target_critic), loss

    def hold(actor_params, actor_opt_state, target_actor, target_critic):
        loss = losses.deterministic_policy_loss(
            q_1, lambda o: actor_net.apply(actor_params, o),
            batch.observations)
        return (actor_params, actor_opt_state, target_actor,
                target_critic), loss

    operands = (state.actor_params, state.actor_opt_state,
                state.target_actor_params, state.target_critic_params)
    if config.policy_delay == 1:  # Static: every update steps the actor.
        new, actor_loss = step_actor_and_targets(*operands)
    else:
        due = (state.step + 1) % config.policy_delay == 0
        new, actor_loss = jax.lax.cond(due, step_actor_and_targets, hold,
                                       *operands)
    actor_params, actor_opt_state, target_actor, target_critic = new

    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=target_actor,
        target_critic_params=target_critic,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        step=state.step + 1,
        key=key,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "q_mean": aux["q_mean"],
        "target_q_mean": aux["target_mean"],
        "critic_grad_norm": critic_grad_norm,
    }
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, metrics


def act(state: DeterministicState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions of the deterministic actor, with Gaussian exploration noise.

    Args:
      state: training state.
      observations: `[N, o]`.
      key: PRNG key (unused when `deterministic`).
      deterministic: if True, `mu(s)`; else
        `clip(mu(s) + exploration_noise * max_action * eps, -max_action,
        max_action)`, `eps = jax.random.normal(key, [N, d])`. A Python bool
        (static under `jax.jit`).

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    config = state.config
    mu = actor_network(config, state.act_dim).apply(state.actor_params,
                                                    observations)
    if deterministic:
        return mu
    eps = jax.random.normal(key, mu.shape, mu.dtype)
    return jnp.clip(mu + config.exploration_noise * config.max_action * eps,
                    -config.max_action, config.max_action)
