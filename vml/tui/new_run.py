"""The new-run form: one field per declared hyperparameter, filled with what a run
would get now (defaults < vergeml.yaml), each checked as it is typed. Several values
in a field (``0.001,0.01``) start a sweep, as on the command line."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from vml import api
from vml.errors import UsageError, VmlError
from vml.params import HyperParam


def field_text(value: Any) -> str:
    """A resolved value as the user would type it."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


class NewRunScreen(ModalScreen[str | None]):
    """Dismissed with what it started (a run's name, or ``sweep ID (N runs)``), or
    None when abandoned."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
    ]
    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical { width: 90%; max-width: 100; height: 90%; border: thick $primary; background: $surface; }
    NewRunScreen .field { height: auto; }
    NewRunScreen .field Label { width: 36; padding: 1 1 0 1; }
    NewRunScreen .field Input, NewRunScreen .field Select { width: 1fr; }
    NewRunScreen .problem { color: $error; padding: 0 1; height: auto; display: none; }
    NewRunScreen #buttons { height: auto; dock: bottom; }
    """

    def __init__(self, project: api.Project) -> None:
        super().__init__()
        self.project = project
        self.params: list[HyperParam] = list(project.config.declared_hyperparameters())
        resolved = project.resolve()
        self.initial = {p.name: field_text(resolved.get(p.name)) for p in self.params}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"New run of {self.project.config.model.name} (enter or ctrl+s starts, escape cancels)"
            )
            with VerticalScroll(id="fields"):
                with Horizontal(classes="field"):
                    yield Label("name (empty: generated)")
                    yield Input(placeholder="e.g. lr-sweep-1", id="name")
                yield Static("", classes="problem", id="name-problem")
                for param in self.params:
                    with Horizontal(classes="field"):
                        yield Label(f"{param.name} ({param.describe_range()})")
                        yield self._editor(param)
                    yield Static("", classes="problem", id=f"{param.name}-problem")
            yield Static("", classes="problem", id="problem")
            with Horizontal(id="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    def _editor(self, param: HyperParam) -> Input | Select:
        value = self.initial[param.name]
        choices = param.choices or (("true", "false") if param.type is bool else ())
        if choices:
            return Select([(c, c) for c in choices], value=value, allow_blank=False, id=f"hp-{param.name}")
        return Input(value=value, id=f"hp-{param.name}", tooltip=param.help)

    def values(self) -> dict[str, str]:
        """The fields the user changed."""
        changed = {}
        for param in self.params:
            widget = self.query_one(f"#hp-{param.name}")
            text = str(widget.value).strip()
            if text != self.initial[param.name]:
                changed[param.name] = text
        return changed

    def problem(self, name: str, text: str) -> str | None:
        """Why ``text`` is not a valid value (or list of values) of hyperparameter
        ``name``, or None."""
        try:
            self.plan({name: text})
        except VmlError as exc:
            return exc.message
        return None

    def plan(self, overrides: dict[str, str]) -> list | None:
        """The runs of the sweep the values make (a field lists several), or None for
        one run; ``VmlError`` when a value is refused."""
        words = [f"--{key}={value}" for key, value in overrides.items()]
        if self.project.is_sweep(words):
            return self.project.plan_sweep(words)
        self.project.resolve(overrides)
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("hp-"):
            name = event.input.id.removeprefix("hp-")
            self._say(f"#{name}-problem", self.problem(name, event.value.strip()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.dismiss(None)

    def action_start(self) -> None:
        overrides = self.values()
        name = self.query_one("#name", Input).value.strip() or None
        try:
            sweep = self.plan(overrides)
            if sweep is not None and name is not None:
                raise UsageError(f"name {name!r} names one run; the {len(sweep)} runs of a sweep get generated names")
            if name is not None:
                self.project.new_run_name(name)
        except VmlError as exc:
            self._say("#problem", exc.message)
            return
        self.query_one("#start", Button).disabled = True
        self._start(overrides, name, sweep)

    @work(thread=True, exclusive=True)
    def _start(self, overrides: dict[str, str], name: str | None, sweep: list | None) -> None:
        try:
            if sweep is None:
                started = self.project.start(overrides, name).name
            else:  # in the background, as ml train --detach would run it
                queued = self.project.queue(sweep, "ml dashboard")
                self.project.start_sweep(queued.sweep)
                started = f"sweep {queued.sweep} ({len(queued.names)} runs)"
        except VmlError as exc:
            self.app.call_from_thread(self._refused, exc.message)
            return
        self.app.call_from_thread(self.dismiss, started)

    def _refused(self, message: str) -> None:
        self._say("#problem", message)
        self.query_one("#start", Button).disabled = False

    def _say(self, selector: str, problem: str | None) -> None:
        label = self.query_one(selector, Static)
        label.update(problem or "")
        label.display = bool(problem)
