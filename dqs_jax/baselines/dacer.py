"""DACER: diffusion actor-critic with entropy regulator (Wang et al., NeurIPS
2024; official JAX code `happy-yan/DACER-Diffusion-with-Online-RL`,
`relax/{algorithm,network}/dacer.py`, `relax/utils/diffusion.py`).

Policy: the DDPM posterior chain (`ddpm.sample_posterior_chain`, VP betas,
`T = num_diffusion_steps`) from `x_T ~ N(0, I)` with a noise predictor
`eps_theta(x_t, t, s)`, then exploration noise of std `lambda alpha`:
`a = max_action * clip(chain_theta(s) + lambda alpha z, -1, 1)`, a
reparameterised actor (gradients flow through all `T` steps). One `update`,
every gradient from the pre-update state as in the official code:
- Critic: `y = reward_scale r + gamma m min_j Qbar_j(s', a')`, `a' ~ pi(.|s')`
  noise included; twin MSE critics (`losses.td_loss`).
- Actor, when `step % policy_delay == 0` (1st, 3rd, ... update, official):
  minimise `-mean_B min_j Q_j(s, a_theta(s))` (pre-update critics; `a_theta`
  drawn as when acting, noise and clip included, as official `get_action`),
  then Polyak the target critics toward the updated critics.
- Temperature: `H_hat` = mean over `M = entropy_num_states` states of the
  GMM entropy (`gmm_entropy.gmm_entropy`, `gmm_components` full-covariance
  components) of `entropy_num_samples` actions in `[-1, 1]^d` (noise
  included); one Adam step on `L = -log_alpha (H_target - H_hat)` every
  `entropy_update_interval` updates. `dL/dlog_alpha = H_hat - H_target`:
  alpha, hence the exploration noise, rises when the entropy is below target.
  No entropy term enters the critic target or the actor loss.

Entropy cost. Official: all B = 256 batch states at once every 10k updates
(51,200 chain samples, ~40 updates' worth), on the host. Here the M states
are gathered one per update (each batch's first state, a uniform replay
state) over the last M updates of each interval, and alpha steps on the
interval's last update (`step % interval == interval - 1`; official `== 0`,
from step 0). A `lax.cond` skips the work outside the window, but under
`vmap` over seeds the condition is batched and both branches run every
update: one state (200 chain samples) is a fraction of a B = 256 update,
where a snapshot of M states would cost M times that on every update.
Unbatched, only the window's updates pay (256 of every 10k updates).
Timings: docs/performance.md.

`act(deterministic=True)` runs the chain from the fixed `x_T = 0` (the
prior's mode) without step noise or exploration noise: a function of the
observation alone. (Official evaluation sets `alpha -> 0` but keeps a random
`x_T` and step noise keyed by a hash of the whole observation batch.)

DQS-parity deviations from the official code (see `DACERConfig`): plain twin
MSE ReLU critics instead of the DSAC-T distributional Mish critics; 2x256
MLPs and lr 3e-4 instead of 3x256 and 1e-4; reward scale 1 instead of 0.2.
"""

import dataclasses
import math
from typing import Optional, Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import critic, ddpm, losses
from dqs_jax.gmm_entropy import policy_entropy
from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import ACTIVATIONS, CriticEnsemble, NoisePredictionMLP
from dqs_jax.optim import apply_gradients
from dqs_jax.temperature import temperature_step
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch


@dataclasses.dataclass(frozen=True)
class DACERConfig:
    """Hyper-parameters of DACER (defaults and their sources:
    docs/defaults.md, "Baselines").

    `target_entropy=None` means `-0.9 * act_dim` (official). The temperature
    `alpha = exp(log_alpha)` scales the exploration noise std
    `noise_scale * alpha`; official `log_alpha_0 = 1.2` (alpha ~ 3.32).
    `H_hat` averages `entropy_num_states` states, one per update over the
    last `min(entropy_num_states, entropy_update_interval)` updates of each
    interval (module docstring).
    Hashable: a static field of `DACERState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # denoiser; official 3x256
    critic_hidden_dims: Tuple[int, ...] = (256, 256)  # official 3x256
    num_critics: int = 2
    actor_lr: float = 3e-4  # official 1e-4
    critic_lr: float = 3e-4  # official 1e-4
    discount: float = 0.99
    tau: float = 0.005
    policy_delay: int = 2  # actor + target-critic updates every 2nd update
    num_diffusion_steps: int = 20
    beta_schedule: str = "vp"
    noise_scale: float = 0.1  # lambda; official 0.15 Humanoid/HalfCheetah
    init_temperature: float = math.exp(1.2)  # official log_alpha_0 = 1.2
    temperature_lr: float = 0.03
    target_entropy: Optional[float] = None  # None: -0.9 * act_dim
    entropy_update_interval: int = 10_000  # updates between alpha steps
    entropy_num_samples: int = 200  # actions per state for the GMM fit
    entropy_num_states: int = 256  # states per H_hat (official: batch, 256)
    gmm_components: int = 3
    gmm_iters: int = 20  # fixed EM rounds (official: sklearn to tol 1e-3)
    reward_scale: float = 1.0  # official 0.2
    max_action: float = 1.0
    activation: str = "mish"  # denoiser; critics are ReLU (DQS-parity)
    time_embed_dim: int = 16
    time_mlp_dims: Tuple[int, ...] = (32, 16)  # official 16 -> 32 -> 16
    # Initialisation of every Dense layer of both networks
    # (`initializers.KERNEL_INITS`): Flax's default; "haiku" (truncated
    # normal, sd 0.88/sqrt(fan_in)) is the official code's
    # (docs/defaults.md, "Baselines").
    kernel_init: str = "lecun_normal"

    def __post_init__(self):
        check_kernel_init("DACERConfig.kernel_init", self.kernel_init)
        for name in ("hidden_dims", "critic_hidden_dims", "time_mlp_dims"):
            object.__setattr__(self, name,
                               tuple(int(w) for w in getattr(self, name)))
        counts = ("num_critics", "policy_delay", "num_diffusion_steps",
                  "entropy_update_interval", "entropy_num_states",
                  "entropy_num_samples", "gmm_components")
        finite = self.target_entropy is None or math.isfinite(
            self.target_entropy)
        checks = [(n, min(getattr(self, n), default=0) >= 1,
                   "a non-empty sequence of positive widths")
                  for n in ("hidden_dims", "critic_hidden_dims")]
        checks += [("time_mlp_dims", min(self.time_mlp_dims, default=1) >= 1,
                    "a sequence of positive widths")]
        checks += [(n, not isinstance(getattr(self, n), bool) and int(
            getattr(self, n)) == getattr(self, n) >= 1, "an integer >= 1")
                   for n in counts]
        checks += [(n, getattr(self, n) > 0, "> 0") for n in (
            "actor_lr", "critic_lr", "temperature_lr", "init_temperature",
            "max_action", "reward_scale")]
        checks += [
            ("entropy_num_samples",
             self.entropy_num_samples >= self.gmm_components,
             ">= gmm_components"),
            ("gmm_iters", self.gmm_iters >= 0, ">= 0"),
            ("noise_scale", self.noise_scale >= 0, ">= 0"),
            ("discount", 0.0 <= self.discount <= 1.0, "in [0, 1]"),
            ("tau", 0.0 < self.tau <= 1.0, "in (0, 1]"),
            ("beta_schedule", self.beta_schedule in ddpm.BETA_SCHEDULES,
             f"one of {ddpm.BETA_SCHEDULES}"),
            ("activation", self.activation in ACTIVATIONS,
             f"one of {sorted(ACTIVATIONS)}"),
            ("time_embed_dim",
             self.time_embed_dim >= 4 and self.time_embed_dim % 2 == 0,
             "even and >= 4"),
            ("target_entropy", finite, "None or finite"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"DACERConfig.{name} must be {rule}, got "
                                 f"{getattr(self, name)!r}.")

    def entropy_target(self, act_dim: int) -> float:
        """`H_target` for `act_dim`-dimensional actions (default `-0.9 d`)."""
        if self.target_entropy is None:
            return -0.9 * act_dim
        return float(self.target_entropy)

    @property
    def schedule(self) -> ddpm.DDPMSchedule:
        """The chain's beta schedule (VP: `b_min 0.1`, `b_max 10`)."""
        return ddpm.DDPMSchedule(self.num_diffusion_steps, self.beta_schedule)


@flax.struct.dataclass
class DACERState:
    """Everything `update` changes, as one pytree; config and dims static."""

    actor_params: Params  # the noise predictor eps_theta
    critic_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_temperature: jax.Array  # float32 scalar, log alpha
    temperature_opt_state: optax.OptState
    entropy: jax.Array  # float32 scalar, the last H_hat
    entropy_sum: jax.Array  # float32 scalar, this window's running sum
    last_actor_loss: jax.Array  # float32 scalar, of the last actor step
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: DACERConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)

    @property
    def temperature(self) -> jax.Array:
        """`alpha = exp(log_temperature)`."""
        return jnp.exp(self.log_temperature)


def actor_network(config: DACERConfig) -> NoisePredictionMLP:
    """The noise predictor `eps_theta(x [..., d], t [...], obs [..., o])`."""
    return NoisePredictionMLP(config.hidden_dims, config.time_embed_dim,
                              config.time_mlp_dims, config.activation,
                              kernel_init=config.kernel_init)


def critic_network(config: DACERConfig) -> CriticEnsemble:
    """The critic ensemble (ReLU MLPs)."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          kernel_init=config.kernel_init)


def _optimisers(config: DACERConfig):
    return (optax.adam(config.actor_lr), optax.adam(config.critic_lr),
            optax.adam(config.temperature_lr))


def sample_actions(config: DACERConfig, actor_params: Params,
                   observations: jax.Array, key: PRNGKey,
                   temperature: jax.Array, act_dim: int,
                   deterministic: bool = False) -> jax.Array:
    """`clip(chain(s, x_T) + noise_scale * alpha * z, -1, 1)`: the policy
    `pi(.|s)` on normalised actions, differentiable in `actor_params`
    through all `T` chain steps.

    Args:
      config: hyper-parameters.
      actor_params: the noise predictor's parameters.
      observations: `[N, o]`.
      key: PRNG key of `x_T ~ N(0, I)`, the step noise and `z`.
      temperature: scalar `alpha`.
      act_dim: `d`.
      deterministic: static; True: `x_T = 0`, no step noise, `alpha = 0`,
        so the result does not depend on `key`.

    Returns:
      `[N, d]` actions in `[-1, 1]` (times `max_action` for the env).
    """
    net = actor_network(config)
    policy_key, noise_key = jax.random.split(key)
    x_0 = ddpm.sample_posterior_policy(
        lambda x, t, obs: net.apply(actor_params, x, t, obs), observations,
        act_dim, config.schedule, policy_key, deterministic=deterministic)
    if deterministic:
        return x_0
    z = jax.random.normal(noise_key, x_0.shape, x_0.dtype)
    return jnp.clip(x_0 + config.noise_scale * temperature * z, -1.0, 1.0)


def init(config: DACERConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> DACERState:
    """A fresh `DACERState` for `o = obs_dim`, `d = act_dim` (`step == 0`,
    `temperature == init_temperature`); it keeps a split of `key`."""
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, act_dim), jnp.float32)
    actor_params = actor_network(config).init(
        actor_key, act, jnp.zeros((1,), jnp.int32), obs)
    critic_params = critic_network(config).init(critic_key, obs, act)
    log_temperature = jnp.asarray(math.log(config.init_temperature),
                                  jnp.float32)
    actor_opt, critic_opt, temperature_opt = _optimisers(config)
    return DACERState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        log_temperature=log_temperature,
        temperature_opt_state=temperature_opt.init(log_temperature),
        entropy=jnp.zeros((), jnp.float32),
        entropy_sum=jnp.zeros((), jnp.float32),
        last_actor_loss=jnp.zeros((), jnp.float32),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def estimate_entropy(state: DACERState, observations: jax.Array,
                     key: PRNGKey) -> jax.Array:
    """`[S]` GMM entropies (no gradient), one per state of `observations
    [S, o]`, each of `entropy_num_samples` actions of `state`'s policy (noise
    included, in `[-1, 1]^d`): the official `estimate_entropy`."""
    config = state.config

    def sample_fn(obs, sample_key):
        return sample_actions(config, state.actor_params, obs, sample_key,
                              state.temperature, state.act_dim)

    return policy_entropy(sample_fn, observations, config.entropy_num_samples,
                          key, config.gmm_components, config.gmm_iters)


def actor_loss(state: DACERState, actor_params: Params,
               critic_params: Params, observations: jax.Array,
               key: PRNGKey) -> jax.Array:
    """`-mean_B min_j Q_j(s, a_theta(s))` for `observations [B, o]`:
    `a_theta` is the acting policy's reparameterised sample under `key`
    (chain, exploration noise with `state`'s alpha, clip), differentiable in
    `actor_params` through all `T` steps; `critic_params` are held fixed."""
    config = state.config
    temperature = jax.lax.stop_gradient(state.temperature)
    actions = config.max_action * sample_actions(
        config, actor_params, observations, key, temperature, state.act_dim)
    q = critic_network(config).apply(critic_params, observations, actions)
    chex.assert_rank(q, 2)
    return -jnp.mean(jnp.min(q, axis=-1))


def _critic_step(state: DACERState, batch: Batch, key: PRNGKey):
    """One Adam step of the twin MSE critics on the DACER target."""
    config = state.config
    critic_net = critic_network(config)
    next_actions = config.max_action * sample_actions(
        config, state.actor_params, batch.next_observations, key,
        state.temperature, state.act_dim)

    params, opt_state, m = critic.critic_step(
        critic_net, _optimisers(config)[1], state.critic_params,
        state.critic_opt_state, state.target_critic_params, batch,
        next_actions, config.discount, reward_scale=config.reward_scale)
    aux = {"q_mean": m["q_mean"], "target_mean": m["target_q_mean"]}
    return params, opt_state, m["critic_loss"], aux, m["critic_grad_norm"]


def _actor_and_target_step(state: DACERState, critic_params: Params,
                           observations: jax.Array, key: PRNGKey):
    """Every `policy_delay`-th update (`step % policy_delay == 0`): an actor
    step against the pre-update critics, then Polyak the target critics
    toward `critic_params` (the updated ones). Returns `(actor_params,
    actor_opt_state, target_critic_params, actor_loss)`, the loss that of
    the last actor step (the other branch computes nothing: under `vmap`
    both run)."""
    config = state.config

    def loss_fn(params):
        return actor_loss(state, params, state.critic_params, observations,
                          key)

    def step(operands):
        actor_params, opt_state, target, _ = operands
        loss, grads = jax.value_and_grad(loss_fn)(actor_params)
        actor_params, opt_state = apply_gradients(
            _optimisers(config)[0], grads, opt_state, actor_params)
        target = optax.incremental_update(critic_params, target, config.tau)
        return actor_params, opt_state, target, loss

    operands = (state.actor_params, state.actor_opt_state,
                state.target_critic_params, state.last_actor_loss)
    if config.policy_delay == 1:  # Static: every update steps the actor.
        return step(operands)
    return jax.lax.cond(state.step % config.policy_delay == 0, step,
                        lambda operands: operands, operands)


def _temperature_step(state: DACERState, observation: jax.Array,
                      key: PRNGKey):
    """Adds `observation`'s (`[1, o]`) entropy to the window's sum on the
    last `M` updates of each interval; on the interval's last update,
    `H_hat = sum / M` and one Adam step on `L = -log_alpha (H_target -
    H_hat)`. Returns `(log_temperature, temperature_opt_state, entropy,
    entropy_sum)`."""
    config = state.config
    interval = config.entropy_update_interval
    window = min(config.entropy_num_states, interval)
    phase = state.step % interval
    entropy = jax.lax.cond(
        phase >= interval - window,
        lambda: estimate_entropy(state, observation, key)[0],
        lambda: jnp.zeros((), jnp.float32))
    entropy_sum = state.entropy_sum + entropy
    mean = entropy_sum / window
    stepped = temperature_step(_optimisers(config)[2], state.log_temperature,
                               state.temperature_opt_state, mean,
                               config.entropy_target(state.act_dim))[:2]
    due = phase == interval - 1
    new = (*stepped, mean, jnp.zeros((), jnp.float32))
    old = (state.log_temperature, state.temperature_opt_state, state.entropy,
           entropy_sum)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(due, a, b), new, old)


def update(state: DACERState, batch: Batch) -> Tuple[DACERState, Metrics]:
    """One DACER update: critic; actor and target critics every
    `policy_delay` updates; entropy window and temperature (module
    docstring). All from the pre-update state.

    Pure; `jax.jit(update)` compiles once per batch shape.

    Args:
      state: current training state.
      batch: `Batch` of `B` transitions (`[B, o]`, `[B, d]`, `[B]`, `[B]`,
        `[B, o]`), actions in `[-max_action, max_action]`.

    Returns:
      `(new_state, metrics)`, metrics a flat dict of float32 scalars, the
      same keys every call: `temperature` and `exploration_std` are the
      values used in this update, `entropy` the last completed `H_hat`
      and `actor_loss` the last actor step's loss (0 before the first).
    """
    check_batch(batch, state.obs_dim, state.act_dim)
    config = state.config
    key, next_key, actor_key, entropy_key = jax.random.split(state.key, 4)
    critic_params, critic_opt_state, critic_loss, aux, critic_grad_norm = (
        _critic_step(state, batch, next_key))
    actor_params, actor_opt_state, target_critic_params, loss = (
        _actor_and_target_step(state, critic_params, batch.observations,
                               actor_key))
    log_temperature, temperature_opt_state, entropy, entropy_sum = (
        _temperature_step(state, batch.observations[:1], entropy_key))

    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=target_critic_params,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        log_temperature=log_temperature,
        temperature_opt_state=temperature_opt_state,
        entropy=entropy,
        entropy_sum=entropy_sum,
        last_actor_loss=loss,
        step=state.step + 1,
        key=key,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": loss,
        "q_mean": aux["q_mean"],
        "target_q_mean": aux["target_mean"],
        "critic_grad_norm": critic_grad_norm,
        "temperature": state.temperature,
        "exploration_std": config.noise_scale * state.temperature,
        "entropy": entropy,
        "target_entropy": config.entropy_target(state.act_dim),
    }
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, metrics


def act(state: DACERState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """`[N, d]` actions in `[-max_action, max_action]` for `observations
    [N, o]`: the exploring policy `pi(.|s)`, or with `deterministic` (a
    static Python bool) the noise-free chain from `x_T = 0` with `alpha = 0`,
    which ignores `key` (`sample_actions`)."""
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    return state.config.max_action * sample_actions(
        state.config, state.actor_params, observations, key,
        state.temperature, state.act_dim, deterministic)
