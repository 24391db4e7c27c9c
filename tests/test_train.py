"""The training binary: validation, outputs, exact resume, NaN handling."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import agent as dqs_agent
from dqs_jax import agents
from experiments import online_loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("env_steps_per_sec", "updates_per_sec", "wall_time", "eval_seconds")
TINY = dqs_agent.DQSConfig(hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
                           embed_dim=8, num_mc_samples=8, num_sampling_steps=5)
TINY_FLAGS = ["--hidden_dims=32,32", "--critic_hidden_dims=32,32",
              "--embed_dim=8", "--num_mc_samples=8", "--num_sampling_steps=5"]


def settings(workdir, **overrides):
    base = dict(env="dmc:cartpole-balance", seed=3, max_steps=600,
                seed_steps=200, batch_size=32, replay_size=1000,
                eval_every=300, eval_episodes=1, checkpoint_every=200,
                log_interval=200, workdir=str(workdir), agent_config=TINY)
    base.update(overrides)
    return online_loop.RunSettings(**base)


def deterministic_rows(workdir):
    rows = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows.append({k: v for k, v in row.items() if k not in TIMING})
    return rows


def assert_same_params(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    summary = online_loop.train(settings(workdir))
    return workdir, summary


def test_outputs_written(straight_run):
    workdir, summary = straight_run
    for name in ("config.json", "metrics.jsonl", "learning_curve.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "400", "600"]  # The last two are kept.
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["flat_config"]["num_mc_samples"] == 8
    assert config["flat_config"]["env"] == "dmc:cartpole-balance"
    assert "jax" in config["versions"]
    rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [300, 600]
    assert summary["env_steps"] == 600 and summary["num_updates"] == 400
    assert summary["final_eval_return"] == evals[-1]["eval_return_mean"]
    # cartpole episodes are 1000 steps: no train row yet, state mid-episode.
    assert all(r["kind"] == "eval" for r in rows)
    assert int(summary["state"].step) == 400


def test_extending_max_steps_equals_an_uninterrupted_run(straight_run,
                                                         tmp_path, capsys):
    workdir, straight = straight_run
    # Stop at 300, an evaluation step (a final evaluation is added at
    # max_steps), then extend to 600.
    online_loop.train(settings(tmp_path, max_steps=300))
    resumed = online_loop.train(settings(tmp_path, max_steps=600))
    assert "resuming from step 300" in capsys.readouterr().out
    assert deterministic_rows(tmp_path) == deterministic_rows(workdir)
    assert_same_params(resumed["state"], straight["state"])


def test_config_mismatch_is_refused_unless_overwrite(straight_run, tmp_path):
    online_loop.train(settings(tmp_path, max_steps=200))
    with pytest.raises(online_loop.ConfigMismatchError) as err:
        online_loop.train(settings(tmp_path, max_steps=200, batch_size=16,
                                   agent_config=dataclasses.replace(
                                       TINY, num_mc_samples=4)))
    assert "--batch_size" in str(err.value)
    assert "--num_mc_samples" in str(err.value)
    summary = online_loop.train(settings(tmp_path, max_steps=200,
                                         batch_size=16, overwrite=True))
    assert summary["env_steps"] == 200


@pytest.mark.parametrize("overrides,match", [
    (dict(env="dmc:chetah-run"), "cheetah"),
    (dict(env="cartpole-balance"), "dmc"),
    (dict(env="dmc:cheetah-walk"), "run"),
    (dict(max_steps=0), "max_steps"),
    (dict(batch_size=-1), "batch_size"),
    (dict(replay_size=0), "replay_size"),
    (dict(seed_steps=-5), "seed_steps"),
    (dict(agent="ppo2"), "dqs"),
])
def test_bad_settings_fail_before_any_work(tmp_path, overrides, match):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        online_loop.train(settings(workdir, **overrides))
    assert not workdir.exists()


def run_cli(args, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "experiments.train", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_cli_rejects_bad_flags(tmp_path):
    """The binary exits non-zero before any work, naming the flag."""
    out = run_cli([f"--workdir={tmp_path}", "--num_mc_samples=0"])
    assert out.returncode != 0
    assert "num_mc_samples" in out.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("args, name", [
    (["--env=dmc:foo-bar"], "cartpole"),  # Lists the valid domains.
    (["--agent=td3", "--policy_delay=0"], "policy_delay"),
    (["--agent=ppo", "--gae_lambda=1.5"], "gae_lambda"),
    (["--agent=dqs", "--policy_delay=2"], "policy_delay"),
    (["--agent=nope"], "dacer"),  # Lists the agents.
])
def test_flags_are_validated_before_any_work(tmp_path, args, name):
    """`settings_from_flags` (what `main` calls first) refuses bad values."""
    from absl import flags
    from experiments import train
    workdir = tmp_path / "w"
    try:
        flags.FLAGS(["train", f"--workdir={workdir}", *args])
        with pytest.raises(ValueError, match=name):
            train.settings_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
    assert not workdir.exists()


def _nan_agent():
    base = agents.get_agent("dqs")

    def update(state, batch):
        state, metrics = base.update(state, batch)
        poison = jnp.where(state.step >= 150, jnp.nan, 0.0)
        metrics["critic_loss"] = metrics["critic_loss"] + poison
        return state, metrics

    return dataclasses.replace(base, name="nan_after_150", update=update)


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    agents.register_agent("nan_after_150", _nan_agent)
    with pytest.raises(online_loop.NonFiniteLossError,
                       match=r"step 350 .*critic_loss=nan"):
        online_loop.train(settings(tmp_path, agent="nan_after_150"))
    ckpt_dir = tmp_path / "checkpoints"
    assert sorted(os.listdir(ckpt_dir)) == ["200"]
    # The checkpoint restores.
    from dqs_jax.checkpoint import Checkpointer
    assert Checkpointer(str(ckpt_dir)).latest_step() == 200


SMALL_NETS = ["--hidden_dims=32,32", "--critic_hidden_dims=32,32"]
KILL_CASES = {
    "dqs": TINY_FLAGS,
    "td3": ["--agent=td3", *SMALL_NETS],
    # A checkpoint at step 200 lands mid-rollout (128 + 72 steps).
    "ppo": ["--agent=ppo", *SMALL_NETS, "--rollout_length=128",
            "--num_minibatches=4", "--num_epochs=2"],
}


@pytest.mark.parametrize("agent", [
    "dqs", *(pytest.param(a, marks=pytest.mark.slow)
             for a in sorted(KILL_CASES) if a != "dqs")])
def test_kill_after_checkpoint_and_resume_equals_uninterrupted(tmp_path,
                                                               agent):
    args = ["--env=dmc:cartpole-balance", "--seed=3", "--max_steps=600",
            "--seed_steps=200", "--batch_size=32", "--replay_size=1000",
            "--eval_every=300", "--eval_episodes=1", "--checkpoint_every=200",
            "--log_interval=200", *KILL_CASES[agent]]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli([*args, f"--workdir={straight}"]).returncode == 0

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *args,
         f"--workdir={killed}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "200"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    out = run_cli([*args, f"--workdir={killed}"])
    assert out.returncode == 0, out.stderr
    assert "resuming from step 200" in out.stdout
    assert deterministic_rows(killed) == deterministic_rows(straight)
    rows = deterministic_rows(killed)
    if agent == "ppo":  # Updates at steps 128, 256, ..., 512.
        assert max(r.get("num_updates", 0) for r in rows) == 4
    # The final checkpoints (agent, replay or rollout, loop and env state)
    # are identical.
    import orbax.checkpoint as ocp
    final = [ocp.StandardCheckpointer().restore(
        str(d / "checkpoints" / "600" / "default")) for d in (straight, killed)]
    final[0]["loop"].pop("wall_time"), final[1]["loop"].pop("wall_time")
    assert_same_params(final[0], final[1])
    assert jax.tree_util.tree_structure(final[0]) == \
        jax.tree_util.tree_structure(final[1])


def test_sac_runs_through_the_same_driver(tmp_path):
    out = run_cli([f"--workdir={tmp_path}", "--agent=sac",
                   "--env=dmc:cartpole-balance", "--max_steps=300",
                   "--seed_steps=100", "--batch_size=32", "--eval_every=300",
                   "--eval_episodes=1", "--hidden_dims=32,32",
                   "--critic_hidden_dims=32,32", "--init_temperature=0.5"])
    assert out.returncode == 0, out.stderr
    config = json.load(open(tmp_path / "config.json"))
    assert config["agent_config_class"] == "SACConfig"
    assert config["flat_config"]["init_temperature"] == 0.5
    assert config["flat_config"]["critic_lr"] == 3e-4  # SAC's own default.
    # A DQS-only hyper-parameter is refused for SAC.
    out = run_cli([f"--workdir={tmp_path}/b", "--agent=sac",
                   "--num_mc_samples=8"])
    assert out.returncode != 0 and "num_mc_samples" in out.stderr


@pytest.mark.slow
def test_issue_command_cheetah_run_writes_every_output(tmp_path):
    out = run_cli(["--env=dmc:cheetah-run", "--max_steps=3000",
                   "--seed_steps=1000", "--num_mc_samples=32",
                   f"--workdir={tmp_path}"])
    assert out.returncode == 0, out.stderr
    for name in ("config.json", "metrics.jsonl", "learning_curve.png"):
        assert os.path.getsize(tmp_path / name) > 0
    assert os.listdir(tmp_path / "tensorboard")
    assert os.listdir(tmp_path / "checkpoints") == ["3000"]
    rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1000, 2000, 3000]
    assert all(np.isfinite(r["critic_loss"]) for r in train_rows[1:])
    assert rows[-1]["kind"] == "eval" and rows[-1]["step"] == 3000
    assert "final evaluation return" in out.stdout
