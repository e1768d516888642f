"""Cancelling a real ``ml train`` process with a signal: it stops promptly at a batch
boundary, records the run as cancelled and keeps a loadable best.pt."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

DEADLINE = 60.0
STEP_LINE = re.compile(r"^Epoch:\[\s*(\d+)/\s*(\d+)\], step:\[\s*(\d+)/\s*(\d+)\]")


class Training:
    """``ml train`` running in the background, its stderr read line by line."""

    def __init__(self, project: Path, home: Path, *args: str) -> None:
        home.mkdir(exist_ok=True)
        env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
        env.pop("VML_DEBUG", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vml", "train", *args],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, predicate, what: str) -> re.Match | str:
        """Block on stderr lines until one satisfies ``predicate`` (returning its
        truthy result), failing after DEADLINE seconds or if stderr ends first."""
        deadline = time.monotonic() + DEADLINE
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"ml train exited before {what}:\n" + "\n".join(self.lines[-20:]))
            self.lines.append(line)
            if found := predicate(line):
                return found
        self.kill()
        raise AssertionError(f"no {what} within {DEADLINE}s:\n" + "\n".join(self.lines[-20:]))

    def finish(self) -> tuple[int, str]:
        """Wait (bounded) for exit; return the exit code and stdout."""
        try:
            code = self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("ml train did not exit within the deadline after the signal") from None
        stdout = self.process.stdout.read()
        while (line := self._queue.get(timeout=DEADLINE)) is not None:
            self.lines.append(line)
        return code, stdout

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_row(project: Path, name: str) -> dict:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("select * from runs where name = ?", [name]).fetchone())
        row["val_acc_epochs"] = [
            e
            for (e,) in db.execute(
                "select epoch from metrics where run_id = ? and key = 'val_acc' order by epoch", [row["id"]]
            )
        ]
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    return row


def test_sigint_after_an_epoch_cancels_and_keeps_best(project: Path, tmp_path: Path) -> None:
    training = Training(project, tmp_path / "home", "--epochs=500", "--name=stop-me")
    try:
        training.wait_for_line(lambda line: "epoch time:" in line, "first epoch summary")
        sent = time.monotonic()
        training.process.send_signal(signal.SIGINT)
        code, stdout = training.finish()
    finally:
        training.kill()
    assert time.monotonic() - sent < 30  # stops at the next batch, not after 500 epochs

    assert code == 130
    assert stdout.strip().splitlines()[-1].startswith("stop-me: cancelled")
    assert "kept in best.pt" in stdout
    assert any("stopping after this batch" in line for line in training.lines)
    assert not any("finished" in line for line in training.lines)

    row = run_row(project, "stop-me")
    assert row["status"] == "cancelled"
    assert row["ended_at"] is not None and row["ended_at"] >= row["started_at"]
    assert 1 <= row["epoch"] < 500
    assert row["test_acc"] is None and row["test_loss"] is None
    assert row["val_acc_epochs"] == list(range(1, row["epoch"] + 1))

    folder = project / "trainings" / "stop-me"
    best = torch.load(folder / "best.pt", weights_only=True)
    assert 1 <= best["epoch"] <= row["epoch"]
    assert best["epoch"] == row["best_epoch"]
    last = torch.load(folder / "last.pt", weights_only=True)
    assert last["epoch"] == row["epoch"]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert (folder / "log.txt").read_text().splitlines()[-1].startswith("cancelled")


def test_signal_mid_epoch_ends_cancelled_never_finished(project: Path, tmp_path: Path) -> None:
    training = Training(project, tmp_path / "home", "--epochs=500", "--name=mid-epoch")
    try:

        def mid_epoch_step(line: str):
            m = STEP_LINE.match(line)
            return m if m and int(m[1]) >= 2 and int(m[3]) < int(m[4]) else None

        step = training.wait_for_line(mid_epoch_step, "a mid-epoch step line of epoch 2 or later")
        training.process.send_signal(signal.SIGINT)
        code, stdout = training.finish()
    finally:
        training.kill()

    assert code == 130
    assert "mid-epoch: cancelled" in stdout and "finished" not in stdout
    row = run_row(project, "mid-epoch")
    assert row["status"] == "cancelled"
    assert row["ended_at"] is not None
    # Only whole epochs count: the interrupted one is neither recorded nor summarised.
    done = row["epoch"]
    assert int(step[1]) - 1 <= done < 500
    assert row["val_acc_epochs"] == list(range(1, done + 1))
    summaries = [line for line in training.lines if "epoch time:" in line]
    assert len(summaries) == done
    last = torch.load(project / "trainings" / "mid-epoch" / "last.pt", weights_only=True)
    assert last["epoch"] == done
    best = torch.load(project / "trainings" / "mid-epoch" / "best.pt", weights_only=True)
    assert best["epoch"] <= done


def test_sigterm_also_cancels(project: Path, tmp_path: Path) -> None:
    training = Training(project, tmp_path / "home", "--epochs=500", "--name=terminated")
    try:
        training.wait_for_line(lambda line: "epoch time:" in line, "first epoch summary")
        training.process.send_signal(signal.SIGTERM)
        code, stdout = training.finish()
    finally:
        training.kill()
    assert code != 0
    assert "terminated: cancelled" in stdout
    row = run_row(project, "terminated")
    assert row["status"] == "cancelled" and row["ended_at"] is not None
    assert row["epoch"] < 500


def test_cancel_while_the_run_writes_its_record_reads_cancelled(
    project: Path, tmp_path: Path, ml, monkeypatch
) -> None:
    # A git that hangs: the worker is inside repro.json's git calls, after the run
    # reads running and before its training loop, when ml cancel's SIGINT comes.
    tools = tmp_path / "bin"
    tools.mkdir()
    marker = tmp_path / "git-called"
    (tools / "git").write_text(f'#!/bin/sh\ntouch "{marker}"\nexec sleep 60\n')
    (tools / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    started = ml("train", "--detach", "--epochs=2", "--name=early", cwd=project)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + DEADLINE
    while not marker.exists():
        assert time.monotonic() < deadline, "the worker never ran git"
        time.sleep(0.05)
    assert run_row(project, "early")["status"] == "running"
    cancelled = ml("cancel", "early", cwd=project)
    assert cancelled.returncode == 0, cancelled.stderr
    row = run_row(project, "early")
    assert row["status"] == "cancelled" and row["ended_at"] is not None, row["error"]
    assert row["epoch"] == 0
