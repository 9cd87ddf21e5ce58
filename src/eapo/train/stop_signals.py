"""A graceful stop for a training run: SIGINT, SIGTERM or SIGHUP ask the loop to finish the current step,
save a checkpoint and return (exit code 0 from `eapo train`); a second Ctrl-C stops at once."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

from tqdm.auto import tqdm

# Signals that stop a run gracefully: Ctrl-C, `kill`, and SIGHUP (the terminal or SSH session closed).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopRequest:
    """SIGINT/SIGTERM/SIGHUP ask the loop to stop after the current step (it then checkpoints and exits 0).

    A second Ctrl-C interrupts at once, for a user who really means it.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        tqdm.write(
            f"\n{self.signal_name} received: finishing this step, then saving a checkpoint "
            "(Ctrl-C again stops at once, without saving)."
        )

    def __enter__(self) -> StopRequest:
        with contextlib.suppress(ValueError):  # not the main thread: no handlers, no graceful stop
            for sig in STOP_SIGNALS:
                # A run started under `nohup` ignores SIGHUP on purpose: keep it ignored.
                if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                    continue
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
