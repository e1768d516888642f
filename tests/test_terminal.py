"""``ml train`` in a real terminal (tmux): the live progress bar, and Ctrl-C."""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

POLL_SECONDS = 0.1


def wait_until(predicate, deadline_seconds: float, what: str, screen=None):
    """Poll ``predicate`` until it returns something truthy or the deadline passes
    (then say what ``screen()`` shows)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(POLL_SECONDS)
    shown = f"; the screen:\n{screen()}" if screen else ""
    raise AssertionError(f"timed out after {deadline_seconds}s waiting for {what}{shown}")


class Tmux:
    def __init__(self, socket: Path) -> None:
        self.base = ["tmux", "-S", str(socket)]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def start_ml(self, project: Path, args: str, done: Path, size: tuple[int, int]) -> None:
        """``ml ARGS`` in project, in a new session of ``size``; its exit code goes to ``done``."""
        command = (
            f"cd {shlex.quote(str(project))} && {shlex.quote(sys.executable)} -m vml {args}; "
            f"echo $? > {shlex.quote(str(done))}"
        )
        self("new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]), command)
        self("set-option", "-t", "t", "remain-on-exit", "on")


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(tmp_path / f"tmux-{uuid.uuid4().hex[:8]}")
    yield server
    subprocess.run([*server.base, "kill-server"], capture_output=True)


def test_progress_bar_then_ctrl_c_cancels(project: Path, tmux: Tmux, tmp_path: Path) -> None:
    done = tmp_path / "exit-code"
    tmux.start_ml(project, "train --epochs=400 --name=term-run", done, (120, 30))

    def bar_shown() -> str | None:
        screen = tmux.screen()
        return screen if "epoch 1/400" in screen and "━" in screen else None

    screen = wait_until(bar_shown, 60, "the progress bar")
    assert "loss" in screen

    best = project / "trainings" / "term-run" / "best.pt"
    wait_until(best.exists, 60, "a first best.pt")
    tmux("send-keys", "-t", "t", "C-c")

    wait_until(done.exists, 60, "ml train to exit after Ctrl-C")
    wait_until(lambda: done.read_text().strip(), 5, "the exit code to be written")
    assert done.read_text().strip() == "130"
    final = tmux.screen()
    assert "term-run: cancelled" in final
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        status, epoch = db.execute("select status, epoch from runs where name = 'term-run'").fetchone()
    assert status == "cancelled"
    assert epoch < 400


def test_dashboard_in_a_real_terminal_shows_runs_and_quits(project: Path, tmux: Tmux, tmp_path: Path) -> None:
    from vml import api

    for name in ("term-a", "term-b"):
        assert api.Project(project).train_in_process(["--epochs=1"], name=name).status == "finished"
    done = tmp_path / "exit-code"
    tmux.start_ml(project, "dashboard", done, (100, 24))

    def both_shown() -> str | None:
        screen = tmux.screen()
        wanted = ("term-a", "term-b", "finished", "100.0%", "Filter")
        return screen if all(text in screen for text in wanted) else None

    wait_until(both_shown, 60, "the runs, their progress and the key bindings")
    tmux("send-keys", "-t", "t", "/")
    # Keys that arrive together go to the widget focused when they arrive (Textual
    # routes them at once): type once the box is there, as a person would.
    wait_until(lambda: "filter: text" in tmux.screen(), 30, "the filter box", tmux.screen)
    tmux("send-keys", "-t", "t", "-l", "term-b")
    tmux("send-keys", "-t", "t", "Enter")
    wait_until(
        lambda: "term-a" not in tmux.screen() and "term-b" in tmux.screen(), 30, "the filter", tmux.screen
    )
    tmux("send-keys", "-t", "t", "q")
    wait_until(lambda: done.exists() and done.read_text().strip(), 30, "the dashboard to quit")
    assert done.read_text().strip() == "0"


def test_ml_plot_draws_the_curves_to_the_terminals_size(project: Path, tmux: Tmux, tmp_path: Path) -> None:
    import io

    from vml import api

    result = api.Project(project).train_in_process(["--epochs=1"], name="plotted", stderr=io.StringIO())
    assert result.status == "finished"
    done = tmp_path / "done"
    tmux.start_ml(project, "plot roc plotted --class 3", done, (90, 28))
    wait_until(done.exists, 60, "ml plot to end", tmux.screen)
    # With the lines scrolled up by tmux's "Pane is dead" note.
    screen = tmux("capture-pane", "-p", "-t", "t", "-S", "-50")
    assert done.read_text().strip() == "0", screen
    lines = screen.splitlines()
    assert any("ROC of plotted" in line for line in lines), screen
    assert any("3 (AUC 0." in line for line in lines) and any("chance" in line for line in lines)
    assert "false positive rate" in screen
    assert sum(any("\u2800" < ch <= "\u28ff" for ch in line) for line in lines) >= 5  # the braille curve
    assert max(len(line.rstrip()) for line in lines) <= 90
