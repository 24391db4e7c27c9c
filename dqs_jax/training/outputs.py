"""What a training run writes besides checkpoints: the workdir's config.json
(and the refusal to mix two configurations in one workdir), metrics.jsonl,
TensorBoard scalars, the learning-curve PNG and progress formatting."""

import math
import os
import shutil
from typing import Any, Dict, Iterable, Optional

from dqs_jax.training import curves, files


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different configuration."""


class Outputs:
    """metrics.jsonl, TensorBoard scalars and the learning-curve PNG (and,
    with a `tracker`, the same rows and image in W&B)."""

    def __init__(self, workdir: str, title: str, resume_step: Optional[int],
                 tracker: Any = None):
        """`resume_step`: the step restored from a checkpoint (None: a
        fresh start); `tracker`: a `tracking.WandbTracker` or None."""
        from tensorboardX import SummaryWriter
        self.log = files.MetricsLog(os.path.join(workdir, "metrics.jsonl"))
        # Rows after the restored step (all rows on a fresh start: a run
        # killed before its first checkpoint leaves some) are dropped.
        resume = 0 if resume_step is None else resume_step
        self.log.truncate_after(resume)
        self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                    purge_step=resume + 1)
        self.curve_path = os.path.join(workdir, "learning_curve.png")
        self.title = title
        self.tracker = tracker

    def write(self, row: Dict[str, Any]) -> None:
        self.log.append(row)
        if self.tracker is not None:
            self.tracker.log_row(row)
        for name, value in row.items():
            if name not in ("kind", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{row['kind']}/{name}", value,
                                       row["step"])

    def plot(self) -> str:
        self.writer.flush()
        rows = self.log.rows()
        path = curves.learning_curve(rows, self.curve_path, self.title)
        if self.tracker is not None and rows:
            self.tracker.log_image(path, rows[-1]["step"])
        return path

    def close(self) -> None:
        self.writer.close()
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None


def prepare_workdir(workdir: str, config: Dict[str, Any], overwrite: bool,
                    resumable_changes: Iterable[str]) -> None:
    """Creates `workdir` and writes config.json (keeping the `restarts` of
    the run it resumes); `config["provenance"]["_diff"]`, this session's
    uncommitted changes of the code, goes to `code.diff` beside it.

    Raises:
      ConfigMismatchError: the workdir holds a run whose flat config differs
        in more than `resumable_changes` (unless `overwrite`, which deletes
        that run's outputs first).
    """
    config_path = os.path.join(workdir, "config.json")
    if overwrite and os.path.isdir(workdir):
        for name in ("checkpoints", "tensorboard", "wandb"):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        for name in ("metrics.jsonl", "config.json", "learning_curve.png",
                     "code.diff", "wandb_id"):
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
    elif os.path.exists(config_path):
        previous = files.read_json(config_path)
        old = previous.get("flat_config", {})
        diffs = files.config_differences(old, config["flat_config"],
                                          ignore=resumable_changes)
        if diffs:
            listed = "; ".join(f"--{k}: {a!r} in the workdir, {b!r} now"
                               for k, a, b in diffs)
            raise ConfigMismatchError(
                f"{os.path.abspath(workdir)} holds a run with a different "
                f"configuration ({listed}). Use another --workdir, or "
                "--overwrite to discard that run. Only --max_steps may change "
                "when resuming.")
        if "restarts" in previous:
            config = {"restarts": previous["restarts"], **config}
    os.makedirs(workdir, exist_ok=True)
    if "provenance" in config:
        provenance = dict(config["provenance"])
        diff, diff_path = (provenance.pop("_diff", None),
                           os.path.join(workdir, "code.diff"))
        if diff:  # This session's uncommitted changes.
            with open(diff_path, "w") as f:
                f.write(diff)
        elif os.path.exists(diff_path):  # An earlier session's.
            os.remove(diff_path)
        config = dict(config, provenance=provenance)
    files.write_json(config_path, config)


def format_return(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "n/a"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
