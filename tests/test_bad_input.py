"""Bad input through the real ``ml``: exit 2, one ``ml: error:`` line naming the value and
the fix, no traceback, and nothing recorded."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from vml import api


def assert_usage_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, first stderr line ``ml: error: ...`` containing every needle; returns it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: "), result.stderr
    for needle in needles:
        assert needle in first, (needle, first)
    return first


def assert_nothing_recorded(project: Path) -> None:
    trainings = project / "trainings"
    if trainings.exists():
        assert [p.name for p in trainings.iterdir() if p.is_dir()] == []
    assert api.Project(project).records() == []


def edit_spec(project: Path, old: str, new: str) -> str:
    """Replace one line of vergeml.yaml; returns the new line."""
    spec = project / "vergeml.yaml"
    text = spec.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    spec.write_text(text.replace(old, new), encoding="utf-8")
    return new


def line_of(project: Path, line: str) -> int:
    """1-based number of ``line`` in vergeml.yaml."""
    return (project / "vergeml.yaml").read_text(encoding="utf-8").splitlines().index(line) + 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--epochs=1", "--learnin_rate=0.1"],
            ["--learnin_rate", "did you mean learning_rate", "ml help train"],
        ),
        (["--epochs=ten"], ["--epochs=ten", "not an integer", ">= 1", "e.g. --epochs="]),
        (["--epochs=0"], ["--epochs=0", "out of range", "int >= 1", "e.g. --epochs="]),
        (
            ["--epochs=1", "--learning_rate=-1"],
            ["--learning_rate=-1", "out of range", "(0, 10]", "e.g. --learning_rate="],
        ),
        (["--epochs=1", "--optimizer=nope"], ["--optimizer=nope", "sgd", "adam", "e.g. --optimizer="]),
    ],
    ids=lambda value: value[-1] if isinstance(value, list) and value[0].startswith("--") else "",
)
def test_bad_command_line_value(project: Path, ml, args: list[str], needles: list[str]) -> None:
    result = ml("train", *args, cwd=project)
    assert_usage_error(result, *needles)
    assert_nothing_recorded(project)


def test_bad_value_leaves_ml_list_empty(project: Path, ml) -> None:
    assert_usage_error(ml("train", "--epochs=ten", cwd=project), "--epochs=ten")
    listed = ml("list", "--format", "json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_yaml_syntax_error_points_at_line_and_column(project: Path, ml) -> None:
    bad = edit_spec(project, "  epochs: 20\n", "  epochs: 20: 30\n").rstrip("\n")
    line = line_of(project, bad)
    column = bad.index(": 30") + 1  # 1-based column of the second colon

    result = ml("train", "--epochs=1", cwd=project)

    assert_usage_error(result, f"vergeml.yaml:{line}:{column}:", "YAML syntax error")
    detail = result.stderr.splitlines()[1:3]
    assert detail[0] == f"  {bad}"
    assert detail[1] == " " * (2 + column - 1) + "^"
    assert_nothing_recorded(project)


def test_unknown_top_level_key_suggests_the_known_one(project: Path, ml) -> None:
    bad = edit_spec(project, "device: auto\n", "devise: auto\n").rstrip("\n")
    result = ml("train", "--epochs=1", cwd=project)
    assert_usage_error(result, f"vergeml.yaml:{line_of(project, bad)}:1:", "'devise'", "did you mean device")
    assert result.stderr.splitlines()[1] == f"  {bad}"
    assert_nothing_recorded(project)


def test_unknown_train_key_suggests_the_known_one(project: Path, ml) -> None:
    bad = edit_spec(project, "  epochs: 20\n", "  epocs: 20\n").rstrip("\n")
    result = ml("train", "--epochs=1", cwd=project)
    assert_usage_error(result, f"vergeml.yaml:{line_of(project, bad)}:3:", "'epocs'", "did you mean epochs")
    assert_nothing_recorded(project)


def test_wrong_typed_yaml_value_names_file_line_and_value(project: Path, ml) -> None:
    bad = edit_spec(project, "  batch-size: 64\n", "  batch-size: ten\n").rstrip("\n")
    column = bad.index("ten") + 1
    result = ml("train", "--epochs=1", cwd=project)
    assert_usage_error(
        result, f"vergeml.yaml:{line_of(project, bad)}:{column}:", "batch-size", "'ten'", "int >= 1"
    )
    assert result.stderr.splitlines()[2] == " " * (2 + column - 1) + "^"
    assert_nothing_recorded(project)


def test_missing_data_file(project: Path, ml) -> None:
    edit_spec(project, "file: digits.csv", "file: nothere.csv")
    result = ml("train", "--epochs=1", cwd=project)
    assert_usage_error(result, "nothere.csv", "not found", "data.input.file")
    assert_nothing_recorded(project)


def test_unknown_target_column_suggests_the_real_one(project: Path, ml) -> None:
    edit_spec(project, "target: label", "target: lable")
    result = ml("train", "--epochs=1", cwd=project)
    assert_usage_error(result, "'lable'", "did you mean label", "data.input.target")
    assert_nothing_recorded(project)


def test_train_outside_a_project(tmp_path: Path, ml) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = ml("train", "--epochs=1", cwd=empty)
    assert_usage_error(result, "no vergeml.yaml", "ml new")
    assert list(empty.iterdir()) == []


def test_bad_run_name_is_rejected_and_nothing_escapes(project: Path, ml) -> None:
    outside = project.parent
    before = sorted(p.name for p in outside.iterdir())

    result = ml("train", "--epochs=1", "--name", "../escape", cwd=project)

    assert_usage_error(result, "'../escape'", "letters, digits")
    assert sorted(p.name for p in outside.iterdir()) == before
    assert not (project / "escape").exists()
    assert_nothing_recorded(project)


def test_duplicate_run_name_is_rejected_and_first_run_is_untouched(project: Path, ml) -> None:
    first = api.Project(project).train_in_process(["--epochs=1"], name="first", stderr=io.StringIO())
    assert first.status == "finished"
    log = (project / "trainings" / "first" / "log.txt").read_text(encoding="utf-8")

    again = ml("train", "--epochs=1", "--name=first", cwd=project)

    assert_usage_error(again, "'first'", "already exists", "--name")
    runs = api.Project(project).records()
    assert [(r["name"], r["status"]) for r in runs] == [("first", "finished")]
    assert (project / "trainings" / "first" / "log.txt").read_text(encoding="utf-8") == log


# ---- ml new ---------------------------------------------------------------------------


def test_new_into_non_empty_directory_is_refused(tmp_path: Path, ml) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")

    result = ml("new", "full", cwd=tmp_path)

    assert_usage_error(result, "full", "not empty")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_new_without_a_directory_says_how(tmp_path: Path, ml) -> None:
    assert_usage_error(ml("new", cwd=tmp_path), "ml new demo")


def test_new_list_templates(tmp_path: Path, ml) -> None:
    result = ml("new", "--list-templates", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert "default" in names
    assert not (tmp_path / "--list-templates").exists()


def test_new_creates_a_ready_project(tmp_path: Path, ml) -> None:
    result = ml("new", "X", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "ml train" in result.stdout
    project = tmp_path / "X"
    assert (project / "vergeml.yaml").is_file()
    header = (project / "data" / "digits.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "label" in header.split(",")
    assert re.search(r"CC BY 4\.0", (project / "data" / "README.md").read_text(encoding="utf-8"))
    # The new project's file is valid as written.
    assert api.Project(project).resolve()["epochs"] >= 1


def test_new_with_unknown_template(tmp_path: Path, ml) -> None:
    result = ml("new", "Y", "--template", "nosuch", cwd=tmp_path)
    assert_usage_error(result, "'nosuch'", "default", "--list-templates")
    assert not (tmp_path / "Y").exists()
