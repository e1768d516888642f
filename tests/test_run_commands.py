"""Commands on a trained run: resume, test, predict, export."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import image_project

from vml import api
from vml.errors import UsageError

DEADLINE_SECONDS = 120


def train(project: Path, *args: str, name: str):
    out = io.StringIO()
    result = api.Project(project).train_in_process(list(args), name=name, stderr=out)
    assert result.status == "finished", out.getvalue()
    return result


def cancel_after_epoch(project: Path, name: str, epoch: int, *args: str) -> None:
    """Start a real ``ml train``, SIGINT it once epoch ``epoch`` has ended."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vml", "train", f"--name={name}", *args],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    marker = f"Epoch:[{epoch:3d}/"
    for line in process.stderr:
        if line.startswith(marker) and "epoch time" in line:
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "no epoch summary before the deadline"
    process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == 130


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(project: Path, ml) -> None:
    args = ("--epochs=6", "--lr-schedule=step", "--lr-step-epochs=2", "--early-stopping-patience=20")
    train(project, *args, name="whole")
    cancel_after_epoch(project, "broken", 2, *args)
    assert api.Project(project).find_run("broken")["status"] == "cancelled"

    result = ml("resume", "brok", cwd=project)  # a unique prefix names the run
    assert result.returncode == 0, result.stderr
    assert "broken: finished" in result.stdout

    whole = torch.load(project / "trainings" / "whole" / "last.pt", weights_only=True)
    resumed = torch.load(project / "trainings" / "broken" / "last.pt", weights_only=True)
    assert whole["epoch"] == resumed["epoch"] == 6
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][key]), key
    runs = {r["instance"]: r for r in api.Project(project).list_runs()}
    assert runs["broken"]["test_loss"] == runs["whole"]["test_loss"]
    assert runs["broken"]["status"] == "finished"


def test_resume_and_test_refuse_changed_data_before_preparing_it(project: Path, ml) -> None:
    cancel_after_epoch(project, "moved", 1, "--epochs=20")
    digits = project / "data" / "digits.csv"
    digits.write_text(digits.read_text() + digits.read_text().splitlines()[-1] + "\n")
    entries = sorted(p.name for p in (project / ".cache").iterdir())
    for command, purpose in (("resume", "resume"), ("test", "testing it")):
        result = ml(command, "moved", cwd=project)
        assert result.returncode == 2
        assert result.stderr == (
            "ml: error: the data or preprocessing changed since run 'moved' started "
            f"({purpose} needs the same data; undo the change or start a new run)\n"
        )
    # Nothing was prepared or cached for the changed data.
    assert sorted(p.name for p in (project / ".cache").iterdir()) == entries
    assert api.Project(project).find_run("moved")["status"] == "cancelled"


def test_resume_epochs_continues_a_finished_run_on_the_same_curves(project: Path, ml) -> None:
    train(project, "--epochs=2", "--hidden-size=16", "--lr-schedule=cosine", name="done")
    finished = ml("resume", "done", cwd=project)
    assert (finished.returncode, finished.stderr) == (
        2,
        "ml: error: run 'done' already finished after 2 epochs "
        "(ml resume done --epochs N continues it to N > 2 epochs; ml train starts a new one)\n",
    )
    missing = ml("resume", "dnoe", cwd=project)
    assert missing.returncode == 3 and "did you mean done?" in missing.stderr

    result = ml("resume", "done", "--epochs", "4", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "done: extended from 2 to 4 epochs\n" in result.stderr
    project_api = api.Project(project)
    row = project_api.find_run("done")
    assert (row["status"], row["epoch"], row["epochs"], row["hyperparameters"]["epochs"]) == (
        "finished",
        4,
        4,
        4,
    )
    run = project_api.run("done")
    val_acc = [(point["epoch"], point["value"]) for point in run.metrics("val_acc")]
    assert [epoch for epoch, _ in val_acc] == [1, 2, 3, 4]
    # The cosine schedule is spread over the 4 epochs: epoch 3 gets half the base rate.
    rates = {point["epoch"]: point["value"] for point in run.metrics("lr")}
    assert rates[3] == pytest.approx(0.001 * 0.5)
    # best.pt holds the best of all 4 epochs, and the run was tested again on it.
    best_epoch = max(val_acc, key=lambda point: point[1])[0]
    assert row["best_epoch"] == best_epoch
    assert torch.load(project / "trainings" / "done" / "best.pt", weights_only=True)["epoch"] == best_epoch
    assert (
        f"done: finished, test_acc {row['test_acc']:.4f}, test_loss {row['test_loss']:.4f}" in result.stdout
    )
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        events = db.execute("select kind, message from events where run_id = ?", [row["id"]]).fetchall()
    assert ("extended", "extended from 2 to 4 epochs") in events
    config = yaml.safe_load((project / "trainings" / "done" / "config.yaml").read_text())
    assert config["train"]["epochs"] == 4

    refused = ml("resume", "done", "--epochs", "3", cwd=project)
    message = (
        "--epochs 3 is not more than the 4 epochs run 'done' has done (continue it with --epochs 5 or more)"
    )
    assert (refused.returncode, refused.stderr) == (2, f"ml: error: {message}\n")
    with pytest.raises(UsageError, match=re.escape(message)):  # vml.Run says the same
        run.resume(epochs=3)
    assert project_api.find_run("done")["status"] == "finished"


def test_test_reproduces_the_recorded_scores(project: Path, ml) -> None:
    result = train(project, "--epochs=2", name="scored")
    shown = json.loads(ml("test", "@last", "--format", "json", cwd=project).stdout)
    assert shown["instance"] == "scored"
    assert shown["test_acc"] == pytest.approx(result.test_acc)
    assert shown["test_loss"] == pytest.approx(result.test_loss)
    refused = ml("test", "scored", "--format", "csv", cwd=project)
    assert (refused.returncode, refused.stderr) == (
        2,
        "ml: error: unknown format 'csv' (use one of: table, json)\n",
    )


def test_predict_csv_rows_prints_top_labels(project: Path, ml, tmp_path: Path) -> None:
    train(project, "--epochs=5", name="reader")
    with (project / "data" / "digits.csv").open() as handle:
        rows = list(csv.reader(handle))
    sample = tmp_path / "rows.csv"
    sample.write_text("\n".join(",".join(r) for r in rows[:21]) + "\n")
    result = ml("predict", "reader", str(sample), "--top", "2", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert len(predictions) == 20
    assert all(len(p["predictions"]) == 2 for p in predictions)
    right = sum(
        p["predictions"][0]["label"] == row[-1] for p, row in zip(predictions, rows[1:21], strict=True)
    )
    assert right >= 16
    first = predictions[0]["predictions"]
    assert first[0]["probability"] >= first[1]["probability"] and 0 < first[0]["probability"] <= 1


def test_predict_images(tmp_path: Path, ml) -> None:
    project = image_project(tmp_path / "images")
    train(project, "--epochs=10", "--learning-rate=0.005", name="eyes")
    files = sorted((project / "samples" / "3").glob("*.png"))[:5]
    result = ml("predict", "eyes", *map(str, files), "--top", "1", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    labels = [p["predictions"][0]["label"] for p in json.loads(result.stdout)]
    assert labels.count("3") >= 3
    wrong = ml("predict", "eyes", str(project / "vergeml.yaml"), cwd=project)
    assert wrong.returncode == 2 and "not an image" in wrong.stderr
    missing = ml("predict", "eyes", "nowhere.png", cwd=project)
    assert (missing.returncode, missing.stderr) == (
        2,
        "ml: error: no such file: nowhere.png (check the path)\n",
    )


def test_export_loads_and_predicts_without_vml(project: Path, ml, tmp_path: Path) -> None:
    train(project, "--epochs=3", name="shipped")
    target = tmp_path / "export"
    result = ml("export", "shipped", str(target), cwd=project)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in target.iterdir()} >= {"model.pt2", "weights.pt", "labels.json", "preprocess.json"}
    data = api.Project(project)._prepare_for(
        api.Project(project).find_run("shipped"), io.StringIO(), "export"
    )
    np.save(tmp_path / "x.npy", np.array(data.x("test")[:8]))
    code = (
        "import sys, json, numpy, torch\n"
        f"program = torch.export.load({str(target / 'model.pt2')!r}).module()\n"
        f"x = torch.from_numpy(numpy.load({str(tmp_path / 'x.npy')!r}))\n"
        f"labels = json.load(open({str(target / 'labels.json')!r}))\n"
        "print(json.dumps([labels[i] for i in program(x).argmax(1).tolist()]))\n"
        "assert not any(m == 'vml' or m.startswith('vml.') for m in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    model_predictions = json.loads(loaded.stdout)
    expected = [data.classes[i] for i in data.y("test")[:8]]
    assert sum(a == b for a, b in zip(model_predictions, expected, strict=True)) >= 6
    again = ml("export", "shipped", str(target), cwd=project)
    assert again.returncode == 2 and "not empty" in again.stderr
