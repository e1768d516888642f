"""Screenshots of the dashboard's screens with fixed runs, compared with the accepted
SVGs in ``tests/__snapshots__`` (pytest-textual-snapshot). After a deliberate change to
what a screen shows, look at the new screenshots and accept them with
``pytest tests/test_dashboard_snapshots.py --snapshot-update``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vml import api
from vml.store import RunStore
from vml.tui.app import Dashboard

DEADLINE = 60.0
RUNS = (
    # name, learning rate, status, test accuracy, how the run's curves fall
    ("brave-otter", 0.01, "finished", 0.9722, 0.5),
    ("calm-heron", 0.001, "finished", 0.9500, 0.8),
    ("dusty-lynx", 0.1, "failed", None, 1.0),
)
EPOCHS = 5
STEPS = 23


@pytest.fixture
def fixed_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project with three runs recorded at fixed times, with fixed metrics and logs,
    shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    project = api.Project(api.create_project(tmp_path / "digits"))
    base = project.resolve()
    with RunStore(project.db_path) as store:
        for index, (name, rate, status, test_acc, fall) in enumerate(RUNS):
            started = f"2026-11-20T09:{10 * index:02d}:00.000+00:00"
            epochs = 2 if status == "failed" else EPOCHS
            run_id = store.create_run(
                name,
                "mlp",
                base | {"learning_rate": rate, "epochs": EPOCHS},
                status=status,
                created_at=started,
                started_at=started,
                heartbeat=started,
                ended_at=f"2026-11-20T09:{10 * index + 4:02d}:30.000+00:00",
                epoch=epochs,
                epochs=EPOCHS,
                step=STEPS,
                steps=STEPS,
                monitor="val_acc",
                best_epoch=epochs,
                best_metric=0.9 + 0.01 * epochs * (1 - fall / 2),
                test_acc=test_acc,
                test_loss=None if test_acc is None else round(1 - test_acc, 4),
                error="loss became NaN at epoch 3 (lower the learning rate)" if status == "failed" else None,
            )
            points = []
            for epoch in range(1, epochs + 1):
                loss = 2.0 * fall / epoch
                for key, value in (
                    ("loss", loss),
                    ("acc", 1 - loss / 3),
                    ("val_loss", loss * 1.2),
                    ("val_acc", 0.95 - loss / 4),
                ):
                    points.append((run_id, key, epoch, epoch * STEPS, round(value, 4), started))
                for step in range(1, STEPS + 1):
                    at = (epoch - 1) * STEPS + step
                    points.append(
                        (run_id, "step_loss", epoch, at, round(loss * (1.2 - step / STEPS / 2), 4), started)
                    )
                    points.append((run_id, "lr", epoch, at, rate, started))
            store.add_metric_points(points)
            folder = project.trainings_dir / name
            folder.mkdir()
            lines = [
                f"Epoch:[{e:3d}/{EPOCHS:3d}], val_acc {0.95 - fall / 2 / e:.4f}" for e in range(1, epochs + 1)
            ]
            (folder / "log.txt").write_text("\n".join(lines) + "\n")
    yield project.root
    monkeypatch.undo()
    time.tzset()


def waits_for(condition: Callable[[Dashboard], bool], *keys: str):
    """A ``run_before`` that waits for the runs, presses ``keys``, then waits for
    ``condition``."""

    async def run_before(pilot) -> None:
        app = pilot.app
        end = time.monotonic() + DEADLINE
        while app.screen.query_one("#runs").row_count < len(RUNS):
            assert time.monotonic() < end, "timed out waiting for the runs"
            await pilot.pause()
        await pilot.press(*keys)
        while not condition(app):
            assert time.monotonic() < end, "timed out waiting for the screen"
            await pilot.pause()

    return run_before


def test_the_runs_screen_at_80x24(fixed_project: Path, snap_compare) -> None:
    app = Dashboard(api.Project(fixed_project))
    assert snap_compare(app, terminal_size=(80, 24), run_before=waits_for(lambda app: True))


def test_the_runs_screen_filtered_and_sorted(fixed_project: Path, snap_compare) -> None:
    app = Dashboard(api.Project(fixed_project))

    def filtered(app: Dashboard) -> bool:
        return app.screen.query_one("#runs").row_count == 2

    keys = ("slash", *"test_acc>0.9", "enter", *["s"] * 9, "S")  # test_acc, descending
    assert snap_compare(app, terminal_size=(120, 24), run_before=waits_for(filtered, *keys))


def test_the_run_screen(fixed_project: Path, snap_compare) -> None:
    from vml.tui.charts import Chart
    from vml.tui.run_screen import RunScreen

    def charted(app: Dashboard) -> bool:
        return (
            isinstance(app.screen, RunScreen)
            and len(app.screen.query(Chart)) == 4
            and app.screen.info is not None
        )

    app = Dashboard(api.Project(fixed_project))
    assert snap_compare(app, terminal_size=(120, 40), run_before=waits_for(charted, "enter"))


def test_the_compare_screen(fixed_project: Path, snap_compare) -> None:
    from vml.tui.charts import Chart
    from vml.tui.compare import CompareScreen

    def compared(app: Dashboard) -> bool:
        return isinstance(app.screen, CompareScreen) and len(app.screen.query(Chart)) == 4

    app = Dashboard(api.Project(fixed_project))
    keys = ("space", "down", "down", "space", "c")  # dusty-lynx and brave-otter
    assert snap_compare(app, terminal_size=(120, 36), run_before=waits_for(compared, *keys))


def test_the_new_run_form(fixed_project: Path, snap_compare) -> None:
    from vml.tui.new_run import NewRunScreen

    def refused(app: Dashboard) -> bool:
        return isinstance(app.screen, NewRunScreen) and "invalid value" in str(
            app.screen.query_one("#epochs-problem").render()
        )

    async def type_a_bad_epoch_count(pilot) -> None:
        await waits_for(lambda app: isinstance(app.screen, NewRunScreen), "n")(pilot)
        pilot.app.screen.query_one("#hp-epochs").value = "0"
        end = time.monotonic() + DEADLINE
        while not refused(pilot.app):
            assert time.monotonic() < end, "timed out waiting for the check"
            await pilot.pause()

    app = Dashboard(api.Project(fixed_project))
    assert snap_compare(app, terminal_size=(100, 30), run_before=type_a_bad_epoch_count)


STUDY = "st-5eed01"
TRIALS = (
    # name, trial, status, learning rate, batch size, val_acc at each epoch
    ("amber-wren", 0, "finished", 0.0011, 32, (0.81, 0.87, 0.91)),
    ("bold-ibex", 1, "pruned", 0.0002, 64, (0.62,)),
    ("coy-marten", 2, "finished", 0.0210, 16, (0.88, 0.92, 0.93)),
    ("deft-gecko", 3, "pruned", 0.0930, 32, (0.86, 0.84)),
    ("eager-stoat", 4, "finished", 0.0072, 64, (0.90, 0.94, 0.96)),
    ("fond-tapir", 5, "cancelled", 0.0048, 64, (0.89,)),
)


@pytest.fixture
def fixed_study(tmp_path: Path):
    """A project with one stopped study: six trials recorded at fixed times with
    fixed per-epoch values (finished, pruned by the median, one cancelled by the stop)."""
    project = api.Project(api.create_project(tmp_path / "digits"))
    words = ["--learning-rate=1e-4:1e-1:log", "--batch-size=16,32,64", "--epochs=3"]
    spec = project.plan_study(words, trials=10, seed=7, source="ml tune " + " ".join(words))
    stamp = "2026-11-20T10:00:00.000+00:00"
    with RunStore(project.db_path) as store:
        store.create_sweep(
            STUDY, spec.source, study=spec.to_json(), created_at=stamp, ended_at=stamp, stop_requested=stamp
        )
        for name, trial, status, rate, batch, values in TRIALS:
            started = f"2026-11-20T10:{trial:02d}:00.000+00:00"
            reason = None
            if status == "pruned":  # below the median of the trials finished before it
                epoch = len(values)
                median = statistics.median(t[5][epoch - 1] for t in TRIALS[:trial] if t[2] == "finished")
                reason = f"pruned at epoch {epoch}: val_acc {values[-1]:.4g} below the median {median:.4g} at epoch {epoch}"
            run_id = store.create_run(
                name,
                "mlp",
                project.resolve() | {"learning_rate": rate, "batch_size": batch, "epochs": 3},
                status=status,
                created_at=started,
                started_at=started,
                heartbeat=started,
                ended_at=started,
                epoch=len(values),
                epochs=3,
                step=23,
                steps=23,
                monitor="val_acc",
                best_epoch=len(values),
                best_metric=max(values),
                sweep=STUDY,
                trial=trial,
                prune_reason=reason,
            )
            store.add_metric_points(
                [
                    (run_id, "val_acc", epoch, epoch * 23, value, started)
                    for epoch, value in enumerate(values, 1)
                ]
            )
            (project.trainings_dir / name).mkdir()
    return project.root


def test_the_study_screen(fixed_study: Path, snap_compare) -> None:
    from vml.tui.study_screen import StudyScreen

    async def open_the_study(pilot) -> None:
        app = pilot.app
        end = time.monotonic() + DEADLINE
        while not app.screen.studied:  # the t key shows once the trials are read
            assert time.monotonic() < end, "timed out waiting for the trials"
            await pilot.pause()
        await pilot.press("t")
        while not (isinstance(app.screen, StudyScreen) and app.screen.study is not None):
            assert time.monotonic() < end, "timed out waiting for the study"
            await pilot.pause()

    app = Dashboard(api.Project(fixed_study))
    assert snap_compare(app, terminal_size=(120, 36), run_before=open_the_study)


def test_the_evaluation_tab(fixed_project: Path, snap_compare) -> None:
    import numpy as np

    from vml.evaluate.metrics import evaluate
    from vml.evaluate.predictions import Predictions
    from vml.evaluate.report import save_evaluation
    from vml.tui.run_screen import RunScreen

    rng = np.random.default_rng(3)
    truth = np.repeat([0, 1, 2], 20)
    logits = rng.normal(size=(60, 3))
    logits[np.arange(60), truth] += 1.5
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    save_evaluation(
        fixed_project / "trainings" / "calm-heron",
        evaluate(Predictions(truth, scores, ("cat", "dog", "fox"))),
    )

    def loaded(app: Dashboard) -> bool:
        return isinstance(app.screen, RunScreen) and app.screen.query_one("#classes").row_count == 3

    async def open_and_normalize(pilot) -> None:
        await waits_for(loaded, "down", "enter")(pilot)
        await pilot.press("n")
        end = time.monotonic() + DEADLINE
        while "." not in str(pilot.app.screen.query_one("#matrix").get_row_at(0)[1]):
            assert time.monotonic() < end, "timed out waiting for the normalized matrix"
            await pilot.pause()

    app = Dashboard(api.Project(fixed_project))
    assert snap_compare(app, terminal_size=(120, 50), run_before=open_and_normalize)
