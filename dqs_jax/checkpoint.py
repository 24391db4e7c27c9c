"""Atomic, rotating, checksummed checkpoints of arbitrary pytrees (orbax).

Each save goes to a temporary folder that orbax renames when complete, so a
kill during a save leaves the previous checkpoints loadable; the newest
`max_to_keep` are kept. After orbax finishes, the size and SHA-256 of every
file of the checkpoint go to `dqs_checksums.json` in its folder: orbax does
not notice most truncated data files (it restores their missing chunks as
fill values), so `restore` checks them first.
"""

import hashlib
import json
import os
from typing import Any, Dict, List, Optional

import orbax.checkpoint as ocp

MANIFEST = "dqs_checksums.json"
_MAX_REASON = 200  # Characters of an orbax error quoted in a one-line reason.


class CheckpointDamagedError(RuntimeError):
    """A checkpoint's files are missing, truncated or altered, or orbax
    cannot read them back. `step`, `path` and `reason` (one line) name it."""

    def __init__(self, step: int, path: str, reason: str):
        self.step, self.path, self.reason = int(step), path, reason
        super().__init__(f"checkpoint {step} ({path}) is damaged: {reason}")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_table(folder: str) -> Dict[str, Dict[str, Any]]:
    """`{relative path: {size, sha256}}` of every file under `folder` but
    the manifest (and its temporary file)."""
    table = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel in (MANIFEST, MANIFEST + ".tmp"):
                continue
            table[rel] = {"size": os.path.getsize(path),
                          "sha256": _sha256(path)}
    return table


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


class Checkpointer:
    """Saves and restores pytrees (TrainState, replay buffer, loop state...)
    under `directory`, one numbered step per checkpoint."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        # A single item (saved under `default/`), fixed here: left to orbax,
        # the first restore would infer it from that step's folder and keep
        # a wrong guess made on a damaged one for every later step.
        self._manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True,
                enable_async_checkpointing=False))

    def save(self, step: int, tree: Any) -> str:
        """Writes `tree` as checkpoint `step` and its checksums; returns its
        folder.

        A kill between orbax's rename and the checksums leaves a complete
        checkpoint without them (`verify` then passes it unchecked).
        """
        self._manager.save(int(step), args=ocp.args.StandardSave(tree),
                           force=True)
        self._manager.wait_until_finished()
        folder = self.path(step)
        manifest = os.path.join(folder, MANIFEST)
        with open(manifest + ".tmp", "w") as f:
            json.dump({"files": _file_table(folder)}, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(manifest + ".tmp", manifest)
        return folder

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def steps(self) -> List[int]:
        """Steps of the checkpoint folders, oldest first (a folder with a
        numeric name counts; `restore` tells whether it is intact)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.steps()
        return steps[-1] if steps else None

    def verify(self, step: int) -> None:
        """Checks checkpoint `step`'s files against its `dqs_checksums.json`
        (a checkpoint without one, e.g. from an older version, passes).

        Raises:
          CheckpointDamagedError: a file is missing, has another size or
            another SHA-256, or the checksums file is unreadable.
        """
        folder = self.path(step)
        manifest = os.path.join(folder, MANIFEST)
        if not os.path.exists(manifest):
            return
        try:
            with open(manifest) as f:
                files = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointDamagedError(
                step, folder, f"unreadable {MANIFEST} ({_one_line(e)})"
            ) from None
        for rel, expected in sorted(files.items()):
            path = os.path.join(folder, rel)
            if not os.path.isfile(path):
                reason = f"{rel} is missing"
            elif os.path.getsize(path) != expected["size"]:
                reason = (f"{rel} has {os.path.getsize(path)} bytes, "
                          f"expected {expected['size']}")
            elif _sha256(path) != expected["sha256"]:
                reason = f"{rel} does not match its SHA-256"
            else:
                continue
            raise CheckpointDamagedError(step, folder, reason)

    def restore(self, target: Any, step: Optional[int] = None) -> Any:
        """Checkpoint `step` (default: latest) in the structure of `target`,
        after `verify`.

        Raises:
          FileNotFoundError: there is no such checkpoint.
          CheckpointDamagedError: `verify` failed, or orbax raised while
            reading it (also the case for a `target` of another structure).
        """
        available = self.steps()
        if step is None and available:
            step = available[-1]
        if step is None or step not in available:
            raise FileNotFoundError(
                f"No checkpoint {'' if step is None else step} in "
                f"{self.directory} (available: {available or 'none'}).")
        self.verify(step)
        try:
            return self._manager.restore(
                step, args=ocp.args.StandardRestore(target))
        except Exception as e:  # orbax/tensorstore raise many types.
            folder = self.path(step)
            empty = not any(files for _, _, files in os.walk(folder))
            raise CheckpointDamagedError(
                step, folder, "the folder holds no files" if empty else
                f"orbax cannot read it ({_one_line(e)})") from e

    def set_aside(self, step: int) -> str:
        """Renames checkpoint `step`'s folder to `<step>.damaged` (or
        `<step>.damaged.<n>`), a name orbax neither lists, restores, rotates
        nor deletes; returns the new path. Later saves may reuse `step`."""
        folder = self.path(step)
        new = f"{folder}.damaged"
        n = 1
        while os.path.exists(new):
            n += 1
            new = f"{folder}.damaged.{n}"
        os.rename(folder, new)
        self._manager.reload()
        return new

    def close(self) -> None:
        self._manager.close()
