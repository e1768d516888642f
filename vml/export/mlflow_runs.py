"""``ml export --format mlflow``: one MLflow run per vml run, through
``MlflowClient`` on any tracking URI (a sqlite file, a server, a folder).

A run carries its hyperparameters (and model) as params; its metric points with
their steps and recorded times (``step_loss``, ``lr`` by global step; ``loss``,
``val_acc``... by epoch; the test scores at the last epoch); the tags ``vml.run``,
``vml.status``, ``vml.model`` and the git commit of its reproducibility record
(``mlflow.source.git.commit``); ``best.pt`` and ``repro.json`` as artifacts; its start
and end times and its state (finished: FINISHED; failed, crashed: FAILED; cancelled,
killed, pruned: KILLED). Everything is sent in batches within MLflow's limits. A new
experiment in a sqlite store keeps its artifacts in ``mlartifacts/`` beside the
database file.

Exporting a run again replaces it: the earlier MLflow run carrying its ``vml.run``
tag in that experiment is deleted (MLflow keeps it as deleted until ``mlflow gc``)
and a new one is made, so the experiment holds each vml run once, as it is now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vml.errors import UsageError, VmlError
from vml.export.extras import require
from vml.export.points import hyperparameters, run_points, seconds
from vml.export.tracking import artifact_location, check_reachable, explain
from vml.paths import BEST, REPRO_FILE
from vml.repro import load_record
from vml.store.columns import ACTIVE_STATES

PURPOSE = "the MLflow export"
RUN_TAG = "vml.run"
STATUS = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "crashed": "FAILED",
    "cancelled": "KILLED",
    "killed": "KILLED",
    "pruned": "KILLED",
}
ARTIFACTS = (BEST, REPRO_FILE)
T = TypeVar("T")


def export_runs(
    runs: list[dict[str, Any]], db_path: Path, trainings: Path, tracking_uri: str, experiment: str
) -> list[dict[str, Any]]:
    """Export each run (a store row; none may be queued or running) into MLflow
    experiment ``experiment`` (made when missing) at ``tracking_uri``; returns per run
    its ``instance``, MLflow ``run_id``, ``experiment``, counts of ``params`` and
    ``metrics``, the ``artifacts`` logged and how many earlier exports it ``replaced``."""
    for run in runs:
        if run["status"] in ACTIVE_STATES:
            raise UsageError(
                f"run {run['name']!r} is {run['status']}: export it to MLflow once it ends (ml wait {run['name']})"
            )
    check_reachable(tracking_uri)  # before MLflow's import, which takes seconds
    require("mlflow", "mlflow", PURPOSE)
    from mlflow.exceptions import MlflowException

    _quiet()
    client, experiment_id = _connect(tracking_uri, experiment)
    done = []
    for run in runs:
        try:
            done.append(_export_run(client, experiment_id, run, db_path, trainings / run["name"]))
        except MlflowException as exc:
            raise VmlError(f"MLflow refused run {run['name']!r}: {explain(exc)}") from None
        done[-1]["experiment"] = experiment
    return done


def _quiet() -> None:
    # The tracking store says "Creating initial MLflow database tables..." on stderr.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _connect(tracking_uri: str, experiment: str) -> tuple[Any, str]:
    """The client and the id of experiment ``experiment`` (made when missing)."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return client, client.create_experiment(experiment, artifact_location(tracking_uri))
    except Exception as exc:  # an unknown scheme, a path it cannot open, a server not there
        raise UsageError(
            f"--tracking-uri {tracking_uri}: {explain(exc)} (use e.g. sqlite:///mlflow.db or http://HOST:5000)"
        ) from None
    if found.lifecycle_stage == "deleted":
        raise UsageError(
            f"MLflow experiment {experiment!r} is deleted (restore it in MLflow, or pick another --experiment)"
        )
    return client, found.experiment_id


def _export_run(
    client: Any, experiment_id: str, run: dict[str, Any], db_path: Path, folder: Path
) -> dict[str, Any]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    name = run["name"]
    earlier = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{name}'")
    for old in earlier:
        client.delete_run(old.info.run_id)
    start = _millis(seconds(run.get("started_at")) or seconds(run.get("created_at")))
    made = client.create_run(experiment_id, start_time=start, tags={RUN_TAG: name}, run_name=name)
    run_id = made.info.run_id
    params = [Param(key, str(value)[:MAX_PARAM_VAL_LENGTH]) for key, value in hyperparameters(run).items()]
    tags = [RunTag(key, value) for key, value in _tags(run, folder).items()]
    metrics = [Metric(p.key, p.value, _millis(p.wall_time), p.step) for p in run_points(db_path, run)]
    for batch in _batches(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=batch)
    for batch in _batches(tags, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=batch)
    for batch in _batches(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch)
    logged = []
    for artifact in ARTIFACTS:
        if (folder / artifact).is_file():  # a deleted run's folder is gone: its numbers only
            client.log_artifact(run_id, str(folder / artifact))
            logged.append(artifact)
    end = seconds(run.get("ended_at"))
    client.set_terminated(
        run_id, STATUS.get(run["status"], "FINISHED"), end_time=_millis(end) if end else None
    )
    return {
        "instance": name,
        "run_id": run_id,
        "params": len(params),
        "metrics": len(metrics),
        "artifacts": logged,
        "replaced": len(earlier),
    }


def _tags(run: dict[str, Any], folder: Path) -> dict[str, str]:
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    tags = {"vml.status": run["status"], "vml.model": str(run.get("model") or "")}
    if run.get("command"):
        tags["vml.command"] = run["command"][:MAX_TAG_VAL_LENGTH]
    git = (load_record(folder) or {}).get("git") or {}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = git["commit"]
        tags["vml.git_dirty"] = str(bool(git.get("dirty"))).lower()
    return tags


def _millis(when: float | None) -> int | None:
    return int(round(when * 1000)) if when is not None else None


def _batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
