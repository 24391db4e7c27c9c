"""Experiment tracking with Weights & Biases (optional: `wandb` is imported
only when a run asks for it).

One W&B run per outputs folder (a run's workdir, or `seed_<i>/` of an
N-seed run) with the run's resolved config, every metrics row under the
names metrics.jsonl uses (step = env steps), and the learning-curve image
at each evaluation. The W&B run id lives in `<folder>/wandb_id`, so a
resumed run continues the same W&B run. `WANDB_MODE=offline` works with no
network (`wandb sync` uploads later).
"""

import dataclasses
import os
import uuid
from typing import Any, Dict, Optional

ID_FILE = "wandb_id"


@dataclasses.dataclass(frozen=True)
class WandbSettings:
    """Where a run's W&B run goes; `name` defaults to
    `<agent>_<env>_seed<seed>`."""

    project: str = "dqs-jax"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None


class WandbTracker:
    """The W&B run of one outputs folder."""

    def __init__(self, settings: WandbSettings, folder: str, name: str,
                 config: Dict[str, Any]):
        """`name`: the W&B run's name unless `settings.name` is set."""
        import wandb
        self._wandb = wandb
        id_path = os.path.join(folder, ID_FILE)
        if os.path.exists(id_path):
            with open(id_path) as f:
                run_id = f.read().strip()
        else:
            run_id = uuid.uuid4().hex[:8]
            with open(id_path, "w") as f:
                f.write(run_id)
        self.run = wandb.init(
            project=settings.project, entity=settings.entity,
            group=settings.group, name=settings.name or name, id=run_id,
            resume="allow", dir=folder, config=config, reinit="create_new")

    def log_row(self, row: Dict[str, Any]) -> None:
        """A metrics row (train or eval), its numbers under their names."""
        values = {k: v for k, v in row.items()
                  if k not in ("kind", "step") and isinstance(v, (int, float))}
        self.run.log(values, step=int(row["step"]))

    def log_image(self, path: str, step: int) -> None:
        self.run.log({"learning_curve": self._wandb.Image(path)},
                     step=int(step))

    def finish(self) -> None:
        self.run.finish()
