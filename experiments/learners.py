"""How the dm_control driver feeds an agent: the host side of learning.

`OffPolicyLearner` keeps a replay buffer, acts uniformly at random for the
first `seed_steps` steps, then does one `agents.train_step` (insert, then
`update` on a sample, or the agent's `replay_update`) per env step.
`OnPolicyLearner` acts with the agent's `explore` from the first step,
stores `rollout_length` transitions in a `Rollout` and then does one
`update` on it (no seed phase). Both keep their data (`data`, a pytree) in
the run's checkpoints, so a resumed run continues exactly.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np

from dqs_jax import agents, replay
from dqs_jax.types import Batch, PolicyStep, Rollout

EVAL_KEY = jax.random.PRNGKey(0)  # Unused by deterministic policies.


@functools.lru_cache(maxsize=None)
def off_policy_fns(spec: agents.Agent, batch_size: int):
    """`(act, insert, train_step)` jitted, memoised per agent and batch size
    so that runs in one process (tests, sweeps) share their compilations."""

    def step(state, buffer, transition, key):
        buffer = replay.insert(buffer, transition)
        return agents.train_step(spec, state, buffer, key, batch_size)

    return (jax.jit(spec.act, static_argnames="deterministic"),
            jax.jit(replay.insert, donate_argnums=0),
            jax.jit(step, donate_argnums=(0, 1)))


class OffPolicyLearner:
    """Replay buffer, seed phase, one `train_step` per env step."""

    data_name = "replay"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int):
        del agent_config
        self.spec, self.act_dim = spec, act_dim
        self.batch_size, self.seed_steps = batch_size, seed_steps
        self.data = replay.init(replay_size, obs_dim, act_dim)
        self.act_fn, self._insert, self._train_step = off_policy_fns(
            spec, batch_size)

    def restore(self, data: replay.ReplayBuffer) -> None:
        self.data = data

    def metric_names(self, state: Any) -> List[str]:
        _, _, metrics = jax.eval_shape(
            lambda s, b: agents.train_step(self.spec, s, b, EVAL_KEY,
                                           self.batch_size),
            state, self.data)
        return sorted(metrics)

    def act(self, state: Any, observation: np.ndarray, key: jax.Array,
            env_step: int) -> Tuple[np.ndarray, Optional[PolicyStep]]:
        """The env action `[d]` (uniform during the seed phase)."""
        if env_step < self.seed_steps:
            action = jax.random.uniform(key, (self.act_dim,), minval=-1.0,
                                        maxval=1.0)
        else:
            action = self.act_fn(state, observation[None], key)[0]
        return np.asarray(action, np.float32), None

    def observe(self, state: Any, transition: Batch, done: bool,
                extras: Optional[PolicyStep], key: jax.Array, env_step: int
                ) -> Tuple[Any, Optional[Dict[str, jax.Array]]]:
        """Stores the transition; after the seed phase, one learning step."""
        del done, extras
        if env_step < self.seed_steps:
            self.data = self._insert(self.data, transition)
            return state, None
        state, self.data, metrics = self._train_step(state, self.data,
                                                     transition, key)
        return state, metrics


class OnPolicyLearner:
    """`rollout_length` steps of `explore`, then one `update(state, rollout)`."""

    data_name = "rollout"

    def __init__(self, spec: agents.Agent, agent_config: Any, obs_dim: int,
                 act_dim: int, replay_size: int, batch_size: int,
                 seed_steps: int):
        del replay_size, batch_size, seed_steps  # Off-policy settings.
        self.spec = spec
        length = int(agent_config.rollout_length)
        vector = lambda n: np.zeros((length, n), np.float32)  # noqa: E731
        scalar = lambda: np.zeros((length,), np.float32)  # noqa: E731
        self.data = {
            "index": np.zeros((), np.int32),
            "rollout": Rollout(vector(obs_dim), vector(act_dim), scalar(),
                               scalar(), scalar(), scalar(), scalar(),
                               vector(obs_dim))._asdict(),
        }
        self.act_fn = jax.jit(spec.act, static_argnames="deterministic")
        self._explore = jax.jit(spec.explore)
        self._update = jax.jit(spec.update, donate_argnums=0)

    def restore(self, data: Dict[str, Any]) -> None:
        """Takes restored `data` as writable host arrays."""
        self.data = jax.tree_util.tree_map(np.array, data)

    def metric_names(self, state: Any) -> List[str]:
        rollout = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
            Rollout(**self.data["rollout"]))
        _, metrics = jax.eval_shape(self.spec.update, state, rollout)
        return sorted(metrics)

    def act(self, state: Any, observation: np.ndarray, key: jax.Array,
            env_step: int) -> Tuple[np.ndarray, PolicyStep]:
        """The env action `[d]` and what the rollout keeps of it."""
        del env_step
        action, policy_step = self._explore(state, observation[None], key)
        policy_step = jax.tree_util.tree_map(lambda x: np.asarray(x[0]),
                                             policy_step)
        return np.asarray(action[0], np.float32), policy_step

    def observe(self, state: Any, transition: Batch, done: bool,
                extras: PolicyStep, key: jax.Array, env_step: int
                ) -> Tuple[Any, Optional[Dict[str, jax.Array]]]:
        """Stores the transition; an update once the rollout is full."""
        del key, env_step
        if not store_step(self.data, transition, done, extras, time_axis=0):
            return state, None
        rollout = Rollout(**{k: jax.numpy.asarray(v) for k, v in
                             self.data["rollout"].items()})
        return self._update(state, rollout)


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
                 seed_steps: int):
    """The learner that fits `spec` (on- or off-policy)."""
    cls = OnPolicyLearner if spec.on_policy else OffPolicyLearner
    return cls(spec, agent_config, obs_dim, act_dim, replay_size, batch_size,
               seed_steps)
