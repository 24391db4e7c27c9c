"""The two-goal PointMaze env: fidelity to gymnasium-robotics, goals, reward,
episode ends, bit-exact save / restore, no temp-file leak, the registry and
the training binary (the map's trajectory tools: test_maze_geometry.py)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from dqs_jax.envs import maze, maze_geometry as geo, registry
from dqs_jax.envs.maze import MazeEnv
from tests.helpers import assert_same_steps, rollout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def actions(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 2)).astype(
        np.float32)


def test_map_and_cells_match_gymnasium_robotics():
    u = MazeEnv(0).unwrapped
    assert u.maze.maze_map == geo.maze_map()
    assert sorted(map(tuple, u.maze.unique_goal_locations)) == [
        tuple(xy) for xy in sorted(map(tuple, geo.GOAL_CENTRES))]
    for cell in np.argwhere(~geo.WALLS):
        xy = geo.cell_to_xy(cell)
        np.testing.assert_array_equal(u.maze.cell_rowcol_to_xy(cell), xy)
        for p in (xy + 0.49, xy - 0.49, xy + [0.3, -0.2]):
            np.testing.assert_array_equal(u.maze.cell_xy_to_rowcol(p),
                                          geo.xy_to_cell(p))


def test_metadata():
    env = MazeEnv(0)
    assert env.name == "maze:two-goal" and not env.terminate_at_goal
    assert (env.observation_size, env.action_size) == (4, 2)
    assert env.max_episode_steps == 600 == maze.EPISODE_STEPS
    assert maze.gym.spec(maze.GYM_ID).max_episode_steps == 600
    low, high = env.action_bounds
    np.testing.assert_array_equal(low, [-1, -1])
    np.testing.assert_array_equal(high, [1, 1])
    obs = env.reset()
    assert obs.shape == (4,) and obs.dtype == np.float32
    assert np.all(np.abs(obs[:2]) <= 0.25) and np.all(obs[2:] == 0)
    result = env.step(np.zeros(2))
    assert result.observation.dtype == np.float32
    assert isinstance(result.reward, float)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="seed"):
        MazeEnv(-1)
    with pytest.raises(ValueError, match="max_episode_steps"):
        MazeEnv(0, max_episode_steps=0)


@pytest.mark.parametrize("terminate", [False, True])
def test_matches_gymnasium_robotics(terminate):
    env = MazeEnv(7, terminate_at_goal=terminate)
    raw = maze.make_gym_env(terminate)  # With gym.make's TimeLimit.
    raw_obs, _ = raw.reset(seed=7)
    for episode in range(2):
        if episode:
            raw_obs, _ = raw.reset()
        np.testing.assert_array_equal(
            env.reset(), raw_obs["observation"].astype(np.float32))
        np.testing.assert_array_equal(env.goal, raw_obs["desired_goal"])
        for i, a in enumerate(actions(600, seed=episode)):
            result = env.step(a)
            obs, reward, terminated, truncated, _ = raw.step(a)
            np.testing.assert_array_equal(
                result.observation, obs["observation"].astype(np.float32),
                err_msg=f"step {i}")
            assert result.reward == reward
            assert result.terminated == terminated
            assert result.truncated == (truncated and not terminated)
            if terminated or truncated:
                break
        assert result.truncated and i == 599


def test_goal_drawn_among_the_two_goal_cells():
    env = MazeEnv(0)
    counts = np.zeros(2, int)
    for _ in range(200):
        obs = env.reset()
        goal = env.goal
        cell = geo.xy_to_cell(goal)
        index = [tuple(c) for c in geo.GOAL_CELLS].index(tuple(cell))
        counts[index] += 1
        assert np.all(np.abs(goal - geo.GOAL_CENTRES[index]) <= 0.25)
        assert np.all(np.abs(obs[:2]) <= 0.25)  # The start cell's noise.
    assert counts.min() >= 70, counts


def goal_offsets(env):
    """Unit vectors from the goal into free space (right of the top-left
    goal, above the bottom-right one)."""
    return [1.0, 0.0] if env.goal[1] > 0 else [0.0, 1.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sparse_reward_radius(seed):
    env = MazeEnv(seed)
    env.reset()
    direction = np.asarray(goal_offsets(env))
    for distance, reward in [(0.0, 1.0), (0.2, 1.0), (0.449, 1.0),
                             (0.451, 0.0), (0.8, 0.0)]:
        env.place_ball(env.goal + distance * direction)
        result = env.step(np.zeros(2))  # No force, no velocity: stays.
        np.testing.assert_array_equal(result.observation[:2], np.float32(
            env.goal + distance * direction))
        assert result.reward == reward, distance
        assert not result.terminated and result.discount == 1.0


def test_continuing_task_truncates_at_600_steps():
    env = MazeEnv(0)
    env.reset()
    env.place_ball(env.goal)
    results = rollout(env, np.zeros((600, 2)))
    assert [r.reward for r in results] == [1.0] * 600
    assert not any(r.terminated for r in results)
    assert [r.truncated for r in results] == [False] * 599 + [True]
    assert all(r.discount == 1.0 for r in results)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset()
    assert not env.step(np.zeros(2)).truncated


def test_terminate_option_ends_at_the_goal():
    env = registry.make_env("maze:two-goal-terminate", 0)
    assert env.terminate_at_goal and env.name == "maze:two-goal-terminate"
    env.reset()
    outside = env.step(np.zeros(2))  # At the start, far from the goal.
    assert (outside.reward, outside.terminated) == (0.0, False)
    env.place_ball(env.goal + 0.3 * np.asarray(goal_offsets(env)))
    result = env.step(np.zeros(2))
    assert (result.reward, result.discount) == (1.0, 0.0)
    assert result.terminated and not result.truncated
    with pytest.raises(RuntimeError, match="maze:two-goal-terminate"):
        env.step(np.zeros(2))
    with pytest.raises(RuntimeError, match="place_ball"):
        env.place_ball([0.0, 0.0])
    short = MazeEnv(0, terminate_at_goal=True, max_episode_steps=5)
    short.reset()
    assert [r.truncated for r in rollout(short, np.zeros((5, 2)))] == [
        False] * 4 + [True]


PUSH = np.array([1.0, 0.3])  # Up-right, into the corner of cell (1, 5).


def pressed_on_wall(seed=0):
    """An env whose ball has been pushed into the walls at x = 1.5 and
    y = 3.5 for a while (the ball's radius is 0.1)."""
    env = MazeEnv(seed)
    env.reset()
    position = rollout(env, np.tile(PUSH, (200, 1)))[-1].observation[:2]
    np.testing.assert_allclose(position, [1.4, 3.4], atol=0.005)
    return env


def test_exact_restore_while_pressing_on_a_wall():
    env = pressed_on_wall()
    saved = env.get_state()
    acts = np.concatenate([np.tile(PUSH, (30, 1)), actions(70, 3)])
    ref = rollout(env, acts)
    after = env.get_state()

    other = MazeEnv(seed=123)  # Never reset.
    other.set_state(saved)
    assert_same_steps(ref, rollout(other, acts))
    for key, value in other.get_state().items():
        np.testing.assert_array_equal(value, after[key], err_msg=key)
    env.set_state(saved)  # Into itself, later in the episode.
    assert_same_steps(ref, rollout(env, acts))
    # The next episode (goal and start) matches too: the RNG is restored.
    np.testing.assert_array_equal(env.reset(), other.reset())
    np.testing.assert_array_equal(env.goal, other.goal)
    assert_same_steps(rollout(env, acts), rollout(other, acts))

    # Position and velocity alone are not enough (the solver's warm start).
    naive = MazeEnv(seed=0)
    naive.reset()
    naive.place_ball(saved["mj_state"][1:3], saved["mj_state"][3:5])
    out = rollout(naive, acts)
    assert any(not np.array_equal(a.observation, b.observation)
               for a, b in zip(ref, out))


def test_restore_across_episode_boundary():
    env = MazeEnv(0, max_episode_steps=20)
    env.reset()
    last = rollout(env, actions(20))[-1]
    assert last.truncated
    saved = env.get_state()
    assert not saved["in_episode"]
    first = env.reset()
    ref = rollout(env, actions(10, 1))
    other = MazeEnv(42, max_episode_steps=20)
    other.set_state(saved)
    with pytest.raises(RuntimeError):
        other.step(np.zeros(2))
    np.testing.assert_array_equal(other.reset(), first)
    assert_same_steps(ref, rollout(other, actions(10, 1)))


def test_seeding():
    a, b, c = MazeEnv(1), MazeEnv(1), MazeEnv(2)
    obs = a.reset()
    np.testing.assert_array_equal(obs, b.reset())
    assert not np.array_equal(obs, c.reset())
    c.seed(1)  # Reseeds in place: the next episode matches a fresh env.
    np.testing.assert_array_equal(c.reset(), obs)
    np.testing.assert_array_equal(c.goal, a.goal)


def test_state_is_a_dict_of_nonempty_numpy_arrays_and_validated():
    env = MazeEnv(0)
    env.reset()
    state = env.get_state()
    for key, value in state.items():
        assert isinstance(value, np.ndarray), key
        assert value.dtype.kind in "biuf" and value.size > 0, key
    assert state["mj_state"].shape == (23,)
    before = state["mj_state"].copy()
    env.step(np.ones(2))
    np.testing.assert_array_equal(state["mj_state"], before)  # A copy.
    bad = dict(state)
    del bad["goal"]
    with pytest.raises(ValueError, match="goal"):
        env.set_state(bad)
    bad = dict(state, mj_state=np.zeros(5))
    with pytest.raises(ValueError, match="mj_state"):
        env.set_state(bad)


def test_state_survives_orbax_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    env = pressed_on_wall()
    saved = env.get_state()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "env", saved)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "env")
    acts = actions(50, 4)
    ref = rollout(env, acts)
    other = MazeEnv(1)
    other.set_state(restored)
    assert_same_steps(ref, rollout(other, acts))
    np.testing.assert_array_equal(env.reset(), other.reset())


def test_no_temp_file_left_per_construction(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for seed in range(3):
        MazeEnv(seed)
        maze.make_gym_env(terminate_at_goal=True)
    assert os.listdir(tmp_path) == []
    # Without the private folder gymnasium-robotics leaves its XML behind.
    raw = maze.gym.make(maze.GYM_ID, maze_map=geo.maze_map())
    assert [os.path.basename(raw.unwrapped.tmp_xml_file_path)] == (
        os.listdir(tmp_path))


def test_render_top_down():
    env = MazeEnv(0)
    env.reset()
    frame = env.render(64, 80)
    assert frame.shape == (64, 80, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(env.render(64, 80), frame)
    assert env.render(32, 48).shape == (32, 48, 3)  # A new size.
    env.close()


def test_registry_lists_and_validates_maze_names():
    assert registry.env_names("maze") == ["maze:two-goal",
                                          "maze:two-goal-terminate"]
    assert "maze" in registry.env_families()
    for name in registry.env_names("maze"):
        registry.validate_env_name(name)
    with pytest.raises(ValueError, match=r"'maze:three-goal'.*"
                       r"\['maze:two-goal', 'maze:two-goal-terminate'\]"):
        registry.make_env("maze:three-goal", 0)
    env = registry.make_env("maze:two-goal", 3)
    assert isinstance(env, MazeEnv) and not env.terminate_at_goal
    np.testing.assert_array_equal(env.reset(), MazeEnv(3).reset())


def test_registry_and_geometry_imports_do_not_load_gymnasium():
    code = ("import sys, dqs_jax.envs.registry as r; "
            "import dqs_jax.envs.maze_geometry; "
            "r.validate_env_name('maze:two-goal'); "
            "assert 'gymnasium' not in sys.modules; "
            "assert 'mujoco' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# The smallest nets and sampler settings of every agent (a smoke test).
TINY_AGENTS = {
    "dqs": dict(embed_dim=8, num_mc_samples=4, num_sampling_steps=3),
    "sac": {}, "td3": {}, "ddpg": {},
    "ppo": dict(rollout_length=64, num_epochs=1, num_minibatches=2),
    "qsm": dict(num_diffusion_steps=3, time_embed_dim=8),
    "dipo": dict(num_diffusion_steps=3, time_embed_dim=8),
    "dacer": dict(num_diffusion_steps=3, time_embed_dim=8,
                  entropy_num_samples=8, entropy_num_states=16),
}
RUN_FLAGS = ["--env=maze:two-goal", "--seed=1", "--seed_steps=100",
             "--batch_size=16", "--replay_size=1000", "--eval_episodes=1",
             "--hidden_dims=16,16", "--critic_hidden_dims=16,16"]


def run_cli(*args, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600, **kwargs)


def test_train_binary_runs_on_the_maze(tmp_path):
    # TD3: the cheapest agent to compile (DQS's run is slow, below).
    out = run_cli(*RUN_FLAGS, "--agent=td3", "--max_steps=300",
                  "--eval_every=300", "--checkpoint_every=300",
                  f"--workdir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Training td3 on maze:two-goal (obs 4, act 2)" in out.stdout
    assert "Done: 300 env steps, 200 updates" in out.stdout
    assert "AdroitHand" not in out.stderr  # The import notice is silenced.
    assert os.listdir(tmp_path / "checkpoints") == ["300"]


@pytest.mark.slow
@pytest.mark.parametrize("agent", sorted(TINY_AGENTS))
def test_every_agent_trains_on_the_maze(tmp_path, agent):
    from dqs_jax import training
    from dqs_jax import agents
    config = agents.get_agent(agent).make_config(
        hidden_dims=(16, 16), critic_hidden_dims=(16, 16),
        **TINY_AGENTS[agent])
    summary = training.train(training.RunSettings(
        env="maze:two-goal", agent=agent, seed=1, max_steps=200,
        seed_steps=100, batch_size=16, replay_size=1000, eval_every=200,
        eval_episodes=1, checkpoint_every=200, log_interval=200,
        workdir=str(tmp_path), agent_config=config))
    assert summary["env_steps"] == 200 and summary["num_updates"] > 0
    assert summary["final_eval_return"] >= 0.0


def metric_rows(workdir):
    timing = ("env_steps_per_sec", "updates_per_sec", "wall_time",
              "eval_seconds")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items()
                 if k not in timing} for line in f]


@pytest.mark.slow
def test_dqs_kill_and_resume_on_the_maze_equals_uninterrupted(tmp_path):
    args = [*RUN_FLAGS, "--embed_dim=8", "--num_mc_samples=4",
            "--num_sampling_steps=3", "--max_steps=400", "--eval_every=200",
            "--checkpoint_every=200", "--log_interval=200"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    out = run_cli(*args, f"--workdir={straight}")
    assert out.returncode == 0, out.stderr[-3000:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *args,
         f"--workdir={killed}"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoints" / "200"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # Mid-episode (episodes are 600).
    proc.wait()
    assert checkpoint.exists()
    out = run_cli(*args, f"--workdir={killed}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from step 200" in out.stdout
    assert metric_rows(killed) == metric_rows(straight)
    import orbax.checkpoint as ocp
    final = [ocp.StandardCheckpointer().restore(
        str(d / "checkpoints" / "400" / "default")) for d in (straight,
                                                              killed)]
    for tree in final:
        tree["loop"].pop("wall_time")
    for key, value in final[0]["env"].items():
        np.testing.assert_array_equal(value, final[1]["env"][key])
    flat = [jax.tree_util.tree_leaves(t) for t in final]
    assert len(flat[0]) == len(flat[1])
    for a, b in zip(*flat):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
