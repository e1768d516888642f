"""``ml export --format mlflow``: read back through an ``MlflowClient`` on a real sqlite
tracking store (made once for the module: its migration takes seconds)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import torch
from helpers import run_ml

from vml import api
from vml.errors import UsageError
from vml.store import RunStore

RUN = "flow"
EXPERIMENT = "digits"
# 2 epochs at 5 rows a batch: 576 steps, each a step_loss and an lr, over MLflow's
# 1,000 metrics a log_batch.
TRAIN_ARGS = ["--epochs=2", "--batch-size=5"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A project in a git repository with one finished run, exported once by ``ml
    export`` into a sqlite tracking store."""
    tmp = tmp_path_factory.mktemp("mlflow")
    root = api.create_project(tmp / "demo")
    git = ["git", "-C", str(root), "-c", "user.name=vml", "-c", "user.email=vml@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the project"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    out = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 5-row batches: two threads on a busy machine cost 20x
    try:
        result = api.Project(root).train_in_process(TRAIN_ARGS, name=RUN, stderr=out)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "finished", out.getvalue()
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    shown = run_ml(
        "export",
        RUN,
        "--format",
        "mlflow",
        "--tracking-uri",
        uri,
        "--experiment",
        EXPERIMENT,
        cwd=root,
        home=tmp,
    )
    assert shown.returncode == 0, shown.stderr
    return {
        "root": root,
        "tmp": tmp,
        "uri": uri,
        "commit": commit,
        "stdout": shown.stdout,
        "stderr": shown.stderr,
    }


def client(exported: dict):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=exported["uri"])


def the_run(exported: dict):
    """The one active MLflow run of the vml run."""
    mlflow = client(exported)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    (run,) = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.`vml.run` = '{RUN}'")
    return mlflow, run


def recorded(root: Path) -> tuple[dict, list[dict]]:
    with RunStore(root / "trainings" / "vml.db") as store:
        run = store.run_by_name(RUN)
        return run, store.metrics(run["id"])


def millis(text: str) -> int:
    return int(round(datetime.fromisoformat(text).timestamp() * 1000))


def test_one_mlflow_run_with_the_params_metrics_tags_and_times(exported: dict) -> None:
    mlflow, run = the_run(exported)
    vml_run, rows = recorded(exported["root"])
    assert exported["stdout"].startswith(
        f"{RUN}: MLflow run {run.info.run_id} in experiment '{EXPERIMENT}' ("
    )
    assert "mlflow ui --backend-store-uri" in exported["stderr"] and "INFO" not in exported["stderr"]
    assert run.info.run_name == RUN and run.info.status == "FINISHED"
    assert run.info.start_time == millis(vml_run["started_at"]) and run.info.end_time == millis(
        vml_run["ended_at"]
    )
    hparams = vml_run["hyperparameters"]
    assert run.data.params == {"model": "mlp", **{key: str(value) for key, value in hparams.items()}}
    tags = run.data.tags
    assert (tags["vml.run"], tags["vml.status"], tags["vml.model"]) == (RUN, "finished", "mlp")
    assert tags["mlflow.source.git.commit"] == exported["commit"] and tags["vml.git_dirty"] == "false"
    assert len(rows) > 1000  # more than one log_batch takes
    for key, axis in [("step_loss", "step"), ("lr", "step"), ("val_acc", "epoch"), ("loss", "epoch")]:
        expected = [row for row in rows if row["key"] == key]
        history = mlflow.get_metric_history(run.info.run_id, key)
        got = sorted(history, key=lambda m: (m.step, m.timestamp))
        assert [m.step for m in got] == [row[axis] for row in expected], key
        assert [m.value for m in got] == pytest.approx([row["value"] for row in expected]), key
        assert [m.timestamp for m in got] == [millis(row["time"]) for row in expected], key
    (test_acc,) = mlflow.get_metric_history(run.info.run_id, "test_acc")
    assert (test_acc.value, test_acc.step) == (pytest.approx(vml_run["test_acc"]), 2)


def test_best_pt_is_an_artifact(exported: dict, tmp_path: Path) -> None:
    mlflow, run = the_run(exported)
    listed = {item.path: item.file_size for item in mlflow.list_artifacts(run.info.run_id)}
    best = exported["root"] / "trainings" / RUN / "best.pt"
    assert listed == {"best.pt": best.stat().st_size, "repro.json": pytest.approx(listed["repro.json"])}
    copy = mlflow.download_artifacts(run.info.run_id, "best.pt", str(tmp_path))
    assert Path(copy).read_bytes() == best.read_bytes()
    # A sqlite store keeps a new experiment's artifacts beside its file, not in the project.
    assert (exported["tmp"] / "mlartifacts" / run.info.run_id / "artifacts" / "best.pt").is_file()
    assert not (exported["root"] / "mlruns").exists()
    record = json.loads(
        Path(mlflow.download_artifacts(run.info.run_id, "repro.json", str(tmp_path))).read_text()
    )
    assert record["git"]["commit"] == exported["commit"]


def test_exporting_again_replaces_the_earlier_mlflow_run(exported: dict) -> None:
    mlflow, before = the_run(exported)
    (again,) = api.Project(exported["root"]).export_mlflow([f"@{RUN}"], exported["uri"], EXPERIMENT)
    assert again["replaced"] == 1 and again["run_id"] != before.info.run_id
    _, after = the_run(exported)  # still one active run of it: the new one
    assert after.info.run_id == again["run_id"]
    assert mlflow.get_run(before.info.run_id).info.lifecycle_stage == "deleted"
    assert len(mlflow.get_metric_history(after.info.run_id, "step_loss")) == len(
        mlflow.get_metric_history(before.info.run_id, "step_loss")
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe closes


def test_a_missing_or_bad_tracking_uri_is_one_line_and_exit_2(exported: dict, tmp_path: Path) -> None:
    root = exported["root"]
    port = closed_port()
    cases = {
        (): "ml: error: --format mlflow needs --tracking-uri URI (or MLFLOW_TRACKING_URI), e.g. sqlite:///mlflow.db\n",
        ("--tracking-uri", f"http://127.0.0.1:{port}"): f"ml: error: --tracking-uri http://127.0.0.1:{port}: "
        "no MLflow server answers there (Connection refused; start one with mlflow server, or check the URI)\n",
    }
    for args, message in cases.items():
        result = run_ml("export", RUN, "--format", "mlflow", *args, cwd=root, home=tmp_path)
        assert (result.returncode, result.stderr) == (2, message), args
    # A scheme MLflow has no store for (in this process: MLflow is imported already).
    with pytest.raises(UsageError) as refused:
        api.Project(root).export_mlflow([RUN], "nosuch://x", EXPERIMENT)
    assert (
        refused.value.message.startswith("--tracking-uri nosuch://x: ") and "\n" not in refused.value.message
    )
    assert refused.value.exit_code == 2
