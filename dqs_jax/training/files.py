"""Files of a training run: config.json, metrics.jsonl, package versions."""

import importlib.metadata
import json
import os
import platform
import sys
import time
from typing import Any, Dict, Iterable, List, Tuple

VERSIONED_PACKAGES = ("dqs-jax", "jax", "jaxlib", "flax", "optax", "chex",
                      "distrax", "dm_control", "mujoco", "numpy",
                      "orbax-checkpoint", "gymnasium", "gymnasium-robotics")


def versions() -> Dict[str, str]:
    """Python and the installed versions of the packages a run depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_json(path: str, data: Dict[str, Any]) -> None:
    """Writes `data` atomically (temporary file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def read_json(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def config_differences(old: Dict[str, Any], new: Dict[str, Any],
                       ignore: Iterable[str] = ()
                       ) -> List[Tuple[str, Any, Any]]:
    """`(name, old, new)` for every key whose value differs (JSON-normalised)."""
    norm = lambda v: json.loads(json.dumps(v, default=str))  # noqa: E731
    ignored = set(ignore)
    return [(k, old.get(k), new.get(k))
            for k in sorted(set(old) | set(new))
            if k not in ignored and norm(old.get(k)) != norm(new.get(k))]


class MetricsLog:
    """Append-only JSON-lines log of metric rows, each with an int `step`."""

    def __init__(self, path: str):
        self.path = path

    def rows(self) -> List[Dict[str, Any]]:
        """Every complete row (a torn last line from a kill is skipped)."""
        if not os.path.exists(self.path):
            return []
        rows = []
        with open(self.path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                rows.append(json.loads(line))
        return rows

    def truncate_after(self, step: int) -> None:
        """Keeps only the rows with `row['step'] <= step` (used on resume)."""
        kept = [r for r in self.rows() if r["step"] <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for row in kept:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, self.path)

    def append(self, row: Dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


def eval_rows(run_dir: str) -> List[Dict[str, Any]]:
    """The evaluation rows of a run's metrics.jsonl (empty if none)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    return [r for r in MetricsLog(path).rows() if r["kind"] == "eval"]


def check_writable_dir(path: str) -> None:
    """Creates folder `path` if needed and checks that a file can be
    written in it; ValueError naming the folder and the reason if not."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"--workdir={path} cannot be created or written: "
                         f"{e.strerror or e}.") from None


def now() -> str:
    """The local time as recorded in config.json and lock files,
    `YYYY-MM-DD HH:MM:SS TZ`."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
