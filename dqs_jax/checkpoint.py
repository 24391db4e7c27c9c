"""Atomic, rotating checkpoints of arbitrary pytrees (orbax).

Each save goes to a temporary folder that orbax renames when complete, so a
kill during a save leaves the previous checkpoints loadable; the newest
`max_to_keep` are kept.
"""

import os
from typing import Any, List, Optional

import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores pytrees (TrainState, replay buffer, loop state...)
    under `directory`, one numbered step per checkpoint."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True,
                enable_async_checkpointing=False))

    def save(self, step: int, tree: Any) -> str:
        """Writes `tree` as checkpoint `step`; returns its folder."""
        self._manager.save(int(step), args=ocp.args.StandardSave(tree),
                           force=True)
        self._manager.wait_until_finished()
        return self.path(step)

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def steps(self) -> List[int]:
        """Steps of the complete checkpoints, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.steps()
        return steps[-1] if steps else None

    def restore(self, target: Any, step: Optional[int] = None) -> Any:
        """Checkpoint `step` (default: latest) in the structure of `target`.

        Raises:
          FileNotFoundError: there is no such checkpoint.
        """
        available = self.steps()
        if step is None and available:
            step = available[-1]
        if step is None or step not in available:
            raise FileNotFoundError(
                f"No checkpoint {'' if step is None else step} in "
                f"{self.directory} (available: {available or 'none'}).")
        return self._manager.restore(step,
                                     args=ocp.args.StandardRestore(target))

    def close(self) -> None:
        self._manager.close()
