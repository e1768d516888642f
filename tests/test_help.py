"""``ml help``: topics, the glossary, term lookup, the train page and command help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import run_ml_in_process_report_torch

GLOSSARY_TERMS = (
    "learning rate",
    "batch size",
    "epoch",
    "optimizer",
    "SGD",
    "momentum",
    "Adam",
    "loss",
    "accuracy",
    "dropout",
    "weight decay",
    "early stopping",
    "overfitting",
    "underfitting",
    "hyperparameter",
    "random seed",
    "validation split",
    "test split",
    "checkpoint",
    "cache",
)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def table_row(page: str, flag: str) -> list[str]:
    """The cells of the markdown table row for ``flag`` on the ``ml help train`` page."""
    rows = [line for line in page.splitlines() if line.startswith(f"| {flag} |")]
    assert len(rows) == 1, (flag, page)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_help_lists_topics(tmp_path: Path, ml) -> None:
    page = ok(ml("help", cwd=tmp_path))
    for topic in ("glossary", "train", "config", "runs", "cache", "dashboard"):
        assert f"**{topic}**" in page, topic


def test_glossary_has_every_required_term(tmp_path: Path, ml) -> None:
    page = ok(ml("help", "glossary", cwd=tmp_path)).lower()
    headings = {line[3:].strip() for line in page.splitlines() if line.startswith("## ")}
    missing = [term for term in GLOSSARY_TERMS if term.lower() not in headings]
    assert missing == []


@pytest.mark.parametrize("term", ["epoch", "weight decay", "validation split", "checkpoint"])
def test_glossary_terms_can_be_looked_up(tmp_path: Path, ml, term: str) -> None:
    page = ok(ml("help", *term.split(), cwd=tmp_path))
    assert page.lower().startswith(f"# {term}")
    assert len(page) > 200


def test_term_spellings_print_the_same_text(tmp_path: Path, ml) -> None:
    pages = [
        ok(ml(*words, cwd=tmp_path))
        for words in (
            ("help", "learning", "rate"),
            ("help", "learning-rate"),
            ("help", "Learning_Rate"),
            ("help", "lr"),  # an alias
        )
    ]
    assert pages[0].startswith("# Learning rate")
    assert "optimizer" in pages[0]
    assert pages[1:] == [pages[0]] * 3


def test_misspelled_term_suggests_the_right_one(tmp_path: Path, ml) -> None:
    result = ml("help", "learnign", "rate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: ")
    assert "'learnign rate'" in first
    assert "did you mean 'learning rate'" in first
    assert "Traceback" not in result.stderr


def test_did_you_mean_lists_each_suggestion_once(tmp_path: Path, ml) -> None:
    result = ml("help", "learnign", "rate", cwd=tmp_path)
    first = result.stderr.splitlines()[0]
    assert first.count("'learning rate'") == 1, first


def test_unknown_topic_without_close_match_points_to_ml_help(tmp_path: Path, ml) -> None:
    result = ml("help", "zzzqqq", cwd=tmp_path)
    assert result.returncode == 2
    assert "ml help" in result.stderr.splitlines()[0]


TRAIN_ROWS = (
    ("--learning-rate", "float", "0.001", "(0, 10]"),
    ("--epochs", "int", "20", ">= 1"),
    ("--batch-size", "int", "64", ">= 1"),
    ("--hidden-size", "int", "128", ">= 1"),
)


def test_help_train_lists_type_default_and_range(tmp_path: Path, ml) -> None:
    page = ok(ml("help", "train", cwd=tmp_path))
    for flag, kind, default, bounds in TRAIN_ROWS:
        name, shown_type, shown_default, shown_range, description = table_row(page, flag)
        assert (shown_type, shown_default, shown_range) == (kind, default, bounds), flag
        assert description, flag
    optimizer = table_row(page, "--optimizer")
    for choice in ("sgd", "momentum", "adam", "adamw", "rmsprop"):
        assert choice in optimizer[3].replace(",", " ").replace("|", " ").split()


def test_help_train_in_a_project_shows_the_file_value(project: Path, ml) -> None:
    spec = project / "vergeml.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("  epochs: 20\n", "  epochs: 37\n"), encoding="utf-8"
    )
    sub = project / "data"  # found from a subdirectory too

    page = ok(ml("help", "train", cwd=sub))

    assert "37" in table_row(page, "--epochs")[2]
    assert "37" not in table_row(page, "--batch-size")[2]


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ("new", "Create a project"),
        ("train", "Train the project's model"),
        ("list", "List the project's runs"),
        ("help", "Show help topics"),
    ],
)
def test_every_command_has_help(tmp_path: Path, ml, command: str, description: str) -> None:
    page = ok(ml(command, "--help", cwd=tmp_path))
    assert page.startswith(f"Usage: ml {command}")
    assert description in page
    assert list(tmp_path.glob("*/vergeml.yaml")) == []  # --help does nothing else


def test_top_level_help_lists_the_commands(tmp_path: Path, ml) -> None:
    page = ok(ml("--help", cwd=tmp_path))
    for command in ("new", "train", "list", "help"):
        assert command in page


def test_help_does_not_import_torch(tmp_path: Path) -> None:
    stdout, imported_torch = run_ml_in_process_report_torch(["help", "train"], tmp_path)
    assert "--learning-rate" in stdout
    assert not imported_torch


def test_a_model_without_hyperparameters_says_so(tmp_path: Path, ml) -> None:
    page = ok(ml("help", "linear", cwd=tmp_path))
    assert "| hyperparameter |" not in page
    assert "No hyperparameters of its own: it trains with the ones in `ml help train`." in page
