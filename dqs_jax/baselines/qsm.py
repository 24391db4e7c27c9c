"""Q-Score Matching (Psenka et al., ICML 2024) with the agent interface.

A DDPM policy whose noise predictor is regressed onto the scaled action
gradient of the critic at noised replay actions (official code:
Alescontrela/score_matching_rl, `jaxrl5/agents/score_matching/
score_matching_learner.py`, `jaxrl5/networks/diffusion.py`, 48500fa):

  `t ~ U{0..T-1}`, `a_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps`,
  `g = mean_j grad_a Q_j(s, a_t)` (online critics, after their update),
  `L = mean_b mean_d (eps_theta(a_t, t, s) + M_q sg(g))^2`.

Since `eps = -sqrt(1 - abar_t) * score`, this aligns the policy's score with
`grad_a Q`; nothing is backpropagated through the sampler. The critics are
twin MSE critics with `y = r + gamma m min_j Qbar_j(s', a')`,
`a' = clip(pi(s') + N(0, target_noise^2), -1, 1)` (no noise clip), Polyak
every update. One `update` = critic step, then actor step, then Polyak.

Actions: the official `ddpm_sampler` (`ddpm.sample_eps_chain`: `x_T ~ N(0,
I)`, step noise `sampler_temperature`, clip to `[-1, 1]` every step); `act`
adds `N(0, exploration_noise^2)` and clips. The diffusion runs in the unit
box; env actions are `max_action * x` (the official code rescales the env to
`[-1, 1]` instead, the same for `max_action = 1`).

Deviations from the official code (docs/defaults.md, "Choices where the
sources disagree"; see `QSMConfig`):
- `act(..., deterministic=True)` must ignore the key, while the official
  evaluation samples the stochastic chain (no exploration noise). It runs
  that same chain with its randomness drawn from a key hashed from each
  observation's bits (as the DQS authors' QSM port), so the action is a
  fixed function of the observation alone. `noise_free_eval=True` instead
  runs the chain without step noise from `x_T = 0` (as the DQS agent);
  QSM's field `-M_q grad Q` is no noise-level score, so that chain is a
  poorer policy (it sends flat-Q states to the box corners; reach, horizon
  5, 2k steps: return -3.15 against -2.75 seeded, -2.77 official eval).
- Time features: fixed sinusoidal (`networks.NoisePredictionMLP`) instead of
  learnable Fourier features; same sizes (64 -> 128-128 Mish).
- Critic loss: mean over the ensemble (`losses.td_loss`) where the official
  code sums the two critics' means; Adam makes the factor 2 immaterial.
"""

import dataclasses
from typing import Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import critic, ddpm, losses
from dqs_jax.hashing import observation_keys
from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import ACTIVATIONS, CriticEnsemble, NoisePredictionMLP
from dqs_jax.optim import apply_gradients
from dqs_jax.score_matching import (BatchedEnsembleQFn, q_action_gradient,
                                    score_matching_loss_with_aux)
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch

@dataclasses.dataclass(frozen=True)
class QSMConfig:
    """Hyper-parameters of QSM (defaults: DQS-parity, official in comments).

    `num_diffusion_steps = 20` follows the DQS authors' QSM port
    (azizanlab/ReverseFlowMatching `configs/default.yaml`: T 20, M_q 50),
    the likeliest source of the DQS paper's QSM numbers; the official code
    uses 5. The VP schedule's total noise `-log abar_{T-1} = b_min +
    (b_max - b_min)/2` does not depend on T, so M_q = 50 carries over.
    Hashable: a static field of `QSMState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # noise net; official 512-512
    critic_hidden_dims: Tuple[int, ...] = (256, 256)  # official 512-512
    num_critics: int = 2  # official: twin critics
    actor_lr: float = 3e-4  # official 3e-4
    critic_lr: float = 3e-4  # official 3e-4
    # Cosine decay of the actor lr to 0 over this many updates; 0: constant
    # (DQS-parity). Official 2_000_000.
    actor_lr_decay_steps: int = 0
    discount: float = 0.99
    tau: float = 0.005
    num_diffusion_steps: int = 20  # T; official 5, DQS-lineage code 20
    # Official "vp" (b_min 0.1, b_max 10). "linear" is ddpm's b/T range,
    # not the official 1e-4..2e-2.
    beta_schedule: str = "vp"
    q_score_scale: float = 50.0  # M_q (paper's alpha); 120 quadruped/humanoid
    sampler_temperature: float = 1.0  # tau_s, step-noise scale; official 1.0
    target_noise: float = 0.1  # std added to a' in the TD target; official
    exploration_noise: float = 0.1  # std added by `act`; official
    max_action: float = 1.0
    time_embed_dim: int = 64  # official 64 (learnable Fourier features)
    time_mlp_dims: Tuple[int, ...] = (128, 128)  # official 128-128 Mish
    activation: str = "mish"  # noise net; official Mish (critic: ReLU)
    # Deterministic act: False, the stochastic chain seeded by the
    # observation (official evaluation distribution); True, x_T = 0, no noise.
    noise_free_eval: bool = False
    # Initialisation of every Dense layer of both networks
    # (`initializers.KERNEL_INITS`): Flax's default; "xavier_uniform" is
    # the official (jaxrl5) code's (docs/defaults.md, "Baselines").
    kernel_init: str = "lecun_normal"

    def __post_init__(self):
        check_kernel_init("QSMConfig.kernel_init", self.kernel_init)
        for name in ("hidden_dims", "critic_hidden_dims", "time_mlp_dims"):
            dims = tuple(int(w) for w in getattr(self, name))
            if (not dims and name != "time_mlp_dims") or min(
                    dims, default=1) < 1:
                raise ValueError(f"QSMConfig.{name} must be a sequence of "
                                 f"positive widths, got {dims}.")
            object.__setattr__(self, name, dims)
        bounds = {"num_critics": 1, "num_diffusion_steps": 1,
                  "actor_lr_decay_steps": 0, "sampler_temperature": 0.0,
                  "target_noise": 0.0, "exploration_noise": 0.0}
        for name, low in bounds.items():
            if not getattr(self, name) >= low:
                raise ValueError(f"QSMConfig.{name} must be >= {low}, got "
                                 f"{getattr(self, name)}.")
        for name in ("actor_lr", "critic_lr", "q_score_scale", "max_action"):
            if not getattr(self, name) > 0:
                raise ValueError(f"QSMConfig.{name} must be > 0, got "
                                 f"{getattr(self, name)}.")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"QSMConfig.discount must be in [0, 1], got "
                             f"{self.discount}.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"QSMConfig.tau must be in (0, 1], got "
                             f"{self.tau}.")
        if self.beta_schedule not in ddpm.BETA_SCHEDULES:
            raise ValueError(f"QSMConfig.beta_schedule must be one of "
                             f"{ddpm.BETA_SCHEDULES}, got "
                             f"{self.beta_schedule!r}.")
        if int(self.time_embed_dim) < 4 or int(self.time_embed_dim) % 2:
            raise ValueError("QSMConfig.time_embed_dim must be even and >= 4, "
                             f"got {self.time_embed_dim}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"QSMConfig.activation must be one of "
                             f"{sorted(ACTIVATIONS)}, got "
                             f"{self.activation!r}.")

    def schedule(self) -> ddpm.DDPMSchedule:
        """The `num_diffusion_steps`-step beta schedule."""
        return ddpm.DDPMSchedule(int(self.num_diffusion_steps),
                                 self.beta_schedule)


@flax.struct.dataclass
class QSMState:
    """Everything `update` changes, as one pytree; config and dims static."""

    actor_params: Params  # the noise-prediction network
    critic_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: QSMConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)


def actor_network(config: QSMConfig) -> NoisePredictionMLP:
    """The noise predictor `eps_theta(x [..., d], t, obs [..., o])`."""
    return NoisePredictionMLP(config.hidden_dims, config.time_embed_dim,
                              config.time_mlp_dims, config.activation,
                              kernel_init=config.kernel_init)


def critic_network(config: QSMConfig) -> CriticEnsemble:
    """The critic ensemble module (ReLU MLPs, as the official code)."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          kernel_init=config.kernel_init)


def _optimisers(config: QSMConfig):
    actor_lr = config.actor_lr
    if config.actor_lr_decay_steps > 0:
        actor_lr = optax.cosine_decay_schedule(config.actor_lr,
                                               config.actor_lr_decay_steps)
    return optax.adam(actor_lr), optax.adam(config.critic_lr)


def init(config: QSMConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> QSMState:
    """Fresh noise network, twin critics (target = copy) and optimisers.

    Args:
      config: hyper-parameters.
      obs_dim: `o`, flat observation size.
      act_dim: `d`, action size.
      key: PRNG key; the state keeps a split of it for later updates.

    Returns:
      A `QSMState` with `step == 0`.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, act_dim), jnp.float32)
    actor_params = actor_network(config).init(
        actor_key, act, jnp.zeros((1,), jnp.int32), obs)
    critic_params = critic_network(config).init(critic_key, obs, act)
    actor_opt, critic_opt = _optimisers(config)
    return QSMState(
        actor_params=actor_params,
        critic_params=critic_params,
        # A copy, not an alias, so that the state can be donated to jit.
        target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def sample_policy(config: QSMConfig, eps_fn: ddpm.EpsFn,
                  shape: Tuple[int, int], key: PRNGKey,
                  noise_free: bool = False) -> jax.Array:
    """Policy samples in the unit box, before exploration noise.

    Default: `x_T ~ N(0, I)` and the chain of `ddpm.sample_eps_chain` with
    step-noise scale `sampler_temperature` (the official `ddpm_sampler`).
    `noise_free`: `x_T = 0` and no step noise; independent of `key`.

    Args:
      config: hyper-parameters (schedule, temperature).
      eps_fn: `(x [N, d], t int32 scalar) -> [N, d]`.
      shape: `(N, d)`, static.
      key: PRNG key (unused when `noise_free`).
      noise_free: Python bool.

    Returns:
      `[N, d]` samples in `[-1, 1]`.
    """
    if noise_free:
        return ddpm.sample_eps_chain(eps_fn, jnp.zeros(shape, jnp.float32),
                                     config.schedule(), jax.random.PRNGKey(0),
                                     noise_scale=0.0)
    init_key, chain_key = jax.random.split(key)
    x_init = jax.random.normal(init_key, shape, jnp.float32)
    return ddpm.sample_eps_chain(eps_fn, x_init, config.schedule(), chain_key,
                                 noise_scale=config.sampler_temperature)


def _policy_eps_fn(config: QSMConfig, actor_params: Params,
                   observations: jax.Array) -> ddpm.EpsFn:
    net = actor_network(config)
    return lambda x, t: net.apply(actor_params, x, t, observations)


def _sample_unit_actions(config: QSMConfig, actor_params: Params,
                         observations: jax.Array, act_dim: int, key: PRNGKey,
                         noise_std: float) -> jax.Array:
    """Stochastic chain plus `N(0, noise_std^2)`, clipped: `[N, d]` in the
    unit box (the official `sample_actions` and TD-target actions)."""
    chain_key, noise_key = jax.random.split(key)
    shape = (observations.shape[0], act_dim)
    x = sample_policy(config, _policy_eps_fn(config, actor_params,
                                             observations), shape, chain_key)
    noise = noise_std * jax.random.normal(noise_key, shape, x.dtype)
    return jnp.clip(x + noise, -1.0, 1.0)


def _seeded_unit_actions(config: QSMConfig, actor_params: Params,
                         observations: jax.Array, act_dim: int) -> jax.Array:
    """The stochastic chain, each row run with `observation_keys`: `[N, d]`
    in the unit box, a function of each row's observation only."""
    def one(key, obs):
        eps_fn = _policy_eps_fn(config, actor_params, obs[None])
        return sample_policy(config, eps_fn, (1, act_dim), key)[0]

    return jax.vmap(one)(observation_keys(observations), observations)


def actor_step(state: QSMState, q_fn: BatchedEnsembleQFn,
               observations: jax.Array, actions: jax.Array, key: PRNGKey
               ) -> Tuple[QSMState, Metrics]:
    """One Adam step of the noise network on the QSM loss against `q_fn`.

    Only `actor_params` and `actor_opt_state` change (not `key`, `step`).

    Args:
      state: training state.
      q_fn: `(observations [B, o], env_actions [B, d]) -> [B, E]`; `update`
        passes the freshly updated online critics, tests a fixed critic.
      observations: `[B, o]`.
      actions: `[B, d]` replay actions in `[-max_action, max_action]`.
      key: PRNG key for the diffusion times and noise.

    Returns:
      `(state, {'actor_loss', 'q_grad_norm', 'eps_norm', 'actor_grad_norm'})`.
    """
    config = state.config
    scale = config.max_action
    net = actor_network(config)
    actor_opt, _ = _optimisers(config)

    def unit_q(obs, x):  # Q as a function of the unit-box action.
        return q_fn(obs, scale * x)

    def objective(params):
        return score_matching_loss_with_aux(
            lambda x, t, obs: net.apply(params, x, t, obs), unit_q,
            config.schedule(), observations, actions / scale, key,
            config.q_score_scale)

    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(
        state.actor_params)
    params, opt_state = apply_gradients(actor_opt, grads,
                                        state.actor_opt_state,
                                        state.actor_params)
    metrics = {"actor_loss": loss, "actor_grad_norm": optax.global_norm(grads),
               **aux}
    return state.replace(actor_params=params,
                         actor_opt_state=opt_state), metrics


def update(state: QSMState, batch: Batch) -> Tuple[QSMState, Metrics]:
    """One QSM update: critic step, actor step (updated critics), Polyak.

    Pure; `jax.jit(update)` compiles once per batch shape. Key use:
    `key, target_key, actor_key = split(state.key, 3)`.

    Args:
      state: training state.
      batch: `Batch` of `B` transitions, actions in
        `[-max_action, max_action]`.

    Returns:
      `(new_state, metrics)`, metrics a flat dict of float32 scalars.
    """
    check_batch(batch, state.obs_dim, state.act_dim)
    config = state.config
    critic_net = critic_network(config)
    _, critic_opt = _optimisers(config)
    key, target_key, actor_key = jax.random.split(state.key, 3)

    # Critic: a' from the (pre-update) policy plus N(0, target_noise^2).
    next_actions = config.max_action * _sample_unit_actions(
        config, state.actor_params, batch.next_observations, state.act_dim,
        target_key, config.target_noise)

    critic_params, critic_opt_state, critic_metrics = critic.critic_step(
        critic_net, critic_opt, state.critic_params, state.critic_opt_state,
        state.target_critic_params, batch, next_actions, config.discount)

    # Actor: score matching against the updated online critics.
    state, actor_metrics = actor_step(
        state, lambda o, a: critic_net.apply(critic_params, o, a),
        batch.observations, batch.actions, actor_key)

    target_params = optax.incremental_update(
        critic_params, state.target_critic_params, config.tau)
    new_state = state.replace(
        critic_params=critic_params,
        target_critic_params=target_params,
        critic_opt_state=critic_opt_state,
        step=state.step + 1,
        key=key,
    )
    metrics = {**critic_metrics, **actor_metrics}
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, metrics


def act(state: QSMState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions of the diffusion policy.

    Args:
      state: training state.
      observations: `[N, o]`.
      key: PRNG key (unused when `deterministic`).
      deterministic: a Python bool. If True, no exploration noise and no use
        of `key`: the chain seeded by each observation (`observation_keys`),
        or with `noise_free_eval` the noise-free chain from `x_T = 0`.

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    config = state.config
    params, act_dim = state.actor_params, state.act_dim
    if deterministic and config.noise_free_eval:
        x = sample_policy(config, _policy_eps_fn(config, params, observations),
                          (observations.shape[0], act_dim), key, True)
    elif deterministic:
        x = _seeded_unit_actions(config, params, observations, act_dim)
    else:
        x = _sample_unit_actions(config, params, observations, act_dim, key,
                                 config.exploration_noise)
    return config.max_action * x
