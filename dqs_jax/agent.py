"""The DQS agent: training state and the pure `init / update / act` (the
config, `DQSConfig`, lives in `dqs_jax.dqs_config`).

`update` does one TD step on the critic ensemble, one iDEM step on the score
network and one Polyak update of the target critic. The iDEM target and the
TD target both use the pre-update critic (the choice of the later public
reuse of the authors' code; docs/algorithm.md §6).
"""

from typing import Callable, Tuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from dqs_jax import losses
from dqs_jax.dqs_config import (  # noqa: F401 (public names)
    ENERGY_ACTIONS, EVAL_STARTS, DQSConfig)
from dqs_jax.hashing import observation_keys
from dqs_jax.networks import (CriticEnsemble, ScoreNetwork,
                              conditioned_score_fn)
from dqs_jax.optim import apply_gradients
from dqs_jax.sampler import sample_reverse_sde
from dqs_jax.score_targets import (  # noqa: F401 (public names)
    ESTIMATORS, PRECISIONS, energy_q, idem_target_fn)
from dqs_jax.types import Batch, Metrics, Params, PRNGKey, check_batch


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
    return ScoreNetwork.action_dim(score_params)


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

    # TD step (docs/algorithm.md §6): a' ~ pi(.|s') from the diffusion
    # policy, c = 1.
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

    # iDEM step (docs/algorithm.md §3-4): Q = min over the pre-update
    # online ensemble.
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
