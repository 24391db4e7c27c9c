"""The host training runtime: train an agent online on a host environment
(dm_control, the two-goal maze, or any `registry` env) for one or N seeds,
with evaluation, metrics, TensorBoard, learning curves, checksummed
checkpoints, exact resume and SIGTERM/SIGINT preemption.

    from dqs_jax import training
    summary = training.train(training.RunSettings(
        env="dmc:cartpole-balance", max_steps=20_000, workdir="runs/cp"))

No absl: `experiments.train` is a thin binary over `train`. Pure-JAX envs
(GMM-40) use the fully jitted loop of `dqs_jax.loop` instead.
"""

from dqs_jax.training.layout import seed_dir
from dqs_jax.training.lock import WorkdirLock, WorkdirLockedError
from dqs_jax.training.outputs import ConfigMismatchError
from dqs_jax.training.recovery import NoIntactCheckpointError, StopSignals
from dqs_jax.training.run import NonFiniteLossError, Run, train
from dqs_jax.training.settings import RunSettings, agent_config_from_flat
from dqs_jax.training.tracking import WandbSettings

__all__ = ["ConfigMismatchError", "NoIntactCheckpointError",
           "NonFiniteLossError", "Run", "RunSettings", "StopSignals",
           "WandbSettings", "WorkdirLock", "WorkdirLockedError",
           "agent_config_from_flat", "seed_dir", "train"]
