"""``ml export --format tensorboard`` and ``ml tensorboard``: event files read back with
TensorBoard's own reader, and a real TensorBoard answering on loopback."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from helpers import run_ml

from vml import api
from vml.store import RunStore

RUN = "board"
START_DEADLINE = 60.0  # seconds for TensorBoard to answer; it takes 2-3 s on a quiet machine
SLOW_START = 15.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo project with one finished two-epoch run."""
    root = api.create_project(tmp_path_factory.mktemp("tensorboard") / "demo")
    out = io.StringIO()
    result = api.Project(root).train_in_process(["--epochs=2"], name=RUN, stderr=out)
    assert result.status == "finished", out.getvalue()
    return root


def recorded(root: Path) -> tuple[dict, list[dict]]:
    """The run's store row and its metric rows."""
    with RunStore(root / "trainings" / "vml.db") as store:
        run = store.run_by_name(RUN)
        return run, store.metrics(run["id"])


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_a_runs_folder_holds_its_scalars_at_their_recorded_steps_and_times(
    trained: Path, tmp_path: Path
) -> None:
    logdir = tmp_path / "tb"
    result = run_ml(
        "export", RUN, "--format", "tensorboard", "--logdir", str(logdir), cwd=trained, home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{RUN}: ") and str(logdir / RUN) in result.stdout
    assert [p.name for p in logdir.iterdir()] == [RUN]  # the hyperparameters are no run of their own
    assert len(list((logdir / RUN).iterdir())) == 1
    run, rows = recorded(trained)
    events = read_events(logdir / RUN)
    for key, tag, axis in [
        ("step_loss", "step/loss", "step"),
        ("lr", "step/lr", "step"),
        ("val_acc", "epoch/val_acc", "epoch"),
    ]:
        expected = [row for row in rows if row["key"] == key]
        got = events.Scalars(tag)
        assert [e.step for e in got] == [row[axis] for row in expected]
        assert [e.value for e in got] == pytest.approx([row["value"] for row in expected], rel=1e-6)
        assert [e.wall_time for e in got] == [stamp(row["time"]) for row in expected]
    assert [e.step for e in events.Scalars("epoch/loss")] == [1, 2]
    (test_acc,) = events.Scalars("test/acc")
    assert (test_acc.step, test_acc.value) == (2, pytest.approx(run["test_acc"], rel=1e-6))
    assert test_acc.wall_time == stamp(run["ended_at"])


def test_the_hyperparameters_are_the_runs_session_in_the_hparams_view(trained: Path, tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import api_pb2, metadata

    api.Project(trained).export_tensorboard([RUN], tmp_path / "tb")
    events = read_events(tmp_path / "tb" / RUN)
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    run, _ = recorded(trained)
    assert start.group_name == RUN and start.start_time_secs == stamp(run["started_at"])
    hparams = run["hyperparameters"]
    assert start.hparams["learning_rate"].number_value == hparams["learning_rate"]
    assert start.hparams["epochs"].number_value == 2
    assert start.hparams["optimizer"].string_value == hparams["optimizer"]
    assert start.hparams["mixed_precision"].bool_value is False
    assert start.hparams["model"].string_value == "mlp"
    assert set(start.hparams) == {*hparams, "model"}
    assert end.status == api_pb2.STATUS_SUCCESS and end.end_time_secs == stamp(run["ended_at"])


def test_exporting_again_replaces_the_runs_folder(trained: Path, tmp_path: Path) -> None:
    project = api.Project(trained)
    first = project.export_tensorboard([RUN, f"@{RUN}"], tmp_path / "tb")  # named twice: once
    again = project.export_tensorboard([RUN], tmp_path / "tb")
    assert len(first) == 1 and first[0]["scalars"] == again[0]["scalars"]
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == [RUN]
    assert len(list((tmp_path / "tb" / RUN).iterdir())) == 1
    _, rows = recorded(trained)
    steps = sum(row["key"] == "step_loss" for row in rows)
    assert len(read_events(tmp_path / "tb" / RUN).Scalars("step/loss")) == steps


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_ml_tensorboard_serves_the_runs_on_loopback_until_ctrl_c(trained: Path, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    board = subprocess.Popen(
        [sys.executable, "-m", "vml", "tensorboard", "--port", str(port)],
        cwd=trained,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runs, error = None, None
        while runs is None and time.monotonic() < started + START_DEADLINE and board.poll() is None:
            try:
                runs = get_json(f"http://127.0.0.1:{port}/data/runs")
            except OSError as exc:  # not listening yet
                error = exc
                time.sleep(0.1)
        answered = time.monotonic() - started
        assert runs == [RUN], (error, board.poll())
        tags = get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")[RUN]
        assert {"step/loss", "step/lr", "epoch/val_acc", "test/acc"} <= set(tags)
    finally:
        board.send_signal(signal.SIGINT)
        out, err = board.communicate(timeout=30)
    assert board.returncode == 0, err
    assert f"TensorBoard at http://127.0.0.1:{port}/" in err and "exported 1 run to" in err
    assert (trained / "trainings" / ".tensorboard" / RUN).is_dir()
    if answered > SLOW_START:
        print(f"TensorBoard took {answered:.1f} s to answer (over {SLOW_START:.0f} s)", file=sys.stderr)


def test_bad_input_is_one_line_and_exit_2(trained: Path, tmp_path: Path) -> None:
    cases = {
        (
            "export",
            RUN,
            "--format",
            "csv",
        ): "ml: error: unknown format 'csv' (use one of: model, tensorboard, mlflow)\n",
        ("export", RUN, "--format", "tensorboard"): "ml: error: --format tensorboard needs --logdir DIR "
        "(the folder to write; ml tensorboard picks one)\n",
        (
            "export",
            RUN,
            "--format",
            "tensorboard",
            "--logdir",
            "vergeml.yaml",
        ): "ml: error: --logdir vergeml.yaml is a file (pick a folder)\n",
        (
            "export",
            RUN,
            "out",
            "--logdir",
            "tb",
        ): "ml: error: --logdir is for --format tensorboard (not model)\n",
        ("export", RUN): "ml: error: ml export RUN DIR takes a run and a new directory (got 1 argument; "
        "--format tensorboard or mlflow export several runs)\n",
    }
    for args, message in cases.items():
        result = run_ml(*args, cwd=trained, home=tmp_path)
        assert (result.returncode, result.stderr) == (2, message), args


def test_the_command_line_imports_neither_tensorboard_nor_mlflow() -> None:
    code = (
        "import sys, vml.cli.commands\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorboard', 'mlflow', 'torch'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
