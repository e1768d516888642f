"""``ml list`` on a project with two real, short runs: table, JSON, CSV, sorting,
deleted runs, and the store underneath."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import run_ml_in_process_report_torch

from vml import api

COLUMNS = ["instance", "model", "status", "training_start", "epoch", "batch", "test_acc", "test_loss"]
# Trained in this order: "older" first, so "newer" is listed first by default. The
# newer one has the larger learning rate, so sorting by it changes the order.
OLDER, NEWER = "older", "newer"
RATES = {OLDER: 0.002, NEWER: 0.02}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo project with two finished one-epoch runs."""
    root = api.create_project(tmp_path_factory.mktemp("list") / "demo")
    for name in (OLDER, NEWER):
        result = api.Project(root).train_in_process(
            [f"--learning-rate={RATES[name]}", "--epochs=1"], name=name, stderr=io.StringIO()
        )
        assert result.status == "finished"
    return root


def listed(ml, project: Path, *args: str) -> list[dict]:
    result = ml("list", "--format", "json", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # fails on anything but one JSON document


def names(runs: list[dict]) -> list[str]:
    return [run["instance"] for run in runs]


def test_table_shows_columns_and_runs_newest_first(trained: Path, ml) -> None:
    result = ml("list", cwd=trained)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].split() == COLUMNS
    rows = [line.split() for line in lines[1:] if line.split()[0] in (OLDER, NEWER)]
    assert [row[0] for row in rows] == [NEWER, OLDER]
    for row in rows:
        assert row[1] == "mlp"
        assert row[2] == "finished"
        assert "1/1" in row  # epoch done / epochs
        assert 0.0 <= float(row[-2]) <= 1.0  # test_acc


def test_json_is_one_document_with_the_public_fields(trained: Path, ml) -> None:
    runs = listed(ml, trained)
    assert names(runs) == [NEWER, OLDER]
    for run in runs:
        assert set(COLUMNS + ["hyperparameters"]) <= set(run)
        assert run["model"] == "mlp"
        assert run["status"] == "finished"
        assert (run["epoch"], run["epochs"]) == (1, 1)
        assert isinstance(run["test_acc"], float) and 0.0 <= run["test_acc"] <= 1.0
        assert isinstance(run["test_loss"], float) and run["test_loss"] > 0
        assert isinstance(run["hyperparameters"], dict)
        assert run["hyperparameters"]["learning_rate"] == RATES[run["instance"]]
        assert run["hyperparameters"]["epochs"] == 1
    assert runs[0]["training_start"] > runs[1]["training_start"]


def test_csv_parses_with_the_same_header(trained: Path, ml) -> None:
    result = ml("list", "--format", "csv", cwd=trained)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == COLUMNS
    assert [row[0] for row in rows[1:]] == [NEWER, OLDER]
    by_json = {run["instance"]: run for run in listed(ml, trained)}
    for row in rows[1:]:
        record = dict(zip(COLUMNS, row, strict=False))
        assert record["status"] == "finished"
        assert float(record["test_acc"]) == pytest.approx(by_json[record["instance"]]["test_acc"])


def test_sort_by_a_hyperparameter(trained: Path, ml) -> None:
    assert names(listed(ml, trained, "--sort", "learning_rate")) == [OLDER, NEWER]
    assert names(listed(ml, trained, "--sort", "learning-rate")) == [OLDER, NEWER]
    assert names(listed(ml, trained, "--sort=-learning_rate")) == [NEWER, OLDER]


def test_sort_descending_by_test_acc(trained: Path, ml) -> None:
    accs = {run["instance"]: run["test_acc"] for run in listed(ml, trained)}
    assert accs[OLDER] != accs[NEWER]  # the two runs are distinguishable
    best_first = sorted(accs, key=accs.get, reverse=True)

    assert names(listed(ml, trained, "--sort=-test_acc")) == best_first
    assert names(listed(ml, trained, "--sort", "test_acc:desc")) == best_first
    assert names(listed(ml, trained, "--sort", "test_acc")) == best_first[::-1]


def test_sort_applies_to_the_table_too(trained: Path, ml) -> None:
    result = ml("list", "--sort", "learning_rate", cwd=trained)
    assert result.returncode == 0, result.stderr
    order = [line.split()[0] for line in result.stdout.splitlines() if line.split()[:1] in ([OLDER], [NEWER])]
    assert order == [OLDER, NEWER]


def test_sort_by_a_misspelled_column_suggests_one(trained: Path, ml) -> None:
    result = ml("list", "--sort", "test_ac", cwd=trained)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: ")
    assert "'test_ac'" in first and "did you mean test_acc" in first
    assert result.stdout == ""


def test_sort_by_an_unknown_column_fails(trained: Path, ml) -> None:
    result = ml("list", "--sort", "nosuch", cwd=trained)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: ") and "'nosuch'" in first
    assert "Traceback" not in result.stderr


def test_unknown_format_fails(trained: Path, ml) -> None:
    result = ml("list", "--format", "xml", cwd=trained)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: ")
    assert "'xml'" in first and "json" in first and "csv" in first
    assert result.stdout == ""


def test_run_with_deleted_folder_shows_as_deleted(trained: Path, tmp_path: Path, ml) -> None:
    copy = shutil.copytree(trained, tmp_path / "copy")
    before = {run["instance"]: run for run in listed(ml, copy)}

    shutil.rmtree(copy / "trainings" / OLDER)

    after = {run["instance"]: run for run in listed(ml, copy)}
    assert after[OLDER]["status"] == "deleted"
    assert after[NEWER] == before[NEWER]
    table = ml("list", cwd=copy)
    assert table.returncode == 0, table.stderr
    row = next(line.split() for line in table.stdout.splitlines() if line.split()[:1] == [OLDER])
    assert row[2] == "deleted"


def test_empty_project_lists_nothing_friendly(project: Path, ml) -> None:
    result = ml("list", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "no runs" in result.stdout
    assert "ml train" in result.stdout
    assert listed(ml, project) == []
    as_csv = ml("list", "--format", "csv", cwd=project)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [COLUMNS]


def test_list_outside_a_project_fails(tmp_path: Path, ml) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = ml("list", cwd=empty)
    assert result.returncode == 2
    assert result.stderr.startswith("ml: error: no vergeml.yaml")


def test_list_does_not_import_torch(trained: Path) -> None:
    stdout, imported_torch = run_ml_in_process_report_torch(["list"], trained)
    assert NEWER in stdout  # it really listed the runs
    assert not imported_torch


def test_store_is_wal_and_intact(trained: Path) -> None:
    db = trained / "trainings" / "vml.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = conn.execute("select count(*) from runs").fetchone()[0]
    conn.close()
    assert count == 2
