"""The env-family registry and its `dmc` family."""

import subprocess
import sys

import numpy as np
import pytest

from dqs_jax.envs import dmc, registry  # dmc sets MUJOCO_GL first

from dm_control import suite  # noqa: E402

ALL_NAMES = [f"dmc:{d}-{t}" for d, t in suite.ALL_TASKS]


class _Recorder:
    """Stands in for DMCEnv so the dmc factory can be checked cheaply."""

    def __init__(self, domain, task, seed):
        self.args = (domain, task, seed)


def test_all_suite_tasks_validate_and_round_trip(monkeypatch):
    monkeypatch.setattr("dqs_jax.envs.dmc.DMCEnv", _Recorder)
    assert len(ALL_NAMES) == len(suite.ALL_TASKS) > 50
    for (domain, task), name in zip(suite.ALL_TASKS, ALL_NAMES):
        registry.validate_env_name(name)
        assert registry.make_env(name, 7).args == (domain, task, 7)
    # Underscored domains and tasks are part of the suite.
    for name in ("dmc:ball_in_cup-catch", "dmc:point_mass-easy",
                 "dmc:finger-turn_hard", "dmc:humanoid_CMU-run"):
        assert name in ALL_NAMES


def test_env_names():
    assert registry.env_names("dmc") == sorted(ALL_NAMES)
    assert set(ALL_NAMES) <= set(registry.env_names())
    assert "dmc" in registry.env_families()
    with pytest.raises(ValueError, match="'nope'"):
        registry.env_names("nope")


@pytest.mark.parametrize("name,patterns", [
    ("foo:bar-baz", ["'foo'", r"\['dmc'"]),
    ("cheetah-run", ["'cheetah-run'", "no family prefix", "dmc"]),
    ("dmc:chetah-run", ["'chetah'", "'cheetah'", "'walker'",
                        "'ball_in_cup'"]),
    ("dmc:cheetah-walk", ["'walk'", "'cheetah'", r"\['run'\]"]),
    ("dmc:walker-fly", ["'fly'", r"\['run', 'stand', 'walk'\]"]),
    ("dmc:cheetah", ["'dmc:cheetah'", "dmc:<domain>-<task>"]),
    ("dmc:-run", ["'dmc:-run'"]),
])
def test_invalid_names(name, patterns, monkeypatch):
    def no_build(*args):
        raise AssertionError("validation must not build an env")

    monkeypatch.setattr("dqs_jax.envs.dmc.DMCEnv", no_build)
    for fn in (registry.validate_env_name,
               lambda n: registry.make_env(n, 0)):
        with pytest.raises(ValueError) as info:
            fn(name)
        for pattern in patterns:
            assert info.match(pattern), (str(info.value), pattern)


def test_make_env_builds_working_dmc_env():
    env = registry.make_env("dmc:cartpole-balance", seed=0)
    assert env.name == "dmc:cartpole-balance"
    obs = env.reset()
    assert obs.shape == (env.observation_size,) == (5,)
    np.testing.assert_array_equal(
        obs, registry.make_env("dmc:cartpole-balance", 0).reset())
    result = env.step(np.zeros(env.action_size))
    assert result.observation.dtype == np.float32 and result.discount == 1.0


def test_register_custom_family(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    calls = []

    def factory(rest, seed):
        calls.append((rest, seed))
        return ("toy", rest, seed)

    registry.register_family("toy", factory, lambda: ["toy:a", "toy:b-c"])
    assert registry.make_env("toy:b-c", 3) == ("toy", "b-c", 3)
    assert calls == [("b-c", 3)]
    assert registry.env_names("toy") == ["toy:a", "toy:b-c"]
    assert "toy" in registry.env_families()
    with pytest.raises(ValueError, match=r"'toy:z'.*\['toy:a', 'toy:b-c'\]"):
        registry.make_env("toy:z", 0)
    assert calls == [("b-c", 3)]
    with pytest.raises(ValueError, match="already registered"):
        registry.register_family("toy", factory, lambda: [])
    with pytest.raises(ValueError, match="Invalid family prefix"):
        registry.register_family("a:b", factory, lambda: [])


def test_registry_import_does_not_load_mujoco():
    code = ("import sys, dqs_jax.envs.registry as r; "
            "assert 'dm_control' not in sys.modules, 'dm_control'; "
            "assert 'mujoco' not in sys.modules, 'mujoco'; "
            "assert 'dmc' in r.env_families()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validation_sets_headless_gl_before_dm_control():
    code = ("import os, dqs_jax.envs.registry as r; "
            "os.environ.pop('MUJOCO_GL', None); "
            "r.validate_env_name('dmc:cheetah-run'); "
            "assert os.environ['MUJOCO_GL'] == 'egl'")
    subprocess.run([sys.executable, "-c", code], check=True)
