"""``ml list`` narrowing and shaping its output: ``--status``, ``--where`` (symbolic and
VergeML's word operators), ``--columns``, ``--only-changed``, markdown, paging past 50
runs and the default columns from ``vergeml.yaml``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from vml import api
from vml.errors import UsageError
from vml.store import RunStore

# Trained in this order, so listed newest first as LIN, BLOWN, FAST, SLOW. Their test
# accuracies are far apart (about 0.61, 0.98 and 0.77; BLOWN failed and has none).
SLOW, FAST, BLOWN, LIN = "slow", "fast", "blown", "lin"
NEWEST_FIRST = [LIN, BLOWN, FAST, SLOW]
DEFAULT_COLUMNS = ["instance", "model", "status", "training_start", "epoch", "batch", "test_acc", "test_loss"]


def train(root: Path, name: str, *args: str, status: str = "finished") -> None:
    out = io.StringIO()
    result = api.Project(root).train_in_process(list(args), name=name, stderr=out)
    assert result.status == status, out.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three finished runs (two MLPs, one linear model) and one whose loss blew up."""
    root = api.create_project(tmp_path_factory.mktemp("filters") / "demo")
    train(root, SLOW, "--epochs=1", "--learning-rate=0.0005")
    train(root, FAST, "--epochs=2", "--learning-rate=0.02")
    train(root, BLOWN, "--epochs=5", "--optimizer=sgd", "--learning-rate=10", status="failed")
    spec = root / "vergeml.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("model: mlp", "model: linear"))
    train(root, LIN, "--epochs=1", "--learning-rate=0.003")
    spec.write_text(original)
    return root


def listed(ml, project: Path, *args: str) -> list[dict]:
    result = ml("list", "--format", "json", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def names(runs: list[dict]) -> list[str]:
    return [run["instance"] for run in runs]


def table(result) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (cells split on whitespace) of a plain ``ml list``."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert set(lines[1].strip()) == {"─"}, result.stdout  # the rule under the header
    return lines[0].split(), [line.split() for line in lines[2:]]


def usage_error(result) -> str:
    """The one ``ml: error:`` line of a command that exited 2 without output."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ml: error: "), result.stderr
    return lines[0]


def accuracies(root: Path) -> dict[str, float | None]:
    return {run["instance"]: run["test_acc"] for run in api.Project(root).list_runs()}


def test_the_fixture_runs_are_what_the_filters_rely_on(trained: Path, ml) -> None:
    everything = listed(ml, trained)
    assert names(everything) == NEWEST_FIRST
    runs = {run["instance"]: run for run in everything}
    assert runs[FAST]["test_acc"] > 0.93
    assert 0.7 < runs[LIN]["test_acc"] < 0.85
    assert runs[SLOW]["test_acc"] < 0.67
    assert runs[BLOWN]["status"] == "failed" and runs[BLOWN]["test_acc"] is None
    assert (runs[LIN]["model"], runs[FAST]["model"]) == ("linear", "mlp")


def test_status_keeps_the_runs_in_the_given_states(trained: Path, ml) -> None:
    assert names(listed(ml, trained, "--status", "finished")) == [LIN, FAST, SLOW]
    assert names(listed(ml, trained, "--status", "failed")) == [BLOWN]
    assert names(listed(ml, trained, "--status", "failed", "--status", "finished")) == NEWEST_FIRST
    assert api.Project(trained).list_runs(status=["running", "queued"]) == []

    header, rows = table(ml("list", "--status", "failed", cwd=trained))
    assert header == DEFAULT_COLUMNS
    assert [row[:3] for row in rows] == [[BLOWN, "mlp", "failed"]]
    nothing = ml("list", "--status", "cancelled", cwd=trained)
    assert (nothing.returncode, nothing.stdout.strip()) == (0, "no runs match")


def test_an_unknown_status_is_one_usage_error(trained: Path, ml) -> None:
    line = usage_error(ml("list", "--status", "bogus", cwd=trained))
    assert "'bogus'" in line
    assert "finished" in line and "failed" in line and "cancelled" in line


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("test_acc>0.9", [FAST]),
        ("test-acc -gt 0.9", [FAST]),
        ("test_acc -ge 0.7", [LIN, FAST]),
        ("test_acc >= 0.7", [LIN, FAST]),
        ("test-acc -lt 0.7", [SLOW]),  # a run without a test_acc never matches
        ("test_acc -le 0.9", [LIN, SLOW]),
        ("epochs -eq 5", [BLOWN]),
        ("epochs == 1", [LIN, SLOW]),
        ("epochs -ne 1", [BLOWN, FAST]),
        ("model=linear", [LIN]),
        ("model != linear", [BLOWN, FAST, SLOW]),
        ("model -eq mlp", [BLOWN, FAST, SLOW]),
        ("status=failed", [BLOWN]),
        ("status!=finished", [BLOWN]),
        ("optimizer -ne adam", [BLOWN]),
        ("instance=fast", [FAST]),
        ("learning_rate<0.01", [LIN, SLOW]),
        ("learning-rate -eq 0.02", [FAST]),
        ("learning-rate>=0.02", [BLOWN, FAST]),
        ("hidden_size=128", [BLOWN, FAST, SLOW]),  # the linear model has no hidden size
        ("hidden-size != 128", [LIN]),
    ],
)
def test_where_operators(trained: Path, where: str, expected: list[str]) -> None:
    assert names(api.Project(trained).list_runs(where=where)) == expected


def test_where_on_the_command_line(trained: Path, ml) -> None:
    assert names(listed(ml, trained, "--where", "test_acc>0.9")) == [FAST]
    assert names(listed(ml, trained, "-w", "test-acc -gt 0.9")) == [FAST]
    header, rows = table(ml("list", "--where", "model=linear", cwd=trained))
    assert header == DEFAULT_COLUMNS
    assert [row[:3] for row in rows] == [[LIN, "linear", "finished"]]


def test_every_condition_must_hold(trained: Path, ml) -> None:
    assert names(listed(ml, trained, "--where", "test_acc>0.5,model=mlp")) == [FAST, SLOW]
    assert names(
        listed(ml, trained, "-w", "model=mlp", "-w", "learning-rate -ge 0.02", "--status", "failed")
    ) == [BLOWN]
    project = api.Project(trained)
    assert names(project.list_runs(where="test_acc>0.5 , epochs -eq 1")) == [LIN, SLOW]
    assert names(project.list_runs(where="test_acc>0.5 and model=mlp and epochs=1")) == [SLOW]
    assert names(project.list_runs(where="test_acc>0.5 AND model=mlp")) == [FAST, SLOW]
    assert names(project.list_runs(where=["model=mlp", "learning-rate -ge 0.02"])) == [BLOWN, FAST]
    assert project.list_runs(where=["model=linear", "epochs=2"]) == []


def test_where_with_an_unknown_column_suggests_one(trained: Path, ml) -> None:
    line = usage_error(ml("list", "--where", "test_ac>0.5", cwd=trained))
    assert "'test_ac'" in line and "did you mean test_acc?" in line
    line = usage_error(ml("list", "--where", "model=mlp and learning-rat<0.1", cwd=trained))
    assert "'learning-rat'" in line and "did you mean learning_rate?" in line
    with pytest.raises(UsageError, match="did you mean test_acc"):
        api.Project(trained).list_runs(where="tets_acc>0.5")
    with pytest.raises(UsageError, match="'nosuchthing'"):
        api.Project(trained).list_runs(where="nosuchthing=3")


def test_a_malformed_where_is_a_usage_error(trained: Path, ml) -> None:
    line = usage_error(ml("list", "--where", "test_acc", cwd=trained))
    assert "'test_acc'" in line and "test_acc>0.9" in line  # shows how to write one
    for where in ("test_acc>", ">0.9", "test_acc -gt", "test_acc 0.9"):
        with pytest.raises(UsageError, match="cannot read --where"):
            api.Project(trained).list_runs(where=where)


def test_a_number_compared_with_a_typo_is_refused_not_matched_by_nothing(trained: Path, ml) -> None:
    # Every finished run here has test_acc > 0.5. "=>" (for ">=") parses as "=" with
    # the value ">0.5"; ml list must refuse it rather than answer "no runs match".
    line = usage_error(ml("list", "--where", "test_acc=>0.5", cwd=trained))
    assert "--where" in line
    for where in ("test_acc >> 0.5", "test_acc>high", "epochs -gt two"):
        with pytest.raises(UsageError):
            api.Project(trained).list_runs(where=where)


def test_columns_picks_runs_fields_and_hyperparameters(trained: Path, ml) -> None:
    accs = accuracies(trained)
    header, rows = table(ml("list", "--columns", "instance,learning_rate,test_acc", cwd=trained))
    assert header == ["instance", "learning_rate", "test_acc"]
    assert {row[0]: row[1:] for row in rows} == {
        LIN: ["0.003", f"{accs[LIN]:.4f}"],
        BLOWN: ["10", "-"],
        FAST: ["0.02", f"{accs[FAST]:.4f}"],
        SLOW: ["0.0005", f"{accs[SLOW]:.4f}"],
    }
    header, rows = table(
        ml("list", "-c", "instance,learning-rate,optimizer", "-s", "learning_rate", cwd=trained)
    )
    assert header == ["instance", "learning_rate", "optimizer"]
    assert rows == [
        [SLOW, "0.0005", "adam"],
        [LIN, "0.003", "adam"],
        [FAST, "0.02", "adam"],
        [BLOWN, "10", "sgd"],
    ]


def test_an_unknown_column_suggests_one(trained: Path, ml) -> None:
    line = usage_error(ml("list", "--columns", "instance,test_acx", cwd=trained))
    assert "'test_acx'" in line and "did you mean test_acc?" in line


def test_only_changed_adds_the_hyperparameters_that_differ(trained: Path, ml) -> None:
    # The two finished MLPs differ in epochs and learning rate only.
    header, rows = table(ml("list", "--only-changed", "-w", "model=mlp", "--status", "finished", cwd=trained))
    assert header == [*DEFAULT_COLUMNS, "epochs", "learning_rate"]
    assert [(row[0], row[-2:]) for row in rows] == [(FAST, ["2", "0.02"]), (SLOW, ["1", "0.0005"])]

    # Already shown columns are not repeated.
    header, rows = table(
        ml(
            "list",
            "-c",
            "instance,learning_rate",
            "--only-changed",
            "-w",
            "model=mlp,status=finished",
            cwd=trained,
        )
    )
    assert header == ["instance", "learning_rate", "epochs"]
    assert rows == [[FAST, "0.02", "2"], [SLOW, "0.0005", "1"]]

    # The linear run lacks the MLP's knobs, so with it they differ too.
    header, rows = table(ml("list", "-c", "instance", "--only-changed", "--status", "finished", cwd=trained))
    assert header == ["instance", "dropout", "epochs", "hidden_layers", "hidden_size", "learning_rate"]
    assert rows == [
        [LIN, "-", "1", "-", "-", "0.003"],
        [FAST, "0.1", "2", "1", "128", "0.02"],
        [SLOW, "0.1", "1", "1", "128", "0.0005"],
    ]


def test_markdown_is_a_table_to_paste(trained: Path, ml) -> None:
    accs = accuracies(trained)
    result = ml("list", "--format", "md", "-c", "instance,model,learning_rate,test_acc", cwd=trained)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "| instance | model | learning_rate | test_acc |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2:] == [
        f"| {LIN} | linear | 0.003 | {accs[LIN]:.4f} |",
        f"| {BLOWN} | mlp | 10 | - |",
        f"| {FAST} | mlp | 0.02 | {accs[FAST]:.4f} |",
        f"| {SLOW} | mlp | 0.0005 | {accs[SLOW]:.4f} |",
    ]

    filtered = ml("list", "--format", "md", "--where", "test_acc>0.9", cwd=trained)
    assert filtered.returncode == 0, filtered.stderr
    lines = filtered.stdout.splitlines()
    assert lines[0] == "| " + " | ".join(DEFAULT_COLUMNS) + " |"
    assert len(lines) == 3
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert len(cells) == len(DEFAULT_COLUMNS)
    assert cells[:3] == [FAST, "mlp", "finished"] and cells[4] == "2/2"


def test_json_with_filters_keeps_every_field(trained: Path, ml) -> None:
    runs = listed(ml, trained, "--status", "finished", "--where", "test_acc>0.7", "--sort=-test_acc")
    assert names(runs) == [FAST, LIN]
    assert [run["model"] for run in runs] == ["mlp", "linear"]
    assert runs[0]["hyperparameters"]["learning_rate"] == 0.02 and runs[0]["epochs"] == 2
    failed = listed(ml, trained, "--where", "status=failed")
    assert names(failed) == [BLOWN]
    assert "the loss became" in failed[0]["error"]
    assert failed[0]["hyperparameters"]["optimizer"] == "sgd"


def bulk_project(root: Path, count: int) -> Path:
    """``count`` finished runs recorded straight into the store (no training): run
    ``bulk-NN`` started NN minutes after midnight with learning rate (NN+1)/1000."""
    project = api.Project(root)
    project.trainings_dir.mkdir(exist_ok=True)
    with RunStore(project.db_path) as store:
        for i in range(count):
            name = f"bulk-{i:02d}"
            hparams = project.resolve({"learning_rate": (i + 1) / 1000, "epochs": 1})
            started = f"2025-01-01T00:{i:02d}:00.000+00:00"
            run_id = store.create_run(name, "mlp", hparams, started_at=started, epochs=1)
            assert store.set_status(
                run_id,
                "finished",
                ("running",),
                ended_at=f"2025-01-01T00:{i:02d}:30.000+00:00",
                epoch=1,
                test_acc=0.5 + i / 200,
                test_loss=1.0,
            )
            (project.trainings_dir / name).mkdir()
    return root


def test_more_than_50_runs_are_paged(project: Path, ml) -> None:
    bulk_project(project, 55)
    notice = "5 more run(s) not shown (--all shows them, --sort/--where narrow them)"

    header, rows = table(first := ml("list", cwd=project))
    assert header == DEFAULT_COLUMNS
    assert [row[0] for row in rows] == [f"bulk-{i:02d}" for i in range(54, 4, -1)]  # the newest 50
    assert first.stderr.strip() == notice

    _, rows = table(everything := ml("list", "--all", cwd=project))
    assert [row[0] for row in rows] == [f"bulk-{i:02d}" for i in range(54, -1, -1)]
    assert everything.stderr == ""

    _, rows = table(
        by_rate := ml("list", "--sort", "learning_rate", "-c", "instance,learning_rate", cwd=project)
    )
    assert [row[0] for row in rows] == [f"bulk-{i:02d}" for i in range(50)]  # the 50 lowest rates
    assert by_rate.stderr.strip() == notice

    _, rows = table(narrowed := ml("list", "--where", "learning_rate>0.01", cwd=project))
    assert [row[0] for row in rows] == [f"bulk-{i:02d}" for i in range(54, 9, -1)]  # 45: all of them
    assert narrowed.stderr == ""

    assert len(listed(ml, project)) == 55  # a script reading JSON gets every run


def with_list_columns(trained: Path, target: Path, columns: list[str]) -> Path:
    copy = shutil.copytree(trained, target)
    spec = yaml.safe_load((copy / "vergeml.yaml").read_text())
    spec["list"] = {"columns": columns}
    (copy / "vergeml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return copy


def test_list_columns_in_vergeml_yaml_set_the_default(trained: Path, tmp_path: Path, ml) -> None:
    copy = with_list_columns(trained, tmp_path / "copy", ["learning-rate", "status", "test_acc"])
    accs = accuracies(copy)

    header, rows = table(ml("list", cwd=copy))
    assert header == ["instance", "learning_rate", "status", "test_acc"]  # instance always first
    assert rows[0] == [LIN, "0.003", "finished", f"{accs[LIN]:.4f}"]
    assert [row[0] for row in rows] == NEWEST_FIRST

    csv_header = ml("list", "--format", "csv", cwd=copy).stdout.splitlines()[0]
    assert csv_header == "instance,learning_rate,status,test_acc"

    header, rows = table(ml("list", "--columns", "instance,model", "--status", "failed", cwd=copy))
    assert header == ["instance", "model"]
    assert rows == [[BLOWN, "mlp"]]


def test_an_unknown_column_in_vergeml_yaml_suggests_one(trained: Path, tmp_path: Path, ml) -> None:
    copy = with_list_columns(trained, tmp_path / "copy", ["instance", "test_acx"])
    line = usage_error(ml("list", cwd=copy))
    assert "'test_acx'" in line and "list.columns" in line and "did you mean test_acc?" in line
