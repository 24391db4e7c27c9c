"""The DQS agent: config, training state and the pure `init / update / act`.

`update` does one TD step on the critic ensemble, one iDEM step on the score
network and one Polyak update of the target critic. The iDEM target and the
TD target both use the pre-update critic (the choice of the later public
reuse of the authors' code; SPEC §6).
"""

import dataclasses
import math
from typing import Callable, Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import losses
from dqs_jax.hashing import observation_keys
from dqs_jax.networks import (KERNEL_INITS, CriticEnsemble, ScoreNetwork,
                              conditioned_score_fn, get_activation)
from dqs_jax.optim import apply_gradients
from dqs_jax.sampler import sample_reverse_sde
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.score_targets import (  # noqa: F401 (public names)
    ESTIMATORS, PRECISIONS, energy_q, idem_target_fn)
from dqs_jax.temperature import log_linear_temperature
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch


ENERGY_ACTIONS = ("raw", "clip")
EVAL_STARTS = ("zero", "hashed")


@dataclasses.dataclass(frozen=True)
class DQSConfig:
    """Hyper-parameters of DQS; defaults follow SPEC §9 (DMC).

    Shape-deciding fields (widths, K, steps) are static: a `DQSConfig` is
    hashable and lives as a static field of `TrainState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # score network (residual)
    critic_hidden_dims: Tuple[int, ...] = (256, 256)
    embed_dim: int = 128  # sinusoidal embedding of t and of temperature
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 1e-3
    discount: float = 0.99
    tau: float = 0.005
    num_mc_samples: int = 1000  # K of the iDEM estimate
    num_sampling_steps: int = 20  # Euler-Maruyama steps of the sampler
    sigma_min: float = 1e-5
    sigma_max: float = 1.0
    init_temperature: float = 0.05
    final_temperature: float = 0.05
    temperature_anneal_steps: int = 0  # 0: constant init_temperature
    max_action: float = 1.0
    score_activation: str = "gelu"
    critic_activation: str = "relu"
    # Network details of the authors' code (issue 14): every Dense kernel
    # of both networks orthogonal with gain sqrt(2) ("lecun_normal": Flax's
    # default), and an activation after the score net's input projection
    # ("none": straight into the residual blocks).
    kernel_init: str = "orthogonal"
    score_input_activation: str = "gelu"
    # Start of the deterministic (evaluation) sampler: "zero" (x_1 = 0) or
    # "hashed" (x_1 ~ N(0, h(1) I) drawn from a hash of the observation,
    # deterministic per state, as in the authors' code).
    eval_start: str = "zero"
    # Where the iDEM estimate evaluates Q at a noisy point y: "raw" uses
    # Q(s, y) (SPEC §3); "clip" uses Q(s, clip(y, -max_action, max_action)),
    # the action the environment would execute, so the estimate never
    # relies on the critic's extrapolation outside the action box.
    energy_action: str = "raw"
    # Speed and precision of the iDEM estimate in `update` (same maths):
    # K samples evaluated per chunk (memory bound); 0: automatic, about
    # 2^19 activations per layer (`score_targets.chunk_size`).
    mc_chunk_size: int = 0
    stratified_times: bool = False  # t_i ~ U[i/B, (i+1)/B) over the batch
    # Optional speed mode, off at 0: with stratified times, batch elements
    # whose noise scale sqrt(h(t)) is surely below this use the gradient at
    # x_t itself instead of K samples (the K points nearly coincide there).
    small_noise_threshold: float = 0.0
    estimator_precision: str = "float32"  # or "bfloat16" matmuls
    # The score estimate (`score_targets`): "idem" (the paper's), or
    # "antithetic", "qmc", "control_variate", "adaptive" (K by noise level:
    # rows with t below `adaptive_low_time` use `adaptive_low_samples`
    # antithetic draws, below `adaptive_mid_time` `adaptive_mid_samples`,
    # the rest `num_mc_samples` with the control variate).
    estimator: str = "idem"
    adaptive_low_time: float = 0.7
    adaptive_low_samples: int = 2
    adaptive_mid_time: float = 0.85
    adaptive_mid_samples: int = 16

    def __post_init__(self):
        for name in ("hidden_dims", "critic_hidden_dims"):
            object.__setattr__(self, name,
                               tuple(int(w) for w in getattr(self, name)))
        positive_ints = ("embed_dim", "num_critics", "num_mc_samples",
                         "num_sampling_steps")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"DQSConfig.{name} must be >= 1, got {getattr(self, name)}.")
        positive = ("actor_lr", "critic_lr", "init_temperature",
                    "final_temperature", "max_action")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"DQSConfig.{name} must be > 0, got {getattr(self, name)}.")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"DQSConfig.discount must be in [0, 1], got "
                             f"{self.discount}.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"DQSConfig.tau must be in (0, 1], got {self.tau}.")
        if self.mc_chunk_size < 0:
            raise ValueError(f"DQSConfig.mc_chunk_size must be >= 0, got "
                             f"{self.mc_chunk_size}.")
        if self.small_noise_threshold < 0 or (
                self.small_noise_threshold > 0 and not self.stratified_times):
            raise ValueError(
                "DQSConfig.small_noise_threshold must be >= 0 and needs "
                "stratified_times=True, got "
                f"{self.small_noise_threshold} with stratified_times="
                f"{self.stratified_times}.")
        if self.estimator_precision not in PRECISIONS:
            raise ValueError(f"DQSConfig.estimator_precision must be one of "
                             f"{tuple(PRECISIONS)}, got "
                             f"{self.estimator_precision!r}.")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"DQSConfig.estimator must be one of "
                             f"{ESTIMATORS}, got {self.estimator!r}.")
        if self.estimator == "adaptive" and (
                not self.stratified_times or self.small_noise_threshold):
            raise ValueError("DQSConfig.estimator='adaptive' needs "
                             "stratified_times=True and "
                             "small_noise_threshold=0.")
        if not (0.0 <= self.adaptive_low_time <= self.adaptive_mid_time
                <= 1.0 and self.adaptive_low_samples >= 1
                and self.adaptive_mid_samples >= 1):
            raise ValueError(
                "DQSConfig needs 0 <= adaptive_low_time <= adaptive_mid_time "
                "<= 1 and adaptive_*_samples >= 1, got "
                f"{self.adaptive_low_time}, {self.adaptive_mid_time}, "
                f"{self.adaptive_low_samples}, {self.adaptive_mid_samples}.")
        if self.kernel_init not in KERNEL_INITS:
            raise ValueError(f"DQSConfig.kernel_init must be one of "
                             f"{KERNEL_INITS}, got {self.kernel_init!r}.")
        if self.score_input_activation != "none":
            get_activation(self.score_input_activation)
        if self.eval_start not in EVAL_STARTS:
            raise ValueError(f"DQSConfig.eval_start must be one of "
                             f"{EVAL_STARTS}, got {self.eval_start!r}.")
        if self.energy_action not in ENERGY_ACTIONS:
            raise ValueError(f"DQSConfig.energy_action must be one of "
                             f"{ENERGY_ACTIONS}, got {self.energy_action!r}.")
        if not self.hidden_dims or not self.critic_hidden_dims:
            raise ValueError("hidden_dims and critic_hidden_dims must be "
                             "non-empty.")
        if len(set(self.hidden_dims)) != 1:
            raise ValueError("DQSConfig.hidden_dims must all be equal (residual "
                             f"blocks), got {self.hidden_dims}.")
        self.schedule  # Validates sigma_min < sigma_max.

    @property
    def schedule(self) -> GeometricSchedule:
        return GeometricSchedule(self.sigma_min, self.sigma_max)

    def num_small_noise(self, batch_size: int) -> int:
        """How many (leading) batch elements the speed mode treats as
        noise-free: those whose stratum `[i/B, (i+1)/B)` has
        `sqrt(h) < small_noise_threshold` throughout."""
        if self.small_noise_threshold <= 0:
            return 0
        sched = self.schedule
        variance = lambda t: sched.sigma_min**2 * math.expm1(  # noqa: E731
            2.0 * t * sched.log_ratio)
        return sum(math.sqrt(variance((i + 1) / batch_size))
                   < self.small_noise_threshold for i in range(batch_size))

    def temperature(self, step) -> jax.Array:
        """Temperature after `step` updates (SPEC §7); float32, shape of `step`."""
        return log_linear_temperature(step, self.init_temperature,
                                      self.final_temperature,
                                      self.temperature_anneal_steps)


@flax.struct.dataclass
class TrainState:
    """Everything `update` changes, as one pytree; `config` and dims are static."""

    score_params: Params
    critic_params: Params
    target_critic_params: Params
    score_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done
    key: PRNGKey
    config: DQSConfig = flax.struct.field(pytree_node=False)
    obs_dim: int = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)

    @property
    def temperature(self) -> jax.Array:
        """Current temperature (float32 scalar)."""
        return self.config.temperature(self.step)


def score_network(config: DQSConfig) -> ScoreNetwork:
    """The score network module `config` describes."""
    input_activation = (None if config.score_input_activation == "none"
                        else config.score_input_activation)
    return ScoreNetwork(config.hidden_dims, config.embed_dim,
                        config.score_activation, input_activation,
                        config.kernel_init)


def critic_network(config: DQSConfig) -> CriticEnsemble:
    """The critic ensemble module `config` describes."""
    return CriticEnsemble(config.critic_hidden_dims, config.num_critics,
                          config.critic_activation, config.kernel_init)


def _optimisers(config: DQSConfig):
    return optax.adam(config.actor_lr), optax.adam(config.critic_lr)


def init(config: DQSConfig, obs_dim: int, act_dim: int,
         key: PRNGKey) -> TrainState:
    """Fresh parameters, optimiser states and target critic.

    Args:
      config: hyper-parameters.
      obs_dim: `o`, flat observation size.
      act_dim: `d`, action size.
      key: PRNG key; the state keeps a split of it for later updates.

    Returns:
      A `TrainState` with `step == 0`.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, "
                         f"{act_dim}.")
    key, score_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, act_dim), jnp.float32)
    score_params = score_network(config).init(
        score_key, act, jnp.zeros((1,)), obs, jnp.ones((1,)))
    critic_params = critic_network(config).init(critic_key, obs, act)
    score_opt, critic_opt = _optimisers(config)
    return TrainState(
        score_params=score_params,
        critic_params=critic_params,
        # A copy, not an alias, so that the state can be donated to jit.
        target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
        score_opt_state=score_opt.init(score_params),
        critic_opt_state=critic_opt.init(critic_params),
        step=jnp.zeros((), jnp.int32),
        key=key,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def sample_actions(config: DQSConfig, score_params: Params,
                   observations: jax.Array, temperature, key: PRNGKey,
                   noise_scale: float) -> jax.Array:
    """Policy samples `a = max_action * tanh(x_0)` by the reverse SDE.

    Args:
      config: hyper-parameters.
      score_params: score network parameters.
      observations: `[N, o]`.
      temperature: scalar temperature the score network is conditioned on.
      key: PRNG key.
      noise_scale: 1.0 samples the policy; 0.0 is the deterministic sampler,
        started from `x_1 = 0` or a draw hashed from the observation
        (`config.eval_start`), so that its result does not depend on `key`.

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    net = score_network(config)
    init_key, sde_key = jax.random.split(key)
    x_init = sampler_start(config, observations, _act_dim(score_params),
                           init_key, deterministic=noise_scale == 0.0)
    score_fn = conditioned_score_fn(net, score_params, observations,
                                    temperature)
    x_0 = sample_reverse_sde(score_fn, x_init, config.schedule,
                             config.num_sampling_steps, sde_key, noise_scale)
    return config.max_action * jnp.tanh(x_0)


def sampler_start(config: DQSConfig, observations: jax.Array, act_dim: int,
                  key: PRNGKey, deterministic: bool) -> jax.Array:
    """`[N, d]` starting points `x_1` of the sampler for `observations
    [N, o]`: `N(0, h(1) I)` draws from `key`; if `deterministic`, zeros
    (`config.eval_start == "zero"`) or one such draw per row seeded by a hash
    of the row (`"hashed"`: a fixed function of the observation)."""
    shape = (observations.shape[0], act_dim)
    scale = jnp.sqrt(config.schedule.h(1.0))
    if not deterministic:
        return scale * jax.random.normal(key, shape, jnp.float32)
    if config.eval_start == "zero":
        return jnp.zeros(shape, jnp.float32)
    return scale * jax.vmap(lambda k: jax.random.normal(
        k, (act_dim,), jnp.float32))(observation_keys(observations))


def _act_dim(score_params: Params) -> int:
    return score_params["params"]["output"]["bias"].shape[-1]


def update(state: TrainState, batch: Batch) -> Tuple[TrainState, Metrics]:
    """One DQS update: TD step, iDEM score step, Polyak target update.

    Pure; `jax.jit(update)` compiles once per batch shape.

    Args:
      state: current training state.
      batch: `Batch` of `B` transitions (`[B, o]`, `[B, d]`, `[B]`, `[B]`,
        `[B, o]`), actions in `[-max_action, max_action]`.

    Returns:
      `(new_state, metrics)`, metrics a flat dict of float32 scalars.
    """
    return update_with_target_fn(state, batch, idem_target_fn)


def update_with_target_fn(
        state: TrainState, batch: Batch,
        make_target_fn: Callable[[DQSConfig, Params], losses.TargetFn]
) -> Tuple[TrainState, Metrics]:
    """`update` with the score targets of `make_target_fn(config,
    critic_params)` (`update` uses `idem_target_fn`), e.g. to compare
    implementations of the same estimate."""
    check_batch(batch, state.obs_dim, state.act_dim)
    config = state.config
    score_net, critic_net = score_network(config), critic_network(config)
    score_opt, critic_opt = _optimisers(config)
    key, next_key, idem_key = jax.random.split(state.key, 3)
    temperature = state.temperature

    # TD step (SPEC §6): a' ~ pi(.|s') from the diffusion policy, c = 1.
    next_actions = sample_actions(config, state.score_params,
                                  batch.next_observations, temperature,
                                  next_key, noise_scale=1.0)

    def target_q(obs, act):
        return critic_net.apply(state.target_critic_params, obs, act)

    def critic_objective(params):
        return losses.td_loss_with_aux(
            lambda o, a: critic_net.apply(params, o, a), target_q,
            batch.observations, batch.actions, batch.rewards, batch.discounts,
            batch.next_observations, next_actions, config.discount)

    (critic_loss, critic_aux), critic_grads = jax.value_and_grad(
        critic_objective, has_aux=True)(state.critic_params)

    # iDEM step (SPEC §3-4): Q = min over the pre-update online ensemble.
    target_fn = make_target_fn(config, state.critic_params)

    def score_objective(params):
        return losses.idem_loss_with_aux(
            lambda x, t, o, temp: score_net.apply(params, x, t, o, temp),
            None, batch.observations, batch.actions, temperature, idem_key,
            schedule=config.schedule, num_samples=config.num_mc_samples,
            stratified=config.stratified_times, target_fn=target_fn)

    (score_loss, score_aux), score_grads = jax.value_and_grad(
        score_objective, has_aux=True)(state.score_params)

    critic_params, critic_opt_state = apply_gradients(
        critic_opt, critic_grads, state.critic_opt_state, state.critic_params)
    score_params, score_opt_state = apply_gradients(
        score_opt, score_grads, state.score_opt_state, state.score_params)
    target_params = optax.incremental_update(
        critic_params, state.target_critic_params, config.tau)

    new_state = state.replace(
        score_params=score_params,
        critic_params=critic_params,
        target_critic_params=target_params,
        score_opt_state=score_opt_state,
        critic_opt_state=critic_opt_state,
        step=state.step + 1,
        key=key,
    )
    metrics = {
        "critic_loss": critic_loss,
        "score_loss": score_loss,
        "q_mean": critic_aux["q_mean"],
        "target_q_mean": critic_aux["target_mean"],
        "score_target_norm": score_aux["score_target_norm"],
        "critic_grad_norm": optax.global_norm(critic_grads),
        "score_grad_norm": optax.global_norm(score_grads),
        "temperature": temperature,
    }
    return new_state, metrics


def act(state: TrainState, observations: jax.Array, key: PRNGKey,
        deterministic: bool = False) -> jax.Array:
    """Actions from the diffusion policy at the current temperature.

    Args:
      state: training state.
      observations: `[N, o]`.
      key: PRNG key (unused when `deterministic`).
      deterministic: if True, the noise-free sampler (`c = 0`, `x_1` from
        `config.eval_start`); a Python bool (static under `jax.jit`).

    Returns:
      `[N, d]` actions in `[-max_action, max_action]`.
    """
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, state.obs_dim)
    return sample_actions(state.config, state.score_params, observations,
                          state.temperature, key,
                          noise_scale=0.0 if deterministic else 1.0)
