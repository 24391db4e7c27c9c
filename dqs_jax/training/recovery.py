"""Surviving interruptions in a training run: signal handlers that turn
SIGTERM/SIGINT into a checkpoint and a clean stop (`StopSignals`), and a
restore that skips damaged checkpoints (`restore_newest_intact`).

Signal handlers are installed only while `StopSignals` is entered (by `train`).
"""

import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from dqs_jax.checkpoint import CheckpointDamagedError, Checkpointer

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class NoIntactCheckpointError(RuntimeError):
    """Every checkpoint of a run is damaged (none was moved or deleted)."""


class StopSignals:
    """While entered, SIGTERM and SIGINT only record a stop request.

    The loop polls `requested` after each environment step, so a signal
    never interrupts a step, an evaluation or a checkpoint being written;
    further signals (e.g. a second Ctrl-C while the final checkpoint is
    saved) are recorded the same way and change nothing. SIGKILL still kills
    at once (orbax's atomic saves keep the previous checkpoints). On exit the
    previous handlers are put back. Off the main thread, where Python cannot
    install handlers, it installs none and `requested` stays False.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: Optional[int] = None  # The first signal received.
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        del frame
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            # None: a handler installed outside Python; the default is the
            # closest we can put back.
            signal.signal(signum, signal.SIG_DFL if handler is None
                          else handler)
        self._previous = {}


def restore_newest_intact(checkpointer: Checkpointer, target: Any
                          ) -> Optional[Tuple[int, Any]]:
    """`(step, tree)` of the newest checkpoint that restores intact, or None
    when there is no checkpoint.

    Each newer damaged checkpoint gets one warning line on stderr and is set
    aside (renamed `<step>.damaged`, kept for inspection; see
    `Checkpointer.set_aside`), so that it is neither picked again nor in the
    way of the saves and the rotation that follow.

    Raises:
      NoIntactCheckpointError: every checkpoint is damaged. Nothing is moved
        or deleted; the one-line message names the folder and each failure.
    """
    damaged: List[CheckpointDamagedError] = []
    for step in reversed(checkpointer.steps()):
        try:
            tree = checkpointer.restore(target, step)
        except CheckpointDamagedError as e:
            damaged.append(e)
            continue
        for e in damaged:
            moved = checkpointer.set_aside(e.step)
            print(f"WARNING: {e}; moved it to {moved} and resuming from "
                  f"step {step}", file=sys.stderr, flush=True)
        return step, tree
    if damaged:
        raise NoIntactCheckpointError(
            f"No intact checkpoint in {checkpointer.directory}: "
            + "; ".join(f"step {e.step}: {e.reason}" for e in damaged)
            + ". Nothing was changed; repair or remove them, or start over "
            "with --overwrite.")
    return None
