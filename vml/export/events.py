"""``ml export --format tensorboard``: a folder of event files per run, written with
TensorBoard's own record writer (no torch, no TensorFlow).

A run's folder holds one event file: its scalars at their recorded steps and wall
times (``step/loss``, ``step/lr`` per step; ``epoch/loss``, ``epoch/val_acc``... per
epoch; ``test/acc``... at the last epoch) and its hyperparameters as the HParams
plugin's session start (and end) info, so the HParams view shows the run itself with
its metrics rather than a separate run. Exporting a run again replaces its folder,
so no point is shown twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from vml.errors import UsageError, disk_full, is_disk_full
from vml.export.extras import require
from vml.export.points import EPOCH, STEP, TEST, Point, hyperparameters, run_points, seconds

PURPOSE = "the TensorBoard export"
# ml tensorboard's folder when no --logdir is given, under trainings/: vml's own, so it
# holds just the runs last shown.
DEFAULT_LOGDIR = ".tensorboard"
# The HParams plugin's session states for vml's (api_pb2.Status's names).
SESSION_STATUS = {
    "finished": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "crashed": "STATUS_FAILURE",
    "cancelled": "STATUS_ABORTED",
    "killed": "STATUS_ABORTED",
    "pruned": "STATUS_ABORTED",
    "queued": "STATUS_RUNNING",
    "running": "STATUS_RUNNING",
}


def tag(point: Point) -> str:
    """The scalar's tag: ``step/loss`` (step_loss), ``epoch/val_acc``, ``test/acc``."""
    if point.axis == STEP:
        return f"{STEP}/{point.key.removeprefix('step_')}"
    if point.axis == TEST:
        return f"{TEST}/{point.key.removeprefix('test_')}"
    return f"{EPOCH}/{point.key}"


def export_runs(db_path: Path, runs: list[dict[str, Any]], logdir: Path) -> list[dict[str, Any]]:
    """Write each run (a store row) into ``logdir/NAME/``, replacing what an earlier
    export left there; returns per run its ``instance``, ``folder``, ``scalars`` and
    ``hyperparameters`` (counts)."""
    require("tensorboard", "tensorboard", PURPOSE)
    if logdir.exists() and not logdir.is_dir():
        raise UsageError(f"--logdir {logdir} is a file (pick a folder)")
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write --logdir {logdir}: {exc.strerror} (pick a folder you can write)"
        ) from None
    return [_export_run(db_path, run, logdir) for run in runs]


def keep_only(logdir: Path, names: set[str]) -> None:
    """Remove the run folders in ``logdir`` (vml's own) of runs not in ``names``."""
    for entry in logdir.iterdir():
        if entry.is_dir() and entry.name not in names and not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)


def _export_run(db_path: Path, run: dict[str, Any], logdir: Path) -> dict[str, Any]:
    points = run_points(db_path, run)
    hparams = hyperparameters(run)
    target = logdir / run["name"]
    staging = logdir / f".{run['name']}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        write_events(staging, run, points, hparams)
        _replace(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(target / "events", None) from None
        if isinstance(exc, OSError):
            raise UsageError(
                f"cannot write {target}: {exc.strerror} (pick a --logdir you can write)"
            ) from None
        raise
    return {
        "instance": run["name"],
        "folder": str(target),
        "scalars": len(points),
        "hyperparameters": len(hparams),
    }


def _replace(staging: Path, target: Path) -> None:
    """Put the new folder in the old one's place: a TensorBoard reading the logdir
    sees the old run or the new one, never both."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_events(
    folder: Path, run: dict[str, Any], points: list[Point], hparams: dict[str, bool | int | float | str]
) -> Path:
    """Write one event file into ``folder``: the file header, the hyperparameters
    (session start, and end for an ended run) and ``points``; returns its path."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    start = seconds(run.get("started_at")) or seconds(run.get("created_at")) or 0.0
    # "tfevents" in the name is how TensorBoard finds event files.
    path = folder / f"events.out.tfevents.{int(start):010d}.vml.{run['name']}"
    with path.open("wb") as handle:
        writer = RecordWriter(handle)
        header = event_pb2.Event(wall_time=start, file_version="brain.Event:2")
        header.source_metadata.writer = "vml"
        writer.write(header.SerializeToString())
        # A session start at step 0: a TensorBoard that read an earlier export of this
        # run drops its points instead of showing them twice.
        restart = event_pb2.Event(wall_time=start, step=0)
        restart.session_log.status = event_pb2.SessionLog.START
        writer.write(restart.SerializeToString())
        for summary, when in _hparams_summaries(run, hparams, start):
            writer.write(event_pb2.Event(wall_time=when, step=0, summary=summary).SerializeToString())
        for point in points:
            event = event_pb2.Event(wall_time=point.wall_time, step=point.step)
            event.summary.value.add(tag=tag(point), simple_value=point.value)
            writer.write(event.SerializeToString())
    return path


def _hparams_summaries(run: dict[str, Any], hparams: dict[str, Any], start: float) -> list[tuple[Any, float]]:
    """The HParams plugin's session start info and, for an ended run, its end info,
    each with its wall time."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

    summaries = [(summary_v2.hparams_pb(hparams, trial_id=run["name"], start_time_secs=start), start)]
    status = SESSION_STATUS.get(run["status"], "STATUS_UNKNOWN")
    end = seconds(run.get("ended_at"))
    if end is not None and status != "STATUS_RUNNING":
        info = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(
                status=api_pb2.Status.Value(status), end_time_secs=end
            )
        )
        summary = summary_pb2.Summary()
        summary.value.add(
            tag=metadata.SESSION_END_INFO_TAG,
            metadata=metadata.create_summary_metadata(info),
            tensor=metadata.NULL_TENSOR,
        )
        summaries.append((summary, end))
    return summaries
