"""Launching a sweep's runs through submitit: a SLURM job array, or
submitit's local executors (real subprocesses without a scheduler, or in
process for debugging).

Each run is one submitit job that runs its `experiments.train` command as a
child process, in the run's own workdir, exactly as the local launcher
does, so `--status` and `experiments.report` read a sweep the same way
however it ran.

Preemption and time limits: submitit asks SLURM for `--signal=USR2@90`, so
SLURM sends USR2 to the job 90 s before its time limit and, where the
cluster sets `SlurmctldParameters=preempt_send_user_signal`, when it
preempts it. submitit's handler calls `RunJob.checkpoint`, which sends
SIGTERM to the training process: it finishes its current env step, writes
a checkpoint of it and exits (143); the job is then requeued with the same
run, whose training process resumes from that checkpoint. Requeue rule
(submitit's): a preemption is always requeued; a time limit at most
`max_timeouts` times. A run that fails for a real reason (bad flag, NaN
loss, damaged checkpoints: `experiments.train` exits 1) raises in its job,
which ends FAILED and is not requeued; a training process stopped by a
SIGTERM that did not come through submitit (e.g. SLURM's own SIGTERM at
preemption, `scancel`) leaves its checkpoint and ends the job FAILED too;
rerunning `reproduce` resumes it.
"""

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Sequence

LAUNCHERS = ("local", "submitit_local", "slurm", "debug")
# SLURM states of a job that may still run (`reproduce` skips its run).
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING",
                 "COMPLETING", "SUSPENDED", "RESIZING", "UNKNOWN")
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What each run of a sweep asks the scheduler for."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_run: int = 0
    cpus_per_run: int = 2
    mem_gb: int = 16
    time_min: int = 240  # Per job; a run longer than that is requeued.
    array_parallelism: int = 64  # Runs of the array at once.
    max_timeouts: int = 3  # Requeues after a time limit, per run.
    signal_delay_s: int = 90  # USR2 this long before the time limit.
    extra: Sequence[str] = ()  # "key=value": more #SBATCH parameters.

    def __post_init__(self):
        for name in ("cpus_per_run", "mem_gb", "time_min",
                     "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got "
                                 f"{getattr(self, name)}.")
        if self.gpus_per_run < 0 or self.max_timeouts < 0:
            raise ValueError("--gpus_per_run and --max_timeouts must be >= 0.")
        bad = [item for item in self.extra if "=" not in item]
        if bad:
            raise ValueError(f"--launcher_args must be key=value, got {bad}.")

    def slurm_parameters(self, job_name: str) -> Dict[str, Any]:
        """The parameters of `submitit.SlurmExecutor.update_parameters`."""
        params: Dict[str, Any] = dict(
            job_name=job_name, time=self.time_min,
            cpus_per_task=self.cpus_per_run, mem=f"{self.mem_gb}GB",
            array_parallelism=self.array_parallelism,
            signal_delay_s=self.signal_delay_s)
        for name in ("partition", "account", "qos"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        if self.gpus_per_run:
            params["gpus_per_node"] = self.gpus_per_run
        if self.extra:
            params["additional_parameters"] = dict(
                item.split("=", 1) for item in self.extra)
        return params


class RunJob:
    """One run of a sweep as a submitit job: its `experiments.train`
    command as a child process, stopped with SIGTERM (a checkpoint) and
    requeued when the scheduler signals a preemption or a time limit."""

    def __init__(self, root: str = _ROOT):
        self.root = root  # Where `python -m experiments.train` resolves.
        self._proc: Optional[subprocess.Popen] = None

    def __getstate__(self):
        return {"root": self.root}

    def __setstate__(self, state):
        self.__init__(state["root"])

    def __call__(self, run: Dict[str, Any]) -> Dict[str, Any]:
        """Runs (or resumes) `run` to its end; `{workdir, returncode}`.

        Raises:
          RuntimeError: the training process failed (not requeued).
        """
        # This process imports no JAX (only submitit and this module), so
        # that forking the training process is safe.
        cmd = [sys.executable] + list(run["cmd"][1:])
        print("running: " + " ".join(shlex.quote(c) for c in cmd),
              flush=True)
        # SLURM signals every process of the job step: the training process
        # ignores USR2 (it checkpoints on the SIGTERM that `checkpoint`
        # sends); submitit's handler in this process acts on it.
        self._proc = subprocess.Popen(
            cmd, cwd=self.root,
            preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN))
        # Poll rather than `wait()`: `checkpoint` runs in a signal handler
        # of this thread and must not meet `wait()`'s lock.
        while self._proc.poll() is None:
            time.sleep(0.5)
        code = self._proc.returncode
        self._proc = None
        if code == 0:
            return {"workdir": run["workdir"], "returncode": 0}
        stopped = code in (128 + signal.SIGTERM, 128 + signal.SIGINT)
        raise RuntimeError(
            f"{run['workdir']}: experiments.train exited with {code}"
            + (" (stopped by a signal after a checkpoint; rerun reproduce "
               "to resume)" if stopped else "; its error is in this job's "
               "log"))

    def checkpoint(self, run: Dict[str, Any]):
        """submitit's preemption / time-limit hook: the training process
        checkpoints and exits; the job is requeued with the same run."""
        import submitit
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # Reaped here with os.waitpid: no Popen lock in a handler.
            try:
                os.kill(proc.pid, signal.SIGTERM)
                _, status = os.waitpid(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # Already reaped by `poll`.
                pass
        return submitit.helpers.DelayedSubmission(RunJob(self.root), run)


def job_folder(folder: str) -> str:
    """submitit's folder pattern of job J's logs and pickles, `folder/J`."""
    return os.path.join(folder, "%j")


def make_executor(launcher: str, folder: str, cluster: ClusterSettings,
                  job_name: str):
    """The submitit executor of `launcher` (logs and pickles of job J in
    `folder/J`).
    Its jobs must import this package: the repository root goes on the
    PYTHONPATH that they inherit (sbatch exports the environment)."""
    import submitit
    folder = job_folder(folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p]
    if _ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + paths)
    if launcher == "slurm":
        executor = submitit.SlurmExecutor(folder,
                                          max_num_timeout=cluster.max_timeouts)
        executor.update_parameters(**cluster.slurm_parameters(job_name))
    elif launcher == "submitit_local":
        executor = submitit.LocalExecutor(folder,
                                          max_num_timeout=cluster.max_timeouts)
        executor.update_parameters(timeout_min=cluster.time_min,
                                   signal_delay_s=cluster.signal_delay_s)
    elif launcher == "debug":
        executor = submitit.DebugExecutor(folder)
    else:
        raise ValueError(f"unknown launcher {launcher!r}; choose from "
                         f"{LAUNCHERS}.")
    return executor


def sbatch_script(folder: str, cluster: ClusterSettings, job_name: str,
                  num_runs: int) -> str:
    """The sbatch file `--launcher=slurm` submits for `num_runs` runs (a
    job array), as submitit writes it."""
    from submitit.slurm import slurm
    folder = job_folder(folder)
    command = " ".join([shlex.quote(sys.executable), "-u -m",
                        "submitit.core._submit", shlex.quote(folder)])
    return slurm._make_sbatch_string(  # pylint: disable=protected-access
        command=command, folder=folder,
        map_count=num_runs, **cluster.slurm_parameters(job_name))


def active_jobs(folder: str, records: Dict[str, str]) -> Dict[str, str]:
    """`{workdir: job id}` of the recorded SLURM jobs that may still run
    (state read with sacct; unknown states count as finished)."""
    import submitit
    active = {}
    for workdir, job_id in records.items():
        try:
            state = submitit.SlurmJob(job_folder(folder), job_id).state
        except Exception:  # pylint: disable=broad-except
            continue
        if state in ACTIVE_STATES:
            active[workdir] = job_id
    return active
