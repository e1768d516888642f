"""Bad input through the real ``ml``: exit 2, one ``ml: error:`` line naming the value and
the fix, no traceback, and nothing recorded."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from data_factories import (
    csv_project,
    digit_rows,
    digits,
    digits_csv_project,
    image_project,
    npz_project,
    prepare,
)
from PIL import Image

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


# ---- the command line as click reads it --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["list", "--limit", "5"], "ml list has no option --limit (ml list --help lists them)"),
        (["list", "--colums", "name"], "ml list has no option --colums (did you mean --columns? ml list"),
        (
            ["wait", "@last", "--timeout", "soon"],
            "invalid value for --timeout: 'soon' is not a valid float (ml wait --help)",
        ),
        (
            ["queue", "-j", "x", "--epochs=1,2"],
            "invalid value for -j: 'x' is not a valid int (ml queue --help)",
        ),
        (["prune", "--older-than"], "--older-than needs a value (ml prune --help)"),
        (["show"], "ml show needs RUN (ml show --help)"),
        (["trian"], "no such command 'trian', did you mean 'train'? (ml --help)"),
        (["wait", "@last", "--poll", "0"], "--poll 0 must be more than 0 (seconds, e.g. --poll 1)"),
        (["new", "vergeml.yaml/x"], "cannot create vergeml.yaml/x: Not a directory"),
    ],
    ids=[
        "unknown-option",
        "misspelt-option",
        "float",
        "int",
        "no-value",
        "no-argument",
        "command",
        "poll",
        "new",
    ],
)
def test_command_line_mistakes_are_one_line(project: Path, ml, args: list[str], line: str) -> None:
    result = ml(*args, cwd=project)
    first = assert_usage_error(result, line)
    assert result.stderr.splitlines() == [first]  # no usage block
    assert_nothing_recorded(project)


# ---- runs and tune files: where the YAML is wrong -------------------------------------------


def test_runs_file_yaml_error_points_at_line_and_column(
    project: Path, ml, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "runs.yaml").write_text("runs:\n  a: {epochs: 1\n  b: {epochs: 2}\n", encoding="utf-8")
    result = ml("queue", "runs.yaml", cwd=project)
    first = assert_usage_error(result, "runs.yaml:3:4: YAML syntax error: expected ',' or '}', but got ':'")
    assert result.stderr.splitlines()[1:] == ["    b: {epochs: 2}", "     ^"], first
    assert_no_run_listed(project, ml)

    # The tune file, a runs file's template and a value YAML cannot build: the same.
    monkeypatch.chdir(project)  # paths are told relative to where ml runs
    (project / "tune.yaml").write_text("tune:\n  trials: 2: 3\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"^tune\.yaml:2:12: YAML syntax error: mapping values"):
        api.Project(project).plan_tune_file(project / "tune.yaml")
    (project / "wide.yaml").write_text("train: [1,\n", encoding="utf-8")
    (project / "runs.yaml").write_text("runs:\n  a: {template: wide.yaml}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"^wide\.yaml:\d+:\d+: YAML syntax error"):
        api.Project(project).plan_runs_file(project / "runs.yaml")
    (project / "runs.yaml").write_text("runs:\n  a: {random-seed: 2024-13-01}\n", encoding="utf-8")
    with pytest.raises(
        UsageError, match=r"^runs\.yaml:2:20: '2024-13-01' reads as a timestamp but is not one"
    ):
        api.Project(project).plan_runs_file(project / "runs.yaml")


# ---- data files and image folders (in process: prepare_data is where they are read) ---------


def _csv_not_utf8(tmp: Path):
    root = digits_csv_project(tmp, per_class=5)
    (root / "samples" / "digits.csv").write_bytes(b"pixel,label\n1,caf\xe9\n")
    return root, ["samples/digits.csv:2:6: not UTF-8 text (byte 0xe9; save it as UTF-8 CSV"]


def _column_named_twice(tmp: Path):
    root = digits_csv_project(tmp, per_class=5)
    csv = root / "samples" / "digits.csv"
    csv.write_text(csv.read_text().replace("pixel_0_1,", "pixel_0_0,", 1))
    return root, ["samples/digits.csv line 1: the header names column 'pixel_0_0' twice (rename one"]


def _infinite_value(tmp: Path):
    root = digits_csv_project(tmp, per_class=5, edit=lambda rows: rows[2].__setitem__(3, "inf"))
    return root, ["samples/digits.csv line 4, column 'pixel_0_3': 'inf' is not a finite number"]


def _npz_not_an_archive(tmp: Path):
    _, x, y = digits(5)
    root = npz_project(tmp / "p", x, y)
    (root / "samples" / "digits.npz").write_bytes(b"")  # np.load: EOFError, which typer turns into "Aborted!"
    return root, ["samples/digits.npz is not an .npz archive (save the arrays with numpy.savez"]


def _npz_missing_its_labels(tmp: Path):
    _, x, y = digits(5)
    root = npz_project(tmp / "p", x, y)
    np.savez(root / "samples" / "digits.npz", x=x, targets=y)
    return root, ["array 'y' is not in samples/digits.npz (it has: x, targets; set data.input.y)"]


def _npz_infinite_value(tmp: Path):
    _, x, y = digits(5)
    x = x.astype(float)
    x[4, 7] = float("-inf")
    return npz_project(tmp / "p", x, y), [
        "samples/digits.npz: x[4, 7] is -inf (make every value a finite number)"
    ]


def _class_folder_without_images(tmp: Path):
    root = image_project(tmp / "p", per_class=3)
    (root / "samples" / "cat").mkdir()
    (root / "samples" / "cat" / "notes.txt").write_text("the pictures are still on my phone")
    return root, ["class folder samples/cat has no images (add .png or .jpg files to it, or remove it)"]


def _empty_image_file(tmp: Path):
    root = image_project(tmp / "p", per_class=3)
    (root / "samples" / "3" / "0.png").write_bytes(b"")
    return root, ["unreadable image samples/3/0.png: the file is empty (replace or remove the file)"]


def _too_few_samples_for_a_split(tmp: Path):
    header, x, y = digits(1)
    rows = digit_rows(x[:4], y[:4])
    return csv_project(tmp / "p", [*header, "label"], rows, **{"val-split": "10%"}), [
        "val-split (10%) of 4 samples is none of them (add samples, or give a count, e.g. val-split: 1)"
    ]


@pytest.mark.parametrize(
    "case",
    [
        _csv_not_utf8,
        _column_named_twice,
        _infinite_value,
        _npz_not_an_archive,
        _npz_missing_its_labels,
        _npz_infinite_value,
        _class_folder_without_images,
        _empty_image_file,
        _too_few_samples_for_a_split,
    ],
    ids=lambda f: f.__name__[1:],
)
def test_bad_data_is_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case) -> None:
    # ml train's path to these (exit 2, nothing recorded) is test_sources' bad-data test.
    root, needles = case(tmp_path)
    monkeypatch.chdir(root)  # paths are told relative to where ml runs
    with pytest.raises(UsageError) as caught:
        prepare(root)
    assert "\n" not in caught.value.message
    for needle in needles:
        assert needle in caught.value.message, caught.value.message


# ---- the files given to ml predict ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two projects with one run each (an epoch on 100 digit rows, on 30 digit images)."""
    tmp = tmp_path_factory.mktemp("trained")
    header, x, y = digits(10)
    roots = {
        "table": csv_project(tmp / "table", [*header, "label"], digit_rows(x, y)),
        "images": image_project(tmp / "images", per_class=3),
    }
    for root in roots.values():
        assert api.Project(root).train_in_process(["--epochs=1"], stderr=io.StringIO()).status == "finished"
    return roots


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    ("kind", "name", "content", "message"),
    [
        ("table", "gone.csv", None, "no such file: {path} (check the path)"),
        ("table", "rows", "dir", "{path} is a directory (pass its files, e.g. {path}/*.csv)"),
        (
            "table",
            "empty.csv",
            "",
            "{path} is empty (it needs a header row with the run's columns, then rows)",
        ),
        ("table", "header.csv", "{header}\n", "{path} has a header but no rows to predict (add rows)"),
        ("table", "other.csv", "a,b\n1,2\n", "{path} lacks the column(s) pixel_0_0, pixel_0_1, pixel_0_2"),
        ("table", "short.csv", "{header}\n{row}\n1,2\n", "{path} line 3: 2 values but the header has 65"),
        (
            "table",
            "text.csv",
            "{header}\nx{row}\n",
            "{path} line 2, column 'pixel_0_0': 'x0' is not a number",
        ),
        ("table", "latin1.csv", b"caf\xe9\n", "{path}:1:4: not UTF-8 text (byte 0xe9"),
        ("table", "photo.png", b"\x89PNG", "{path} is an image; this run was trained on table rows"),
        (
            "images",
            "broken.png",
            b"\x89PNG\r\n\x1a\nbroken",
            "unreadable image {shown}: not an image Pillow can read",
        ),
        ("images", "rows.csv", "{header}\n", "{path} is not an image; this run was trained on images"),
        (
            "images",
            "wide.png",
            "wide",
            "{path} is 12x8 grey after the run's preprocess ops, but the run was trained on 8x8 grey",
        ),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "header-only",
        "other-columns",
        "ragged",
        "not-a-number",
        "not-utf8",
        "image-to-table-run",
        "corrupt-image",
        "csv-to-image-run",
        "image-size",
    ],
)
def test_predict_refuses_bad_input_files(
    trained: dict[str, Path], tmp_path: Path, kind: str, name: str, content, message: str
) -> None:
    header = ",".join([*digits(1)[0], "label"])
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content == "wide":
        Image.new("L", (12, 8)).save(path)
    elif content is not None:
        _write(
            path,
            content.format(header=header, row="0," * 63 + "0,3") if isinstance(content, str) else content,
        )
    with pytest.raises(UsageError) as caught:
        api.Project(trained[kind]).predict("@last", [path])
    expected = message.format(path=path, shown=os.path.relpath(path))
    assert caught.value.message.startswith(expected), caught.value.message


def test_export_to_a_file_or_an_unwritable_place(trained: dict[str, Path]) -> None:
    project = api.Project(trained["table"])
    with pytest.raises(UsageError, match=r"vergeml\.yaml is a file \(pick a new directory\)"):
        project.export("@last", trained["table"] / "vergeml.yaml")
    with pytest.raises(UsageError, match=r"^cannot write /proc/model: .* \(pick a directory you can write\)"):
        project.export("@last", "/proc/model")  # /proc takes no new folder, even from root


# ---- net.py code that fails to build -------------------------------------------------------

NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.layer = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.layer(x)
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "from torch import nn",
            "from torch import nn\nimport torchvison",
            "could not be built: ModuleNotFoundError: No module named 'torchvison' (at net.py:3;",
        ),
        (
            "super().__init__()",
            "super().__init__()\n        raise ValueError('no GPU here')",
            "could not be built: ValueError: no GPU here (at net.py:8; fix it there, ml help models)",
        ),
        ("class Net(nn.Module):", "class Net:", "built a Net, not a torch.nn.Module (make it subclass"),
        ("self.layer = nn.Linear(64, num_classes)", "pass", "has no trainable parameters (give it layers"),
    ],
    ids=["import-error", "init-raises", "not-a-module", "no-parameters"],
)
def test_model_code_that_fails_to_build_is_refused_before_a_run(
    project: Path, old: str, new: str, message: str
) -> None:
    use_net(project, NET.replace(old, new))
    with pytest.raises(UsageError) as caught:
        api.Project(project).train_in_process(["--epochs=1"], stderr=io.StringIO())
    assert caught.value.message.startswith(f"model ./net.py:Net {message}"), caught.value.message
    assert_nothing_recorded(project)
