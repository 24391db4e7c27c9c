"""The maze experiment (`experiments.maze`): its settings and flags, the
stochastic evaluation rollouts, and (slow) the binary end to end."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from dqs_jax import agent as dqs_agent
from dqs_jax.envs import maze_geometry
from dqs_jax.envs.base import StepResult
from experiments.maze import critic_spread
from experiments.maze import rollouts as maze_rollouts
from experiments.maze import settings as maze_settings
from experiments.configs import loader

PRESETS = {name: loader.load_preset("maze", name)
           for name in loader.preset_names("maze")}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_presets_resolve_and_overrides_apply():
    s = maze_settings.resolve(PRESETS["cpu"], {"max_steps": 19_000,
                                               "num_seeds": None,
                                               "agents": ["dqs"]})
    assert s["max_steps"] == 19_000 and s["agents"] == ("dqs",)
    assert s["num_seeds"] == PRESETS["cpu"]["num_seeds"]  # None: unset.
    paper = maze_settings.resolve(PRESETS["paper"])
    assert paper["agents"] == ("dqs", "sac", "qsm", "dacer", "dipo")
    assert (paper["init_temperature"], paper["final_temperature"],
            paper["temperature_anneal_steps"]) == (10.0, 1.0, 240_000)
    # Every preset reaches its final temperature: the paper's on its last
    # update, the cpu preset's before its last 7.5k updates, then held.
    def updates(preset):
        return -(-(preset["max_steps"] - preset["seed_steps"])
                 // preset["update_every"])
    assert PRESETS["paper"]["temperature_anneal_steps"] == updates(
        PRESETS["paper"])
    assert PRESETS["cpu"]["temperature_anneal_steps"] == (
        updates(PRESETS["cpu"]) - 7_500)
    assert maze_settings.resolve(PRESETS["cpu"], {"agents": "sac,td3"})[
        "agents"] == ("sac", "td3")


@pytest.mark.parametrize("overrides,message", [
    ({"agents": ["dqs", "nope"]}, r"unknown \['nope'\]; choose from"),
    ({"agents": ["ppo"]}, r"\['ppo'\] on-policy"),
    ({"agents": []}, "at least one agent"),
    ({"agents": ["sac", "sac"]}, "twice"),
    ({"num_seeds": 0}, "--num_seeds must be >= 1"),
    ({"seed_steps": 150_000},
     r"--seed_steps must be in \[0, --max_steps\)"),
    ({"update_every": 0}, "--update_every must be >= 1"),
    ({"init_temperature": 0.0}, "--init_temperature must be > 0"),
    ({"temperature_anneal_steps": -1}, "--temperature_anneal_steps must be"),
    ({"plot_episodes": -1}, "--plot_episodes must be >= 0"),
    ({"hidden_dims": 3}, r"unknown \['hidden_dims'\]"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        maze_settings.resolve(PRESETS["cpu"], overrides)


def test_agent_configs_and_run_settings(tmp_path):
    s = maze_settings.resolve(PRESETS["cpu"], {"hidden_dim": 64})
    dqs = maze_settings.agent_config("dqs", s)
    assert dqs.hidden_dims == dqs.critic_hidden_dims == (64, 64)
    assert (dqs.num_mc_samples, dqs.init_temperature, dqs.final_temperature,
            dqs.temperature_anneal_steps) == (32, 10.0, 0.1, 15_000)
    assert float(dqs.temperature(0)) == pytest.approx(10.0)
    assert float(dqs.temperature(7_500)) == pytest.approx(1.0)
    assert float(dqs.temperature(15_000)) == pytest.approx(0.1)
    assert float(dqs.temperature(22_500)) == pytest.approx(0.1)  # Held.
    sac = maze_settings.agent_config("sac", s)
    assert sac.hidden_dims == (64, 64) and sac.init_temperature == 1.0
    run = maze_settings.run_settings("sac", 2, s, str(tmp_path))
    assert run.workdir == str(tmp_path / "runs" / "sac" / "seed_2")
    assert (run.env, run.agent, run.seed, run.max_steps, run.seed_steps,
            run.update_every, run.batch_size, run.eval_every,
            run.eval_episodes) == (
        "maze:two-goal", "sac", 2, 100_000, 10_000, 4, 128, 10_000, 4)
    run.validate()


class CountingEnv:
    """A stand-in for the maze: x counts steps, the goal is top-left, the
    episode terminates after `stop` steps (of at most 5)."""

    max_episode_steps = 5
    goal = maze_geometry.GOAL_CENTRES[0] + 0.1

    def __init__(self, stop):
        self.stop, self.t = stop, 0

    def seed(self, seed):
        self.seeded = seed

    def reset(self):
        self.t = 0
        return np.array([0.0, float(self.seeded), 0.0, 0.0], np.float32)

    def step(self, action):
        self.t += 1
        obs = np.array([self.t, self.seeded, *action], np.float32)
        done = self.t >= self.stop
        return StepResult(obs, 1.0, 0.0 if done else 1.0, done, False)


def test_rollout_pads_terminated_episodes_and_folds_keys():
    keys = []

    def act(state, obs, key, deterministic):
        assert state == "state" and not deterministic and obs.shape == (2, 4)
        keys.append(np.asarray(key))
        return np.full((2, 2), 0.5)

    envs = [CountingEnv(stop=2), CountingEnv(stop=5)]
    out = maze_rollouts.rollout(envs, act, "state",
                                maze_rollouts.eval_key(0), [7, 9])
    assert out.positions.shape == (2, 6, 2)
    np.testing.assert_array_equal(out.positions[0, :, 0], [0, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(out.positions[1, :, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(out.positions[:, 0, 1], [7, 9])  # Seeded.
    np.testing.assert_array_equal(out.lengths, [2, 5])
    np.testing.assert_array_equal(out.returns, [2.0, 5.0])
    np.testing.assert_array_equal(out.goals, [0, 0])
    assert len(keys) == 5 and len({k.tobytes() for k in keys}) == 5


def test_rollout_on_the_maze_is_seeded():
    seeds = maze_rollouts.episode_seeds(3, 2)
    assert seeds == maze_rollouts.episode_seeds(3, 2)
    assert seeds != maze_rollouts.episode_seeds(4, 2) and seeds[0] != seeds[1]
    envs = maze_rollouts.make_envs("maze:two-goal", 2)

    def right(state, obs, key, deterministic):
        return np.tile([1.0, 0.0], (len(obs), 1))

    key = maze_rollouts.eval_key(3)
    first = maze_rollouts.rollout(envs, right, None, key, seeds)
    again = maze_rollouts.rollout(envs, right, None, key, seeds)
    np.testing.assert_array_equal(first.positions, again.positions)
    assert first.positions.shape == (2, 601, 2)
    np.testing.assert_array_equal(first.lengths, [600, 600])
    assert np.all(np.abs(first.positions[:, 0]) <= 0.25)  # Start noise.
    # Pushed right from the centre cell: stopped by the wall at x = 3.5.
    assert np.all(first.positions[:, -1, 0] > 3.0)
    expected = [maze_rollouts.goal_index(env.goal) for env in envs]
    np.testing.assert_array_equal(first.goals, expected)
    assert maze_rollouts.goal_index([-2.8, 3.1]) == 0
    assert maze_rollouts.goal_index([3.2, -2.9]) == 1


def run_maze(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "experiments.maze", *args],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_binary_refuses_bad_flags(tmp_path):
    out = run_maze("--agents=sac,ppo", f"--workdir={tmp_path}", timeout=300)
    assert out.returncode != 0
    assert "['ppo'] on-policy" in out.stderr
    assert not os.path.exists(tmp_path / "runs")
    out = run_maze("--preset=paper", "--config=experiments/configs/maze/paper.py",
                   f"--workdir={tmp_path}", timeout=300)
    assert out.returncode != 0 and "not both" in out.stderr


TINY = ("--agents=dqs,sac", "--num_seeds=1", "--max_steps=300",
        "--seed_steps=150", "--batch_size=16", "--replay_size=1000",
        "--hidden_dim=16", "--num_mc_samples=4", "--eval_episodes=4",
        "--plot_episodes=3", "--train_eval_every=300",
        "--train_eval_episodes=1", "--temperature_anneal_steps=150")


@pytest.mark.slow
def test_maze_experiment_end_to_end_and_rerun(tmp_path):
    out = run_maze(*TINY, f"--workdir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dqs seed 0: trained, 300 steps" in out.stdout
    assert "sac: evaluated 1 x 4 episodes" in out.stdout
    results = json.load(open(tmp_path / "results.json"))
    assert results["preset"] == "cpu" and results["env"] == "maze:two-goal"
    assert results["settings"]["agents"] == ["dqs", "sac"]
    assert results["agent_configs"]["dqs"]["temperature_anneal_steps"] == 150
    assert results["agent_configs"]["sac"]["hidden_dims"] == [16, 16]
    assert results["wall_seconds"] > 0
    for method in ("dqs", "sac"):
        r = results["methods"][method]
        seed = r["seeds"]["0"]
        assert seed["episodes"] == 4
        assert sum(seed["goal_counts"].values()) == 4
        assert sum(seed["goal_fractions"].values()) == pytest.approx(1.0)
        assert (sum(seed["top_left_route_counts"].values())
                == seed["goal_counts"]["top-left"])
        for name, count in seed["goal_counts"].items():
            assert seed["goal_fractions"][name] == count / 4
            assert r["aggregate"]["goal_fractions"][name] == {
                "mean": count / 4, "std": 0.0, "seeds": 1}
        assert 0.0 <= seed["mean_return"] <= 600.0
        assert len(r["train_wall_seconds"]) == 1
    trajectories = np.load(tmp_path / "maze_trajectories.npz")
    assert trajectories["dqs_seed0_positions"].shape == (4, 601, 2)
    np.testing.assert_array_equal(trajectories["sac_seed0_lengths"], [600] * 4)
    assert os.path.getsize(tmp_path / "maze_trajectories.png") > 10_000
    # A rerun restores the finished runs and evaluates them again, exactly.
    again = run_maze(*TINY, f"--workdir={tmp_path}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("Run already at step 300") == 2
    rerun = json.load(open(tmp_path / "results.json"))
    for method in ("dqs", "sac"):
        assert (rerun["methods"][method]["seeds"]
                == results["methods"][method]["seeds"])


def test_q_spread_is_the_range_of_the_ensemble_min_over_the_grid():
    config = dqs_agent.DQSConfig(hidden_dims=(16, 16),
                                 critic_hidden_dims=(16, 16), embed_dim=8,
                                 init_temperature=0.3)
    state = dqs_agent.init(config, 4, 2, jax.random.PRNGKey(0))
    grid = critic_spread.action_grid(5)
    assert grid.shape == (25, 2) and grid.min() == -1 and grid.max() == 1
    obs = np.array([0.5, -1.0, 0.2, 0.0], np.float32)
    q = dqs_agent.critic_network(config).apply(
        state.critic_params, np.tile(obs, (25, 1)), grid).min(-1)
    assert critic_spread.q_spread(state, obs, 5) == pytest.approx(
        float(q.max() - q.min()), rel=1e-5)
    # A critic whose output layer is zero is flat in the action.
    flat = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 0 if "Dense_2" in jax.tree_util.keystr(path)
        else x, state.critic_params)
    described = critic_spread.describe(state.replace(critic_params=flat))
    assert described == {"final_temperature": pytest.approx(0.3),
                         "q_spread_at_start": 0.0}
