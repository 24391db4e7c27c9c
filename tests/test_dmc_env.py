"""DMCEnv: flat observations, action rescaling, episode ends, seeding and
bit-exact save / restore."""

import os

import numpy as np
import pytest

from dqs_jax.envs.dmc import DMCEnv, StepResult

from dm_control import suite  # noqa: E402  (after MUJOCO_GL is set)

from tests.helpers import assert_same_steps, rollout  # noqa: E402


def actions(env, n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, env.action_size))


def test_mujoco_gl_defaults_to_egl_or_user_choice():
    assert os.environ["MUJOCO_GL"] in ("egl", "osmesa", "glfw")


def test_metadata_and_flat_observation():
    env = DMCEnv("cheetah", "run", seed=3)
    assert env.name == "dmc:cheetah-run"
    assert (env.observation_size, env.action_size) == (17, 6)
    assert env.max_episode_steps == 1000
    obs = env.reset()
    assert obs.shape == (17,) and obs.dtype == np.float32
    # Same order as the env's own OrderedDict (position, then velocity).
    raw = suite.load("cheetah", "run", task_kwargs={"random": 3})
    first = raw.reset().observation
    assert list(first) == ["position", "velocity"]
    expected = np.concatenate([first["position"], first["velocity"]])
    np.testing.assert_array_equal(obs, expected.astype(np.float32))
    result = env.step(np.zeros(6))
    assert isinstance(result, StepResult)
    assert result.observation.shape == (17,)
    assert result.observation.dtype == np.float32
    assert isinstance(result.reward, float)
    assert (result.discount, result.terminated, result.truncated) == (
        1.0, False, False)


def test_scalar_observation_entries_are_flattened():
    # cartpole: position [3], velocity [2]; walker has a scalar 'height'.
    env = DMCEnv("walker", "walk", seed=0)
    assert env.observation_size == 24
    assert env.reset().shape == (24,)


def test_actions_rescaled_to_bounds_and_clipped():
    env = DMCEnv("quadruped", "walk", seed=0)  # bounds differ from [-1, 1]
    spec = suite.load("quadruped", "walk").action_spec()
    low, high = spec.minimum, spec.maximum
    assert not np.all(low == -1) and not np.all(high == 1)
    env.reset()
    a = np.linspace(-0.9, 0.9, env.action_size)
    env.step(a)
    np.testing.assert_allclose(env.physics.data.ctrl,
                               low + (a + 1) / 2 * (high - low), rtol=0,
                               atol=1e-12)
    # Index 1 has bounds [-1, 1.1]: 0 maps to the midpoint 0.05.
    a = np.zeros(env.action_size)
    a[0], a[2], a[3] = 5.0, -7.0, 1.0
    env.step(a)
    ctrl = env.physics.data.ctrl
    assert ctrl[0] == high[0] and ctrl[2] == low[2] and ctrl[3] == high[3]
    np.testing.assert_allclose(ctrl[1], 0.05, atol=1e-12)
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        env.step(np.zeros(3))


def test_time_limit_truncates_with_discount_one():
    env = DMCEnv("cartpole", "balance", seed=0)
    assert env.max_episode_steps == 1000
    env.reset()
    acts = actions(env, 1000)
    results = rollout(env, acts)
    assert not any(r.truncated or r.terminated for r in results[:-1])
    assert all(r.discount == 1.0 for r in results)
    assert results[-1].truncated and not results[-1].terminated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(acts[0])
    assert env.reset().shape == (5,)
    assert not env.step(acts[0]).truncated


def test_short_time_limit():
    env = DMCEnv("cartpole", "balance", seed=0, time_limit=0.25)
    assert env.max_episode_steps == 25
    env.reset()
    ends = [r.truncated for r in rollout(env, actions(env, 25))]
    assert ends == [False] * 24 + [True]


def test_true_termination_sets_discount_zero():
    env = DMCEnv("cartpole", "balance", seed=0)
    env.reset()
    env.step(np.zeros(1))
    env._env.task.get_termination = lambda physics: 0.0  # terminal state
    result = env.step(np.zeros(1))
    assert result.terminated and not result.truncated
    assert result.discount == 0.0
    with pytest.raises(RuntimeError):
        env.step(np.zeros(1))


def test_step_before_reset_raises():
    env = DMCEnv("cartpole", "balance", seed=0)
    with pytest.raises(RuntimeError, match="dmc:cartpole-balance"):
        env.step(np.zeros(1))


def test_task_without_time_limit_gets_the_suite_default():
    env = DMCEnv("lqr", "lqr_2_1", seed=0)
    assert env.max_episode_steps == 1000
    assert DMCEnv("lqr", "lqr_2_1", 0, time_limit=0.3).max_episode_steps == 10
    # Its +-1e10 action bounds are not rescaled: [-1, 1] passes through.
    np.testing.assert_array_equal(env.scale_action([0.5]), [0.5])
    np.testing.assert_array_equal(env.scale_action([-2.0]), [-1.0])


def test_seeding():
    a, b, c = (DMCEnv("walker", "walk", s) for s in (1, 1, 2))
    obs_a, obs_b, obs_c = a.reset(), b.reset(), c.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_c)
    acts = actions(a, 40)
    assert_same_steps(rollout(a, acts), rollout(b, acts))
    # seed() reseeds in place: the next episode matches a fresh env.
    c.seed(1)
    np.testing.assert_array_equal(c.reset(), DMCEnv("walker", "walk",
                                                    1).reset())
    c.seed(1)
    np.testing.assert_array_equal(c.reset(), obs_a)


@pytest.mark.parametrize("domain,task", [
    ("cheetah", "run"), ("walker", "walk"), ("quadruped", "walk"),
    ("reacher", "easy"),  # seed-dependent target lives in the model
])
def test_exact_restore_mid_episode(domain, task):
    env = DMCEnv(domain, task, seed=0)
    env.reset()
    rollout(env, actions(env, 30, seed=1))
    saved = env.get_state()
    acts = actions(env, 50, seed=2)
    ref = rollout(env, acts)

    other = DMCEnv(domain, task, seed=123)  # never reset
    other.set_state(saved)
    assert_same_steps(ref, rollout(other, acts))
    final, final_other = env.get_state(), other.get_state()
    for key in final:
        np.testing.assert_array_equal(final[key], final_other[key],
                                      err_msg=key)


def test_exact_restore_into_env_mid_other_episode():
    env = DMCEnv("walker", "walk", seed=0)
    env.reset()
    rollout(env, actions(env, 30, seed=1))
    saved = env.get_state()
    acts = actions(env, 50, seed=2)
    ref = rollout(env, acts)

    other = DMCEnv("walker", "walk", seed=9)
    other.reset()
    rollout(other, actions(other, 7, seed=5))
    other.set_state(saved)
    assert_same_steps(ref, rollout(other, acts))


def test_restore_across_episode_boundary():
    env = DMCEnv("cartpole", "swingup", seed=0, time_limit=0.2)
    env.reset()
    last = rollout(env, actions(env, 20))[-1]
    assert last.truncated
    saved = env.get_state()
    assert not saved["in_episode"]
    np.testing.assert_array_equal(saved["observation"], last.observation)
    first = env.reset()
    acts = actions(env, 10, seed=1)
    ref = rollout(env, acts)

    other = DMCEnv("cartpole", "swingup", seed=42, time_limit=0.2)
    other.set_state(saved)
    with pytest.raises(RuntimeError):
        other.step(acts[0])
    np.testing.assert_array_equal(other.reset(), first)
    assert_same_steps(ref, rollout(other, acts))


def test_state_is_a_dict_of_nonempty_numpy_arrays():
    env = DMCEnv("reacher", "easy", seed=0)
    env.reset()
    state = env.get_state()
    for key, value in state.items():
        assert isinstance(value, np.ndarray), key
        assert value.dtype.kind in "biuf", (key, value.dtype)
        assert value.size > 0, key  # orbax cannot save empty arrays
    assert state["rng_key"].dtype == np.uint32
    assert state["rng_key"].shape == (624,)
    assert int(state["step_count"]) == 0 and bool(state["in_episode"])
    # The saved state is a copy, not a view of the live env.
    before = state["mj_state"].copy()
    env.step(np.ones(env.action_size))
    np.testing.assert_array_equal(state["mj_state"], before)


def test_set_state_rejects_mismatched_state():
    cheetah = DMCEnv("cheetah", "run", seed=0)
    walker = DMCEnv("walker", "walk", seed=0)
    with pytest.raises(ValueError, match="dmc:walker-walk"):
        walker.set_state(cheetah.get_state())
    state = walker.get_state()
    del state["rng_key"]
    with pytest.raises(ValueError, match="rng_key"):
        walker.set_state(state)


def test_state_survives_orbax_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    env = DMCEnv("walker", "walk", seed=0)
    env.reset()
    rollout(env, actions(env, 10))
    saved = env.get_state()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "env", saved)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "env")
    acts = actions(env, 20, seed=3)
    ref = rollout(env, acts)
    other = DMCEnv("walker", "walk", seed=1)
    other.set_state(restored)
    assert_same_steps(ref, rollout(other, acts))
