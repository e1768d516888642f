"""``ml list``'s filters, sort and paging done by SQLite agree with filtering the runs in
Python (``Condition.matches``, ``sort_by``), on a store whose columns mix numbers,
text, booleans and missing values, with runs whose folders were deleted; and the
commands that name one run find it through the index."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from vml import api
from vml.errors import NotFoundError, UsageError
from vml.query import parse_conditions
from vml.store import RunStore
from vml.views import run_value, sort_by

RUNS = 120
MODELS = ("mlp", "cnn", "linear")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 runs with every kind of value: a hyperparameter that is a number in some
    runs, text or a boolean in others, or missing; test scores missing on some; every
    state; a tenth of the ended runs with their folder deleted."""
    root = api.create_project(tmp_path_factory.mktemp("scale") / "mixed")
    rng = random.Random(7)
    project = api.Project(root)
    with RunStore(project.db_path) as store:
        for i in range(RUNS):
            hparams: dict = {"learning_rate": rng.choice((1e-3, 3e-3, 0.01)), "epochs": rng.randint(1, 5)}
            hparams["dropout"] = rng.choice((0.1, 0.5, 2, "none", True, False, None))
            if i % 4:
                hparams["width"] = rng.choice((16, 32, 64))
            if i % 7 == 0:
                hparams["tag"] = rng.choice(("a", "b c", "100%"))
            name = f"run-{i:03d}-{rng.choice(('x', 'y'))}"
            status = rng.choice(("finished", "finished", "failed", "cancelled", "crashed", "pruned"))
            fields = {"epochs": hparams["epochs"], "steps": 10}
            if i % 3:
                fields |= {
                    "test_acc": rng.choice((0.5, 0.9, 0.95, 1.0, rng.random())),
                    "test_loss": rng.random(),
                }
            run_id = store.create_run(name, rng.choice(MODELS), hparams, status=status, **fields)
            stamp = f"2026-06-01T00:{i // 60:02d}:{i % 60:02d}.000+00:00"
            store.update_run(run_id, started_at=stamp, ended_at=stamp, epoch=rng.randint(0, 5))
            (project.trainings_dir / name).mkdir()
            if i % 10 == 3:
                shutil.rmtree(project.trainings_dir / name)
    return root


def python_filter(project: api.Project, where: list[str]) -> list[dict]:
    """What ``ml list --where`` returned before SQLite did it: every run read, each
    condition checked in Python."""
    runs = project.list_runs()
    conditions = parse_conditions(where, project.known_columns(runs))
    return [run for run in runs if all(c.matches(run_value(run, c.column)) for c in conditions)]


WHERE = [
    "test_acc>0.9",
    "test_acc>=0.95",
    "test_acc<0.5",
    "test_acc!=0.9",
    "test_acc=1",
    "learning_rate=0.003",
    "learning_rate<=0.003",
    "dropout>0.2",
    "dropout=none",
    "dropout=true",
    "dropout!=false",
    "dropout<1",
    "width>=32",
    "width!=16",
    "tag=b c",
    "tag=100%",
    "tag>a",
    "model=cnn",
    "model!=mlp",
    "instance>run-060",
    "status=finished",
    "status=deleted",
    "status!=deleted",
    "status>crashed",
    "training_start>2026-06-01T00:01",
    "epoch<3, test_acc>0.5",
    "test-acc -gt 0.9 and model -eq mlp",
]


@pytest.mark.parametrize("where", WHERE)
def test_sql_filters_agree_with_python_filtering(mixed: Path, where: str) -> None:
    project = api.Project(mixed)
    try:
        expected = python_filter(project, [where])
    except UsageError as exc:  # text compared with a column holding numbers
        with pytest.raises(UsageError) as refused:
            project.list_runs(where=where)
        assert refused.value.message == exc.message
        return
    assert project.list_runs(where=where) == expected
    assert project.count_runs(where=where) == len(expected)
    assert [json.loads(text) for text in project.runs_json(where=where)] == expected


@pytest.mark.parametrize("status", [["finished"], ["deleted"], ["failed", "deleted"], ["running"]])
def test_status_filters_read_deleted_runs_from_their_folders(mixed: Path, status: list[str]) -> None:
    project = api.Project(mixed)
    expected = [run for run in project.list_runs() if run["status"] in status]
    assert project.list_runs(status=status) == expected
    assert project.count_runs(status=status) == len(expected)
    assert project.list_runs(status=status, limit=5) == expected[:5]


@pytest.mark.parametrize(
    "sort", ["test_acc", "-test_acc", "test_loss:desc", "learning_rate", "-width", "instance", "epoch"]
)
def test_sql_sort_agrees_with_python_sort_missing_values_last(mixed: Path, sort: str) -> None:
    project = api.Project(mixed)
    descending = sort.startswith("-") or sort.endswith(":desc")
    column = sort.lstrip("-").removesuffix(":desc")
    expected = sort_by(project.list_runs(), column, descending)
    assert project.list_runs(sort) == expected
    assert (
        project.list_runs(sort, where="model=mlp", limit=7)
        == [r for r in expected if r["model"] == "mlp"][:7]
    )


def test_a_column_holding_numbers_and_text_sorts_numbers_first(mixed: Path) -> None:
    # Python could not sort these at all ('<' between str and float); SQLite puts
    # numbers before text and the runs without a value last.
    runs = api.Project(mixed).list_runs("dropout")
    values = [run["hyperparameters"].get("dropout") for run in runs]
    numbers = [v for v in values if isinstance(v, (int, float))]
    assert values[: len(numbers)] == sorted(numbers)
    assert values[-1] is None


def test_comparing_a_number_column_with_text_is_refused(mixed: Path) -> None:
    project = api.Project(mixed)
    with pytest.raises(UsageError, match="test_acc is a number and 'high' is not"):
        project.list_runs(where="test_acc>high")
    with pytest.raises(UsageError, match="unknown column 'colour'"):
        project.count_runs(where="colour=red")


def test_ml_list_pages_and_counts_the_rest_in_sql(mixed: Path, ml) -> None:
    project = api.Project(mixed)
    matching = project.list_runs("-test_acc", where="test_acc>0.1")
    result = ml("list", "--sort=-test_acc", "--where", "test_acc>0.1", cwd=mixed)
    assert result.returncode == 0, result.stderr
    shown = [line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip()]
    assert shown == [run["instance"] for run in matching[:50]]
    assert f"{len(matching) - 50} more run(s) not shown" in result.stderr
    everything = ml("list", "--all", "--format", "json", cwd=mixed)
    assert json.loads(everything.stdout) == project.list_runs()


def test_runs_are_found_by_name_prefix_and_last_through_the_index(mixed: Path) -> None:
    project = api.Project(mixed)
    newest = project.list_runs(limit=1)[0]
    assert project.find_run("@last")["name"] == newest["instance"]
    assert project.find_run("run-007")["name"].startswith("run-007-")
    assert project.run("@run-013").status() == "deleted"
    with pytest.raises(UsageError, match=r"'run-01' matches 10 runs: run-010-\w, run-011-\w"):
        project.find_run("run-01")
    with pytest.raises(NotFoundError, match="did you mean"):
        project.find_run("run-0077-x")


def test_prune_deletes_old_runs_in_batches_and_keeps_newer_ones(mixed: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(mixed, root)
    project = api.Project(root)
    ended = [run for run in project.list_runs() if run["status"] != "running"]
    doomed = project.prune("1d", dry_run=False)
    assert {run["instance"] for run in doomed} == {run["instance"] for run in ended}
    assert project.list_runs() == []
    assert not any((project.trainings_dir / run["instance"]).exists() for run in doomed)
    with sqlite3.connect(project.db_path) as db:
        assert db.execute("select count(*) from metrics").fetchone()[0] == 0
        assert db.execute("select count(*) from events").fetchone()[0] == 0
