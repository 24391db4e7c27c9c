"""A preallocated, functional replay buffer (pure JAX, jit/scan/vmap-able).

`insert` writes one transition in O(1) at a wrapping index (jit it with
`donate_argnums=0` so the update is in place); `sample` draws uniformly from
the filled part with an explicit key. The buffer is a pytree, so it goes into
checkpoints as it is.
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp

from dqs_jax.types import Batch, PRNGKey


@flax.struct.dataclass
class ReplayBuffer:
    """Storage `[C, ...]` for `C = capacity` transitions, plus write state."""

    observations: jax.Array  # [C, o]
    actions: jax.Array  # [C, d]
    rewards: jax.Array  # [C]
    discounts: jax.Array  # [C]
    next_observations: jax.Array  # [C, o]
    insert_index: jax.Array  # int32 scalar: the slot written next
    size: jax.Array  # int32 scalar: number of filled slots, <= C

    @property
    def capacity(self) -> int:
        return self.rewards.shape[-1]


def init(capacity: int, obs_dim: int, act_dim: int) -> ReplayBuffer:
    """An empty buffer of `capacity` float32 transitions."""
    if capacity < 1 or obs_dim < 1 or act_dim < 1:
        raise ValueError("capacity, obs_dim and act_dim must be >= 1, got "
                         f"{capacity}, {obs_dim}, {act_dim}.")
    return ReplayBuffer(
        observations=jnp.zeros((capacity, obs_dim), jnp.float32),
        actions=jnp.zeros((capacity, act_dim), jnp.float32),
        rewards=jnp.zeros((capacity,), jnp.float32),
        discounts=jnp.zeros((capacity,), jnp.float32),
        next_observations=jnp.zeros((capacity, obs_dim), jnp.float32),
        insert_index=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(buffer: ReplayBuffer, transition: Batch) -> ReplayBuffer:
    """Writes one transition at `insert_index`, overwriting the oldest when full.

    Args:
      buffer: the buffer.
      transition: a `Batch` of ONE transition: `[o]`, `[d]`, `[]`, `[]`, `[o]`.

    Returns:
      The updated buffer.
    """
    chex.assert_rank(list(transition), [1, 1, 0, 0, 1])
    chex.assert_shape(transition.observations, buffer.observations.shape[1:])
    chex.assert_shape(transition.next_observations,
                      buffer.observations.shape[1:])
    chex.assert_shape(transition.actions, buffer.actions.shape[1:])
    i = buffer.insert_index
    fields = {name: getattr(buffer, name).at[i].set(
        jnp.asarray(value, jnp.float32))
        for name, value in transition._asdict().items()}
    return buffer.replace(
        **fields,
        insert_index=(i + 1) % buffer.capacity,
        size=jnp.minimum(buffer.size + 1, buffer.capacity),
    )


def sample(buffer: ReplayBuffer, key: PRNGKey, batch_size: int) -> Batch:
    """`batch_size` transitions drawn uniformly, with replacement, from the
    filled slots (the buffer must hold at least one).

    Returns:
      A `Batch` of `[B, o]`, `[B, d]`, `[B]`, `[B]`, `[B, o]`.
    """
    indices = jax.random.randint(key, (batch_size,), 0,
                                 jnp.maximum(buffer.size, 1))
    return Batch(*(getattr(buffer, name)[indices] for name in Batch._fields))
