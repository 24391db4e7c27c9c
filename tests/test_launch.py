"""Sweeps through submitit: its local executor (real subprocesses, the
code path of SLURM but for the scheduler) runs a sweep that the report
reads; a job interrupted as a preemption is requeued and resumes from its
checkpoint to the outputs of an uninterrupted run; the SLURM submission is
checked as text."""

import os
import signal
import subprocess
import sys
import time

from absl import app
import pytest

from experiments.dmc import launch, sweep
from tests.test_train import ROOT, deterministic_rows

TINY = ["--seed_steps=100", "--hidden_dims=16,16", "--critic_hidden_dims=16,16",
        "--batch_size=16", "--replay_size=2000"]


def reproduce(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce",
                           *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_submitit_local_runs_a_sweep_that_the_report_reads(tmp_path):
    sweep_dir = tmp_path / "sweep"
    out = reproduce("--preset=smoke", "--agents=sac", "--seeds=0,1",
                    "--max_steps=300", "--launcher=submitit_local",
                    f"--workdir={sweep_dir}", "--", *TINY,
                    "--eval_every=300")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "submitted 2 runs (submitit_local)" in out.stdout
    assert "2 done of 2 runs" in out.stdout
    for seed in (0, 1):
        run = sweep_dir / "sac" / "dmc_reacher-hard" / f"seed_{seed}"
        assert [r["step"] for r in deterministic_rows(run)
                if r["kind"] == "eval"] == [300]
    # --status and the report read it as any sweep.
    status = reproduce(f"--workdir={sweep_dir}", "--status")
    assert "2 done of 2 runs" in status.stdout
    report = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"--sweep={sweep_dir}",
         "--steps=300"], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "sac" in (sweep_dir / "report.md").read_text()
    # A rerun launches nothing: both runs are done.
    again = reproduce("--preset=smoke", "--agents=sac", "--seeds=0,1",
                      "--max_steps=300", "--launcher=submitit_local",
                      f"--workdir={sweep_dir}", "--", *TINY,
                      "--eval_every=300")
    assert again.returncode == 0 and "submitted" not in again.stdout


def _descendants(pid):
    """The pids of `pid`'s descendants (Linux /proc)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                out += [int(child)] + _descendants(int(child))
    return out


def _run(tmp_path, name, max_steps):
    spec = sweep.resolve("smoke", agent_names=["sac"], seeds=["0"],
                         max_steps=max_steps)
    return sweep.commands(spec, str(tmp_path / name),
                          [*TINY, "--eval_every=600",
                           "--checkpoint_every=200"])[0]


def test_an_interrupted_job_is_requeued_and_resumes_exactly(tmp_path):
    max_steps = 1600
    straight = _run(tmp_path, "straight", max_steps)
    plain = subprocess.Popen(straight["cmd"], cwd=ROOT,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    run = _run(tmp_path, "preempted", max_steps)
    executor = launch.make_executor(
        "submitit_local", str(tmp_path / "submitit"),
        launch.ClusterSettings(time_min=30), "test")
    job = executor.submit(launch.RunJob(), run)
    checkpoints = os.path.join(run["workdir"], "checkpoints")
    deadline = time.time() + 300
    while not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.1)
    # What SLURM does 90 s before a time limit (or at a preemption): USR2
    # to the job's processes. submitit's LocalJob._interrupt signals the
    # local controller, which does not forward USR2; signal the job's
    # process (the controller's child) and the training process as SLURM
    # would.
    for pid in _descendants(int(job.job_id)):
        os.kill(pid, signal.SIGUSR2)
    assert job.result() == {"workdir": run["workdir"], "returncode": 0}
    assert sweep.progress(run, max_steps)["state"] == "done"
    log = job.stdout()
    assert "resuming from step" in log, log[-2000:]
    assert plain.wait(timeout=600) == 0
    assert deterministic_rows(run["workdir"]) == deterministic_rows(
        straight["workdir"])


def test_a_failing_run_is_not_requeued(tmp_path):
    run = _run(tmp_path, "bad", 300)
    run["cmd"] = run["cmd"] + ["--num_mc_samples=0"]  # Refused by train.
    executor = launch.make_executor("submitit_local",
                                    str(tmp_path / "submitit"),
                                    launch.ClusterSettings(), "test")
    job = executor.submit(launch.RunJob(), run)
    with pytest.raises(Exception, match="exited with 1"):
        job.result()
    assert job.stdout().count("running: ") == 1  # Ran once, not requeued.


def test_slurm_submission_parameters_as_text(tmp_path):
    cluster = launch.ClusterSettings(
        partition="gpu", account="rl", qos="high", gpus_per_run=1,
        cpus_per_run=8, mem_gb=32, time_min=180, array_parallelism=10,
        extra=("constraint=a100",))
    text = launch.sbatch_script(str(tmp_path), cluster, "dqs-cpu", 18)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=rl",
                 "#SBATCH --qos=high", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                 "#SBATCH --time=180", "#SBATCH --array=0-17%10",
                 "#SBATCH --signal=USR2@90", "#SBATCH --constraint=a100",
                 "#SBATCH --job-name=dqs-cpu"):
        assert line in text.splitlines(), (line, text)
    assert "submitit.core._submit" in text
    # The binary shows it with --dry_run, submitting nothing.
    out = reproduce("--preset=cpu", "--launcher=slurm", "--partition=gpu",
                    "--gpus_per_run=1", f"--workdir={tmp_path / 'w'}",
                    "--dry_run")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "#SBATCH --array=0-17%18" in out.stdout
    assert "#SBATCH --partition=gpu" in out.stdout
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("args,message", [
    (["--partition=gpu"], "--partition does not apply to --launcher=local"),
    (["--launcher=submitit_local", "--gpus_per_run=1"],
     "--gpus_per_run does not apply to --launcher=submitit_local"),
    (["--launcher=pbs"], "--launcher=pbs: value should be one of"),
    (["--launcher=slurm", "--jobs=2"], "--jobs applies to --launcher=local"),
    (["--launcher_args=nokey"], "--launcher_args does not apply"),
])
def test_bad_launcher_flags_end_in_one_line(tmp_path, args, message):
    out = reproduce("--preset=smoke", f"--workdir={tmp_path / 'w'}", *args)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "w")


def test_a_locked_sweep_or_run_is_not_launched_twice(tmp_path):
    from dqs_jax.training import lock
    sweep_dir = tmp_path / "sweep"
    with lock.WorkdirLock(str(sweep_dir), what="sweep"):
        out = reproduce("--preset=smoke", f"--workdir={sweep_dir}")
    assert out.returncode != 0
    assert f"in use by pid {os.getpid()}" in out.stderr
    # A run whose workdir a live process holds is skipped, not launched.
    spec = sweep.resolve("smoke", agent_names=["sac"], seeds=["0"])
    run = sweep.commands(spec, str(sweep_dir))[0]
    with lock.WorkdirLock(run["workdir"]):
        out = reproduce("--preset=smoke", "--agents=sac", "--seeds=0",
                        f"--workdir={sweep_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"skipping {run['workdir']}: in use by pid {os.getpid()}" in (
        out.stdout)
    assert not os.path.exists(os.path.join(run["workdir"], "checkpoints"))


def test_cluster_settings_are_validated():
    with pytest.raises(ValueError, match="key=value"):
        launch.ClusterSettings(extra=("nokey",))
    with pytest.raises(ValueError, match="--cpus_per_run"):
        launch.ClusterSettings(cpus_per_run=0)
    assert app  # absl imported for UsageError parity with reproduce.
