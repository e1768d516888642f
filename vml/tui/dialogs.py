"""Confirmation dialogs: cancelling asks y/n, deleting asks for the run's name."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ConfirmCancel(ModalScreen[bool]):
    """``y`` confirms, ``n`` or ``escape`` aborts. ``question`` replaces "Cancel
    NAMES?" (stopping a study says what it stops)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmCancel { align: center middle; }
    ConfirmCancel > Grid { width: 60; height: 5; border: thick $warning; background: $surface; padding: 0 1; }
    """

    def __init__(self, names: list[str], question: str | None = None) -> None:
        super().__init__()
        self.names = names
        self.question = question or f"Cancel {', '.join(names)}?"

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"{self.question} (y/n)")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConfirmDelete(ModalScreen[bool]):
    """Deleting cannot be undone: the user types the run's name; ``escape`` aborts."""

    BINDINGS = [Binding("escape", "abort", "Keep it")]
    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Grid { width: 70; height: 7; border: thick $error; background: $surface; padding: 0 1; }
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.run_name = name

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"Delete {self.run_name} and its folder? Type its name and press enter.")
            yield Input(placeholder=self.run_name, id="typed")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() == self.run_name)

    def action_abort(self) -> None:
        self.dismiss(False)
