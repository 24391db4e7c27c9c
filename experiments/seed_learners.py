"""The host side of learning for N seeds in one process (`--num_seeds`).

The same contract as `experiments.learners` with a leading seed axis on
everything: the agent states, the replay buffers or rollouts, observations,
actions and keys are stacked `[N, ...]`, and each device call (`act`,
`update`, `train_step`, replay insertion) is one `jax.vmap` over the seeds.
Seed `i` sees exactly the computation of a single-seed learner (same keys,
same data), so it matches a single-seed run up to float reassociation in
the batched kernels. With `shard=True` the stacked pytrees are spread over
all devices (`dqs_jax.parallel.shard_seeds`); jitted, vmapped calls then run
each device's seeds there.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agents, parallel, replay
from dqs_jax.types import Batch, PolicyStep, Rollout
from experiments import learners
from experiments.learners import EVAL_KEY


def stack_trees(trees: List[Any]) -> Any:
    """The pytrees in `trees` (same structure) stacked on a new axis 0."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack_tree(tree: Any, index: int) -> Any:
    """Seed `index` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


@functools.lru_cache(maxsize=None)
def _act_deterministic_fn(spec: agents.Agent):
    def act_deterministic(state, observation):
        return spec.act(state, observation[None], EVAL_KEY,
                        deterministic=True)[0]

    return jax.jit(jax.vmap(act_deterministic))


@functools.lru_cache(maxsize=None)
def _off_policy_fns(spec: agents.Agent, act_dim: int, batch_size: int):
    """Vmapped, jitted `(uniform, act, insert, train_step)`, memoised like
    `learners.off_policy_fns`."""

    def uniform(key):
        return jax.random.uniform(key, (act_dim,), minval=-1.0, maxval=1.0)

    def act(state, observation, key):
        return spec.act(state, observation[None], key)[0]

    def step(state, buffer, transition, key):
        buffer = replay.insert(buffer, transition)
        return agents.train_step(spec, state, buffer, key, batch_size)

    return (jax.jit(jax.vmap(uniform)), jax.jit(jax.vmap(act)),
            jax.jit(jax.vmap(replay.insert), donate_argnums=0),
            jax.jit(jax.vmap(step), donate_argnums=(0, 1)))


class _SeedsLearner:
    """What both kinds share: placement, deterministic acting, metrics."""

    def __init__(self, spec: agents.Agent, num_seeds: int, shard: bool):
        self.spec, self.num_seeds, self.shard = spec, num_seeds, shard
        self._act_deterministic = _act_deterministic_fn(spec)

    def place(self, tree: Any) -> Any:
        """`tree` (leading seed axis) on the device(s)."""
        if self.shard:
            return parallel.shard_seeds(tree)
        return jax.device_put(tree)

    def act_deterministic(self, states: Any, observations: np.ndarray
                          ) -> np.ndarray:
        """The deterministic policy's actions `[N, d]` at `[N, o]`."""
        return np.asarray(self._act_deterministic(states, observations))

    def restore(self, data: Any) -> None:
        self.data = self.place(data)


class SeedsOffPolicyLearner(_SeedsLearner):
    """N replay buffers, a shared seed phase, one vmapped `train_step` per
    env step (`learners.OffPolicyLearner` per seed)."""

    data_name = "replay"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int, num_seeds: int, shard: bool = False):
        del agent_config
        super().__init__(spec, num_seeds, shard)
        self.act_dim, self.batch_size = act_dim, batch_size
        self.seed_steps = seed_steps
        self.data = self.place(stack_trees(
            [replay.init(replay_size, obs_dim, act_dim)] * num_seeds))
        (self._uniform, self._act, self._insert,
         self._train_step) = _off_policy_fns(spec, act_dim, batch_size)

    def metric_names(self, states: Any) -> List[str]:
        _, _, metrics = jax.eval_shape(
            lambda s, b: agents.train_step(self.spec, s, b, EVAL_KEY,
                                           self.batch_size),
            unstack_tree(states, 0), unstack_tree(self.data, 0))
        return sorted(metrics)

    def act(self, states: Any, observations: np.ndarray, keys: jax.Array,
            env_step: int) -> Tuple[np.ndarray, Optional[PolicyStep]]:
        """The env actions `[N, d]` (uniform during the seed phase)."""
        if env_step < self.seed_steps:
            actions = self._uniform(keys)
        else:
            actions = self._act(states, observations, keys)
        return np.asarray(actions, np.float32), None

    # Stores the transitions `[N, ...]`; after the seed phase, one learning
    # step per seed (metrics `[N]`): the single-seed logic, whose calls are
    # the vmapped ones here.
    observe = learners.OffPolicyLearner.observe


class SeedsOnPolicyLearner(_SeedsLearner):
    """N rollouts filled in lockstep by a vmapped `explore`, then one
    vmapped `update` (`learners.OnPolicyLearner` per seed)."""

    data_name = "rollout"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int, num_seeds: int, shard: bool = False):
        del replay_size, batch_size, seed_steps  # Off-policy settings.
        super().__init__(spec, num_seeds, shard)
        length = int(agent_config.rollout_length)
        vector = lambda n: np.zeros((num_seeds, length, n),  # noqa: E731
                                    np.float32)
        scalar = lambda: np.zeros((num_seeds, length), np.float32)  # noqa
        self.data = {
            "index": np.zeros((), np.int32),
            "rollout": Rollout(vector(obs_dim), vector(act_dim), scalar(),
                               scalar(), scalar(), scalar(), scalar(),
                               vector(obs_dim))._asdict(),
        }

        def explore(state, observation, key):
            action, policy_step = spec.explore(state, observation[None], key)
            return action[0], jax.tree_util.tree_map(lambda x: x[0],
                                                     policy_step)

        self._explore = jax.jit(jax.vmap(explore))
        self._update = jax.jit(jax.vmap(spec.update), donate_argnums=0)

    def restore(self, data: Dict[str, Any]) -> None:
        """Takes restored `data` as writable host arrays."""
        self.data = jax.tree_util.tree_map(np.array, data)

    def metric_names(self, states: Any) -> List[str]:
        rollout = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
            Rollout(**self.data["rollout"]))
        _, metrics = jax.eval_shape(self.spec.update,
                                    unstack_tree(states, 0), rollout)
        return sorted(metrics)

    def act(self, states: Any, observations: np.ndarray, keys: jax.Array,
            env_step: int) -> Tuple[np.ndarray, PolicyStep]:
        del env_step
        actions, policy_steps = self._explore(states, observations, keys)
        policy_steps = jax.tree_util.tree_map(np.asarray, policy_steps)
        return np.asarray(actions, np.float32), policy_steps

    def observe(self, states: Any, transitions: Batch, dones: np.ndarray,
                extras: PolicyStep, keys: jax.Array, env_step: int
                ) -> Tuple[Any, Optional[Dict[str, jax.Array]]]:
        del keys, env_step
        if not learners.store_step(self.data, transitions, dones, extras,
                                   time_axis=1):
            return states, None
        rollout = self.place(Rollout(**{k: jnp.asarray(v) for k, v in
                                        self.data["rollout"].items()}))
        return self._update(states, rollout)


def make_seeds_learner(spec: agents.Agent, agent_config: Any, obs_dim: int,
                       act_dim: int, replay_size: int, batch_size: int,
                       seed_steps: int, num_seeds: int, shard: bool = False):
    """The N-seed learner that fits `spec` (on- or off-policy)."""
    cls = SeedsOnPolicyLearner if spec.on_policy else SeedsOffPolicyLearner
    return cls(spec, agent_config, obs_dim, act_dim, replay_size, batch_size,
               seed_steps, num_seeds, shard)
