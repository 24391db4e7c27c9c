"""Proximal Policy Optimisation (Schulman et al., 2017), on-policy interface.

CleanRL `ppo_continuous_action.py` semantics (docs/agents.md): a Gaussian
policy with an MLP mean and a state-independent log-std parameter, a separate
value MLP, orthogonal init (`sqrt 2`; policy head 0.01, value head 1), one
Adam (eps 1e-5) over both networks after a global gradient-norm clip, GAE
advantages, per-minibatch advantage normalisation, the clipped surrogate, the
clipped value loss and an entropy bonus; `num_epochs x num_minibatches` SGD
steps over shuffled permutations inside one jitted `update`.

CleanRL's gym wrappers live in the state, so that a resumed run is exact:
- Observations are normalised by running statistics (`normalizer`), clipped
  to `+-obs_clip`. The statistics are frozen during a rollout: `explore` and
  `act` use those in the state; `update` computes everything (values,
  log-probs, advantages) with them and only at its end folds the rollout's
  `observations` into them.
- Rewards are divided by the running std of the discounted return
  (`normalizer.discounted_returns`, restarted after every episode end),
  clipped to `+-reward_clip`. `update` advances the return accumulator
  through the rollout's rewards and dones and folds the returns into their
  statistics *before* scaling (as gym's `NormalizeReward`, whose statistics
  include the current return; acting does not use them), so the first
  rollout is scaled too.

Unlike CleanRL (docs/defaults.md, "Choices where the sources disagree"), a
time limit bootstraps from
`V(next_observation)`; only a termination (`discount 0`) drops it.

Actions: `raw ~ N(mean(s), exp(log_std)^2)`, unbounded; the env receives
`clip(raw, -max_action, max_action)`; the `Rollout` stores `raw` and its
log-density. Evaluation (`act(..., deterministic=True)`) is `clip(mean)`.
"""

import dataclasses
import math
from typing import Dict, Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import normalizer
from dqs_jax import policy_gradient as pg
from dqs_jax.networks import ACTIVATIONS, GaussianPolicy, ValueNetwork
from dqs_jax.optim import apply_gradients
from dqs_jax.types import (Metrics, Params, PolicyStep, PRNGKey, Rollout,
                           check_rollout)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of PPO (CleanRL defaults = the PPO paper's MuJoCo
    table, except 2x256 networks for DQS parity where CleanRL has 64x64).

    `lr_decay_updates`: the learning rate decays linearly from
    `learning_rate` to 0 over this many updates (constant within an update,
    0 after); 0 keeps it constant. CleanRL anneals over the whole run, i.e.
    `total_steps // rollout_length` updates.
    Hashable: a static field of `PPOState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # policy mean (CleanRL: 64-64)
    critic_hidden_dims: Tuple[int, ...] = (256, 256)  # value (CleanRL: 64-64)
    activation: str = "tanh"
    learning_rate: float = 3e-4
    lr_decay_updates: int = 0
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    rollout_length: int = 2048  # env steps per update
    num_epochs: int = 10
    num_minibatches: int = 32  # minibatch size rollout_length // this
    discount: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2  # policy ratio and value clipping
    clip_value_loss: bool = True
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = True
    normalize_observations: bool = True
    normalize_rewards: bool = True
    obs_clip: float = 10.0
    reward_clip: float = 10.0
    init_log_std: float = 0.0
    max_action: float = 1.0

    def __post_init__(self):
        for name in ("hidden_dims", "critic_hidden_dims"):
            dims = tuple(int(w) for w in getattr(self, name))
            if not dims or min(dims) < 1:
                raise ValueError(f"PPOConfig.{name} must be a non-empty "
                                 f"sequence of positive widths, got {dims}.")
            object.__setattr__(self, name, dims)
        batch = self.rollout_length // max(self.num_minibatches, 1)
        rules = {  # field: (valid, requirement)
            "activation": (self.activation in ACTIVATIONS,
                           f"one of {sorted(ACTIVATIONS)}"),
            "rollout_length": (self.rollout_length >= 1, ">= 1"),
            "num_epochs": (self.num_epochs >= 1, ">= 1"),
            "num_minibatches": (
                self.num_minibatches >= 1
                and self.rollout_length % self.num_minibatches == 0,
                "a divisor of PPOConfig.rollout_length"),
            "normalize_advantages": (
                not self.normalize_advantages or batch >= 2,
                "False for minibatches of one (rollout_length // "
                "num_minibatches < 2)"),
            "lr_decay_updates": (self.lr_decay_updates >= 0, ">= 0"),
            "init_log_std": (math.isfinite(self.init_log_std), "finite"),
        }
        for name in ("learning_rate", "adam_eps", "max_grad_norm", "clip_eps",
                     "obs_clip", "reward_clip", "max_action"):
            rules[name] = (getattr(self, name) > 0, "> 0")
        for name in ("discount", "gae_lambda"):
            rules[name] = (0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        for name in ("value_coef", "entropy_coef"):
            rules[name] = (getattr(self, name) >= 0, ">= 0")
        for name, (valid, requirement) in rules.items():
            if not valid:
                raise ValueError(f"PPOConfig.{name} must be {requirement}, "
                                 f"got {getattr(self, name)!r}.")

    @property
    def minibatch_size(self) -> int:
        return self.rollout_length // self.num_minibatches


@flax.struct.dataclass
class PPOState:
    """Everything `update` changes, as one pytree; config and dims static."""

    params: Params  # {"actor": ..., "critic": ...}
    opt_state: optax.OptState  # one Adam over both
    obs_stats: normalizer.RunningStats  # [o], frozen during a rollout
    return_stats: normalizer.RunningStats  # scalar, of discounted returns
    running_return: jax.Array  # float32 scalar, the return accumulator
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: PPOConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)


def policy_network(config: PPOConfig, act_dim: int) -> GaussianPolicy:
    """The policy (orthogonal init, mean head gain 0.01, CleanRL)."""
    return GaussianPolicy(config.hidden_dims, act_dim, config.activation,
                          config.init_log_std, head_gain=0.01)


def value_network(config: PPOConfig) -> ValueNetwork:
    """The value network (orthogonal init, head gain 1, CleanRL)."""
    return ValueNetwork(config.critic_hidden_dims, config.activation,
                        head_gain=1.0)


def learning_rate(config: PPOConfig, num_updates: jax.Array) -> jax.Array:
    """The learning rate of update number `num_updates` (0-based):
    `lr * max(0, 1 - num_updates / lr_decay_updates)` (CleanRL's
    `frac = 1 - (iteration - 1) / num_iterations`), or `lr` if no decay."""
    if config.lr_decay_updates == 0:
        return jnp.full(jnp.shape(num_updates), config.learning_rate,
                        jnp.float32)
    frac = 1.0 - num_updates.astype(jnp.float32) / config.lr_decay_updates
    return config.learning_rate * jnp.maximum(frac, 0.0)


def _optimiser(config: PPOConfig) -> optax.GradientTransformation:
    steps_per_update = config.num_epochs * config.num_minibatches
    # Optax counts gradient steps; the rate is constant within an update.
    schedule = lambda count: learning_rate(  # noqa: E731
        config, count // steps_per_update)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(schedule, eps=config.adam_eps))


def init(config: PPOConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> PPOState:
    """Fresh networks, optimiser, empty normaliser statistics.

    Args:
      config: hyper-parameters.
      obs_dim: `o`, flat observation size.
      act_dim: `d`, action size.
      key: PRNG key; the state keeps a split of it for later updates.

    Returns:
      A `PPOState` with `step == 0`.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    params = {
        "actor": policy_network(config, act_dim).init(actor_key, obs),
        "critic": value_network(config).init(critic_key, obs),
    }
    return PPOState(
        params=params,
        opt_state=_optimiser(config).init(params),
        obs_stats=normalizer.init(obs_dim),
        return_stats=normalizer.init(()),
        running_return=jnp.zeros((), jnp.float32),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def normalize_observations(state: PPOState, observations: jax.Array
                           ) -> jax.Array:
    """`observations [..., o]` as the networks see them (frozen statistics,
    clipped to `+-obs_clip`); unchanged without `normalize_observations`."""
    if not state.config.normalize_observations:
        return observations
    return normalizer.normalize(state.obs_stats, observations,
                                state.config.obs_clip)


def _policy(state: PPOState, observations: jax.Array):
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    obs = normalize_observations(state, observations)
    mean, log_std = policy_network(state.config, state.act_dim).apply(
        state.params["actor"], obs)
    return obs, mean, log_std


def explore(state: PPOState, observations: jax.Array, key: PRNGKey
            ) -> Tuple[jax.Array, PolicyStep]:
    """Stochastic actions for a rollout, with what the `Rollout` stores.

    Args:
      state: training state (its observation statistics are used frozen).
      observations: `[N, o]` raw observations.
      key: PRNG key.

    Returns:
      `(clip(raw, -max_action, max_action) [N, d], PolicyStep(raw [N, d],
      log pi(raw) [N], V(s) [N]))`, `raw ~ N(mean(s), std^2)`.
    """
    obs, mean, log_std = _policy(state, observations)
    raw = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape,
                                                      mean.dtype)
    values = value_network(state.config).apply(state.params["critic"], obs)
    step = PolicyStep(raw, pg.gaussian_log_prob(raw, mean, log_std), values)
    max_action = state.config.max_action
    return jnp.clip(raw, -max_action, max_action), step


def act(state: PPOState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions `[N, d]` in `[-max_action, max_action]` for `observations
    [N, o]`: `clip(mean)` if `deterministic` (a Python bool; the key is then
    unused), else the same clipped sample as `explore(state, obs, key)`."""
    if not deterministic:
        return explore(state, observations, key)[0]
    _, mean, _ = _policy(state, observations)
    max_action = state.config.max_action
    return jnp.clip(mean, -max_action, max_action)


def minibatch_loss(params: Params, data: Dict[str, jax.Array],
                   state: PPOState) -> Tuple[jax.Array, Metrics]:
    """PPO's loss on one minibatch: `L_clip + value_coef * L_V -
    entropy_coef * H` (CleanRL), advantages normalised over the minibatch
    if `normalize_advantages`, `L_V` clipped if `clip_value_loss`.

    Args:
      params: `{"actor", "critic"}` parameters being optimised.
      data: `obs [B, o]` (already normalised), `actions [B, d]` (raw
        samples), `log_probs [B]` and `values [B]` (at collection),
        `advantages [B]`, `returns [B]`.
      state: supplies the config and dims only.

    Returns:
      `(loss, {policy_loss, value_loss, entropy, loss, approx_kl,
      clip_fraction})`.
    """
    config = state.config
    mean, log_std = policy_network(config, state.act_dim).apply(
        params["actor"], data["obs"])
    log_probs = pg.gaussian_log_prob(data["actions"], mean, log_std)
    entropy = jnp.mean(pg.gaussian_entropy(log_std))
    advantages = data["advantages"]
    if config.normalize_advantages:
        advantages = pg.normalize_advantages(advantages)
    policy_loss = pg.ppo_clip_loss(log_probs, data["log_probs"], advantages,
                                   config.clip_eps)
    values = value_network(config).apply(params["critic"], data["obs"])
    if config.clip_value_loss:
        value_loss = pg.clipped_value_loss(values, data["values"],
                                           data["returns"], config.clip_eps)
    else:
        value_loss = 0.5 * jnp.mean(jnp.square(values - data["returns"]))
    loss = (policy_loss + config.value_coef * value_loss
            - config.entropy_coef * entropy)
    log_ratio = jax.lax.stop_gradient(log_probs - data["log_probs"])
    aux = {"policy_loss": policy_loss, "value_loss": value_loss,
           "entropy": entropy, "loss": loss,
           "approx_kl": pg.approx_kl(log_ratio),
           "clip_fraction": jnp.mean(
               jnp.abs(jnp.expm1(log_ratio)) > config.clip_eps)}
    return loss, aux


def _sgd(state: PPOState, data: Dict[str, jax.Array], key: PRNGKey
         ) -> Tuple[Params, optax.OptState, Metrics]:
    """`num_epochs` passes over `data` (`[T, ...]` leaves), each a fresh
    permutation cut into `num_minibatches` gradient steps (one scan over
    the `num_epochs * num_minibatches` minibatches).

    Returns:
      `(params, opt_state, metrics averaged over all gradient steps)`.
    """
    config = state.config
    optimiser = _optimiser(config)
    length = data["obs"].shape[0]
    if length % config.num_minibatches or (
            config.normalize_advantages
            and length // config.num_minibatches < 2):
        raise ValueError(
            f"PPO rollouts need a multiple of num_minibatches="
            f"{config.num_minibatches} steps (>= 2 per minibatch with "
            f"normalize_advantages), got {length}.")
    grad_fn = jax.value_and_grad(minibatch_loss, has_aux=True)

    def minibatch_step(carry, indices):
        params, opt_state = carry
        batch = jax.tree_util.tree_map(lambda x: x[indices], data)
        (_, aux), grads = grad_fn(params, batch, state)
        params, opt_state = apply_gradients(optimiser, grads, opt_state,
                                            params)
        aux["grad_norm"] = optax.global_norm(grads)
        return (params, opt_state), aux

    # One permutation per epoch, cut into minibatches: [E * M, B] indices.
    orders = jax.vmap(lambda k: jax.random.permutation(k, length))(
        jax.random.split(key, config.num_epochs))
    (params, opt_state), aux = jax.lax.scan(
        minibatch_step, (state.params, state.opt_state),
        orders.reshape(config.num_epochs * config.num_minibatches, -1))
    return params, opt_state, jax.tree_util.tree_map(jnp.mean, aux)


def _scaled_rewards(state: PPOState, rollout: Rollout):
    """`(rewards [T], return_stats, running_return)`: the rollout's rewards
    divided by the running return std (after folding in the rollout's
    discounted returns) and clipped; unchanged without `normalize_rewards`."""
    config = state.config
    if not config.normalize_rewards:
        return rollout.rewards, state.return_stats, state.running_return
    running_return, returns = normalizer.discounted_returns(
        state.running_return, rollout.rewards, rollout.dones, config.discount)
    return_stats = normalizer.update(state.return_stats, returns)
    rewards = normalizer.scale(return_stats, rollout.rewards,
                               config.reward_clip)
    return rewards, return_stats, running_return


def update(state: PPOState, rollout: Rollout) -> Tuple[PPOState, Metrics]:
    """One PPO update on a rollout collected with `explore(state, ...)`.

    In order: reward scaling (advancing the return accumulator and
    statistics), observation normalisation with the frozen statistics,
    `V(next_observations)` and GAE (`rollout.values` as `V(s_t)`), the
    `num_epochs x num_minibatches` SGD steps, then the rollout's observations
    folded into the observation statistics. Pure; `jax.jit(update)` compiles
    once per rollout length.

    Args:
      state: the state that collected the rollout.
      rollout: `Rollout` of `T` steps, `T` a multiple of `num_minibatches`
        (the loops use `T = rollout_length`).

    Returns:
      `(new_state, metrics)`: float32 scalars; losses, `entropy`,
      `approx_kl`, `clip_fraction`, `grad_norm` averaged over the gradient
      steps; `explained_variance` of the rollout's values for the returns,
      `learning_rate` used, `action_std` (mean policy std before the update),
      `reward_scale` (the std rewards were divided by; 1 if not scaled).
    """
    check_rollout(rollout, state.obs_dim, state.act_dim)
    config = state.config
    key, sgd_key = jax.random.split(state.key)
    rewards, return_stats, running_return = _scaled_rewards(state, rollout)
    obs = normalize_observations(state, rollout.observations)
    next_values = value_network(config).apply(
        state.params["critic"],
        normalize_observations(state, rollout.next_observations))
    advantages, returns = pg.gae_advantages(
        rewards, rollout.values, next_values, rollout.discounts,
        rollout.dones, config.discount, config.gae_lambda)
    data = {"obs": obs, "actions": rollout.actions,
            "log_probs": rollout.log_probs, "values": rollout.values,
            "advantages": advantages, "returns": returns}
    params, opt_state, metrics = _sgd(state, data, sgd_key)
    obs_stats = state.obs_stats
    if config.normalize_observations:
        obs_stats = normalizer.update(obs_stats, rollout.observations)

    log_std = state.params["actor"]["params"]["log_std"]
    metrics.update(
        explained_variance=pg.explained_variance(rollout.values, returns),
        learning_rate=learning_rate(config, state.step),
        action_std=jnp.mean(jnp.exp(log_std)),
        reward_scale=(return_stats.std if config.normalize_rewards
                      else jnp.ones(())),
        scaled_reward_mean=jnp.mean(rewards),
    )
    new_state = state.replace(
        params=params, opt_state=opt_state, obs_stats=obs_stats,
        return_stats=return_stats, running_return=running_return,
        step=state.step + 1, key=key)
    return new_state, {k: jnp.asarray(v, jnp.float32)
                       for k, v in metrics.items()}
