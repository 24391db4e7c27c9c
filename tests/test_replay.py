"""Replay buffer: wrap-around, sampling determinism, in-place insert."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import replay
from dqs_jax.types import Batch


def transition(i, obs_dim=3, act_dim=2):
    return Batch(jnp.full((obs_dim,), i, jnp.float32),
                 jnp.full((act_dim,), -i, jnp.float32), jnp.float32(i),
                 jnp.float32(i % 2), jnp.full((obs_dim,), i + 0.5, jnp.float32))


def fill(buffer, n):
    insert = jax.jit(replay.insert)
    for i in range(n):
        buffer = insert(buffer, transition(i))
    return buffer


def test_insert_and_wrap_around():
    buffer = fill(replay.init(5, 3, 2), 3)
    assert int(buffer.size) == 3 and int(buffer.insert_index) == 3
    np.testing.assert_array_equal(buffer.rewards, [0, 1, 2, 0, 0])
    buffer = fill(buffer, 0)
    insert = jax.jit(replay.insert)
    for i in range(3, 8):
        buffer = insert(buffer, transition(i))
    # 8 inserts into 5 slots: slots hold 5, 6, 7, 3, 4.
    assert int(buffer.size) == 5 and int(buffer.insert_index) == 3
    np.testing.assert_array_equal(buffer.rewards, [5, 6, 7, 3, 4])
    np.testing.assert_array_equal(buffer.observations[:, 0], [5, 6, 7, 3, 4])
    np.testing.assert_array_equal(buffer.actions[:, 1], [-5, -6, -7, -3, -4])
    np.testing.assert_array_equal(buffer.next_observations[:, 2],
                                  [5.5, 6.5, 7.5, 3.5, 4.5])
    np.testing.assert_array_equal(buffer.discounts, [1, 0, 1, 1, 0])


def test_sampling_is_uniform_over_filled_slots_and_deterministic():
    buffer = fill(replay.init(100, 3, 2), 10)
    batch = replay.sample(buffer, jax.random.PRNGKey(0), 5000)
    assert batch.observations.shape == (5000, 3)
    values = np.asarray(batch.rewards)
    assert set(np.unique(values)) == set(range(10))  # Never an empty slot.
    counts = np.bincount(values.astype(int), minlength=10)
    assert counts.min() > 400 and counts.max() < 600
    # Rows stay aligned across fields.
    np.testing.assert_array_equal(batch.observations[:, 0], values)
    np.testing.assert_array_equal(batch.actions[:, 0], -values)
    again = replay.sample(buffer, jax.random.PRNGKey(0), 5000)
    np.testing.assert_array_equal(again.rewards, batch.rewards)
    other = replay.sample(buffer, jax.random.PRNGKey(1), 5000)
    assert not np.array_equal(other.rewards, batch.rewards)


def test_donated_insert_reuses_the_buffer():
    insert = jax.jit(replay.insert, donate_argnums=0)
    buffer = replay.init(1000, 3, 2)
    pointer = buffer.observations.unsafe_buffer_pointer()
    buffer = insert(buffer, transition(1))
    buffer = insert(buffer, transition(2))
    assert buffer.observations.unsafe_buffer_pointer() == pointer
    np.testing.assert_array_equal(buffer.rewards[:3], [1, 2, 0])


def test_insert_inside_scan():
    def body(buf, i):
        return replay.insert(buf, transition(i.astype(jnp.float32))), None

    buffer, _ = jax.lax.scan(body, replay.init(4, 3, 2), jnp.arange(6))
    np.testing.assert_array_equal(buffer.rewards, [4, 5, 2, 3])


def test_shape_errors():
    buffer = replay.init(4, 3, 2)
    with pytest.raises(AssertionError):
        replay.insert(buffer, transition(0, obs_dim=4))
    with pytest.raises(ValueError, match="capacity"):
        replay.init(0, 3, 2)


def test_action_targets_follow_inserts_and_writes():
    buffer = replay.init(3, 1, 2)
    for i in range(4):  # Wraps: slot 0 holds the 4th transition.
        buffer = replay.insert(buffer, Batch(
            jnp.full((1,), float(i)), jnp.full((2,), 0.1 * i), jnp.float32(0),
            jnp.float32(1), jnp.zeros((1,))))
    np.testing.assert_allclose(np.asarray(buffer.action_targets),
                               np.asarray(buffer.actions))
    np.testing.assert_allclose(np.asarray(buffer.action_targets[0]),
                               [0.3, 0.3], rtol=1e-6)
    written = replay.write_action_targets(buffer, jnp.array([2, 0]),
                                          jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(np.asarray(written.action_targets),
                               [[3, 4], [0.1, 0.1], [1, 2]], rtol=1e-6)
    # The critic's data is untouched; a new insert resets its slot's target.
    np.testing.assert_array_equal(np.asarray(written.actions),
                                  np.asarray(buffer.actions))
    again = replay.insert(written, Batch(
        jnp.zeros((1,)), jnp.full((2,), -0.5), jnp.float32(0), jnp.float32(1),
        jnp.zeros((1,))))
    np.testing.assert_array_equal(np.asarray(again.action_targets[1]),
                                  [-0.5, -0.5])
    batch = replay.gather(again, jnp.array([2, 1]))
    np.testing.assert_array_equal(np.asarray(batch.actions[1]), [-0.5, -0.5])
