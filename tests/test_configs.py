"""ml_collections config files: built from the code's defaults, loaded by
the binaries, overridable field by field."""

import dataclasses
import sys

from absl import flags
import pytest

from dqs_jax import agent as dqs_agent
from dqs_jax import agents
from dqs_jax import training
from experiments.configs import common, dmc, gmm, maze


def test_dmc_config_is_the_code_defaults():
    config = dmc.get_config()
    assert config.agent_name == "dqs"
    # One source of truth: the agent section is DQSConfig's defaults.
    assert dict(config.agent) == {
        f.name: getattr(dqs_agent.DQSConfig(), f.name)
        for f in dataclasses.fields(dqs_agent.DQSConfig)}
    run = training.RunSettings()
    assert config.run.max_steps == 250_000 == run.max_steps
    assert config.run.eval_every == 10_000
    sac = dmc.get_config("sac")
    assert sac.agent_name == "sac" and "num_mc_samples" not in sac.agent
    assert sac.agent.critic_lr == agents.get_agent("sac").make_config(
        ).critic_lr
    with pytest.raises(ValueError, match="not run settings"):
        common.experiment_config("dqs", run={"max_step": 1})


def test_gmm_config_is_the_binary_preset():
    from experiments.configs.gmm import PRESETS
    assert gmm.get_config().to_dict() == PRESETS["cpu"]
    assert gmm.get_config("paper").num_mc_samples == 1000
    with pytest.raises(ValueError, match="preset"):
        gmm.get_config("tpu")


def test_maze_config_is_the_binary_preset(monkeypatch):
    from ml_collections import config_flags as ml_config_flags
    from experiments.maze import settings as maze_settings
    assert maze.get_config().to_dict() == maze.PRESETS["cpu"]
    with pytest.raises(ValueError, match="preset"):
        maze.get_config("tpu")
    for name, preset in maze.PRESETS.items():
        assert set(preset) == set(maze.FIELDS), name
        assert maze_settings.resolve(preset)["agents"] == preset["agents"]
    # The paper preset: every agent at its own widths, DQS at its own K.
    paper = maze.get_config("paper")
    for name in paper.agents:
        config = agents.get_agent(name).make_config()
        assert config.hidden_dims == (paper.hidden_dim,) * 2, name
    assert paper.num_mc_samples == dqs_agent.DQSConfig().num_mc_samples
    # Loadable as a config file, fields overridable.
    values = flags.FlagValues()
    ml_config_flags.DEFINE_config_file("config", None, "",
                                       flag_values=values)
    argv = ["maze", "--config=experiments/configs/maze.py:paper",
            "--config.num_seeds=2"]
    monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads it.
    values(argv)
    loaded = values.config.to_dict()
    assert loaded == dict(maze.PRESETS["paper"], num_seeds=2)


def _settings(tmp_path, *args):
    from experiments import train
    argv = ["train", f"--workdir={tmp_path}", *args]
    # ml_collections reads the `--config.*` overrides from sys.argv.
    saved, sys.argv = sys.argv, argv
    try:
        flags.FLAGS(argv)
        return train.settings_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
        sys.argv = saved
        for name in [n for n in flags.FLAGS if n.startswith("config.")]:
            delattr(flags.FLAGS, name)  # Defined per parse by the loader.


def test_train_loads_and_overrides_a_config(tmp_path):
    path = "experiments/configs/dmc.py"
    s = _settings(tmp_path, f"--config={path}", "--config.run.max_steps=77",
                  "--config.agent.num_mc_samples=100",
                  "--config.agent.hidden_dims=(64,64)",
                  "--config.run.env=dmc:walker-run")
    assert (s.env, s.max_steps, s.agent) == ("dmc:walker-run", 77, "dqs")
    assert s.agent_config.num_mc_samples == 100
    assert s.agent_config.hidden_dims == (64, 64)
    assert s.seed_steps == 10_000  # From the file.
    # A flag set on the command line wins over the file.
    s = _settings(tmp_path, f"--config={path}", "--config.run.max_steps=77",
                  "--max_steps=5", "--num_mc_samples=8")
    assert s.max_steps == 5 and s.agent_config.num_mc_samples == 8
    s = _settings(tmp_path, f"--config={path}:sac")
    assert s.agent == "sac"
    with pytest.raises(ValueError, match="agent section is for dqs"):
        _settings(tmp_path, f"--config={path}", "--agent=sac")
    # Without --config, nothing changes.
    s = _settings(tmp_path, "--max_steps=9")
    assert s.max_steps == 9 and s.agent_config == dqs_agent.DQSConfig()
