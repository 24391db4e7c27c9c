"""DIPO: Diffusion Policy for online RL (Yang et al., 2023).

A DDPM policy (noise-prediction network, cosine betas, `T = 100`) is fitted
by plain denoising to *improved* actions `a*` kept in a "diffusion buffer",
here `ReplayBuffer.action_targets` (initialised to the executed actions).
One update (official `DiPo.train`; the code read: docs/agents.md,
"Sources"):

1. Critic, uniform batch: `a' ~ pi_bar(.|s')` (EMA policy, stochastic chain),
   `y = r + gamma m min_j Qbar_j(s', a')`, loss `sum_j mean_b (Q_j - y)^2`,
   grad-norm clip, Adam. `m` is the env's discount (0 at true termination
   only; the official code also zeroes it at time limits).
2. Action gradient on a SEPARATE uniform batch of slots, from
   `a* = action_targets[idx]` (`improve_actions`): `action_gradient_steps`
   times, the gradient of `-sum_b min_j Q_j(s_b, a*_b)` (updated critics),
   clipped to global norm `action_grad_norm_ratio * d` over the whole
   `[B, d]` tensor, a step of a fresh Adam(`action_lr`, eps 1e-5) (official)
   or plain ascent (paper, Alg. 1), clamp to `[-1, 1]`. The result is
   written back at exactly those slots, as the paper says (the official
   `np.copyto(buf[idxs], ...)` writes into a fancy-index copy, so there every
   update restarts from the behaviour actions).
3. Policy: `ddpm.noise_prediction_loss` on `(s, a*)`, grad-norm clip, Adam.
4. Polyak critic target every update; EMA policy every
   `policy_target_every` updates (the first one included).

The training loops call `replay_update` (via `agents.train_step`);
`update(state, batch)` runs the same core on one batch, improving the
batch's executed actions without write-back. Acting runs the posterior chain
(`T` network calls, no extra exploration noise; deterministic: `x_T = 0`, no
step noise); timings: docs/performance.md. The policy works in
`[-1, 1]^d`, scaled by `max_action`; the critic sees actions in env units.
"""

import dataclasses
from typing import Callable, Dict, Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import critic, ddpm, replay
from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import ACTIVATIONS, CriticEnsemble, NoisePredictionMLP
from dqs_jax.optim import apply_gradients
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch

# All of DIPO's Adam optimisers (the official code and its README).
ADAM_EPS = 1e-5
ACTION_OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class DIPOConfig:
    """Hyper-parameters of DIPO (hashable: a static field of `DIPOState`).

    Defaults (docs/defaults.md, "Baselines"): official code (`main.py`,
    the official repository's README table) except the network widths,
    which follow DQS parity (2x256; official code 3x256 Mish for both nets,
    its README 2x256). `action_grad_norm_ratio = 0` or `max_grad_norm = 0`
    turns that clip off (as in the official code). `policy_ema` is the EMA
    rate of the target policy (official: the same `tau`).
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # noise-prediction network
    critic_hidden_dims: Tuple[int, ...] = (256, 256)
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    policy_ema: float = 0.005
    policy_target_every: int = 1
    num_diffusion_steps: int = 100
    beta_schedule: str = "cosine"
    action_lr: float = 0.03
    action_gradient_steps: int = 20
    action_grad_norm_ratio: float = 0.1
    action_optimizer: str = "adam"
    max_grad_norm: float = 2.0
    max_action: float = 1.0
    activation: str = "mish"  # noise-prediction network
    critic_activation: str = "mish"
    time_embed_dim: int = 32
    time_mlp_dims: Tuple[int, ...] = (256, 32)
    # Initialisation of every Dense layer of both networks
    # (`initializers.KERNEL_INITS`): Flax's default; "dipo" (N(0, 1/(4
    # fan_in))) is the official code's (docs/defaults.md, "Baselines").
    kernel_init: str = "lecun_normal"

    def __post_init__(self):
        check_kernel_init("DIPOConfig.kernel_init", self.kernel_init)
        for name in ("hidden_dims", "critic_hidden_dims", "time_mlp_dims"):
            dims = tuple(int(w) for w in getattr(self, name))
            if (not dims and name != "time_mlp_dims") or min(dims,
                                                             default=1) < 1:
                raise ValueError(f"DIPOConfig.{name} must be a sequence of "
                                 f"positive widths, got {dims}.")
            object.__setattr__(self, name, dims)
        rules = (
            (("num_critics", "policy_target_every", "num_diffusion_steps",
              "action_gradient_steps"), lambda v: v >= 1, ">= 1"),
            (("actor_lr", "critic_lr", "action_lr", "max_action"),
             lambda v: v > 0, "> 0"),
            (("action_grad_norm_ratio", "max_grad_norm"), lambda v: v >= 0,
             ">= 0"),
            (("discount",), lambda v: 0 <= v <= 1, "in [0, 1]"),
            (("tau", "policy_ema"), lambda v: 0 < v <= 1, "in (0, 1]"),
            (("time_embed_dim",), lambda v: v >= 4 and v % 2 == 0,
             "even and >= 4"),
            (("beta_schedule",), lambda v: v in ddpm.BETA_SCHEDULES,
             f"one of {ddpm.BETA_SCHEDULES}"),
            (("action_optimizer",), lambda v: v in ACTION_OPTIMIZERS,
             f"one of {ACTION_OPTIMIZERS}"),
            (("activation", "critic_activation"), lambda v: v in ACTIVATIONS,
             f"one of {sorted(ACTIVATIONS)}"),
        )
        for names, ok, what in rules:
            for name in names:
                if not ok(getattr(self, name)):
                    raise ValueError(f"DIPOConfig.{name} must be {what}, got "
                                     f"{getattr(self, name)!r}.")

    @property
    def schedule(self) -> ddpm.DDPMSchedule:
        """The policy's `num_diffusion_steps`-step beta schedule."""
        return ddpm.DDPMSchedule(self.num_diffusion_steps, self.beta_schedule)


@flax.struct.dataclass
class DIPOState:
    """Everything an update changes, as one pytree; config and dims static."""

    policy_params: Params
    target_policy_params: Params  # the EMA policy pi_bar
    critic_params: Params
    target_critic_params: Params
    policy_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: DIPOConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)


def policy_network(config: DIPOConfig) -> NoisePredictionMLP:
    """`eps_theta(x [..., d], t, obs [..., o]) -> [..., d]`."""
    return NoisePredictionMLP(config.hidden_dims, config.time_embed_dim,
                              config.time_mlp_dims, config.activation,
                              kernel_init=config.kernel_init)


def critic_network(config: DIPOConfig) -> CriticEnsemble:
    """The twin critic `[..., o], [..., d] -> [..., E]`."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          config.critic_activation, config.kernel_init)


def _with_clip(rule: optax.GradientTransformation, max_norm: float
               ) -> optax.GradientTransformation:
    """`rule` after a global-norm clip at `max_norm` (none if 0)."""
    return optax.chain(optax.clip_by_global_norm(max_norm), rule) if (
        max_norm > 0) else rule


def _optimisers(config: DIPOConfig):
    return tuple(_with_clip(optax.adam(lr, eps=ADAM_EPS), config.max_grad_norm)
                 for lr in (config.actor_lr, config.critic_lr))


def init(config: DIPOConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> DIPOState:
    """Fresh networks, optimiser states and target copies (`step == 0`).

    Args:
      config: hyper-parameters.
      obs_dim: `o`.
      act_dim: `d`.
      key: PRNG key; the state keeps a split of it.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, policy_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, act_dim), jnp.float32)
    policy_params = policy_network(config).init(
        policy_key, act, jnp.zeros((1,), jnp.int32), obs)
    critic_params = critic_network(config).init(critic_key, obs, act)
    policy_opt, critic_opt = _optimisers(config)
    copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # noqa: E731
    return DIPOState(
        policy_params=policy_params,
        target_policy_params=copy(policy_params),  # copies: donatable
        critic_params=critic_params,
        target_critic_params=copy(critic_params),
        policy_opt_state=policy_opt.init(policy_params),
        critic_opt_state=critic_opt.init(critic_params),
        step=jnp.zeros((), jnp.int32), key=key, config=config,
        obs_dim=obs_dim, act_dim=act_dim)


def sample_actions(config: DIPOConfig, act_dim: int, policy_params: Params,
                   observations: jax.Array, key: PRNGKey,
                   deterministic: bool = False) -> jax.Array:
    """`[N, d]` actions in `[-max_action, max_action]` of the DDPM policy
    `policy_params` at `observations [N, o]` (official `Diffusion.sample`:
    posterior chain from `x_T ~ N(0, I)` with `noise_ratio` 1, or from
    `x_T = 0` with no step noise and `key` unused when `deterministic`, a
    Python bool; then clamp)."""
    net = policy_network(config)
    x = ddpm.sample_posterior_policy(
        lambda x, t, obs: net.apply(policy_params, x, t, obs), observations,
        act_dim, config.schedule, key, deterministic=deterministic)
    return config.max_action * x


def improve_actions(q_fn: Callable[[jax.Array, jax.Array], jax.Array],
                    observations: jax.Array, actions: jax.Array, *,
                    lr: float, num_steps: int, max_norm: float,
                    optimizer: str = "adam"
                    ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """DIPO's action gradient (paper Alg. 1 line 10; official
    `DiPo.action_gradient`), `num_steps` steps as one `lax.scan`.

    Each step: `g = grad_a sum_b q_fn(s, a)_b`, `g <- g min(1, max_norm /
    ||g||)` (global norm of the whole `[B, d]` tensor; no clip if
    `max_norm == 0`), then `a <- a + lr g` ("sgd") or an Adam(lr, eps 1e-5)
    step on the loss `-sum_b q_fn` with moments fresh at every call
    ("adam"), then `a <- clip(a, -1, 1)`.

    Args:
      q_fn: `(obs [B, o], actions [B, d]) -> [B]`, e.g. min over critics.
      observations: `[B, o]`.
      actions: `[B, d]` start points in `[-1, 1]`.
      lr: the step size `eta`.
      num_steps: static number of steps `K >= 1`.
      max_norm: the gradient clip (`ratio * d` in DIPO).
      optimizer: "adam" (official code) or "sgd" (paper).

    Returns:
      `(improved [B, d] in [-1, 1], {'action_grad_norm': norm of the first
      unclipped gradient, 'action_q_gain': mean q_fn(improved) - q_fn(start),
      'action_shift': mean row-wise L2 distance moved})`.
    """
    chex.assert_rank([observations, actions], 2)
    chex.assert_equal_shape_prefix([observations, actions], prefix_len=1)
    if optimizer not in ACTION_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {ACTION_OPTIMIZERS}, got "
                         f"{optimizer!r}.")
    opt = _with_clip(optax.adam(lr, eps=ADAM_EPS) if optimizer == "adam"
                     else optax.sgd(lr), max_norm)

    def loss(a):
        q = q_fn(observations, a)
        chex.assert_shape(q, actions.shape[:1])
        return -jnp.sum(q), q

    def step(carry, _):
        a, opt_state = carry
        (_, q), grad = jax.value_and_grad(loss, has_aux=True)(a)
        a, opt_state = apply_gradients(opt, grad, opt_state, a)
        return (jnp.clip(a, -1.0, 1.0), opt_state), (q, optax.global_norm(
            grad))

    (improved, _), (qs, norms) = jax.lax.scan(
        step, (actions, opt.init(actions)), None, length=num_steps)
    gain = jnp.mean(q_fn(observations, improved) - qs[0])
    shift = jnp.mean(jnp.linalg.norm(improved - actions, axis=-1))
    return improved, {"action_grad_norm": norms[0], "action_q_gain": gain,
                      "action_shift": shift}


def replay_indices(buffer: replay.ReplayBuffer, key: PRNGKey,
                   batch_size: int) -> Tuple[jax.Array, jax.Array]:
    """`(critic_indices [B], improve_indices [B])`: the two independent
    uniform batches of slots `replay_update` uses with this `key`."""
    critic_key, improve_key = jax.random.split(key)
    return (replay.sample_indices(buffer, critic_key, batch_size),
            replay.sample_indices(buffer, improve_key, batch_size))


def _critic_step(state: DIPOState, batch: Batch, key: PRNGKey):
    """Step 1: TD learning with `a' ~ pi_bar(.|s')` (stochastic chain).

    Returns:
      `(critic_params, critic_opt_state, metrics)`.
    """
    config = state.config
    critic_net = critic_network(config)
    next_actions = sample_actions(config, state.act_dim,
                                  state.target_policy_params,
                                  batch.next_observations, key)

    # td_loss averages over the ensemble; DIPO sums the members' MSEs.
    return critic.critic_step(
        critic_net, _optimisers(config)[1], state.critic_params,
        state.critic_opt_state, state.target_critic_params, batch,
        next_actions, config.discount, loss_scale=config.num_critics)


def _update_core(state: DIPOState, batch: Batch, improve_observations,
                 improve_start) -> Tuple[DIPOState, jax.Array, Metrics]:
    """Steps 1-4 of the module docstring: the critic learns from `batch`, the
    actions `improve_start [B', d]` (env units) at `improve_observations
    [B', o]` are improved, the policy is fitted to them, targets move.

    Returns:
      `(new_state, improved actions [B', d] in env units, metrics)`.
    """
    config = state.config
    policy_net, critic_net = policy_network(config), critic_network(config)
    key, next_key, denoise_key = jax.random.split(state.key, 3)
    critic_params, critic_opt_state, critic_metrics = _critic_step(
        state, batch, next_key)

    # 2. Action gradient on min_j Q_j of the updated critics, in [-1, 1]^d.
    def min_q(obs, unit_actions):
        return jnp.min(critic_net.apply(critic_params, obs,
                                        config.max_action * unit_actions), -1)

    improved, action_metrics = improve_actions(
        min_q, improve_observations, improve_start / config.max_action,
        lr=config.action_lr, num_steps=config.action_gradient_steps,
        max_norm=config.action_grad_norm_ratio * state.act_dim,
        optimizer=config.action_optimizer)
    improved = jax.lax.stop_gradient(improved)

    # 3. Policy: denoising loss on the improved actions.
    def policy_objective(params):
        return ddpm.noise_prediction_loss(
            lambda x, t: policy_net.apply(params, x, t, improve_observations),
            config.schedule, improved, denoise_key)

    policy_loss, policy_grads = jax.value_and_grad(policy_objective)(
        state.policy_params)
    policy_params, policy_opt_state = apply_gradients(
        _optimisers(config)[0], policy_grads, state.policy_opt_state, state.policy_params)

    # 4. Targets: critic every update, EMA policy every k-th (step 0 too).
    target_critic = optax.incremental_update(
        critic_params, state.target_critic_params, config.tau)
    refresh = state.step % config.policy_target_every == 0
    target_policy = jax.lax.cond(
        refresh, lambda: optax.incremental_update(
            policy_params, state.target_policy_params, config.policy_ema),
        lambda: state.target_policy_params)

    new_state = state.replace(
        policy_params=policy_params, target_policy_params=target_policy,
        critic_params=critic_params, target_critic_params=target_critic,
        policy_opt_state=policy_opt_state, critic_opt_state=critic_opt_state,
        step=state.step + 1, key=key)
    metrics = {"policy_loss": policy_loss,
               "policy_grad_norm": optax.global_norm(policy_grads),
               "policy_target_updated": refresh,
               **critic_metrics, **action_metrics}
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, config.max_action * improved, metrics


def update(state: DIPOState, batch: Batch) -> Tuple[DIPOState, Metrics]:
    """One DIPO update on a single batch: the critic learns from `batch`, the
    batch's own executed actions are improved (not stored anywhere) and the
    policy is fitted to them. The training loops call `replay_update`
    instead (via `agents.train_step`), which keeps the improved actions.

    Args:
      state: training state.
      batch: `Batch` of `B` transitions, actions in `[-max_action,
        max_action]`.

    Returns:
      `(new_state, metrics)`, a flat dict of float32 scalars.
    """
    check_batch(batch, state.obs_dim, state.act_dim)
    state, _, metrics = _update_core(state, batch, batch.observations,
                                     batch.actions)
    return state, metrics


def replay_update(state: DIPOState, buffer: replay.ReplayBuffer,
                  key: PRNGKey, batch_size: int
                  ) -> Tuple[DIPOState, replay.ReplayBuffer, Metrics]:
    """One DIPO update on the replay buffer (official `DiPo.train`): critic on
    a uniform batch, action gradient on a separate uniform batch of slots
    (`replay_indices(buffer, key, batch_size)`) starting from their
    `action_targets`, which are then overwritten with the improved actions
    (only those slots; `actions` is never changed), policy on them.

    Args:
      state: training state.
      buffer: a replay buffer holding at least one transition.
      key: PRNG key for the two batches of indices.
      batch_size: `B`, static.

    Returns:
      `(new_state, new_buffer, metrics)`.
    """
    critic_idx, improve_idx = replay_indices(buffer, key, batch_size)
    batch = replay.gather(buffer, critic_idx)
    check_batch(batch, state.obs_dim, state.act_dim)
    state, improved, metrics = _update_core(
        state, batch, buffer.observations[improve_idx],
        buffer.action_targets[improve_idx])
    buffer = replay.write_action_targets(buffer, improve_idx, improved)
    return state, buffer, metrics


def act(state: DIPOState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions of the current (online) policy: `T` denoising steps each.

    Args:
      state: training state.
      observations: `[N, o]`.
      key: PRNG key (unused when `deterministic`).
      deterministic: if True, no step noise and `x_T = 0` (official
        evaluation uses `noise_ratio = 0` from a random `x_T`); a Python bool.

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    return sample_actions(state.config, state.act_dim, state.policy_params,
                          observations, key, deterministic)
