"""Ctrl-C (SIGINT) and SIGTERM ask the loop to stop at the next batch boundary."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from vml.train.callbacks import Callback
from vml.train.loop import Trainer


class CancelOnSignal(Callback):
    """The first signal sets a flag the loop sees after the current batch; a second
    SIGINT raises ``KeyboardInterrupt`` for users who do not want to wait."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        # Only set the flag: printing from a handler can re-enter a print in progress.
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def on_train_start(self, trainer: Trainer) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_step_end(self, trainer: Trainer) -> None:
        if self.requested and trainer.stop_reason is None:
            trainer.stop_reason = "cancelled"
            self.notify("stopping after this batch (press Ctrl-C again to stop at once)")

    on_epoch_end = on_step_end

    def on_train_end(self, trainer: Trainer) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
