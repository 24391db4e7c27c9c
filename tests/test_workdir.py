"""A run's workdir: one process at a time (a lock the OS releases when
the process dies), provenance and restarts in config.json, clear errors
for a bad --config or --workdir."""

import json
import os
import signal
import subprocess
import sys

import pytest

from dqs_jax import training
from dqs_jax.training import lock
from tests.test_train import ROOT, run_cli, settings

TINY_CLI = ["--env=dmc:cartpole-balance", "--max_steps=200",
            "--seed_steps=100", "--batch_size=16", "--hidden_dims=16,16",
            "--critic_hidden_dims=16,16", "--embed_dim=8",
            "--num_mc_samples=4", "--num_sampling_steps=3",
            "--eval_every=200", "--eval_episodes=1"]


def test_a_second_process_on_a_locked_workdir_is_refused(tmp_path):
    with lock.WorkdirLock(str(tmp_path)):
        with pytest.raises(training.WorkdirLockedError,
                           match=f"pid {os.getpid()} on "):
            training.train(settings(tmp_path))
        out = run_cli([*TINY_CLI, f"--workdir={tmp_path}"])
    assert out.returncode == 1
    errors = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: "), out.stderr
    assert f"in use by pid {os.getpid()}" in errors[0]
    assert not os.path.exists(tmp_path / "checkpoints")
    assert lock.is_locked(str(tmp_path)) is None  # Released on exit.


def test_a_killed_holder_leaves_no_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from dqs_jax.training import lock\n"
        f"held = lock.WorkdirLock({str(tmp_path)!r}).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert f"pid {holder.pid} on" in lock.is_locked(str(tmp_path))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.is_locked(str(tmp_path)) is None
    with lock.WorkdirLock(str(tmp_path)):  # Free for the next run.
        assert json.load(open(tmp_path / ".lock"))["pid"] == os.getpid()


def test_config_json_records_provenance_and_restarts(tmp_path):
    training.train(settings(tmp_path, max_steps=200))
    config = json.load(open(tmp_path / "config.json"))
    prov = config["provenance"]
    assert prov["jax_backend"] == "cpu" and prov["devices"]
    assert prov["host"] and prov["started"] and prov["command"]
    assert "jax" in prov["versions"]
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"],
                         capture_output=True, text=True)
    if git.returncode == 0:  # A checkout: commit and dirtiness recorded.
        assert prov["git_commit"] == git.stdout.strip()
        assert isinstance(prov["git_dirty"], bool)
        assert os.path.exists(tmp_path / "code.diff") == prov["git_dirty"]
    assert "restarts" not in config
    training.train(settings(tmp_path, max_steps=400))
    restarts = json.load(open(tmp_path / "config.json"))["restarts"]
    assert [r["step"] for r in restarts] == [200]
    training.train(settings(tmp_path, max_steps=600))
    restarts = json.load(open(tmp_path / "config.json"))["restarts"]
    assert [r["step"] for r in restarts] == [200, 400]
    assert all(r["host"] and r["time"] for r in restarts)


@pytest.mark.parametrize("config,message", [
    ("missing.py", "--config=missing.py: ValueError: config file missing.py "
                   "not found."),
    ("{broken}", "SyntaxError"),
])
def test_a_bad_config_file_ends_in_one_line(tmp_path, config, message):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    config = config.replace("{broken}", str(broken))
    out = run_cli([f"--config={config}", f"--workdir={tmp_path / 'w'}"])
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        l for l in out.stderr.strip().splitlines() if "ERROR" in l]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr
    assert not os.path.exists(tmp_path / "w")


def test_an_unwritable_workdir_ends_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run_cli([*TINY_CLI, f"--workdir={blocker / 'run'}"])
    assert out.returncode == 1
    assert "cannot be created or written" in out.stderr
    assert "Traceback" not in out.stderr


def _wandb_history(folder):
    """`[(step, {name: value})]` and the config logged to the W&B runs
    under `folder` (offline files, read back)."""
    import glob
    from tests.helpers import wandb_records
    history, config, ids = [], {}, set()
    for path in sorted(glob.glob(os.path.join(folder, "wandb",
                                              "offline-run-*", "run-*.wandb"))):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                items = {}
                for i in record.history.item:  # Images: nested keys.
                    items[i.key or i.nested_key[0]] = json.loads(i.value_json)
                history.append((items.pop("_step"), items))
            elif kind == "run":
                ids.add(record.run.run_id)
                for item in record.run.config.update:
                    config[item.key] = json.loads(item.value_json)
            elif kind == "config":
                for item in record.config.update:
                    config[item.key] = json.loads(item.value_json)
    return history, config, ids


def test_wandb_offline_logs_rows_config_curves_and_resumes_one_run(
        tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracking = training.WandbSettings(project="test", group="g")
    training.train(settings(tmp_path, max_steps=300, wandb=tracking))
    training.train(settings(tmp_path, max_steps=600, wandb=tracking))
    history, config, ids = _wandb_history(str(tmp_path))
    run_id = open(tmp_path / "wandb_id").read().strip()
    assert ids == {run_id}  # The resumed session continued the same run.
    assert config["agent"] == "dqs" and config["num_mc_samples"] == 8
    rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    evals = [r for r in rows if r["kind"] == "eval"]
    logged = {step: items for step, items in history
              if "eval_return_mean" in items}
    assert sorted(logged) == [r["step"] for r in evals] == [300, 600]
    for row in evals:
        assert logged[row["step"]]["eval_return_mean"] == pytest.approx(
            row["eval_return_mean"])
        assert logged[row["step"]]["num_updates"] == row["num_updates"]
    images = [step for step, items in history if "learning_curve" in items]
    assert 300 in images and 600 in images
    # Not part of the run's identity: a rerun without --wandb resumes.
    assert "wandb" not in json.load(open(tmp_path / "config.json"))[
        "flat_config"]
