"""A disk that fills while a run writes: a real small tmpfs, mounted by the test (root
only; elsewhere the tests skip and say why)."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fill

from vml import api
from vml.atomic import write_text_atomic
from vml.data.cache import CacheStore
from vml.errors import DiskFullError
from vml.store import RunStore
from vml.train.checkpoint import save_checkpoint
from vml.train.runner import RESERVE_BYTES, RunLog

HIDDEN = 2048
# The demo's MLP (64 inputs, one hidden layer, 10 classes): best.pt holds the weights,
# last.pt the weights and Adam's two moments. Measured: 619,669 and 1,862,759 bytes.
PARAMS = 64 * HIDDEN + HIDDEN + HIDDEN * 10 + 10
BEST_BYTES, LAST_BYTES = 4 * PARAMS, 12 * PARAMS
# What else a run puts on the disk before its second epoch's checkpoints: the cache
# entry (480 KB), the store and its WAL, config.yaml, repro.json, log.txt. Measured:
# 750 to 880 KB over runs here. The WAL grows by a page a heartbeat, so a slower
# machine takes more: the test holds while it stays within 600 KB of the aim. And the
# room the run holds to record its end (.disk-reserve).
OTHER_BYTES = 880_000 + RESERVE_BYTES


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_one(small_disk: Path, monkeypatch) -> None:
    monkeypatch.chdir(small_disk)  # files are named from the working directory, as ml names them
    config, best = small_disk / "config.yaml", small_disk / "best.pt"
    write_text_atomic(config, "epochs: 3\n")
    save_checkpoint({"model": torch.ones(10)}, best)
    fill(small_disk, leave=256 * 1024)

    with pytest.raises(DiskFullError) as text_error:
        write_text_atomic(config, "x" * (1 << 20))
    with pytest.raises(DiskFullError) as checkpoint_error:
        save_checkpoint({"model": torch.zeros(1 << 18)}, best)  # 1 MiB of weights

    assert str(text_error.value).startswith(
        f"disk full while writing config.yaml (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert str(checkpoint_error.value).startswith(
        f"disk full while writing best.pt (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert config.read_text() == "epochs: 3\n"
    assert torch.equal(torch.load(best, weights_only=True)["model"], torch.ones(10))
    assert temporary_files(small_disk) == []


def test_a_cache_entry_that_does_not_fit_leaves_nothing_a_later_run_would_use(
    small_disk: Path, monkeypatch
) -> None:
    monkeypatch.chdir(small_disk)
    cache = CacheStore(small_disk / ".cache")
    fingerprint = "0" * 32
    fill(small_disk, leave=256 * 1024)

    with pytest.raises(DiskFullError) as error:
        cache.save(fingerprint, {"x_train": np.zeros(1 << 18, dtype=np.float32)}, {})

    assert str(error.value).startswith(
        f"disk full while writing .cache/{fingerprint} (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert cache.load(fingerprint) is None
    assert list(cache.directory.iterdir()) == []


def test_a_run_that_fills_the_disk_fails_with_one_line_and_resumes_once_there_is_room(
    small_disk: Path, ml
) -> None:
    project = api.create_project(small_disk / "demo")
    # Epoch 1 writes best.pt and last.pt; epoch 2 can replace best.pt (it needs
    # BEST_BYTES free) but not last.pt (LAST_BYTES): leave the middle of the two free.
    filler = fill(small_disk, leave=BEST_BYTES + LAST_BYTES + OTHER_BYTES + (BEST_BYTES + LAST_BYTES) // 2)
    folder = project / "trainings" / "full"

    failed = ml("train", "--epochs=2", f"--hidden-size={HIDDEN}", "--name=full", cwd=project)

    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    message = failed.stderr.splitlines()[-1]
    assert message.startswith(
        "ml: error: disk full while writing trainings/full/last.pt (about 1.8 MiB needed, "
    )
    assert message.endswith(f" free on {small_disk}); free some space there, then: ml resume full")
    with RunStore(project / "trainings" / "vml.db") as store:
        row = store.run_by_name("full")
    assert row["status"] == "failed" and row["error"] == message.removeprefix("ml: error: ")
    assert f"failed: {row['error']}" in (folder / "log.txt").read_text()
    assert torch.load(folder / "best.pt", weights_only=True)["epoch"] in (1, 2)
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 1
    assert temporary_files(small_disk) == []
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)

    filler.unlink()
    # In this process: a second `ml` would cost the suite another interpreter and torch
    # import (5 s on a loaded 2-core machine).
    resumed = api.Project(project).resume("full", stderr=io.StringIO())

    assert resumed.status == "finished"
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2


# The demo's MLP, 8 wide, and another program filling the disk: at the run's first
# training step its forward writes the file VML_TEST_FILL names until no byte is free.
FILLING_NET = """
import math
import os

from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.ReLU(), nn.Linear(8, num_classes)
        )

    def forward(self, x):
        filler = os.environ.get("VML_TEST_FILL")
        if filler and self.training and len(x) > 2 and not os.path.exists(filler):
            with open(filler, "wb", buffering=0) as handle:
                try:
                    while handle.write(bytes(1 << 20)):
                        pass
                except OSError:  # no space left: what this is for
                    pass
        return self.layers(x)
"""


def test_a_store_that_cannot_write_ends_the_run_failed_and_works_again_once_there_is_room(
    small_disk: Path, ml, monkeypatch
) -> None:
    project = api.create_project(small_disk / "demo")
    (project / "net.py").write_text(FILLING_NET, encoding="utf-8")
    spec = project / "vergeml.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("model: mlp\n", "model: ./net.py:Net\n"))
    monkeypatch.chdir(project)
    monkeypatch.setenv("VML_TEST_FILL", str(small_disk / "filler"))
    folder = project / "trainings" / "full"

    # The first step's metrics are the first write after the disk filled: SQLite says
    # "database or disk is full". The run gives back the room it held and records why.
    with pytest.raises(DiskFullError) as error:
        api.Project(project).train_in_process(["--epochs=2"], name="full", stderr=io.StringIO())

    assert str(error.value) == (
        f"disk full while writing trainings/vml.db (0 B free on {small_disk}); "
        "free some space there, then: ml rerun full"
    )
    with RunStore(project / "trainings" / "vml.db") as store:
        row = store.run_by_name("full")
    assert row["status"] == "failed" and row["error"] == str(error.value)
    assert (folder / "log.txt").read_text().endswith(f"failed: {error.value}\n")
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "log.txt", "repro.json"]
    with contextlib.closing(sqlite3.connect(project / "trainings" / "vml.db")) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)

    # With no byte free SQLite cannot even open the store ("disk I/O error": its
    # shared-memory file cannot be made): every command says so in one line.
    topped_up = fill(small_disk, leave=0, name="more")
    listed = ml("list", cwd=project)
    assert (listed.returncode, listed.stderr) == (
        1,
        f"ml: error: disk full while writing trainings/vml.db (0 B free on {small_disk}); "
        "free some space there, then run the command again\n",
    )

    topped_up.unlink()
    assert api.Project(project).run("full").status() == "failed"


def test_a_log_line_that_does_not_fit_names_the_log(small_disk: Path, monkeypatch) -> None:
    # In a run the log is rarely the first file to find the disk full: a line goes into
    # the last, half-written block of log.txt as long as the block has room, while the
    # store and the checkpoints need new blocks at once. What the run does with the
    # error is what it does with any disk-full error (the tests above).
    monkeypatch.chdir(small_disk)
    filler = fill(small_disk, leave=0)

    with RunLog(small_disk) as log:  # a new, empty log: its first line needs a block
        with pytest.raises(DiskFullError) as error:
            log.line("run full: started")
        filler.unlink()
        log.line("finished")

    assert str(error.value) == (
        f"disk full while writing log.txt (about 18 B needed, 0 B free on {small_disk}); "
        "free some space there, then run the command again"
    )
    assert (small_disk / "log.txt").read_text().endswith("finished\n")


def test_test_plot_and_export_on_a_full_disk_leave_no_half_file_and_work_once_there_is_room(
    small_disk: Path, monkeypatch
) -> None:
    project = api.create_project(small_disk / "demo")
    monkeypatch.chdir(project)
    runs = api.Project(project)
    runs.train_in_process(["--epochs=1", "--hidden-size=8"], name="tiny", stderr=io.StringIO())
    folder = project / "trainings" / "tiny"
    evaluation = (folder / "evaluation.json").read_bytes()
    # A dashboard holds the store open, as here: opening it again then needs no space.
    dashboard = RunStore(project / "trainings" / "vml.db")
    # 24 KiB: room for predictions.npz again (16 KiB), not for evaluation.json or the
    # ROC curve as a PNG (62 KiB each); an export stops at its fourth or fifth file.
    filler = fill(small_disk, leave=24 * 1024)
    free = f"24.0 KiB free on {small_disk}); free some space there, then run the command again"

    with pytest.raises(DiskFullError) as tested:
        runs.test("tiny", stderr=io.StringIO())
    with pytest.raises(DiskFullError) as plotted:
        runs.plot("tiny", "roc", out="roc.png")
    with pytest.raises(DiskFullError) as exported:
        runs.export("tiny", "export")
    dashboard.close()

    assert str(tested.value).startswith("disk full while writing trainings/tiny/evaluation.json (about ")
    assert str(plotted.value).startswith("disk full while writing roc.png (about ")
    assert re.fullmatch(
        rf"disk full while writing export/[\w.]+ \(about [\d.]+ KiB needed, {re.escape(free)}",
        str(exported.value),
    )
    assert all(str(e.value).endswith(f" KiB needed, {free}") for e in (tested, plotted))
    assert (folder / "evaluation.json").read_bytes() == evaluation
    assert not (project / "roc.png").exists() and not (project / "export").exists()
    assert temporary_files(small_disk) == []

    filler.unlink()
    assert runs.test("tiny", stderr=io.StringIO())["instance"] == "tiny"
    runs.plot("tiny", "roc", out="roc.png")
    exported_files = runs.export("tiny", "export")
    assert (project / "roc.png").stat().st_size > 0
    assert sorted(Path(f).name for f in exported_files) == sorted(
        p.name for p in (project / "export").iterdir()
    )
