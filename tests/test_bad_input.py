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
from vml.config import load_project, recorded_project
from vml.errors import UsageError
from vml.preprocess import OpError, check_ops


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


# ---- files that are not UTF-8 text -------------------------------------------------------

BINARY = b"\x89PNG\r\n\x1a\n\x00\xff"  # an image saved over the file by mistake


def test_vergeml_yaml_that_is_not_utf8_text(project: Path, ml) -> None:
    spec = project / "vergeml.yaml"
    good = spec.read_bytes()
    spec.write_bytes(BINARY)

    result = ml("train", "--epochs=1", cwd=project)

    assert_usage_error(result, "vergeml.yaml:1:1:", "not UTF-8 text", "byte 0x89", "saved as UTF-8")
    assert len(result.stderr.splitlines()) == 1
    spec.write_bytes(good)
    assert_no_run_listed(project, ml)


def test_runs_and_tune_files_that_are_not_utf8_text(project: Path, ml) -> None:
    runs = project / "runs.yaml"
    runs.write_bytes(b"runs:\n  a: {epochs: 1}\n# caf\xe9\n")  # Latin-1, not UTF-8

    assert_usage_error(ml("queue", "runs.yaml", cwd=project), "runs.yaml:3:6:", "not UTF-8 text", "0xe9")
    with pytest.raises(UsageError, match=r"runs\.yaml:3:6: not UTF-8 text"):
        api.Project(project).plan_tune_file(runs)
    # A runs-file entry's template is read the same way.
    (project / "template.yaml").write_bytes(BINARY)
    runs.write_text("runs:\n  a: {template: template.yaml}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"template\.yaml:1:1: not UTF-8 text"):
        api.Project(project).plan_runs_file(runs)
    assert_no_run_listed(project, ml)


def test_a_runs_recorded_config_that_is_not_utf8_text(project: Path) -> None:
    folder = project / "trainings" / "old"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_bytes(BINARY)
    with pytest.raises(UsageError, match=r"config\.yaml:1:1: not UTF-8 text \(byte 0x89"):
        recorded_project(project, folder)


# ---- integers beyond what the store holds ------------------------------------------------

HUGE = "100000000000000000000"  # 1e20: over SQLite's 64-bit integers
TOO_LARGE = f"{HUGE} is too large (at most 9223372036854775807)"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", f"--epochs={HUGE}"], [f"--epochs={HUGE}", TOO_LARGE, "int >= 1", "e.g. --epochs=20"]),
        (["train", f"--hidden-size={HUGE}"], [f"--hidden-size={HUGE}", TOO_LARGE, "e.g. --hidden-size="]),
        (["train", f"--random-seed=-{HUGE}"], [f"--random-seed=-{HUGE}", "out of range", "int >= 0"]),
        (["queue", f"--epochs=1,{HUGE}"], [f"--epochs={HUGE}", TOO_LARGE]),
        (["tune", f"--epochs=1:{HUGE}", "--trials=2"], [f"--epochs={HUGE}", TOO_LARGE]),
    ],
    ids=["train", "model-param", "negative", "queue-list", "tune-range"],
)
def test_huge_integer_on_the_command_line(project: Path, ml, args: list[str], needles: list[str]) -> None:
    assert_usage_error(ml(*args, cwd=project), *needles)
    if args[0] == "queue":  # the first value was fine: not even it is queued
        assert_no_run_listed(project, ml)
    assert_nothing_recorded(project)


def test_huge_scheduler_setting_in_a_runs_file(project: Path, ml) -> None:
    # (--parallel 1e20 once filled the memory building its slots; cpus-per-run reached the store)
    (project / "runs.yaml").write_text(f"config:\n  cpus-per-run: {HUGE}\nruns:\n  a: {{epochs: 1}}\n")
    assert_usage_error(ml("queue", "runs.yaml", cwd=project), f"--cpus-per-run {HUGE}", "at most 4096")
    assert_nothing_recorded(project)


def test_huge_integer_in_vergeml_yaml(project: Path, ml) -> None:
    bad = edit_spec(project, "  epochs: 20\n", f"  epochs: {HUGE}\n").rstrip("\n")
    result = ml("train", cwd=project)
    assert_usage_error(
        result,
        f"vergeml.yaml:{line_of(project, bad)}:11:",
        f"{HUGE} is too large",
        "at most 9223372036854775807",
    )
    assert_nothing_recorded(project)


def test_integers_yaml_itself_cannot_read(project: Path) -> None:
    # Over Python's 4300-digit limit, and a date that does not exist: YAML's own
    # conversions fail, and are told at the value like any other mistake.
    edit_spec(project, "  epochs: 20\n", "  epochs: 1" + "0" * 5000 + "\n")
    with pytest.raises(
        UsageError, match=r"vergeml\.yaml:\d+:11: integer '10+\.\.\.' \(5001 characters\) is too large"
    ):
        load_project(project)
    edit_spec(project, "  epochs: 1" + "0" * 5000 + "\n", "  epochs: 20\n")
    edit_spec(project, "random-seed: 42", "random-seed: 2024-13-01")
    with pytest.raises(UsageError, match=r"'2024-13-01' reads as a timestamp but is not one \(month"):
        load_project(project)


def test_huge_op_option_is_refused() -> None:
    with pytest.raises(
        OpError, match=rf"invalid width for op resize: {HUGE} is too large \(at most 9223372036854775807\)"
    ):
        check_ops([{"op": "resize", "width": int(HUGE), "height": 8}], images=True)


# ---- a model that does not fit the data --------------------------------------------------

NARROW_NET = '''
"""Its first layer takes 3 features; the digits have 64."""
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.layer = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.layer(x)
'''


def use_net(project: Path, source: str) -> None:
    (project / "net.py").write_text(source, encoding="utf-8")
    edit_spec(project, "model: mlp\n", "model: ./net.py:Net\n")


def test_model_whose_first_layer_does_not_fit_is_refused_before_a_run(project: Path, ml) -> None:
    use_net(project, NARROW_NET)

    result = ml("train", "--epochs=1", cwd=project)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    *before, line = result.stderr.splitlines()
    assert all(earlier.startswith("data: ") for earlier in before), result.stderr  # the data was prepared
    assert line == (
        "ml: error: model ./net.py:Net does not fit the data: its forward on a batch of shape (2, 64) "
        "failed in its first layer (Linear(in_features=3, out_features=10, bias=True)): "
        "mat1 and mat2 shapes cannot be multiplied (2x64 and 3x10) "
        "(make its first layer take 64 features; ml help models)"
    )
    assert_no_run_listed(project, ml)
    assert_nothing_recorded(project)


@pytest.mark.parametrize(
    ("outputs", "args", "needles"),
    [
        ("5", [], ["returned shape (2, 5), but 10 classes need (2, 10)", "num_classes = 10 outputs"]),
        ("3", ["--loss=mse"], ["returned shape (2, 3), but a regression needs (2, 1) or (2,)"]),
    ],
    ids=["classification", "regression"],
)
def test_model_with_wrong_output_shape_is_refused(
    project: Path, outputs: str, args: list[str], needles: list[str]
) -> None:
    use_net(project, NARROW_NET.replace("nn.Linear(3, num_classes)", f"nn.Linear(64, {outputs})"))
    with pytest.raises(UsageError) as caught:
        api.Project(project).train_in_process(["--epochs=1", *args], stderr=io.StringIO())
    for needle in ["model ./net.py:Net does not fit the data", *needles]:
        assert needle in caught.value.message
    assert_nothing_recorded(project)


def test_queued_run_of_a_model_that_does_not_fit_fails_with_the_same_line(project: Path) -> None:
    # A queued run (ml train --detach, a sweep) is recorded before its worker builds
    # the model: there the check ends it failed, its error the one line.
    from vml.launch.process import record_queued
    from vml.train.runner import start_queued_run

    use_net(project, NARROW_NET)
    config = api.Project(project).config
    name = record_queued(config, "narrow", False, api.Project(project).resolve(["--epochs=1"]))

    result = start_queued_run(config, name, stderr=io.StringIO())

    assert result.status == "failed"
    assert result.error.startswith(
        "model ./net.py:Net does not fit the data: its forward on a batch of shape (2, 64)"
    )
    assert "\n" not in result.error and "Traceback" not in result.error
    [record] = api.Project(project).records()
    assert (record["status"], record["error"]) == ("failed", result.error)


def assert_no_run_listed(project: Path, ml) -> None:
    listed = ml("list", "--format", "json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
