"""Where a run keeps what: the workdir (config.json, per-seed folders) and
the checkpoint's tree, for one seed and for N."""

import os
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from dqs_jax.training import files, provenance
from dqs_jax.training.outputs import prepare_workdir
from dqs_jax.training.progress import SeedProgress
from dqs_jax.training.settings import RESUMABLE_CHANGES, RunSettings


def seed_dir(workdir: str, index: int) -> str:
    """The outputs folder of seed `index` of an N-seed run."""
    return os.path.join(workdir, f"seed_{index}")


def new_progress(observation: np.ndarray, key: jax.Array,
                 metric_names: List[str]) -> SeedProgress:
    """A seed's progress at the run's first step."""
    return SeedProgress(
        env_step=0, episode=0, episode_return=0.0, episode_length=0,
        observation=observation, key=np.asarray(key), num_updates=0,
        metric_sums={k: 0.0 for k in metric_names}, metric_count=0,
        last_episode_return=float("nan"), last_eval_return=float("nan"),
        wall_time=0.0)


def checkpoint_tree(state: Any, learner: Any, progress: List[SeedProgress],
                    envs: List[Any]) -> Dict[str, Any]:
    """What a run checkpoints (also the restore template): agent, replay or
    rollout, and each seed's progress and env state. One seed keeps the
    layout `{agent, <data>, loop, env}`; N seeds `{..., loops, envs}`."""
    tree = {"agent": state, learner.data_name: learner.data}
    if len(progress) == 1:
        tree.update(loop=progress[0].to_tree(), env=envs[0].get_state())
    else:
        tree.update(loops={str(i): p.to_tree() for i, p in enumerate(progress)},
                    envs={str(i): e.get_state() for i, e in enumerate(envs)})
    return tree


def restored_seeds(tree: Dict[str, Any], num_seeds: int):
    """`[(progress tree, env state)]` per seed of a restored checkpoint."""
    if num_seeds == 1:
        return [(tree["loop"], tree["env"])]
    return [(tree["loops"][str(i)], tree["envs"][str(i)])
            for i in range(num_seeds)]


def prepare_run_workdir(settings: RunSettings, argv: Optional[List[str]]
                        ) -> str:
    """Creates the workdir, writes config.json; returns its absolute path."""
    prepare_workdir(settings.workdir, {
        "flat_config": settings.flat_config(),
        "agent_config_class": type(settings.resolved_agent_config()).__name__,
        "versions": files.versions(),
        "command": argv,
        "provenance": provenance.provenance(argv),
    }, settings.overwrite, RESUMABLE_CHANGES)
    return os.path.abspath(settings.workdir)
