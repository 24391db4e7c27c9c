"""One process per workdir: an advisory lock on `<workdir>/.lock`.

`fcntl.flock` locks belong to the open file, so the OS releases them when
the process ends however it ends (`kill -9` included): a killed run never
leaves its workdir locked. The file keeps the holder's pid, host and start
time, which a refused process names in its one-line error.
"""

import fcntl
import json
import os
import socket
from typing import Any, Dict, Optional

from dqs_jax.training import files

LOCK_NAME = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another live process holds the workdir."""


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.load(f)
        return (f"pid {info['pid']} on {info['host']} since "
                f"{info['started']}")
    except (OSError, ValueError, KeyError):
        return "another process"


class WorkdirLock:
    """Holds `<workdir>/.lock` while entered (or until `release`).

    Raises:
      WorkdirLockedError: on `acquire`, when another process holds it.
    """

    def __init__(self, workdir: str, what: str = "run"):
        self.workdir, self.what = workdir, what
        self.path = os.path.join(workdir, LOCK_NAME)
        self._file = None

    def acquire(self) -> "WorkdirLock":
        os.makedirs(self.workdir, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise WorkdirLockedError(
                f"{os.path.abspath(self.workdir)} is in use by "
                f"{_holder(self.path)} (a {self.what} holds its lock); wait "
                "for it to finish or stop it, or use another --workdir."
            ) from None
        f.seek(0)
        f.truncate()
        json.dump(self.info(), f)
        f.flush()
        self._file = f
        return self

    @staticmethod
    def info() -> Dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": files.now()}

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def is_locked(workdir: str) -> Optional[str]:
    """The holder of `workdir`'s lock (a description), or None if free."""
    path = os.path.join(workdir, LOCK_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
