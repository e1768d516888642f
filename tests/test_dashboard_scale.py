"""The dashboard at scale: a refresh reads only what changed, and the table, changed
row by row, shows what one placed anew shows; on a real store of a few hundred runs
recorded with ``RunStore`` (no training)."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

from test_dashboard import until

from vml import api
from vml.live import LiveRuns
from vml.store import RunStore
from vml.tui.app import LABELS, Dashboard, dashboard_columns, text_matches
from vml.tui.rows import ShownRuns
from vml.views import LIST_COLUMNS

RUNS = 300


def stamp(minute: int) -> str:
    return f"2026-11-{20 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00.000+00:00"


def record(store: RunStore, project: Path, i: int, rng: random.Random, status: str = "finished") -> int:
    """Run ``run-i``, started at minute ``i`` (two share each minute: ties), with its folder."""
    name = f"run-{i:03d}"
    hyperparameters = {
        "learning_rate": rng.choice((0.1, 0.01, 0.001)),
        "optimizer": rng.choice(("adam", "sgd")),
    }
    if i % 4 == 0:
        hyperparameters["learning_rate"] = "auto"  # text among numbers
    run_id = store.create_run(
        name,
        rng.choice(("mlp", "cnn")),
        hyperparameters,
        status=status,
        started_at=stamp(i // 2),
        epochs=5,
        epoch=rng.randint(0, 5),
        steps=23,
        step=rng.randint(0, 23),
        test_acc=None if i % 10 == 0 else round(rng.random(), 4),
    )
    (project / "trainings" / name).mkdir(exist_ok=True)
    return run_id


def fill(project: Path, runs: int = RUNS) -> list[int]:
    rng = random.Random(1)
    with RunStore(api.Project(project).db_path) as store:
        return [record(store, project, i, rng) for i in range(runs)]


def test_an_idle_refresh_reads_nothing_and_a_change_reads_only_what_changed(project: Path) -> None:
    ids = fill(project)
    db = api.Project(project).db_path
    live = LiveRuns(api.Project(project))
    assert live.refresh() is True and len(live) == RUNS
    read = live.rows_read
    before = {run["instance"]: run for run in live.all()}
    for _ in range(3):
        assert live.refresh() is False
    assert live.rows_read == read  # nothing changed: no run read

    with RunStore(db) as store:  # another process: ml test on an ended run
        store.update_run(ids[5], test_acc=0.5)
    assert live.refresh() is True
    assert live.rows_read == read + 1
    assert [(old["instance"], new["test_acc"]) for old, new in live.changes] == [("run-005", 0.5)]
    assert all(run is before[run["instance"]] for run in live.all() if run["instance"] != "run-005")

    shutil.rmtree(project / "trainings" / "run-007")  # ml delete's folder half, or by hand
    assert live.refresh() is True
    assert live.get("run-007")["status"] == "deleted" and live.states["deleted"] == 1
    (project / "trainings" / "run-007").mkdir()
    live.refresh()
    assert live.get("run-007")["status"] == "finished"

    with RunStore(db) as store:
        store.delete_run(ids[9])
    assert live.refresh() is True
    assert live.get("run-009") is None and len(live) == RUNS - 1
    assert live.rows_read == read + 1  # the folder listed, the ids counted: no run read


def test_the_table_changed_row_by_row_shows_what_one_placed_anew_shows(project: Path) -> None:
    fill(project)
    db = api.Project(project).db_path
    columns = dashboard_columns([*LIST_COLUMNS, "learning_rate"])
    labels = [LABELS.get(c, c) for c in columns]
    live = LiveRuns(api.Project(project), [c for c in columns if c not in ("progress", "eta")])
    live.refresh()
    # Newest first, numbers with gaps, numbers among text, names, computed, ties.
    sorts = [None, ("test_acc", False), ("test_acc", True), ("learning_rate", True), ("instance", False)]
    sorts += [("progress", True), ("training_start", False)]
    filters = [
        None,
        lambda run: run["test_acc"] is not None and run["test_acc"] > 0.5,
        lambda run: text_matches(run, "cnn"),
    ]
    views = [(sort, keep) for sort in sorts for keep in filters]
    tables = []
    for sort, keep in views:
        table = ShownRuns(columns)
        table.rebuild(live, sort, keep, frozenset())
        tables.append(table)
    rng = random.Random(2)
    marked: frozenset[str] = frozenset()
    for round_ in range(3):
        with RunStore(db) as store:  # what other processes do meanwhile
            names = [run["instance"] for run in live.all()]
            for name in rng.sample(names, 20):
                row = store.run_by_name(name)
                store.update_run(
                    row["id"],
                    test_acc=rng.choice((None, 0.25, 0.75, round(rng.random(), 4))),
                    epoch=rng.randint(0, 5),
                )
            # A queued run starts (no progress yet: its ETA stays "-"), another is deleted.
            store.update_run(
                store.run_by_name(names[round_])["id"],
                status="running",
                epoch=0,
                step=0,
                started_at=stamp(900 + round_),
            )
            store.delete_run(store.run_by_name(names[-1 - round_])["id"])
            for i in range(RUNS + 5 * round_, RUNS + 5 * round_ + 5):
                record(store, project, i, rng)
        shutil.rmtree(project / "trainings" / names[10 + round_])
        marked = frozenset(rng.sample(names[:50], 3))
        assert live.refresh() is True
        for (sort, keep), table in zip(views, tables, strict=True):
            table.update(live, marked)
            anew = ShownRuns(columns)
            cells = anew.rebuild(live, sort, keep, marked)
            assert table.keys == anew.keys, (sort, round_)
            assert {name: table.cells(name) for name in table.keys} == cells, (sort, round_)
            assert table.widths(labels) == anew.widths(labels), (sort, round_)


def test_the_dashboard_reads_only_a_run_changed_elsewhere_and_shows_it(project: Path) -> None:
    ids = fill(project)

    async def scenario() -> None:
        app = Dashboard(api.Project(project))
        async with app.run_test(size=(120, 30)) as pilot:
            screen = app.screen

            def cells(name: str) -> dict[str, str]:
                return dict(zip(screen.columns, screen.table.cells[name], strict=True))

            await until(pilot, lambda: screen.table.row_count == RUNS and screen.live.rows_read, "every run")
            read = screen.live.rows_read
            with RunStore(api.Project(project).db_path) as store:  # ml test in another terminal
                store.update_run(ids[42], test_acc=0.125)
            await until(pilot, lambda: cells("run-042")["test_acc"] == "0.1250", "the new score")
            shutil.rmtree(project / "trainings" / "run-043")
            await until(pilot, lambda: cells("run-043")["status"] == "deleted", "the deleted folder")
            # However many refreshes ran meanwhile, they read the one run that changed.
            assert screen.live.rows_read == read + 1

    asyncio.run(scenario())
