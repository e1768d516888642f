"""``ml dashboard`` driven through Textual's Pilot, on a real project with real runs,
a real store and a real detached worker."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from vml import api
from vml.tui.app import Dashboard

DEADLINE = 90.0


async def until(pilot, condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Let the app run until ``condition`` holds; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await pilot.pause()


def table_rows(app: Dashboard) -> dict[str, list[str]]:
    table = app.query_one("#runs", DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


def train_here(project: Path, *args: str, name: str) -> None:
    result = api.Project(project).train_in_process(list(args), name=name, stderr=io.StringIO())
    assert result.status == "finished"


def test_an_empty_project_says_how_to_start(project: Path) -> None:
    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 24)) as pilot:
            empty = app.query_one("#empty", Static)
            await until(pilot, lambda: "No runs yet" in str(empty.render()), "the empty state")
            assert table_rows(app) == {}

    asyncio.run(scenario())


def test_the_table_fills_and_the_filter_narrows_it(project: Path) -> None:
    train_here(project, "--epochs=1", "--learning-rate=0.0001", name="slow-one")
    train_here(project, "--epochs=3", "--learning-rate=0.01", name="good-one")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 2, "both runs")
            rows = table_rows(app)
            assert rows["good-one"][2] == "finished" and rows["good-one"][3].endswith("100.0%")
            assert rows["good-one"][4] == "3/3"
            await pilot.press("slash", *"test_acc>0.9", "enter")
            await until(pilot, lambda: list(table_rows(app)) == ["good-one"], "the filter to apply")
            await pilot.press("slash", "escape")
            await until(pilot, lambda: len(table_rows(app)) == 2, "the filter to clear")

    asyncio.run(scenario())


def test_enter_opens_the_run_with_its_record_metrics_and_log(project: Path) -> None:
    train_here(project, "--epochs=3", "--learning-rate=0.01", name="opened")

    async def scenario() -> None:
        from textual.widgets import RichLog

        from vml.tui.app import RunScreen

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: "opened" in table_rows(app), "the run")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            screen = app.screen
            record = screen.query_one("#record", Static)
            epochs = screen.query_one("#epochs", DataTable)
            log = screen.query_one("#log", RichLog)
            await until(pilot, lambda: epochs.row_count == 3 and len(log.lines) > 0, "metrics and log")
            text = str(record.render())
            assert "status: finished" in text and "best_epoch: " in text
            assert "learning_rate: 0.01" in text
            assert "checkpoint: " + str(project / "trainings" / "opened" / "best.pt") in text
            assert [str(epochs.get_row_at(i)[0]) for i in range(3)] == ["1", "2", "3"]
            assert any("finished: test_acc" in line.text for line in log.lines)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, RunScreen), "the runs screen")

    asyncio.run(scenario())


def test_compare_shows_marked_runs_with_differing_hyperparameters_first(project: Path) -> None:
    train_here(project, "--epochs=1", "--learning-rate=0.01", name="cmp-a")
    train_here(project, "--epochs=1", "--learning-rate=0.002", name="cmp-b")
    train_here(project, "--epochs=1", "--learning-rate=0.002", "--batch-size=32", name="cmp-c")

    async def scenario() -> None:
        from vml.tui.app import CompareScreen

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 3, "the runs")
            # Newest first: cmp-c, cmp-b, cmp-a. Mark cmp-c and cmp-a.
            await pilot.press("space", "down", "space", "c")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen), "the compare screen")
            table = app.screen.query_one("#compare", DataTable)
            header = [str(column.label) for column in table.columns.values()]
            assert header == ["", "field", "cmp-c", "cmp-a"]
            rows = {
                str(table.get_row_at(i)[1]): [str(c) for c in table.get_row_at(i)]
                for i in range(table.row_count)
            }
            assert rows["learning_rate"] == ["*", "learning_rate", "0.002", "0.01"]
            assert rows["batch_size"] == ["*", "batch_size", "32", "64"]
            assert rows["epochs"][0] == "" and rows["status"][2:] == ["finished", "finished"]
            fields = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
            hyper = fields[fields.index("batch_size") :]
            assert hyper[:2] == ["batch_size", "learning_rate"]  # the differing ones first

    asyncio.run(scenario())


def test_a_running_run_progresses_on_screen_and_x_cancels_it(project: Path) -> None:
    run = api.Project(project).train(epochs=300, name="live")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:

            def epoch_shown() -> int:
                row = table_rows(app).get("live")
                return int(row[4].split("/")[0]) if row else 0

            await until(pilot, lambda: epoch_shown() >= 1, "the first epoch on screen")
            first = epoch_shown()
            await until(pilot, lambda: epoch_shown() > first, "progress to advance on screen")
            assert table_rows(app)["live"][2] == "running"
            await pilot.press("x")
            await until(
                pilot, lambda: "Cancel live?" in str(app.screen.query_one("Label").render()), "the dialog"
            )
            await pilot.press("y")
            await until(pilot, lambda: table_rows(app)["live"][2] == "cancelled", "the row to turn cancelled")
        assert run.status() == "cancelled"

    try:
        asyncio.run(scenario())
    finally:
        if run.status() in ("queued", "running"):
            run.cancel()


def test_escape_in_the_dialog_cancels_nothing(project: Path) -> None:
    run = api.Project(project).train(epochs=300, name="kept")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "kept" in table_rows(app), "the run")
            await pilot.press("x")
            await until(pilot, lambda: len(app.screen_stack) > 1, "the dialog")
            await pilot.press("escape")
            await until(pilot, lambda: len(app.screen_stack) == 1, "the dialog to close")
        assert run.status() in ("queued", "running")

    try:
        asyncio.run(scenario())
    finally:
        run.cancel()


def test_d_deletes_an_ended_run_only_after_its_name_is_typed(project: Path) -> None:
    train_here(project, "--epochs=1", name="doomed")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "doomed" in table_rows(app), "the run")
            for typed in ("wrong", "doomed"):
                await pilot.press("d")
                await until(pilot, lambda: isinstance(app.focused, Input), "the dialog's name box")
                await pilot.press(*typed, "enter")
                await until(pilot, lambda: len(app.screen_stack) == 1, "the dialog to close")
                if typed == "wrong":
                    assert (project / "trainings" / "doomed").is_dir()
            await until(pilot, lambda: table_rows(app) == {}, "the row to go")
        assert not (project / "trainings" / "doomed").exists()
        assert api.Project(project).records() == []

    asyncio.run(scenario())


def test_the_dashboard_does_not_import_torch(project: Path) -> None:
    code = "import sys; import vml.cli, vml.tui.app; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
