"""The study screen: one study of ``ml tune``, live. Its settings and best trial, its
trials grouped by state, the best value after each trial, the hyperparameters'
importances as bars and the median pruner's line (the median of the finished trials
at each epoch).

``Project.study`` imports optuna and reads the store, so it runs in a thread worker
every second; the screen only swaps in what it returned.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from vml import api
from vml.errors import NotFoundError, VmlError
from vml.live import MetricHistories
from vml.tui.charts import Chart
from vml.tui.dialogs import ConfirmCancel
from vml.tui.run_screen import RunScreen
from vml.tui.table import RunTable, column_widths

REFRESH_SECONDS = 1.0
# Live trials first, then the finished (best first), then the pruned; the rest last.
STATE_ORDER = ("running", "queued", "finished", "pruned")
BAR_WIDTH = 20
MAX_TICKS = 6
STATE_COLUMN = 2


def trial_labels(study: dict[str, Any]) -> list[str]:
    """The trials table's header, as ``ml tune show`` prints it."""
    return ["trial", "instance", "state", study["monitor"], "epochs", *study["space"], "pruned because"]


def sorted_trials(study: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials grouped by state (``STATE_ORDER``), the best value first in each
    group (trials without a value last), then by trial number."""
    sign = -1 if study["direction"] == "maximize" else 1

    def key(trial: dict[str, Any]) -> tuple[Any, ...]:
        state = trial["state"]
        rank = STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)
        value = trial["value"]
        return (rank, value is None, 0.0 if value is None else sign * value, trial["trial"] or 0)

    return sorted(study["trials"], key=key)


def trial_cells(trial: dict[str, Any], keys: list[str]) -> list[str]:
    """A trial's row: number, run, state, value, epochs, sampled values, why pruned."""
    value = trial["value"]
    return [
        "-" if trial["trial"] is None else str(trial["trial"]),
        trial["instance"],
        trial["state"],
        "-" if value is None else f"{value:.4f}",
        str(trial["epochs"]),
        *(_value_text(trial["hyperparameters"].get(key)) for key in keys),
        trial["reason"] or "",
    ]


def _value_text(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_text(study: dict[str, Any]) -> str:
    """The lines above the trials: settings and progress, the best trial with the
    command that repeats it, the space searched."""
    counts = ", ".join(f"{n} {state}" for state, n in study["counts"].items()) or "none yet"
    lines = [
        f"{study['study']} ({study['state']}) · {study['sampler']} sampler, {study['pruner']} pruner"
        f" · {study['direction']} {study['monitor']}",
        f"trials: {len(study['trials'])} of {study['target_trials']} ({counts}),"
        f" {study['epochs_trained']} epochs trained",
    ]
    best = study["best"]
    if best is None:
        lines.append("best: no trial finished yet")
    else:
        lines.append(
            f"best: {best['instance']} (trial {best['trial']}), {study['monitor']} {best['value']:.4f}"
            f" · {best['command']}"
        )
    space = ", ".join(f"{key} {text}" for key, text in study["space"].items())
    fixed = ", ".join(f"{key}={value}" for key, value in study["fixed"].items())
    lines.append(f"space: {space}" + (f" · fixed: {fixed}" if fixed else ""))
    return "\n".join(lines)


def importance_text(study: dict[str, Any]) -> str:
    """Each hyperparameter's share of the finished trials' values, as a bar."""
    shares = study["importance"]
    if not shares:
        return "importance: shown once two trials finish with different values"
    width = max(len(key) for key in shares)
    lines = [f"importance for {study['monitor']}:"]
    lines += [
        f"  {key:<{width}}  {'█' * max(1, round(share * BAR_WIDTH))} {share:.2f}"
        for key, share in shares.items()
    ]
    return "\n".join(lines)


def pruning_title(study: dict[str, Any]) -> str:
    # Only the median pruner stops a trial below this line; ASHA and Hyperband rank.
    median = f"median {study['monitor']}"
    return f"pruning line ({median})" if study["pruner"] == "median" else f"{median} by epoch"


def whole_ticks(xs: list[int]) -> list[int]:
    """At most ``MAX_TICKS`` of the whole numbers ``xs``, evenly spread: trial
    numbers and epochs read as 3, not 2.5."""
    step = max(1, -(-len(xs) // MAX_TICKS))
    return xs[::step]


class StudyScreen(Screen):
    """One study, refreshed every second while it is open."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
        Binding("enter", "open_trial", "Open trial"),
        Binding("x", "stop_study", "Stop study"),
    ]
    DEFAULT_CSS = """
    StudyScreen #summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    StudyScreen #trials { min-height: 5; }
    StudyScreen #bottom { height: 14; border-top: solid $primary; }
    StudyScreen #importance { width: auto; min-width: 30; padding: 0 1; }
    StudyScreen Chart { height: 100%; }
    """

    def __init__(self, project: api.Project, study_id: str, histories: MetricHistories) -> None:
        super().__init__()
        self.project = project
        self.study_id = study_id
        self.histories = histories
        self.study: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"{self.study_id}: reading...", id="summary")
        yield RunTable(["trial", "instance", "state"], status_column=STATE_COLUMN, id="trials")
        with Horizontal(id="bottom"):
            yield Static("", id="importance")
            yield Chart(id="best-so-far")
            yield Chart(id="pruning-line")
        yield Footer()

    @property
    def table(self) -> RunTable:
        return self.query_one("#trials", RunTable)

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}"
        self._load()
        self.set_interval(REFRESH_SECONDS, self._load)

    @work(thread=True, exclusive=True, group="study")
    def _load(self) -> None:
        try:
            study = self.project.study(self.study_id)
        except NotFoundError:  # its record deleted meanwhile
            self.app.call_from_thread(self._gone)
            return
        except VmlError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        labels = trial_labels(study)
        trials = sorted_trials(study)
        rows = [trial_cells(trial, list(study["space"])) for trial in trials]
        keys = [trial["instance"] for trial in trials]
        self.app.call_from_thread(self._show, study, labels, keys, rows, column_widths(labels, rows))

    def _gone(self) -> None:
        if self.is_current:
            self.notify(f"study {self.study_id} was deleted", severity="warning")
            self.dismiss()

    def _show(
        self,
        study: dict[str, Any],
        labels: list[str],
        keys: list[str],
        rows: list[list[str]],
        widths: list[int],
    ) -> None:
        self.study = study
        self.sub_title = f"study {self.study_id} ({study['state']})"
        self.query_one("#summary", Static).update(summary_text(study))
        self.table.labels = labels
        self.table.set_rows(keys, rows, widths)
        self.query_one("#importance", Static).update(importance_text(study))
        trials = [p[0] for p in study["best_so_far"]]
        self.query_one("#best-so-far", Chart).show(
            f"best {study['monitor']} so far",
            "trial",
            {"best": (trials, [p[1] for p in study["best_so_far"]])},
            whole_ticks(trials),
        )
        epochs = list(study["median_by_epoch"])
        self.query_one("#pruning-line", Chart).show(
            pruning_title(study),
            "epoch",
            {"median": (epochs, list(study["median_by_epoch"].values()))},
            whole_ticks(epochs),
        )

    def on_run_table_selected(self, event: RunTable.Selected) -> None:
        self.action_open_trial()

    def action_open_trial(self) -> None:
        name = self.table.cursor_key
        if name is not None:
            self.app.push_screen(RunScreen(self.project, name, self.histories))

    def action_stop_study(self) -> None:
        study = self.study
        if study is None:
            return
        live = any(trial["state"] in api.ACTIVE_STATES for trial in study["trials"])
        if study["state"] in ("stopped", "ended") and not live:  # a starting study can be stopped
            self.notify(
                f"{self.study_id} is {study['state']}: nothing to stop (ml tune --resume {self.study_id} continues it)",
                severity="warning",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._stop()

        question = f"Stop study {self.study_id}? No new trials; its running ones are cancelled."
        self.app.push_screen(ConfirmCancel([self.study_id], question), answered)

    @work(thread=True)
    def _stop(self) -> None:
        try:
            statuses = self.project.cancel_sweep(self.study_id)
        except VmlError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        cancelled = sum(1 for status in statuses.values() if status == "cancelled")
        self.app.call_from_thread(self.notify, f"stopped {self.study_id}: {cancelled} trials cancelled")
        self.app.call_from_thread(self._load)
