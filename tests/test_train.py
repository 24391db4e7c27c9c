"""The training binary: validation, outputs, exact resume, NaN handling,
preemption and damaged checkpoints."""

import dataclasses
import json
import os
import re
import shutil
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
from dqs_jax import checkpoint as checkpoint_lib
from dqs_jax import training

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
    return training.RunSettings(**base)


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


def assert_same_final_checkpoint(a, b, step=600):
    """Checkpoint `step` of workdirs `a` and `b` (agent, replay or rollout,
    loop and env state) is identical but for the wall time."""
    import orbax.checkpoint as ocp
    final = [ocp.StandardCheckpointer().restore(
        str(d / "checkpoints" / str(step) / "default")) for d in (a, b)]
    final[0]["loop"].pop("wall_time"), final[1]["loop"].pop("wall_time")
    assert_same_params(final[0], final[1])
    assert jax.tree_util.tree_structure(final[0]) == \
        jax.tree_util.tree_structure(final[1])


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    summary = training.train(settings(workdir))
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


def test_evaluate_run_reproduces_the_last_evaluation(straight_run, tmp_path):
    """experiments.dmc.evaluate_run's logic (experiments.run_evaluation)
    restores the newest checkpoint and replays the run's own evaluation
    episodes: the same return; an evaluation-only override (the hashed DQS
    start) runs on the same parameters; a setting that would invalidate
    them is refused."""
    from experiments.dmc import evaluate_run
    workdir, summary = straight_run
    same = evaluate_run.evaluate_run(str(workdir), 1, {})
    assert same["step"] == 600
    assert same["mean"] == pytest.approx(summary["final_eval_return"],
                                         rel=1e-6)
    hashed = evaluate_run.evaluate_run(str(workdir), 1,
                                       {"eval_start": "hashed"})
    assert np.isfinite(hashed["mean"]) and hashed["returns"] != same["returns"]
    with pytest.raises(ValueError, match="field=value"):
        evaluate_run.parse_overrides(["hidden_dims=8,8"],
                                     dqs_agent.DQSConfig)
    assert evaluate_run.parse_overrides(
        ["eval_start=hashed", "num_sampling_steps=7"],
        dqs_agent.DQSConfig) == {"eval_start": "hashed",
                                 "num_sampling_steps": 7}
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        evaluate_run.evaluate_run(str(tmp_path), 1, {})


def test_extending_max_steps_equals_an_uninterrupted_run(straight_run,
                                                         tmp_path, capsys):
    workdir, straight = straight_run
    # Stop at 300, an evaluation step (a final evaluation is added at
    # max_steps), then extend to 600.
    training.train(settings(tmp_path, max_steps=300))
    resumed = training.train(settings(tmp_path, max_steps=600))
    assert "resuming from step 300" in capsys.readouterr().out
    assert deterministic_rows(tmp_path) == deterministic_rows(workdir)
    assert_same_params(resumed["state"], straight["state"])


def test_config_mismatch_is_refused_unless_overwrite(straight_run, tmp_path):
    training.train(settings(tmp_path, max_steps=200))
    with pytest.raises(training.ConfigMismatchError) as err:
        training.train(settings(tmp_path, max_steps=200, batch_size=16,
                                   agent_config=dataclasses.replace(
                                       TINY, num_mc_samples=4)))
    assert "--batch_size" in str(err.value)
    assert "--num_mc_samples" in str(err.value)
    summary = training.train(settings(tmp_path, max_steps=200,
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
    (dict(update_every=0), "update_every"),
    (dict(agent="ppo2"), "dqs"),
])
def test_bad_settings_fail_before_any_work(tmp_path, overrides, match):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        training.train(settings(workdir, **overrides))
    assert not workdir.exists()


def test_update_every_learns_on_every_nth_step_after_the_seed_phase(
        straight_run, tmp_path):
    summary = training.train(settings(tmp_path, update_every=3))
    # Updates on steps 200, 203, ..., 599: (599 - 200) // 3 + 1.
    assert summary["num_updates"] == 134
    assert straight_run[1]["num_updates"] == 400
    flat = json.load(open(tmp_path / "config.json"))["flat_config"]
    assert flat["update_every"] == 3
    straight = json.load(open(straight_run[0] / "config.json"))
    assert "update_every" not in straight["flat_config"]  # The default.


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
    with pytest.raises(training.NonFiniteLossError,
                       match=r"step 350 .*critic_loss=nan"):
        training.train(settings(tmp_path, agent="nan_after_150"))
    ckpt_dir = tmp_path / "checkpoints"
    assert sorted(os.listdir(ckpt_dir)) == ["200"]
    # The checkpoint restores.
    from dqs_jax.checkpoint import Checkpointer
    assert Checkpointer(str(ckpt_dir)).latest_step() == 200


# The flags of `settings()` (the straight run's).
CLI_ARGS = ["--env=dmc:cartpole-balance", "--seed=3", "--max_steps=600",
            "--seed_steps=200", "--batch_size=32", "--replay_size=1000",
            "--eval_every=300", "--eval_episodes=1", "--checkpoint_every=200",
            "--log_interval=200"]
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
def test_kill_after_checkpoint_and_resume_equals_uninterrupted(
        tmp_path, agent, request):
    args = [*CLI_ARGS, *KILL_CASES[agent]]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    if agent == "dqs":  # The binary's run equals `settings()`'s in-process.
        straight = request.getfixturevalue("straight_run")[0]
    else:
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
    assert_same_final_checkpoint(straight, killed)


PREEMPTED = re.compile(
    r"preempted at step (\d+); rerun the same command to resume")


def test_stop_signal_checkpoints_the_step_and_resume_is_exact(
        straight_run, tmp_path, monkeypatch, capsys):
    """SIGTERM mid-step (in-process): the step finishes, is checkpointed off
    the periodic grid, and a second signal (SIGINT) during that save changes
    nothing; the resumed run equals the uninterrupted one."""
    workdir, straight = straight_run
    handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    real_step, real_table = training.Run.step, checkpoint_lib._file_table

    def step(run):
        done = real_step(run)
        if run.env_step == 350:
            signal.raise_signal(signal.SIGTERM)
        return done

    def file_table(folder):  # Inside Checkpointer.save.
        if folder.endswith(os.sep + "350"):
            signal.raise_signal(signal.SIGINT)
        return real_table(folder)

    monkeypatch.setattr(training.Run, "step", step)
    monkeypatch.setattr(checkpoint_lib, "_file_table", file_table)
    summary = training.train(settings(tmp_path))
    assert summary["stopped_by"] == signal.SIGTERM
    assert summary["env_steps"] == 350
    err = capsys.readouterr().err
    assert [l for l in err.splitlines() if "preempted" in l] == [
        "preempted at step 350; rerun the same command to resume"]
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)
            ] == handlers
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["200", "350"]

    monkeypatch.undo()
    resumed = training.train(settings(tmp_path))
    assert "resuming from step 350" in capsys.readouterr().out
    assert resumed["stopped_by"] is None
    assert deterministic_rows(tmp_path) == deterministic_rows(workdir)
    assert_same_params(resumed["state"], straight["state"])


@pytest.mark.slow
def test_sigterm_to_the_binary_then_rerun_equals_uninterrupted(straight_run,
                                                              tmp_path):
    """A real `python -m experiments.train`, sent SIGTERM after it printed
    step 400 (200 updates in): one line, exit 143; the rerun finishes the
    run exactly as the uninterrupted one."""
    workdir, _ = straight_run
    args = [*CLI_ARGS, *TINY_FLAGS, f"--workdir={tmp_path}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        for line in proc.stdout:
            if line.startswith("step 400/600"):
                proc.send_signal(signal.SIGTERM)
                break
        proc.stdout.read()
        assert proc.wait(timeout=240) == 128 + signal.SIGTERM
    lines = [l for l in open(tmp_path / "stderr.txt") if "preempted" in l]
    assert len(lines) == 1, lines
    match = PREEMPTED.fullmatch(lines[0].strip())
    assert match, lines[0]
    step = int(match.group(1))
    assert 400 <= step < 600
    assert str(step) in os.listdir(tmp_path / "checkpoints")
    out = run_cli(args)
    assert out.returncode == 0, out.stderr
    assert f"resuming from step {step}" in out.stdout
    assert deterministic_rows(tmp_path) == deterministic_rows(workdir)
    assert_same_final_checkpoint(workdir, tmp_path)


def _damage(folder, how):
    """Damages checkpoint `folder`; returns the file it names, if any."""
    if how == "empty":
        shutil.rmtree(folder)
        os.mkdir(folder)
        return None
    files = [os.path.join(root, name) for root, _, names in os.walk(folder)
             for name in names if name != checkpoint_lib.MANIFEST]
    largest = max(files, key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.truncate(os.path.getsize(largest) // 2)
    return os.path.relpath(largest, folder)


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(
        straight_run, tmp_path, capsys, how):
    workdir, straight = straight_run
    run = tmp_path / "run"
    shutil.copytree(workdir, run)
    newest = run / "checkpoints" / "600"
    name = _damage(str(newest), how)
    summary = training.train(settings(run))
    captured = capsys.readouterr()
    warnings = [l for l in captured.err.splitlines() if "damaged" in l]
    assert len(warnings) == 1, captured.err
    assert f"checkpoint 600 ({newest})" in warnings[0]
    assert (name or "holds no files") in warnings[0]
    assert "resuming from step 400" in captured.out
    # Set aside, out of the way of the new checkpoint 600 and the rotation.
    assert sorted(os.listdir(run / "checkpoints")) == [
        "400", "600", "600.damaged"]
    assert summary["env_steps"] == 600
    assert deterministic_rows(run) == deterministic_rows(workdir)
    assert_same_params(summary["state"], straight["state"])


def test_no_intact_checkpoint_exits_1_and_touches_nothing(straight_run,
                                                          tmp_path):
    workdir, _ = straight_run
    shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
    ckpts = tmp_path / "checkpoints"
    for step in ("400", "600"):
        _damage(str(ckpts / step), "truncated")

    def listing():
        return sorted((os.path.relpath(os.path.join(root, n), tmp_path),
                       os.path.getsize(os.path.join(root, n)))
                      for root, _, names in os.walk(ckpts) for n in names)

    before = listing(), deterministic_rows(tmp_path)
    out = run_cli([*CLI_ARGS, *TINY_FLAGS, f"--workdir={tmp_path}"])
    assert out.returncode == 1
    errors = [l for l in out.stderr.splitlines() if "ERROR" in l]
    assert len(errors) == 1, out.stderr
    assert f"No intact checkpoint in {ckpts}: step 600: " in errors[0]
    assert "step 400: " in errors[0]
    assert "Traceback" not in out.stderr
    assert (listing(), deterministic_rows(tmp_path)) == before


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


def test_a_fresh_start_drops_rows_of_a_run_killed_before_its_checkpoint(
        tmp_path):
    """Rows written before the first checkpoint of a killed run do not
    survive into the rerun (which starts from scratch); on resume, rows
    after the restored step are dropped."""
    from dqs_jax.training.outputs import Outputs
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for step in (1000, 2000, 3000):
            f.write(json.dumps({"kind": "train", "step": step}) + "\n")
    resumed = Outputs(str(tmp_path), "t", resume_step=2000)
    assert [r["step"] for r in resumed.log.rows()] == [1000, 2000]
    resumed.close()
    fresh = Outputs(str(tmp_path), "t", resume_step=None)
    assert fresh.log.rows() == []
    fresh.close()
