"""The user documentation stays true to the CLI: every command's help is documented,
README's set-up commands are what CI runs, and every `ml help TOPIC` named exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import run_ml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CLI_DOC = DOCS / "cli.md"
GETTING_STARTED = DOCS / "getting-started.md"
COMMANDS = ("new", "train", "list", "help")
TRAIN_SETUP_COMMENT = "# set up and train the demo project"
TEST_SETUP_COMMENT = "# set up and run the tests"


def ml(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the real ``ml`` (as ``python -m vml``) outside any project."""
    return run_ml(*args, cwd=cwd, home=cwd, columns=100, timeout=120)


def description(help_text: str) -> str:
    """The first line of a command's docstring in its ``--help`` output."""
    lines = help_text.splitlines()
    usage = next(i for i, line in enumerate(lines) if line.startswith("Usage:"))
    for line in lines[usage + 1 :]:
        if line.strip():
            return line.strip()
    return ""


def line_after(text: str, marker: str) -> str:
    """The line following the first line that starts with ``marker``."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip().startswith(marker):
            return lines[i + 1].strip()
    raise AssertionError(f"no line starting with {marker!r}")


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_is_documented(command: str, tmp_path: Path) -> None:
    result = ml(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = description(result.stdout)
    assert line, f"ml {command} has no docstring help"
    assert line in CLI_DOC.read_text(encoding="utf-8"), (
        f"docs/cli.md lacks `ml {command} --help`'s description {line!r}; "
        f"paste the output of `COLUMNS=100 ml {command} --help`"
    )


def test_every_command_has_a_section_in_cli_doc(tmp_path: Path) -> None:
    result = ml("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:", 1)[1]
    commands = re.findall(r"^\s{2}(\S+)\s", listed, flags=re.MULTILINE)
    assert set(COMMANDS) <= set(commands)
    doc = CLI_DOC.read_text(encoding="utf-8")
    for command in commands:
        assert f"\n## ml {command}\n" in doc, f"docs/cli.md has no section '## ml {command}'"


def test_readme_setup_commands_are_documented_and_run_by_ci() -> None:
    readme = README.read_text(encoding="utf-8")
    train = line_after(readme, TRAIN_SETUP_COMMENT)
    tests = line_after(readme, TEST_SETUP_COMMENT)
    for command in (train, tests):
        assert command.startswith("python3 -m venv .venv && "), command
        assert "-c constraints.txt" in command, command
    assert "ml train" in train
    assert "pytest" in tests
    guide = GETTING_STARTED.read_text(encoding="utf-8")
    assert train in guide and tests in guide, "docs/getting-started.md must show README's set-up commands"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in (line.strip() for line in ci), ".ci/run must run exactly README's test command"


def test_exit_codes_are_documented() -> None:
    from vml.errors import ExitCode

    doc = CLI_DOC.read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"\n| {int(code)} | " in doc, f"docs/cli.md's exit-code table lacks {int(code)}"


# `ml help weight decay` in backticks, or a `$ ml help learning rate` console line that
# is not a deliberate mistake (one answered by an `ml: error:` line).
_TOPIC = r"ml help ([a-z][a-z0-9_-]*(?: [a-z][a-z0-9_-]*)*)"
_BACKTICKED = re.compile(rf"`{_TOPIC}`")
_CONSOLE = re.compile(rf"^\$ {_TOPIC}[ \t]*\n(?!ml: error:)", re.MULTILINE)


def named_topics() -> set[str]:
    topics: set[str] = set()
    for path in (README, *sorted(DOCS.glob("*.md"))):
        text = path.read_text(encoding="utf-8")
        topics |= set(_BACKTICKED.findall(text)) | set(_CONSOLE.findall(text))
    return topics


def test_docs_name_help_topics() -> None:
    topics = named_topics()
    assert {"train", "glossary", "cache"} <= topics, sorted(topics)


@pytest.mark.parametrize("topic", sorted(named_topics()))
def test_named_help_topic_exists(topic: str, tmp_path: Path) -> None:
    result = ml("help", *topic.split(), cwd=tmp_path)
    assert result.returncode == 0, f"`ml help {topic}` is named in the docs but fails: {result.stderr}"
    assert result.stdout.strip()
