"""The jitted loop for on-policy agents (`agent.on_policy`, e.g. PPO).

`dqs_jax.loop`'s `init / run_steps / make_train / train_in_chunks` dispatch
here for on-policy agents; call those. Environment steps are collected
`rollout_length` at a time (the agent config's field) into a `Rollout` by a
`lax.scan` acting with `agent.explore`, then one `agent.update(state,
rollout)` follows. There is no replay buffer and no seed phase:
`LoopConfig.seed_steps` (and `batch_size`, `replay_size`) are ignored for
on-policy agents. Step counts (`num_steps`, chunk sizes) must be multiples of
`rollout_length` (ValueError otherwise), so every update sees a full rollout.

Key discipline, per environment step (a Python loop that does the same gives
the same numbers): `key, act_key, reset_key = split(key, 3)`;
`env_action, policy_step = explore(agent_state, obs[None], act_key)`; an
episode that ends is replaced by `env.reset(reset_key)`. The agent's own key
(in its state) drives its update.

`StepInfo.metrics` of every step of a rollout are the metrics of the update
that consumed that rollout (broadcast over its `rollout_length` steps), so
means over steps are means over updates.
"""

from typing import Any, Callable, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from dqs_jax.agents import Agent
from dqs_jax.envs.functional import JaxEnv
from dqs_jax.types import PRNGKey, Rollout, StepInfo


@flax.struct.dataclass
class RolloutLoopState:
    """The carry of the on-policy loop (one seed)."""

    agent_state: Any
    env_state: Any
    observation: jax.Array  # [o]
    key: PRNGKey
    env_step: jax.Array  # int32 scalar, environment steps taken
    num_updates: jax.Array  # int32 scalar, `agent.update` calls made
    episode_return: jax.Array  # float32 scalar, of the running episode


def rollout_length(agent_config: Any) -> int:
    """The agent config's `rollout_length` (env steps per update)."""
    length = getattr(agent_config, "rollout_length", None)
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"an on-policy agent's config needs an int "
                         f"rollout_length >= 1, got {length!r}.")
    return length


def check_num_steps(agent: Agent, agent_config: Any, num_steps: int,
                    what: str = "num_steps") -> int:
    """`num_steps // rollout_length`; ValueError unless `num_steps` is a
    non-negative multiple of `rollout_length`."""
    length = rollout_length(agent_config)
    if num_steps < 0 or num_steps % length:
        raise ValueError(
            f"{agent.name} is on-policy: {what} must be a multiple of "
            f"rollout_length={length} (one update per rollout), got "
            f"{num_steps}.")
    return num_steps // length


def init(agent: Agent, agent_config: Any, env: JaxEnv,
         key: PRNGKey) -> RolloutLoopState:
    """A fresh agent and first observation (same key split as `loop.init`)."""
    agent_key, env_key, loop_key = jax.random.split(key, 3)
    env_state, obs = env.reset(env_key)
    return RolloutLoopState(
        agent_state=agent.init(agent_config, env.obs_dim, env.act_dim,
                               agent_key),
        env_state=env_state,
        observation=obs,
        key=loop_key,
        env_step=jnp.zeros((), jnp.int32),
        num_updates=jnp.zeros((), jnp.int32),
        episode_return=jnp.zeros((), jnp.float32),
    )


def _env_step(agent: Agent, env: JaxEnv, state: RolloutLoopState):
    """One step acting with `explore`: `(state, (Rollout row, (reward, done,
    finished episode's return)))`; the agent state is not changed."""
    key, act_key, reset_key = jax.random.split(state.key, 3)
    obs = state.observation
    env_action, policy = agent.explore(state.agent_state, obs[None], act_key)
    env_state, next_obs, reward, discount, done = env.step(state.env_state,
                                                           env_action[0])
    row = Rollout(obs, policy.actions[0], policy.log_probs[0],
                  policy.values[0], reward, discount,
                  done.astype(jnp.float32), next_obs)
    reset_env_state, reset_obs = env.reset(reset_key)
    env_state = jax.tree_util.tree_map(
        lambda fresh, cont: jnp.where(done, fresh, cont), reset_env_state,
        env_state)
    episode_return = state.episode_return + reward
    new_state = state.replace(
        env_state=env_state,
        observation=jnp.where(done, reset_obs, next_obs),
        key=key,
        env_step=state.env_step + 1,
        episode_return=jnp.where(done, 0.0, episode_return),
    )
    return new_state, (row, (reward, done,
                             jnp.where(done, episode_return, 0.0)))


def collect_and_update(agent: Agent, env: JaxEnv, state: RolloutLoopState,
                       length: int):
    """One rollout of `length` (static) steps, then one `agent.update`.

    Returns:
      `(state, rollout [length], (rewards, dones, episode_returns) [length],
      metrics)`.
    """
    state, (rollout, step_out) = jax.lax.scan(
        lambda s, _: _env_step(agent, env, s), state, None, length=length)
    agent_state, metrics = agent.update(state.agent_state, rollout)
    state = state.replace(agent_state=agent_state,
                          num_updates=state.num_updates + 1)
    return state, rollout, step_out, metrics


def run_steps(agent: Agent, env: JaxEnv, state: RolloutLoopState,
              num_steps: int):
    """`num_steps` (static, a multiple of the state's `rollout_length`)
    steps, i.e. `num_steps // rollout_length` rollout-and-update rounds, as
    one `lax.scan`; infos stacked `[num_steps]`."""
    config = state.agent_state.config
    num_rounds = check_num_steps(agent, config, num_steps)
    length = rollout_length(config)

    def body(carry, _):
        carry, _, (rewards, dones, returns), metrics = collect_and_update(
            agent, env, carry, length)
        metrics = jax.tree_util.tree_map(
            lambda m: jnp.broadcast_to(m, (length,) + m.shape), metrics)
        return carry, StepInfo(rewards, dones, returns, metrics)

    state, infos = jax.lax.scan(body, state, None, length=num_rounds)
    return state, jax.tree_util.tree_map(
        lambda x: x.reshape((num_steps,) + x.shape[2:]), infos)


def make_train(agent: Agent, agent_config: Any, env: JaxEnv, num_steps: int
               ) -> Callable[[PRNGKey], Tuple[RolloutLoopState, StepInfo]]:
    """`train(key) -> (final_state, infos [num_steps])`: a whole on-policy
    run, pure, to be jitted and vmapped over keys."""
    check_num_steps(agent, agent_config, num_steps)

    def train(key):
        state = init(agent, agent_config, env, key)
        return run_steps(agent, env, state, num_steps)

    return train


def check_chunks(agent: Agent, agent_config: Any, num_steps: int,
                 chunk_size: int) -> None:
    """ValueError unless `num_steps` and `chunk_size` are multiples of the
    config's `rollout_length` (chunks of `train_in_chunks`)."""
    check_num_steps(agent, agent_config, num_steps)
    check_num_steps(agent, agent_config, chunk_size, "chunk_size")
