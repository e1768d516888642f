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

import pytest
from helpers import run_ml
from textual.widgets import DataTable, Input, Static

from vml import api
from vml.tui.app import Dashboard
from vml.tui.new_run import NewRunScreen
from vml.tui.rows import sorted_runs
from vml.tui.run_screen import RunScreen
from vml.tui.study_screen import StudyScreen
from vml.tui.table import RunTable

DEADLINE = 90.0


async def until(pilot, condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Let the app run until ``condition`` holds; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await pilot.pause()


def table_rows(app: Dashboard) -> dict[str, dict[str, str]]:
    """The runs table as shown: run name -> {column: cell}."""
    screen = app.screen_stack[0]
    table = screen.query_one("#runs", RunTable)
    return {
        key: dict(zip(screen.columns, cells, strict=True))
        for key, cells in zip(table.keys, table.rows, strict=True)
    }


async def open_run(pilot, app: Dashboard, name: str) -> RunScreen:
    """Put the cursor on run ``name``, press enter and return its run screen."""
    await until(pilot, lambda: name in table_rows(app), f"the run {name}")
    table = app.screen.query_one("#runs", RunTable)
    table.move_cursor(table.keys.index(name))
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
    assert app.screen.run_name == name
    return app.screen


@pytest.fixture
def long_run(project: Path):
    """Start a detached run long enough to watch (100,000 epochs): ``long_run(name)``.
    Runs still live when the test ends are cancelled."""
    started: list = []

    def start(name: str):
        started.append(api.Project(project).train(epochs=100_000, name=name))
        return started[-1]

    yield start
    for run in started:
        if run.status() in ("queued", "running"):
            run.cancel()


def train_here(project: Path, *args: str, name: str) -> None:
    result = api.Project(project).train_in_process(list(args), name=name, stderr=io.StringIO())
    assert result.status == "finished"


def footer_keys(app: Dashboard) -> list[str]:
    """What the footer offers, by description."""
    return [key.description for key in app.screen.query("FooterKey")]


def test_an_empty_project_says_how_to_start(project: Path) -> None:
    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 24)) as pilot:
            empty = app.screen.query_one("#empty", Static)
            await until(pilot, lambda: "No runs yet" in str(empty.render()), "the empty state")
            assert table_rows(app) == {}
            assert "Study" not in footer_keys(app)  # t shows once there is a study

    asyncio.run(scenario())


def test_the_table_fills_and_the_filter_narrows_it(project: Path) -> None:
    train_here(project, "--epochs=1", "--learning-rate=0.0001", name="slow-one")
    train_here(project, "--epochs=3", "--learning-rate=0.01", name="good-one")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 2, "both runs")
            assert "demo · 2 runs · 0 running" in app.screen.sub_title
            rows = table_rows(app)
            assert rows["good-one"]["status"] == "finished" and rows["good-one"]["progress"].endswith(
                "100.0%"
            )
            assert rows["good-one"]["epoch"] == "3/3" and rows["good-one"]["eta"] == "-"
            await pilot.press("slash", *"test_acc>0.9", "enter")
            await until(pilot, lambda: list(table_rows(app)) == ["good-one"], "the filter to apply")
            await pilot.press("slash", "escape")
            await until(pilot, lambda: len(table_rows(app)) == 2, "the filter to clear")

    asyncio.run(scenario())


def test_enter_opens_the_run_with_its_record_metrics_and_log(project: Path) -> None:
    train_here(project, "--epochs=3", "--learning-rate=0.01", name="opened")

    async def scenario() -> None:
        from textual.widgets import RichLog

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 40)) as pilot:
            await open_run(pilot, app, "opened")
            screen = app.screen
            record = screen.query_one("#record", Static)
            epochs = screen.query_one("#epochs", DataTable)
            log = screen.query_one("#log", RichLog)
            await until(pilot, lambda: epochs.row_count == 3 and len(log.lines) > 0, "metrics and log")
            text = str(record.render())
            assert "status: finished" in text and "best: epoch " in text
            assert "learning_rate: 0.01" in text
            assert "checkpoint: trainings/opened/best.pt" in text
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
        from vml.tui.compare import CompareScreen

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


def test_a_running_run_progresses_on_screen_and_x_cancels_it(project: Path, long_run) -> None:
    run = long_run("live")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:

            def epoch_shown() -> int:
                row = table_rows(app).get("live")
                return int(row["epoch"].split("/")[0]) if row else 0

            await until(pilot, lambda: epoch_shown() >= 1, "the first epoch on screen")
            first = epoch_shown()
            await until(pilot, lambda: epoch_shown() > first, "progress to advance on screen")
            assert table_rows(app)["live"]["status"] == "running"
            await pilot.press("x")
            await until(
                pilot, lambda: "Cancel live?" in str(app.screen.query_one("Label").render()), "the dialog"
            )
            await pilot.press("y")
            await until(
                pilot, lambda: table_rows(app)["live"]["status"] == "cancelled", "the row to turn cancelled"
            )
        assert run.status() == "cancelled"

    asyncio.run(scenario())


def test_escape_in_the_dialog_cancels_nothing(project: Path, long_run) -> None:
    run = long_run("kept")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "kept" in table_rows(app), "the run")
            await pilot.press("x")
            await until(pilot, lambda: len(app.screen_stack) > 1, "the dialog")
            await pilot.press("escape")
            await until(pilot, lambda: len(app.screen_stack) == 1, "the dialog to close")
        assert run.status() in ("queued", "running")

    asyncio.run(scenario())


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
    code = "import sys; import vml.cli.commands, vml.tui.app; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_the_run_screen_charts_metrics_and_filters_them_by_glob(project: Path) -> None:
    train_here(project, "--epochs=3", name="charted")

    async def scenario() -> None:
        from vml.tui.charts import Chart

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 40)) as pilot:
            await open_run(pilot, app, "charted")

            def charts() -> dict[str, list[str]]:
                return {c.heading: list(c.lines) for c in app.screen.query(Chart)}

            await until(pilot, lambda: len(charts()) == 4, "the charts")
            assert charts() == {
                "loss": ["loss", "val_loss"],
                "acc": ["acc", "val_acc"],
                "step_loss, epoch 3": ["step_loss"],
                "lr, epoch 3": ["lr"],
            }
            loss = next(c for c in app.screen.query(Chart) if c.heading == "loss")
            assert loss.lines["val_loss"][0] == [1, 2, 3]  # per epoch
            step_loss = next(c for c in app.screen.query(Chart) if c.heading.startswith("step_loss"))
            steps = step_loss.lines["step_loss"][0]
            assert len(steps) == 23 and steps[-1] == 69  # the last epoch's steps

            await pilot.press("slash", *"val_*", "enter")
            await until(pilot, lambda: charts() == {"loss": ["val_loss"], "acc": ["val_acc"]}, "the filter")
            await pilot.press("slash", *"nothing", "enter")
            empty = app.screen.query_one("#no-metrics", Static)
            await until(pilot, lambda: "No metric matches 'nothing'" in str(empty.render()), "no match")

    asyncio.run(scenario())


def test_a_running_runs_screen_shows_its_process_use_and_x_cancels_it(project: Path, long_run) -> None:
    run = long_run("busy")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: table_rows(app).get("busy", {}).get("status") == "running", "the run")
            await until(pilot, lambda: table_rows(app)["busy"]["eta"] != "-", "an ETA")
            record = (await open_run(pilot, app, "busy")).query_one("#record", Static)
            await until(pilot, lambda: "memory: " in str(record.render()), "the process's use")
            text = str(record.render())
            memory = int(text.split("memory: ")[1].split(" MiB")[0])
            assert memory > 50  # a python process with torch loaded
            assert f"process: {run.info()['pid']} on " in text and "ETA " in text
            await pilot.press("x")
            await until(pilot, lambda: len(app.screen_stack) > 2, "the dialog")
            await pilot.press("y")
            await until(pilot, lambda: "status: cancelled" in str(record.render()), "cancelled on screen")
        assert run.status() == "cancelled"

    asyncio.run(scenario())


async def open_form(pilot, app: Dashboard):
    """Press n and wait for the new-run form; the form."""
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewRunScreen), "the form")
    return app.screen


def test_the_new_run_form_refuses_a_bad_value_and_starts_a_good_one(project: Path) -> None:
    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_form(pilot, app)
            assert form.query_one("#hp-epochs", Input).value == "20"  # filled with the defaults
            rate = form.query_one("#hp-learning_rate", Input)
            rate.focus()
            rate.value = ""
            await pilot.press(*"fast")
            problem = form.query_one("#learning_rate-problem", Static)
            await until(
                pilot, lambda: "invalid value --learning_rate=fast" in str(problem.render()), "the check"
            )
            await pilot.press("enter")
            summary = form.query_one("#problem", Static)
            await until(pilot, lambda: "learning_rate" in str(summary.render()), "the refusal")
            assert isinstance(app.screen, NewRunScreen)
            assert api.Project(project).records() == []  # nothing recorded for a refused form

            rate.value = "0.01"
            form.query_one("#hp-epochs", Input).value = "2"
            form.query_one("#name", Input).value = "from-the-form"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, NewRunScreen), "the form to close")
            await until(pilot, lambda: "from-the-form" in table_rows(app), "the new run in the table")

            def progressed() -> bool:
                row = table_rows(app)["from-the-form"]
                return row["status"] == "finished" or not row["batch"].startswith("0/")

            await until(pilot, progressed, "the new run to progress on screen")
        # Quitting the dashboard leaves the run it started to finish.
        run = api.Project(project).run("from-the-form")
        info = run.wait(poll=0.2, timeout=DEADLINE)
        assert info["hyperparameters"]["learning_rate"] == 0.01 and info["epoch"] == 2

    asyncio.run(scenario())


def test_the_new_run_form_queues_a_sweep_when_a_field_lists_values(project: Path) -> None:
    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_form(pilot, app)
            form.query_one("#hp-epochs", Input).value = "1"
            rate = form.query_one("#hp-learning_rate", Input)
            rate.focus()
            rate.value = ""
            await pilot.press(*"0.01,fast")
            problem = form.query_one("#learning_rate-problem", Static)
            await until(pilot, lambda: "'fast' is not a number" in str(problem.render()), "the check")
            for _ in "fast":
                await pilot.press("backspace")
            await pilot.press(*"0.02")
            await until(pilot, lambda: not str(problem.render()), "the list accepted")
            form.query_one("#name", Input).value = "one-name"
            await pilot.press("ctrl+s")
            summary = form.query_one("#problem", Static)
            await until(pilot, lambda: "names one run" in str(summary.render()), "the refusal")
            assert api.Project(project).records() == []
            form.query_one("#name", Input).value = ""
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, NewRunScreen), "the form to close")
            await until(pilot, lambda: len(table_rows(app)) == 2, "the sweep's two runs in the table")
        # A scheduler in the background runs them; quitting the dashboard left it running.
        runs = api.Project(project).runs()
        infos = [run.wait(poll=0.2, timeout=DEADLINE) for run in runs]
        assert sorted(i["hyperparameters"]["learning_rate"] for i in infos) == [0.01, 0.02]
        assert len({i["sweep"] for i in infos}) == 1 and infos[0]["sweep"] == api.Project(project).sweep_ids()[0]

    asyncio.run(scenario())


def test_the_command_palette_offers_the_screens_actions(project: Path) -> None:
    train_here(project, "--epochs=1", name="pal-a")
    train_here(project, "--epochs=1", "--learning-rate=0.01", name="pal-b")

    async def scenario() -> None:
        from textual.command import CommandList

        from vml.tui.compare import CompareScreen

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 2, "the runs")
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.focused, Input), "the palette")
            await pilot.press(*"compare")
            commands = app.screen.query_one(CommandList)

            def offered() -> bool:
                chosen = commands.highlighted_option
                return chosen is not None and "Compare" in str(chosen.prompt)

            await until(pilot, offered, "the palette to offer Compare")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare from the palette")
            assert app.screen.sub_title == "compare pal-b, pal-a"

    asyncio.run(scenario())


def test_a_run_deleted_elsewhere_leaves_its_screen_and_the_table(project: Path) -> None:
    train_here(project, "--epochs=1", name="short-lived")
    train_here(project, "--epochs=1", name="stays")

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 2, "the runs")
            await open_run(pilot, app, "short-lived")
            api.Project(project).delete("short-lived")  # as ml delete in another terminal
            await until(pilot, lambda: not isinstance(app.screen, RunScreen), "the screen to close")
            await until(pilot, lambda: list(table_rows(app)) == ["stays"], "the row to go")

    asyncio.run(scenario())


def test_a_sweeps_runs_show_their_sweep_and_filter_by_it(project: Path) -> None:
    from vml.launch import sweep

    train_here(project, "--epochs=1", name="alone")
    planned = [sweep.Planned({"learning_rate": ("--learning-rate", rate)}) for rate in ("0.01", "0.02")]
    queued = api.Project(project).queue(planned, "a test", parallel=1, backend="local")
    api.Project(project).cancel_sweep(queued.sweep)  # queued, never started: no worker needed

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 3, "the runs")
            assert {name: row["sweep"] for name, row in table_rows(app).items()} == {
                queued.names[0]: queued.sweep,
                queued.names[1]: queued.sweep,
                "alone": "-",
            }
            await pilot.press("slash", *f"sweep={queued.sweep}", "enter")
            await until(pilot, lambda: set(table_rows(app)) == set(queued.names), "the sweep's runs only")

    asyncio.run(scenario())


def test_sorting_puts_numbers_before_text_and_runs_without_a_value_last() -> None:
    runs = [
        {"instance": name, "hyperparameters": {"width": width}}
        for name, width in (("a", "wide"), ("b", None), ("c", 64), ("d", 8), ("e", None))
    ]
    assert [r["instance"] for r in sorted_runs(runs, "width", False)] == ["d", "c", "a", "b", "e"]
    assert [r["instance"] for r in sorted_runs(runs, "width", True)] == ["a", "c", "d", "b", "e"]


def study_rows(screen: StudyScreen) -> dict[str, dict[str, str]]:
    """The study screen's trials as shown: run name -> {column: cell}."""
    table = screen.query_one("#trials", RunTable)
    return {
        key: dict(zip(table.labels, cells, strict=True))
        for key, cells in zip(table.keys, table.rows, strict=True)
    }


async def open_study(pilot, app: Dashboard) -> StudyScreen:
    """Press t on the newest run (a trial) and wait for its study screen to show it."""
    await until(pilot, lambda: "Study" in footer_keys(app), "the study key")
    await pilot.press("home", "t")
    await until(
        pilot, lambda: isinstance(app.screen, StudyScreen) and app.screen.study is not None, "the study"
    )
    return app.screen


def test_the_study_screen_shows_trials_by_state_the_best_and_the_importances(
    project: Path, tmp_path: Path
) -> None:
    args = ("--learning-rate=1e-4:1e-1:log", "--batch-size=16,64", "--epochs=2", "--seed", "1")
    result = run_ml("tune", "--trials", "4", "--parallel", "2", *args, cwd=project, home=tmp_path)
    assert result.returncode == 0, result.stderr
    study_id = api.Project(project).study_ids()[0]
    study = api.Project(project).study(study_id)
    assert study["importance"] and study["best"]  # two trials finished, with different values

    async def scenario() -> None:
        from vml.tui.charts import Chart

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: len(table_rows(app)) == 4, "the trials in the runs table")
            assert {row["sweep"] for row in table_rows(app).values()} == {study_id}
            screen = await open_study(pilot, app)
            await until(pilot, lambda: len(study_rows(screen)) == 4, "the trials")
            rows = study_rows(screen)
            assert {name: row["state"] for name, row in rows.items()} == {
                t["instance"]: t["state"] for t in study["trials"]
            }
            for trial in study["trials"]:
                row = rows[trial["instance"]]
                assert row["trial"] == str(trial["trial"]) and row["epochs"] == str(trial["epochs"])
                assert row["batch_size"] == str(trial["hyperparameters"]["batch_size"])
                assert row["pruned because"] == (trial["reason"] or "")
            best = study["best"]
            assert list(rows)[0] == best["instance"]  # the finished first, the best on top
            assert rows[best["instance"]]["val_acc"] == f"{best['value']:.4f}"
            states = [row["state"] for row in rows.values()]
            assert states == sorted(states, key=["finished", "pruned"].index)

            summary = str(screen.query_one("#summary", Static).render()).splitlines()
            assert summary[0] == f"{study_id} (ended) · tpe sampler, median pruner · maximize val_acc"
            assert summary[1].startswith("trials: 4 of 4 (")
            assert summary[2] == (
                f"best: {best['instance']} (trial {best['trial']}), val_acc {best['value']:.4f}"
                f" · {best['command']}"
            )
            assert summary[3] == "space: learning_rate 1e-4:1e-1:log, batch_size 16,64 · fixed: epochs=2"

            importance = str(screen.query_one("#importance", Static).render()).splitlines()
            assert importance[0] == "importance for val_acc:"
            shown = {line.split()[0]: line.split()[-1] for line in importance[1:]}
            assert shown == {key: f"{share:.2f}" for key, share in study["importance"].items()}
            assert all("█" in line for line in importance[1:])

            charts = {chart.heading: chart.lines for chart in screen.query(Chart)}
            trials, values = charts["best val_acc so far"]["best"]
            assert [list(point) for point in zip(trials, values, strict=True)] == study["best_so_far"]
            epochs, medians = charts["pruning line (median val_acc)"]["median"]
            assert dict(zip(epochs, medians, strict=True)) == study["median_by_epoch"]

            await pilot.press("enter")  # the best trial's run screen
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the trial's run screen")
            assert app.screen.run_name == best["instance"]
            await pilot.press("escape", "x")
            await until(pilot, lambda: app.screen is screen, "the study screen again")
            assert len(app.screen_stack) == 2  # an ended study has nothing to stop: no dialog

    asyncio.run(scenario())


@pytest.fixture
def detached_study(project: Path, tmp_path: Path):
    """Start a study in the background whose trials train 100,000 epochs: its id.
    Stopped when the test ends, whatever happened."""
    args = ("--learning-rate=1e-3:1e-1:log", "--epochs=100000", "--seed", "1")
    result = run_ml("tune", "--detach", "--trials", "6", "--parallel", "2", *args, cwd=project, home=tmp_path)
    assert result.returncode == 0, result.stderr
    study_id = result.stdout.split()[-1]
    yield study_id
    if api.Project(project).study(study_id)["state"] == "running":
        api.Project(project).cancel_sweep(study_id)


def test_x_on_the_study_screen_stops_the_whole_study(project: Path, detached_study: str) -> None:
    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await open_study(pilot, app)

            def states() -> list[str]:
                return [row["state"] for row in study_rows(screen).values()]

            await until(pilot, lambda: "running" in states(), "a trial running")
            assert screen.study["state"] == "running" and "(running)" in screen.sub_title
            await pilot.press("x")
            await until(pilot, lambda: len(app.screen_stack) == 3, "the dialog")
            question = str(app.screen.query_one("Label").render())
            assert question.startswith(f"Stop study {detached_study}?")
            await pilot.press("y")
            await until(pilot, lambda: screen.study["state"] == "stopped", "the study to stop")
            await until(pilot, lambda: set(states()) == {"cancelled"}, "its trials cancelled on screen")
            stopped = len(states())
        study = api.Project(project).study(detached_study)
        assert study["state"] == "stopped" and study["counts"] == {"cancelled": stopped}
        assert len(api.Project(project).records()) == stopped  # no new trial after the stop

    asyncio.run(scenario())


def test_the_evaluation_tab_shows_the_report_the_matrix_and_the_curves(project: Path) -> None:
    train_here(project, "--epochs=1", name="evaluated")
    evaluation = api.Project(project).run("evaluated").evaluation()

    async def scenario() -> None:
        from textual.widgets import TabbedContent

        from vml.tui.charts import Plot

        app = Dashboard(api.Project(project))
        async with app.run_test(size=(140, 60)) as pilot:
            screen = await open_run(pilot, app, "evaluated")
            screen.query_one(TabbedContent).active = "evaluation-tab"
            classes = screen.query_one("#classes", DataTable)
            matrix = screen.query_one("#matrix", DataTable)
            await until(pilot, lambda: classes.row_count == 10 and matrix.row_count == 10, "the report")
            summary = str(screen.query_one("#evaluation-summary", Static).render())
            assert f"test_f1: {evaluation['metrics']['test_f1']:.4f}" in summary
            counts = [[int(str(c)) for c in matrix.get_row_at(i)[1:]] for i in range(10)]
            assert counts == evaluation["confusion_matrix"]
            roc = screen.query_one("#roc-chart", Plot)
            assert roc.heading == "ROC of evaluated" and len(roc.lines) == 10
            await pilot.press("n")
            await until(pilot, lambda: "." in str(matrix.get_row_at(0)[1]), "the normalized matrix")
            shares = [float(str(c)) for c in matrix.get_row_at(0)[1:]]
            assert sum(shares) == pytest.approx(1.0, abs=0.02)

    asyncio.run(scenario())


def test_the_evaluation_tab_of_a_run_without_one_says_how_to_make_it(project: Path) -> None:
    train_here(project, "--epochs=1", name="bare")
    (project / "trainings" / "bare" / "evaluation.json").unlink()

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_run(pilot, app, "bare")
            summary = screen.query_one("#evaluation-summary", Static)
            await until(pilot, lambda: "ml test bare" in str(summary.render()), "the hint")
            assert not screen.query_one("#matrix", DataTable).display

    asyncio.run(scenario())
