"""A fully jitted training loop for pure-JAX environments (purejaxrl style).

Acting, stepping, replay insertion and updates run inside one `lax.scan`, so
a whole run is one compiled program and seeds run at once under `jax.vmap`:

    train = make_train(agent, config, env, loop_config, num_steps)
    final, info = jax.jit(jax.vmap(train))(jax.random.split(key, num_seeds))

For progress output, drive `init` / `run_steps` chunk by chunk instead. The
agent is any `dqs_jax.agents.Agent`: the loop calls the same `act` and
`update` as the dm_control driver.

Key discipline, per environment step (a Python loop that does the same gives
the same numbers): `key, act_key, sample_key, reset_key = split(key, 4)`;
the action is `uniform(act_key, [d], -1, 1)` during the first `seed_steps`
steps and `act(agent_state, obs[None], act_key)[0]` after; after the seed
steps every step inserts then does one `update` on
`replay.sample(buffer, sample_key, batch_size)`; an episode that ends is
replaced by `env.reset(reset_key)`.

On-policy agents (`agent.on_policy`, e.g. PPO): `init`, `run_steps`,
`make_train` and `train_in_chunks` dispatch to `dqs_jax.rollout_loop`, which
collects `rollout_length` steps with `agent.explore` into a `Rollout`, then
does one `agent.update`; no replay buffer, no seed phase (`seed_steps`,
`batch_size`, `replay_size` are ignored), and step counts must be multiples
of `rollout_length`. Its state (`RolloutLoopState`) also counts updates.
`evaluate` serves both kinds.
"""

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from dqs_jax import agents, parallel, replay, rollout_loop
from dqs_jax.agents import Agent
from dqs_jax.envs.functional import JaxEnv
from dqs_jax.types import Batch, PRNGKey, StepInfo


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Settings of the loop (static)."""

    seed_steps: int = 1_000  # uniform random actions, no updates
    batch_size: int = 256
    replay_size: int = 100_000

    def __post_init__(self):
        if self.seed_steps < 0 or self.batch_size < 1 or self.replay_size < 1:
            raise ValueError(
                "LoopConfig needs seed_steps >= 0, batch_size >= 1 and "
                f"replay_size >= 1, got {self}.")


@flax.struct.dataclass
class LoopState:
    """The carry of the loop (one seed)."""

    agent_state: Any
    buffer: replay.ReplayBuffer
    env_state: Any
    observation: jax.Array  # [o]
    key: PRNGKey
    env_step: jax.Array  # int32 scalar
    episode_return: jax.Array  # float32 scalar, of the running episode


class EvalResult(NamedTuple):
    final_observations: jax.Array  # [N, o]
    final_env_states: Any  # env states, leading axis N
    returns: jax.Array  # [N]


def init(agent: Agent, agent_config: Any, env: JaxEnv, config: LoopConfig,
         key: PRNGKey) -> LoopState:
    """A fresh agent, empty replay buffer and first observation (for an
    on-policy agent: `rollout_loop.init`, no buffer)."""
    if agent.on_policy:
        return rollout_loop.init(agent, agent_config, env, key)
    agent_key, env_key, loop_key = jax.random.split(key, 3)
    env_state, obs = env.reset(env_key)
    return LoopState(
        agent_state=agent.init(agent_config, env.obs_dim, env.act_dim,
                               agent_key),
        buffer=replay.init(config.replay_size, env.obs_dim, env.act_dim),
        env_state=env_state,
        observation=obs,
        key=loop_key,
        env_step=jnp.zeros((), jnp.int32),
        episode_return=jnp.zeros((), jnp.float32),
    )


def _zero_metrics(agent: Agent, state: LoopState, batch_size: int):
    _, _, metrics = jax.eval_shape(
        lambda s, b: agents.train_step(agent, s, b, jax.random.PRNGKey(0),
                                       batch_size),
        state.agent_state, state.buffer)
    return {k: jnp.zeros(v.shape, v.dtype) for k, v in metrics.items()}


def env_step(agent: Agent, env: JaxEnv, config: LoopConfig,
             state: LoopState, *, learn: bool) -> Tuple[LoopState, StepInfo]:
    """One environment step; with `learn`, the policy acts and one update is
    done, else actions are uniform in `[-1, 1]^d` (seed phase)."""
    key, act_key, sample_key, reset_key = jax.random.split(state.key, 4)
    obs = state.observation
    if learn:
        action = agent.act(state.agent_state, obs[None], act_key)[0]
    else:
        action = jax.random.uniform(act_key, (env.act_dim,), jnp.float32,
                                    -1.0, 1.0)
    env_state, next_obs, reward, discount, done = env.step(state.env_state,
                                                           action)
    buffer = replay.insert(state.buffer,
                           Batch(obs, action, reward, discount, next_obs))
    agent_state = state.agent_state
    if learn:
        agent_state, buffer, metrics = agents.train_step(
            agent, agent_state, buffer, sample_key, config.batch_size)
    else:
        metrics = _zero_metrics(agent, state, config.batch_size)

    reset_env_state, reset_obs = env.reset(reset_key)
    env_state = jax.tree_util.tree_map(
        lambda fresh, cont: jnp.where(done, fresh, cont), reset_env_state,
        env_state)
    episode_return = state.episode_return + reward
    new_state = state.replace(
        agent_state=agent_state,
        buffer=buffer,
        env_state=env_state,
        observation=jnp.where(done, reset_obs, next_obs),
        key=key,
        env_step=state.env_step + 1,
        episode_return=jnp.where(done, 0.0, episode_return),
    )
    info = StepInfo(reward, done, jnp.where(done, episode_return, 0.0),
                    metrics)
    return new_state, info


def run_steps(agent: Agent, env: JaxEnv, config: LoopConfig,
              state: LoopState, num_steps: int, *, learn: bool
              ) -> Tuple[LoopState, StepInfo]:
    """`num_steps` (static) steps as one `lax.scan`; infos stacked `[T]`.

    On-policy agents: `rollout_loop.run_steps` (`learn` must be True and
    `num_steps` a multiple of `rollout_length`).
    """
    if agent.on_policy:
        if not learn:
            raise ValueError(f"{agent.name} is on-policy: it has no seed "
                             "phase (learn=False).")
        return rollout_loop.run_steps(agent, env, state, num_steps)

    def body(carry, _):
        return env_step(agent, env, config, carry, learn=learn)

    return jax.lax.scan(body, state, None, length=num_steps)


def make_train(agent: Agent, agent_config: Any, env: JaxEnv,
               config: LoopConfig, num_steps: int
               ) -> Callable[[PRNGKey], Tuple[LoopState, StepInfo]]:
    """`train(key) -> (final_state, infos [num_steps])`: a whole run (seed
    phase then learning phase), pure, to be jitted and vmapped over keys.
    On-policy agents: `rollout_loop.make_train` (no seed phase)."""
    if agent.on_policy:
        return rollout_loop.make_train(agent, agent_config, env, num_steps)
    if not 0 <= config.seed_steps <= num_steps:
        raise ValueError(f"need 0 <= seed_steps <= num_steps, got "
                         f"{config.seed_steps} and {num_steps}.")

    def train(key):
        state = init(agent, agent_config, env, config, key)
        state, seed_info = run_steps(agent, env, config, state,
                                     config.seed_steps, learn=False)
        state, learn_info = run_steps(agent, env, config, state,
                                      num_steps - config.seed_steps,
                                      learn=True)
        infos = jax.tree_util.tree_map(
            lambda a, b: jnp.concatenate([a, b]), seed_info, learn_info)
        return state, infos

    return train


def evaluate(agent: Agent, env: JaxEnv, agent_state: Any, key: PRNGKey,
             num_episodes: int, deterministic: bool = False) -> EvalResult:
    """`num_episodes` (static) episodes run side by side, as one scan of
    `env.max_episode_steps` steps with one batched `act` per step; finished
    episodes are frozen.

    Returns:
      `EvalResult(final_observations [N, o], final_env_states, returns [N])`.
    """
    reset_key, act_key = jax.random.split(key)
    env_states, obs = jax.vmap(env.reset)(jax.random.split(reset_key,
                                                           num_episodes))

    def body(carry, step_key):
        env_states, obs, returns, alive = carry
        actions = agent.act(agent_state, obs, step_key, deterministic)
        new_states, new_obs, rewards, _, done = jax.vmap(env.step)(env_states,
                                                                   actions)

        def keep(new, old):
            mask = alive.reshape(alive.shape + (1,) * (new.ndim - 1))
            return jnp.where(mask, new, old)

        env_states = jax.tree_util.tree_map(keep, new_states, env_states)
        obs = keep(new_obs, obs)
        returns = returns + jnp.where(alive, rewards, 0.0)
        return (env_states, obs, returns, alive & ~done), None

    init_carry = (env_states, obs, jnp.zeros((num_episodes,), jnp.float32),
                  jnp.ones((num_episodes,), bool))
    (env_states, obs, returns, _), _ = jax.lax.scan(
        body, init_carry, jax.random.split(act_key, env.max_episode_steps))
    return EvalResult(obs, env_states, returns)


def train_in_chunks(agent: Agent, agent_config: Any, env: JaxEnv,
                    config: LoopConfig, num_steps: int, keys: jax.Array,
                    chunk_size: int,
                    on_chunk: Optional[Callable[[int, StepInfo], None]] = None,
                    devices: Optional[Sequence[Any]] = None,
                    on_state: Optional[Callable[[int, Any], None]] = None
                    ) -> LoopState:
    """Trains `len(keys)` seeds side by side (vmapped) for `num_steps` env
    steps, in jitted chunks of `chunk_size` steps; after each chunk calls
    `on_chunk(env_steps_done, infos [S, T])` (e.g. to print progress) and
    `on_state(env_steps_done, state)` (e.g. to evaluate; the state is
    donated to the next chunk, so it must not be kept).

    Same numbers as `jax.vmap(make_train(...))(keys)`, chunking aside.
    With `devices`, the seeds are spread over them (`parallel.shard_seeds`).
    On-policy agents: no seed phase, and `num_steps` and `chunk_size` must be
    multiples of `rollout_length`.

    Returns:
      The final `LoopState` (`RolloutLoopState` if on-policy), with a leading
      seed axis.
    """
    seed_steps = config.seed_steps
    if agent.on_policy:
        rollout_loop.check_chunks(agent, agent_config, num_steps, chunk_size)
        seed_steps = 0
    if not 0 <= seed_steps <= num_steps:
        raise ValueError(f"need 0 <= seed_steps <= num_steps, got "
                         f"{config.seed_steps} and {num_steps}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")

    def runner(steps, learn):
        return jax.jit(jax.vmap(lambda s: run_steps(
            agent, env, config, s, steps, learn=learn)), donate_argnums=0)

    if devices is not None:
        keys = parallel.shard_seeds(keys, devices)
    state = jax.jit(jax.vmap(
        lambda k: init(agent, agent_config, env, config, k)))(keys)
    done = seed_steps
    if done:
        state, info = runner(done, False)(state)
        if on_chunk is not None:
            on_chunk(done, info)
    runners = {}
    while done < num_steps:
        steps = min(chunk_size, num_steps - done)
        if steps not in runners:
            runners[steps] = runner(steps, True)
        state, info = runners[steps](state)
        done += steps
        if on_chunk is not None:
            on_chunk(done, info)
        if on_state is not None:
            on_state(done, state)
    return state
