"""The loop's hooks. A callback overrides the hooks it needs; stopping is a flag
(``trainer.stop_reason``) the loop checks at each batch boundary, not an exception."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vml.train.loop import Trainer


class Callback:
    """No-op hooks, called in list order."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict:
        """What a resumed run needs to continue as if never stopped (saved in last.pt)."""
        return {}

    def load_state_dict(self, state: dict) -> None: ...
