"""Which code, command and machine produced a run (config.json's
`provenance`), and the run's restarts."""

import os
import socket
import subprocess
import sys
from typing import Any, Dict, List, Optional

import jax

from dqs_jax.training import files

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", _PACKAGE_DIR, *args],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def code_state() -> Dict[str, Any]:
    """`{commit, dirty, diff}` of the git checkout holding `dqs_jax` (all
    None outside a checkout); `diff` is `git diff HEAD` when dirty."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff": None}
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    dirty = bool(status.strip())
    return {"commit": commit.strip(), "dirty": dirty,
            "diff": _git("diff", "HEAD") if dirty else None}


def provenance(argv: Optional[List[str]]) -> Dict[str, Any]:
    """Code (commit, dirty), command line, host, JAX backend and devices,
    package versions and start time of this process."""
    code = code_state()
    devices = jax.devices()
    return {
        "git_commit": code["commit"], "git_dirty": code["dirty"],
        "command": list(argv) if argv is not None else list(sys.argv),
        "host": socket.gethostname(), "started": files.now(),
        "jax_backend": jax.default_backend(),
        "devices": sorted({d.device_kind for d in devices}),
        "device_count": len(devices),
        "matmul_precision": jax.config.jax_default_matmul_precision
        or "default",
        "versions": files.versions(),
        "_diff": code["diff"],
    }


def record_restart(workdir: str, step: int) -> None:
    """Appends `{time, step, host}` to config.json's `restarts`."""
    path = os.path.join(workdir, "config.json")
    config = files.read_json(path)
    config.setdefault("restarts", []).append(
        {"time": files.now(), "step": step, "host": socket.gethostname()})
    files.write_json(path, config)
