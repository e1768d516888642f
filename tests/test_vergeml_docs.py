"""docs/vergeml.md stays true: its session (a VergeML-style project using every op
option, VergeML's command forms, a flexNN runs file) runs as written, and every error
and note line it shows is what ml prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers import run_ml

DOC = Path(__file__).resolve().parents[1] / "docs" / "vergeml.md"
# A file to write ("Save as `F`:" then a yaml block) or a console block, in page order.
STEP = re.compile(r"Save as `([^`]+)`:[^\n]*\n\n```yaml\n(.*?)```|```console\n(.*?)```", re.DOTALL)
BOX = set("─│┌┐└┘├┤┬┴┼ ")


def commands(block: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of a console block and the output lines shown under it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def checked(line: str) -> bool:
    """Lines that do not change from run to run: ml's errors and notes, and lines
    without numbers (headers, fixed messages); not "..." or a table's rule."""
    if line.startswith(("ml: error:", "ml: note:")):
        return True
    return (
        bool(line.strip()) and line.strip() != "..." and not set(line) <= BOX and not re.search(r"\d", line)
    )


def squeeze(text: str) -> str:
    return " ".join(text.split())


def test_the_vergeml_page_runs_as_written(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path
    home.mkdir()
    ran = 0
    for match in STEP.finditer(DOC.read_text(encoding="utf-8")):
        name, content, console = match.groups()
        if name is not None:
            (cwd / name).write_text(content, encoding="utf-8")
            continue
        for command, shown in commands(console):
            words = shlex.split(command)
            if words[0] == "cd":
                cwd = cwd / words[1]
                continue
            assert words[0] == "ml", command
            result = run_ml(*words[1:], cwd=cwd, home=home, columns=100, timeout=600)
            printed = squeeze(result.stdout + "\n" + result.stderr)
            wanted = 2 if any(line.startswith("ml: error:") for line in shown) else 0
            assert result.returncode == wanted, f"$ {command}\n{result.stdout}\n{result.stderr}"
            for line in filter(checked, shown):
                assert squeeze(line) in printed, (
                    f"$ {command}: the page shows {line!r}; ml printed:\n{result.stdout}\n{result.stderr}"
                )
            ran += 1
    assert ran >= 8
