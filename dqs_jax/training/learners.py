"""How the host loop feeds an agent: replay or rollout storage and the
jitted device calls, for N seeds at once.

Every method takes and returns arrays with a leading seed axis `[N, ...]`.
With N > 1 the agent states and buffers are stacked `[N, ...]` on the
device(s) and each device call is one `jax.vmap` over the seeds, so seed `i`
sees exactly the computation of a one-seed run (up to float reassociation
in the batched kernels). With N = 1 nothing carries a seed axis on the
device: the state and buffer are the agent's own, the calls are the plain
jitted ones, and the host's `[1, ...]` arrays are the single batch row the
agent expects, so one seed pays nothing for the axis.

`OffPolicyLearner` keeps a replay buffer, acts uniformly at random for the
first `seed_steps` steps, then does one `agents.train_step` (insert, then
`update` on a sample) per env step. `OnPolicyLearner` acts with the agent's
`explore` from the first step, stores `rollout_length` transitions and then
does one `update` on them (no seed phase). Both keep their data (`data`, a
pytree) in the run's checkpoints, so a resumed run continues exactly.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agents, parallel, replay
from dqs_jax.types import Batch, PolicyStep, Rollout

EVAL_KEY = jax.random.PRNGKey(0)  # Unused by deterministic policies.


def stack_trees(trees: List[Any]) -> Any:
    """The pytrees in `trees` (same structure) stacked on a new axis 0."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack_tree(tree: Any, index: int) -> Any:
    """Seed `index` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def _host(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


def _first(tree: Any) -> Any:
    """Seed 0 of host arrays `[1, ...]`."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def _with_axis(tree: Any) -> Any:
    """Device results of one seed as host arrays `[1, ...]`."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[None], tree)


class _Learner:
    """What both kinds share: the seed layout, placement, deterministic
    acting."""

    def __init__(self, spec: agents.Agent, num_seeds: int, shard: bool):
        self.spec, self.num_seeds, self.shard = spec, num_seeds, shard
        self.stacked = num_seeds > 1
        self._deterministic = _act_fns(spec, self.stacked)[1]

    def place(self, tree: Any) -> Any:
        """`tree` (leading seed axis if N > 1) on the device(s)."""
        if not self.stacked:
            return tree
        if self.shard:
            return parallel.shard_seeds(tree)
        return jax.device_put(tree)

    def init_states(self, states: List[Any]) -> Any:
        """The agent states of the N seeds, laid out for the device calls."""
        return self.place(stack_trees(states)) if self.stacked else states[0]

    def seed_state(self, states: Any, index: int) -> Any:
        """Seed `index`'s agent state."""
        return unstack_tree(states, index) if self.stacked else states

    def act_deterministic(self, states: Any, observations: np.ndarray
                          ) -> np.ndarray:
        """The deterministic policy's actions `[N, d]` at `[N, o]`."""
        if self.stacked:
            return np.asarray(self._deterministic(states, observations))
        return np.asarray(self._deterministic(states, observations, EVAL_KEY,
                                              deterministic=True))

    def _one_seed(self, tree: Any) -> Any:
        """Seed 0 of the data (for shapes)."""
        return unstack_tree(tree, 0) if self.stacked else tree


@functools.lru_cache(maxsize=None)
def _act_fns(spec: agents.Agent, stacked: bool):
    """`(act, act_deterministic)` jitted, memoised per agent so that runs in
    one process (tests, sweeps) share their compilations. Unstacked, both
    are `spec.act` itself (observations `[1, o]` are its batch)."""
    if not stacked:
        act = jax.jit(spec.act, static_argnames="deterministic")
        return act, act

    def act(state, observation, key):
        return spec.act(state, observation[None], key)[0]

    def deterministic(state, observation):
        return spec.act(state, observation[None], EVAL_KEY,
                        deterministic=True)[0]

    return jax.jit(jax.vmap(act)), jax.jit(jax.vmap(deterministic))


@functools.lru_cache(maxsize=None)
def _off_policy_fns(spec: agents.Agent, act_dim: int, batch_size: int,
                    stacked: bool):
    """`(uniform, insert, train_step)`, vmapped over seeds when stacked."""

    def uniform(key):
        return jax.random.uniform(key, (act_dim,), minval=-1.0, maxval=1.0)

    def step(state, buffer, transition, key):
        buffer = replay.insert(buffer, transition)
        return agents.train_step(spec, state, buffer, key, batch_size)

    if stacked:
        return (jax.jit(jax.vmap(uniform)),
                jax.jit(jax.vmap(replay.insert), donate_argnums=0),
                jax.jit(jax.vmap(step), donate_argnums=(0, 1)))
    return (uniform, jax.jit(replay.insert, donate_argnums=0),
            jax.jit(step, donate_argnums=(0, 1)))


class OffPolicyLearner(_Learner):
    """Replay buffers, a shared seed phase, then one `train_step` every
    `update_every` env steps (on steps `seed_steps + k * update_every`)."""

    data_name = "replay"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int, num_seeds: int = 1, shard: bool = False,
                 update_every: int = 1):
        del agent_config
        super().__init__(spec, num_seeds, shard)
        self.act_dim, self.batch_size = act_dim, batch_size
        self.seed_steps, self.update_every = seed_steps, update_every
        buffer = replay.init(replay_size, obs_dim, act_dim)
        self.data = (self.place(stack_trees([buffer] * num_seeds))
                     if self.stacked else buffer)
        self._act = _act_fns(spec, self.stacked)[0]
        self._uniform, self._insert, self._train_step = _off_policy_fns(
            spec, act_dim, batch_size, self.stacked)

    def restore(self, data: replay.ReplayBuffer) -> None:
        self.data = self.place(data)

    def metric_names(self, states: Any) -> List[str]:
        _, _, metrics = jax.eval_shape(
            lambda s, b: agents.train_step(self.spec, s, b, EVAL_KEY,
                                           self.batch_size),
            self._one_seed(states), self._one_seed(self.data))
        return sorted(metrics)

    def act(self, states: Any, observations: np.ndarray, keys: np.ndarray,
            env_step: int) -> Tuple[np.ndarray, Optional[PolicyStep]]:
        """The env actions `[N, d]` (uniform during the seed phase)."""
        if self.stacked:
            actions = (self._uniform(keys) if env_step < self.seed_steps
                       else self._act(states, observations, keys))
            return np.asarray(actions, np.float32), None
        if env_step < self.seed_steps:
            action = self._uniform(keys[0])
        else:
            action = self._act(states, observations, keys[0])[0]
        return np.asarray(action, np.float32)[None], None

    def observe(self, states: Any, transitions: Batch, dones: np.ndarray,
                extras: Optional[PolicyStep], keys: np.ndarray, env_step: int
                ) -> Tuple[Any, Optional[Dict[str, np.ndarray]]]:
        """Stores the transitions `[N, ...]`; after the seed phase, on
        every `update_every`-th step, one learning step per seed (metrics
        `{name: [N]}` on the host; None on steps without one)."""
        del dones, extras
        if not self.stacked:
            transitions, keys = _first(transitions), keys[0]
        if (env_step < self.seed_steps
                or (env_step - self.seed_steps) % self.update_every):
            self.data = self._insert(self.data, transitions)
            return states, None
        states, self.data, metrics = self._train_step(states, self.data,
                                                      transitions, keys)
        metrics = jax.device_get(metrics)
        return states, (_host(metrics) if self.stacked
                        else _with_axis(metrics))


@functools.lru_cache(maxsize=None)
def _on_policy_fns(spec: agents.Agent, stacked: bool):
    """`(explore, update)`, vmapped over seeds when stacked."""
    if not stacked:
        return jax.jit(spec.explore), jax.jit(spec.update, donate_argnums=0)

    def explore(state, observation, key):
        action, policy_step = spec.explore(state, observation[None], key)
        return action[0], jax.tree_util.tree_map(lambda x: x[0], policy_step)

    return (jax.jit(jax.vmap(explore)),
            jax.jit(jax.vmap(spec.update), donate_argnums=0))


class OnPolicyLearner(_Learner):
    """`rollout_length` steps of `explore` per seed, then one `update`."""

    data_name = "rollout"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int, num_seeds: int = 1, shard: bool = False,
                 update_every: int = 1):
        # Off-policy settings.
        del replay_size, batch_size, seed_steps, update_every
        super().__init__(spec, num_seeds, shard)
        # Rollouts live on the host, `[T, ...]` (N = 1) or `[N, T, ...]`.
        self.time_axis = 1 if self.stacked else 0
        lead = (num_seeds,) if self.stacked else ()
        length = int(agent_config.rollout_length)
        vector = lambda n: np.zeros(lead + (length, n), np.float32)  # noqa
        scalar = lambda: np.zeros(lead + (length,), np.float32)  # noqa: E731
        self.data = {
            "index": np.zeros((), np.int32),
            "rollout": Rollout(vector(obs_dim), vector(act_dim), scalar(),
                               scalar(), scalar(), scalar(), scalar(),
                               vector(obs_dim))._asdict(),
        }
        self._explore, self._update = _on_policy_fns(spec, self.stacked)

    def restore(self, data: Dict[str, Any]) -> None:
        """Takes restored `data` as writable host arrays."""
        self.data = jax.tree_util.tree_map(np.array, data)

    def metric_names(self, states: Any) -> List[str]:
        rollout = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape[self.time_axis:], x.dtype),
            Rollout(**self.data["rollout"]))
        _, metrics = jax.eval_shape(self.spec.update, self._one_seed(states),
                                    rollout)
        return sorted(metrics)

    def act(self, states: Any, observations: np.ndarray, keys: np.ndarray,
            env_step: int) -> Tuple[np.ndarray, PolicyStep]:
        """The env actions `[N, d]` and what the rollout keeps of them."""
        del env_step
        # Unstacked, `spec.explore` itself: observations `[1, o]` are its
        # batch, and it takes seed 0's key.
        actions, policy_steps = self._explore(
            states, observations, keys if self.stacked else keys[0])
        return np.asarray(actions, np.float32), _host(policy_steps)

    def observe(self, states: Any, transitions: Batch, dones: np.ndarray,
                extras: PolicyStep, keys: np.ndarray, env_step: int
                ) -> Tuple[Any, Optional[Dict[str, np.ndarray]]]:
        """Stores the transitions; an update once the rollouts are full."""
        del keys, env_step
        if not self.stacked:
            transitions, dones, extras = (_first(transitions), dones[0],
                                          _first(extras))
        if not store_step(self.data, transitions, dones, extras,
                          self.time_axis):
            return states, None
        rollout = self.place(Rollout(**{k: jnp.asarray(v) for k, v in
                                        self.data["rollout"].items()}))
        states, metrics = self._update(states, rollout)
        metrics = jax.device_get(metrics)
        return states, (_host(metrics) if self.stacked
                        else _with_axis(metrics))


def store_step(data: Dict[str, Any], transition: Batch, done: Any,
               extras: PolicyStep, time_axis: int) -> bool:
    """Writes one env step into `data["rollout"]` (host arrays) at
    `data["index"]` along `time_axis` (0: `[T, ...]`; 1: `[N, T, ...]` for
    N seeds, `transition` and `done` then `[N, ...]`); True when that filled
    the rollout, whose index then restarts at 0."""
    i = int(data["index"])
    row = dict(observations=transition.observations,
               actions=extras.actions, log_probs=extras.log_probs,
               values=extras.values, rewards=transition.rewards,
               discounts=transition.discounts,
               dones=np.asarray(done, np.float32),
               next_observations=transition.next_observations)
    where = (slice(None),) * time_axis + (i,)
    for name, value in row.items():
        data["rollout"][name][where] = value
    i += 1
    full = i == data["rollout"]["rewards"].shape[time_axis]
    data["index"] = np.asarray(0 if full else i, np.int32)
    return full


def make_learner(spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int, num_seeds: int = 1, shard: bool = False,
                 update_every: int = 1):
    """The learner that fits `spec` (on- or off-policy) for `num_seeds`."""
    cls = OnPolicyLearner if spec.on_policy else OffPolicyLearner
    return cls(spec, agent_config, obs_dim, act_dim, replay_size, batch_size,
               seed_steps, num_seeds, shard, update_every)
