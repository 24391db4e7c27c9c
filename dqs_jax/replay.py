"""A preallocated, functional replay buffer (pure JAX, jit/scan/vmap-able).

`insert` writes one transition in O(1) at a wrapping index (jit it with
`donate_argnums=0` so the update is in place); `sample` draws uniformly from
the filled part with an explicit key. The buffer is a pytree, so it goes into
checkpoints as it is.

Each slot also holds an `action_targets` row, set to the executed action on
insert, that an agent may refine in place (DIPO's "diffusion buffer" of
improved actions: `sample_indices`, `gather`, `write_action_targets`); the
critic's data (`actions`) is never changed.
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
    action_targets: jax.Array  # [C, d], initialised to `actions` on insert
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
        action_targets=jnp.zeros((capacity, act_dim), jnp.float32),
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
        action_targets=buffer.action_targets.at[i].set(
            jnp.asarray(transition.actions, jnp.float32)),
        insert_index=(i + 1) % buffer.capacity,
        size=jnp.minimum(buffer.size + 1, buffer.capacity),
    )


def sample_indices(buffer: ReplayBuffer, key: PRNGKey,
                   batch_size: int) -> jax.Array:
    """`[batch_size]` int32 slot indices drawn uniformly, with replacement,
    from the filled slots (the buffer must hold at least one)."""
    return jax.random.randint(key, (batch_size,), 0,
                              jnp.maximum(buffer.size, 1))


def gather(buffer: ReplayBuffer, indices: jax.Array) -> Batch:
    """The transitions at `indices [B]`: a `Batch` of `[B, ...]` rows."""
    chex.assert_rank(indices, 1)
    return Batch(*(getattr(buffer, name)[indices] for name in Batch._fields))


def sample(buffer: ReplayBuffer, key: PRNGKey, batch_size: int) -> Batch:
    """`batch_size` transitions drawn uniformly, with replacement, from the
    filled slots (the buffer must hold at least one).

    Returns:
      A `Batch` of `[B, o]`, `[B, d]`, `[B]`, `[B]`, `[B, o]`.
    """
    return gather(buffer, sample_indices(buffer, key, batch_size))


def write_action_targets(buffer: ReplayBuffer, indices: jax.Array,
                         values: jax.Array) -> ReplayBuffer:
    """Sets `action_targets[indices] = values` (`[B]`, `[B, d]`). Repeated
    indices should carry equal values (which write wins is unspecified)."""
    chex.assert_rank([indices, values], [1, 2])
    chex.assert_equal_shape_prefix([indices, values], prefix_len=1)
    chex.assert_axis_dimension(values, 1, buffer.action_targets.shape[1])
    return buffer.replace(action_targets=buffer.action_targets.at[
        indices].set(jnp.asarray(values, jnp.float32)))
