"""The config merge: declared defaults < vergeml.yaml < command line, and key spelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vml import api
from vml.errors import UsageError


def set_train_section(project: Path, *lines: str) -> None:
    """Replace the template's ``train:`` section with ``lines`` (each indented by two)."""
    spec = project / "vergeml.yaml"
    head, sep, _ = spec.read_text(encoding="utf-8").partition("\ntrain:\n")
    assert sep, "the template has a train: section"
    spec.write_text(head + sep + "".join(f"  {line}\n" for line in lines), encoding="utf-8")


def set_top_level(project: Path, key: str, line: str) -> None:
    """Replace the template's top-level line starting with ``key:`` by ``line``."""
    spec = project / "vergeml.yaml"
    text, count = re.subn(rf"(?m)^{re.escape(key)}:.*$", line, spec.read_text(encoding="utf-8"))
    assert count == 1
    spec.write_text(text, encoding="utf-8")


def test_file_beats_defaults_and_command_line_beats_file(project: Path) -> None:
    set_train_section(project, "epochs: 7", "learning-rate: 0.01", "batch-size: 32")

    from_file = api.Project(project).resolve()
    assert from_file["epochs"] == 7
    assert from_file["learning_rate"] == 0.01
    assert from_file["batch_size"] == 32
    # Not in the file: the model's declared default.
    assert from_file["dropout"] == 0.1
    assert from_file["hidden_size"] == 128

    merged = api.Project(project).resolve(["--learning_rate=0.005", "--dropout=0.3"])
    assert merged["learning_rate"] == 0.005  # command line beats the file
    assert merged["dropout"] == 0.3  # command line beats the default
    assert merged["epochs"] == 7  # the file still beats the default
    assert merged["batch_size"] == 32


def test_file_value_beats_declared_default_for_a_model_knob(project: Path) -> None:
    set_train_section(project, "dropout: 0.25")
    assert api.Project(project).resolve()["dropout"] == 0.25
    assert api.Project(project).resolve(["--dropout=0.5"])["dropout"] == 0.5


def test_values_are_converted_to_their_declared_types(project: Path) -> None:
    set_train_section(project, "epochs: 3", "learning-rate: 1e-2", "optimizer: SGD")
    resolved = api.Project(project).resolve(["--batch-size=16"])
    assert resolved["epochs"] == 3 and isinstance(resolved["epochs"], int)
    assert resolved["learning_rate"] == 0.01 and isinstance(resolved["learning_rate"], float)
    assert resolved["batch_size"] == 16 and isinstance(resolved["batch_size"], int)
    assert resolved["optimizer"] == "sgd"


def test_resolve_accepts_a_mapping_of_overrides(project: Path) -> None:
    resolved = api.Project(project).resolve({"learning-rate": 0.02, "epochs": 4})
    assert resolved["learning_rate"] == 0.02
    assert resolved["epochs"] == 4


def test_top_level_random_seed_feeds_random_seed(project: Path) -> None:
    set_top_level(project, "random-seed", "random-seed: 7")
    assert api.Project(project).resolve()["random_seed"] == 7
    assert api.Project(project).resolve(["--random-seed=11"])["random_seed"] == 11


def test_train_section_seed_beats_top_level_seed(project: Path) -> None:
    set_top_level(project, "random-seed", "random-seed: 7")
    set_train_section(project, "random-seed: 9")
    assert api.Project(project).resolve()["random_seed"] == 9


@pytest.mark.parametrize(
    "words",
    [
        ["--learning-rate=0.005"],
        ["--learning_rate=0.005"],
        ["--learningRate=0.005"],
        ["--LEARNING-RATE=0.005"],
        ["--learning-rate", "0.005"],
        ["--learning_rate", "0.005"],
    ],
    ids=lambda words: " ".join(words),
)
def test_command_line_spellings_are_one_key(project: Path, words: list[str]) -> None:
    resolved = api.Project(project).resolve(words)
    assert resolved["learning_rate"] == 0.005
    assert "learningRate" not in resolved and "learning-rate" not in resolved


@pytest.mark.parametrize("key", ["learning-rate", "learning_rate", "learningRate"])
def test_file_spellings_are_one_key(project: Path, key: str) -> None:
    set_train_section(project, f"{key}: 0.02", "epochs: 5")
    resolved = api.Project(project).resolve()
    assert resolved["learning_rate"] == 0.02
    assert resolved["epochs"] == 5


def test_camel_case_top_level_key_in_file(project: Path) -> None:
    set_top_level(project, "random-seed", "randomSeed: 5")
    assert api.Project(project).resolve()["random_seed"] == 5


def test_space_form_mixes_with_equals_form(project: Path) -> None:
    resolved = api.Project(project).resolve(["--epochs", "3", "--batch-size=8", "--optimizer", "sgd"])
    assert (resolved["epochs"], resolved["batch_size"], resolved["optimizer"]) == (3, 8, "sgd")


def test_flag_without_value_is_an_error(project: Path) -> None:
    with pytest.raises(UsageError, match=r"--epochs needs a value"):
        api.Project(project).resolve(["--epochs"])
    with pytest.raises(UsageError, match=r"--epochs needs a value"):
        api.Project(project).resolve(["--epochs", "--batch-size=8"])


def test_same_key_twice_on_the_command_line_is_an_error(project: Path) -> None:
    with pytest.raises(UsageError, match=r"--learning_rate is given twice"):
        api.Project(project).resolve(["--learning-rate=0.1", "--learning_rate=0.2"])


def test_same_key_in_two_spellings_in_the_file_is_an_error(project: Path) -> None:
    set_train_section(project, "learning-rate: 0.1", "epochs: 3", "learning_rate: 0.2")
    lines = (project / "vergeml.yaml").read_text(encoding="utf-8").splitlines()
    second = lines.index("  learning_rate: 0.2") + 1

    with pytest.raises(UsageError) as caught:
        api.Project(project).resolve()
    message = caught.value.message
    assert f"vergeml.yaml:{second}:3:" in message
    assert "duplicate key" in message and "learning_rate" in message
    assert "learning_rate: 0.2" in caught.value.detail


def test_camel_and_hyphen_duplicates_in_file_are_an_error(project: Path) -> None:
    set_train_section(project, "batchSize: 16", "batch-size: 32")
    with pytest.raises(UsageError, match="duplicate key 'batch-size'"):
        api.Project(project).resolve()


# ---- per-command sections (VergeML's list: and predict:) and cache modes ---------------


def load_with(project: Path, text: str):
    """The project's config with ``text`` (YAML) added to its vergeml.yaml."""
    spec = project / "vergeml.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + text, encoding="utf-8")
    return api.Project(project).config


def test_list_and_predict_sections_in_vergeml_spelling(project: Path) -> None:
    config = load_with(
        project,
        "list:\n  sort: test-acc\n  order: desc\n  columns: AI, test-acc, learning-rate\n  output: csv\n"
        "predict:\n  labels: 2\n  compact: true\n  resize: aspect-fill\n",
    )
    assert config.list_sort == "-test_acc"  # --sort's form: descending
    assert config.list_columns == ("instance", "test_acc", "learning_rate")
    assert config.list_format == "csv"
    assert (config.predict_top, config.predict_compact, config.predict_resize) == (2, True, "aspect-fill")
    assert config.predict_format is None


def test_list_and_predict_sections_in_vml_spelling(project: Path) -> None:
    config = load_with(
        project,
        "list:\n  sort: test_loss\n  format: md\n  columns: [instance, created-at]\n"
        "predict:\n  top: 5\n  format: json\n",
    )
    assert (config.list_sort, config.list_format) == ("test_loss", "md")
    assert config.list_columns == ("instance", "training_start")  # VergeML's created-at
    assert (config.predict_top, config.predict_format, config.predict_compact) == (5, "json", None)


@pytest.mark.parametrize(("order", "sort"), [("asc", "training_start"), ("desc", "-training_start")])
def test_list_order_alone_sorts_by_the_start_time(project: Path, order: str, sort: str) -> None:
    assert load_with(project, f"list:\n  order: {order}\n").list_sort == sort


def test_without_sections_the_commands_keep_their_own_defaults(project: Path) -> None:
    config = api.Project(project).config
    assert (config.list_columns, config.list_sort, config.list_format) == (None, None, None)
    assert (config.predict_top, config.predict_format, config.predict_compact, config.predict_resize) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("list:\n  sort: test-acc, val-acc\n", ["vml sorts by one column"]),
        ("list:\n  order: up\n", ["invalid list.order 'up'", "asc or desc"]),
        ("list:\n  sort: -test_acc\n  order: asc\n", ["contradicts"]),
        ("list:\n  sortt: test_acc\n", ["unknown key 'list.sortt'", "did you mean sort"]),
        ("list:\n  output: xml\n", ["invalid list.output 'xml'", "md"]),
        ("list:\n  columns: 3\n", ["list.columns must be a list"]),
        ("predict:\n  labels: 0\n", ["invalid predict.labels 0", "≥ 1"]),
        ("predict:\n  labels: 2\n  top: 3\n", ["one setting"]),
        ("predict:\n  resize: stretch\n", ["'stretch'", "aspect-fit"]),
        ("predict:\n  compact: maybe\n", ["true or false"]),
    ],
)
def test_bad_command_sections_point_at_the_line(project: Path, text: str, needles: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        load_with(project, text)
    message = caught.value.message
    assert re.search(r"vergeml\.yaml:2[2-5]:\d+: ", message), message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("mode", ["auto", "disk", "mem", "none", "mem-in", "disk-in", "Disk-In"])
def test_every_cache_mode_is_accepted(project: Path, mode: str) -> None:
    set_top_level(project, "  cache", f"  cache: {mode}")
    assert api.Project(project).config.data.cache == mode.lower()


def test_an_unknown_cache_mode_lists_them(project: Path) -> None:
    set_top_level(project, "  cache", "  cache: memory-in")
    with pytest.raises(UsageError, match=r"unknown cache mode 'memory-in' \(use one of: .*mem-in, disk-in\)"):
        _ = api.Project(project).config
