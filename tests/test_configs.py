"""ml_collections config files: built from the code's defaults, loaded by
the binaries, overridable field by field."""

import dataclasses
import sys

from absl import flags
import pytest

from dqs_jax import agent as dqs_agent
from dqs_jax import agents
from dqs_jax import training
from experiments.configs import agent_flags, dmc, loader


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
        loader.experiment_config("dqs", run={"max_step": 1})


def test_gmm_presets_are_files_of_the_settings_dataclass():
    from experiments.gmm.settings import GMMSettings
    assert loader.preset_names("gmm") == ["cpu", "paper"]
    # The cpu preset is the dataclass's defaults; paper changes some.
    assert loader.load_preset("gmm", "cpu") == dataclasses.asdict(
        GMMSettings())
    paper = GMMSettings(**loader.load_preset("gmm", "paper"))
    assert (paper.num_mc_samples, paper.num_steps) == (1000, 200_000)
    # The paper's discount; the cpu preset's shorter horizon and its
    # temperature (docs/results/gmm.md).
    assert (paper.discount, paper.dqs_temperature) == (0.99, 30.0)
    assert (GMMSettings().discount, GMMSettings().dqs_temperature) == (
        0.9, 10.0)
    with pytest.raises(ValueError, match="unknown preset 'tpu'"):
        loader.load_preset("gmm", "tpu")
    with pytest.raises(ValueError, match="--seed_steps"):
        GMMSettings(seed_steps=-1)
    with pytest.raises(ValueError, match="dqs_energy_action"):
        GMMSettings(dqs_energy_action="none")
    with pytest.raises(ValueError, match="--discount"):
        GMMSettings(discount=1.0)


def test_maze_presets_are_files_of_the_settings_dataclass(monkeypatch):
    from ml_collections import config_flags as ml_config_flags
    from experiments.maze import settings as maze_settings
    assert loader.load_preset("maze", "cpu") == dataclasses.asdict(
        maze_settings.MazeSettings())
    for name in loader.preset_names("maze"):
        preset = loader.load_preset("maze", name)
        assert set(preset) == set(maze_settings.FIELDS), name
        assert maze_settings.resolve(preset)["agents"] == preset["agents"]
    # The paper preset: every agent at its own widths, DQS at its own K.
    paper = maze_settings.MazeSettings(**loader.load_preset("maze", "paper"))
    for name in paper.agents:
        config = agents.get_agent(name).make_config()
        assert config.hidden_dims == (paper.hidden_dim,) * 2, name
    assert paper.num_mc_samples == dqs_agent.DQSConfig().num_mc_samples
    # Loadable as a config file, fields overridable.
    values = flags.FlagValues()
    ml_config_flags.DEFINE_config_file("config", None, "",
                                       flag_values=values)
    argv = ["maze", "--config=experiments/configs/maze/paper.py",
            "--config.num_seeds=2"]
    monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads it.
    values(argv)
    loaded = loader.plain(values.config.to_dict())
    assert loaded == dict(loader.load_preset("maze", "paper"), num_seeds=2)


def test_sweep_presets_are_files_validated_by_the_sweep_spec(tmp_path):
    from absl import app
    from experiments.dmc import sweep
    for name in loader.preset_names("sweeps"):
        spec = sweep.resolve(name)
        assert spec["preset"] == name and spec["tasks"], name
    # A sweep file of one's own, by path; bad fields are named.
    path = tmp_path / "mine.py"
    path.write_text(
        "from experiments.configs.loader import as_config\n"
        "from experiments.dmc.sweep import SweepSpec\n"
        "def get_config():\n"
        "    return as_config(SweepSpec(tasks=('dmc:cartpole-balance',),\n"
        "                               agents=('sac',), seeds=(7,),\n"
        "                               max_steps=50))\n")
    spec = sweep.resolve(str(path))
    assert (spec["tasks"], spec["seeds"], spec["max_steps"]) == (
        ("dmc:cartpole-balance",), (7,), 50)
    with pytest.raises(app.UsageError, match="unknown agents"):
        sweep.resolve(str(path), agent_names=["dqn"])
    with pytest.raises(app.UsageError, match="not found"):
        sweep.resolve(str(tmp_path / "missing.py"))


def test_train_help_shows_the_named_agents_defaults():
    import subprocess
    out = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--agent=sac", "--help"],
        capture_output=True, text=True, timeout=120)
    assert "SACConfig.critic_lr (default 0.0003)" in out.stdout
    assert "Not a field of SACConfig; DQSConfig.num_mc_samples" in out.stdout


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


def test_matmul_precision_is_applied_and_recorded():
    """`--matmul_precision` (train, device_check): JAX's setting, and what
    config.json's provenance records."""
    import jax
    from dqs_jax.training import provenance
    try:
        agent_flags.apply_matmul_precision("highest")
        assert jax.config.jax_default_matmul_precision == "highest"
        assert provenance.provenance([])["matmul_precision"] == "highest"
    finally:
        agent_flags.apply_matmul_precision("default")
    assert jax.config.jax_default_matmul_precision is None
    assert provenance.provenance([])["matmul_precision"] == "default"
