"""Run one training end to end and record it: folder, store row, loop, test score."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from vml.atomic import write_text_atomic
from vml.config import ProjectConfig, Split, resolve_task
from vml.data.prepare import PreparedData, prepare_data
from vml.errors import ConflictError, DiskFullError, UsageError, VmlError, disk_full, is_disk_full
from vml.invocation import command_line
from vml.liveness import Heartbeat, process_identity
from vml.models.fit import check_fits
from vml.params import display_key
from vml.paths import BEST, CONFIG_FILE, LAST, LOG_FILE, RUN_PROJECT_FILE
from vml.repro import write_record
from vml.store import RunRecords, RunStore
from vml.store.runs import TEST_METRICS, utcnow
from vml.train.cancel import CancelOnSignal
from vml.train.checkpoint import (
    BestCheckpoint,
    EpochCheckpoints,
    LastCheckpoint,
    load_checkpoint,
    restore,
)
from vml.train.distributed import local_device, world
from vml.train.early_stopping import EarlyStopping
from vml.train.evaluation import keep_evaluation, predict_split
from vml.train.loop import Tensors, Trainer, build_optimizer, loss_function
from vml.train.progress import LogLines, ProgressBar
from vml.train.recorder import StoreRecorder
from vml.train.runtime import runtime_facts
from vml.train.schedule import StepSchedule, build_schedule, stretch_schedule


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    name: str
    status: str
    test_acc: float | None = None
    test_loss: float | None = None
    best_metric: float | None = None
    best_epoch: int | None = None
    monitor: str = "val_acc"
    error: str | None = None

    def summary(self) -> str:
        """``test_acc 0.9722, test_loss 0.0857`` (no accuracy for a regression)."""
        acc = f"test_acc {self.test_acc:.4f}, " if self.test_acc is not None else ""
        return f"{acc}test_loss {self.test_loss:.4f}"


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when present; ``gpu``/``cuda[:N]`` insist on it."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    index = int(spec.partition(":")[2] or 0)
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise UsageError(
            f"device {spec!r} asked for a GPU but this machine has "
            f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} CUDA GPU(s) "
            "(use --device=auto or --device=cpu)"
        )
    return torch.device("cuda", index)


def train_run(
    project: ProjectConfig,
    name: str,
    hparams: dict[str, Any],
    data: PreparedData,
    stderr: TextIO = sys.stderr,
    name_generated: bool = False,
    rerun_of: str | None = None,
    project_file: dict[str, Any] | None = None,
) -> RunResult:
    """Train and record run ``name`` on prepared ``data`` in this process (``rerun_of``:
    the run it repeats; ``project_file``: project settings of its own, kept in its
    folder, as a runs-file entry's). Bad input raises before anything is recorded; once recorded,
    the run always ends with a final status. A generated name that another process
    took meanwhile is replaced."""
    device = resolve_device(hparams["device"])
    task, monitor = resolve_task(hparams)
    # Built and tried on two samples before anything is recorded, so a model that
    # rejects the data (cnn on a table, a net.py whose first layer is too narrow)
    # records no run.
    model = _build_model(project, hparams, data, task, device)
    check_fits(model, _tensor(data.x("train")[:2], device), task, len(data.classes), project.model.name)
    with RunStore(project.db_path) as store:
        run_id, name = store.create_run_with_folder(
            name,
            name_generated,
            project.model.name,
            hparams,
            rerun_of=rerun_of,
            **_run_fields(hparams, data, monitor),
        )
        folder = project.trainings_dir / name
        with DiskReserve(folder, store) as reserve:
            try:
                try:
                    if project_file is not None:
                        write_text_atomic(
                            folder / RUN_PROJECT_FILE, yaml.safe_dump(project_file, sort_keys=False)
                        )
                    _write_config(folder, project, name, hparams, data)
                    _write_repro(folder, project, name, hparams, data, device, command_line())
                except Exception as exc:  # recorded, not left running (a SIGINT: cancelled below)
                    failure, _ = _end_failed(store, run_id, folder, exc, reserve)
                    if failure is exc:
                        raise
                    raise failure from exc
                run = _Run(
                    project, name, hparams, task, monitor, data, model, device, folder, store, run_id, reserve
                )
                return _execute(run, stderr, resume=None)
            except KeyboardInterrupt:
                return _cancelled_while_starting(store, run_id, name, monitor)


def start_queued_run(
    project: ProjectConfig,
    name: str,
    stderr: TextIO = sys.stderr,
    store: RunRecords | None = None,
    folder: Path | None = None,
) -> RunResult:
    """Train run ``name``, recorded as ``queued`` (by ``ml train --detach``, the API or
    the queue), in this process: the worker's side. Whatever goes wrong from here is
    recorded on the run as ``failed``. Records go to the project's store, or to
    ``store`` (a cluster worker's relay to the driver: see ``vml.launch.ray``), files
    to the run's folder, or ``folder``."""
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(RunStore(project.db_path))
        return _start_queued(project, name, stderr, store, folder or project.trainings_dir / name)


def _start_queued(
    project: ProjectConfig, name: str, stderr: TextIO, store: RunRecords, folder: Path
) -> RunResult:
    row = store.run_by_name(name)
    if row is None:
        raise UsageError(f"no queued run named {name!r}")
    run_id = row["id"]
    if not store.set_status(run_id, "running", ("queued",), **_process_fields()):
        raise ConflictError(f"run {name!r} is {row['status']}, not queued")
    monitor = row["monitor"] or "val_acc"
    # SIGINT (ml cancel, Ctrl-C on a study) may come at any point from here on, even
    # while the config and repro.json are written (git and the package list take a
    # while): the run then reads cancelled, never crashed.
    try:
        with Heartbeat(store, run_id), DiskReserve(folder, store) as reserve:
            try:
                hparams = row["hyperparameters"]
                task, monitor = resolve_task(hparams)
                data = prepare_data(project, hparams["random_seed"], say=_printer(stderr), task=task)
                device = local_device(resolve_device(hparams["device"]))
                model = _build_model(project, hparams, data, task, device)
                # The plain model, before DistributedDataParallel wraps it: a misfit ends
                # the run failed with the check's one line as its error.
                check_fits(
                    model, _tensor(data.x("train")[:2], device), task, len(data.classes), project.model.name
                )
                store.update_run(run_id, **_run_fields(hparams, data, monitor))
                _write_config(folder, project, name, hparams, data)
                _write_repro(folder, project, name, hparams, data, device, row.get("command"))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                _, error = _end_failed(store, run_id, folder, exc, reserve)
                return RunResult(name, "failed", monitor=monitor, error=error)
            run = _Run(
                project, name, hparams, task, monitor, data, model, device, folder, store, run_id, reserve
            )
            return _execute(run, stderr, resume=None, heartbeat=False)
    except KeyboardInterrupt:
        return _cancelled_while_starting(store, run_id, name, monitor)


def _cancelled_while_starting(store: RunRecords, run_id: int, name: str, monitor: str) -> RunResult:
    """A SIGINT that came before the training loop could take it: the run is
    cancelled (a no-op if it already recorded its end)."""
    store.set_status(run_id, "cancelled", ("running",), ended_at=utcnow())
    return RunResult(name, "cancelled", monitor=monitor)


def _process_fields() -> dict[str, Any]:
    """This process as the run's worker: identity, start, fresh heartbeat."""
    now = utcnow()
    return {**process_identity(os.getpid()), "started_at": now, "heartbeat": now}


def _run_fields(hparams: dict[str, Any], data: PreparedData, monitor: str) -> dict[str, Any]:
    """What a run's row says about its data and length, however it was started."""
    return {
        "fingerprint": data.fingerprint,
        "epochs": hparams["epochs"],
        "steps": -(-len(data.y("train")) // hparams["batch_size"]),
        "monitor": monitor,
        **_process_fields(),
    }


RESUMABLE = ("cancelled", "failed", "crashed", "killed")


def resume_run(
    project: ProjectConfig,
    row: dict[str, Any],
    data: PreparedData,
    stderr: TextIO = sys.stderr,
    epochs: int | None = None,
) -> RunResult:
    """Continue a stopped run from its ``last.pt``: weights, optimizer, schedule,
    epoch, random state and callback state, so it ends as if never interrupted. With
    ``epochs``, continue it (also a finished one) to that many epochs in all instead:
    its recorded epochs become ``epochs``, a cosine schedule is spread over them."""
    hparams = dict(row["hyperparameters"])
    name = row["name"]
    folder = project.trainings_dir / name
    last = folder / LAST
    if not last.is_file():
        raise UsageError(
            f"run {name!r} has no last.pt (it stopped before its first epoch ended; start it again)"
        )
    device = resolve_device(hparams["device"])
    task, monitor = resolve_task(hparams)
    model = _build_model(project, hparams, data, task, device)
    checkpoint = load_checkpoint(last)
    done, before = checkpoint["epoch"], hparams["epochs"]
    if epochs is not None and epochs <= done:
        # The caller checked the row's epoch; last.pt may be one epoch ahead of it.
        raise UsageError(
            f"--epochs {epochs} is not more than the {done} epochs run {name!r} has done "
            f"(continue it with --epochs {done + 1} or more)"
        )
    if epochs is not None:
        hparams["epochs"] = epochs
        stretch_schedule(checkpoint, hparams)
    with RunStore(project.db_path) as store, DiskReserve(folder, store) as reserve:
        states = (*RESUMABLE, "finished") if epochs is not None else RESUMABLE
        process = {**_process_fields(), "started_at": row["started_at"]}  # keeps its place in ml list
        # Test scores (its end's, or ml test's) are those of a best.pt the run may now
        # replace: it records new ones when it ends.
        cleared = dict.fromkeys(TEST_METRICS)
        if not store.set_status(
            row["id"],
            "running",
            states,
            ended_at=None,
            error=None,
            cancel_requested=None,
            epochs=hparams["epochs"],
            **cleared,
            **process,
        ):
            raise ConflictError(f"run {name!r} is no longer stopped (another process resumed it)")
        # Points logged after last.pt was written are logged again as the run replays them.
        store.delete_metrics_after(row["id"], checkpoint["global_step"])
        store.add_event(row["id"], "resumed", f"resumed after epoch {done}")
        if hparams["epochs"] != before:
            try:
                _record_new_total(store, row["id"], folder, hparams, before, _printer(stderr))
            except BaseException as exc:  # not left running: ml resume --epochs tries again
                failure, _ = _end_failed(store, row["id"], folder, exc, reserve)
                if failure is exc:
                    raise
                raise failure from exc
        run = _Run(
            project, name, hparams, task, monitor, data, model, device, folder, store, row["id"], reserve
        )
        return _execute(run, stderr, resume=checkpoint)


def _record_new_total(
    store: RunStore,
    run_id: int,
    folder: Path,
    hparams: dict[str, Any],
    before: int,
    say: Callable[[str], None],
) -> None:
    """A resumed run's new number of epochs, wherever its old one was told: the
    store's hyperparameters, config.yaml, an event, the log."""
    after = hparams["epochs"]
    store.update_hyperparameters(run_id, hparams)
    config = folder / CONFIG_FILE
    resolved = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None
    if isinstance(resolved, dict) and isinstance(resolved.get("train"), dict):  # as _write_config wrote it
        resolved["train"][display_key("epochs")] = after
        write_text_atomic(config, yaml.safe_dump(resolved, sort_keys=False))
    kind = "extended" if after > before else "shortened"
    message = f"{kind} from {before} to {after} epochs"
    store.add_event(run_id, kind, message)
    with RunLog(folder) as log:
        log.line(f"run {folder.name}: {message}")
    say(f"{folder.name}: {message}")


def _build_model(
    project: ProjectConfig, hparams: dict[str, Any], data: PreparedData, task: str, device: torch.device
):
    # Seeded right before the weights are drawn, so the same seed gives the same start.
    torch.manual_seed(hparams["random_seed"])
    outputs = len(data.classes) if task == "classification" else 1
    return project.model.build(data.input_shape, outputs, **hparams).to(device)


def _execute(run: _Run, stderr: TextIO, resume: dict[str, Any] | None, heartbeat: bool = True) -> RunResult:
    """Train with the run's log open and its heartbeat going; record how it ended,
    whatever happens."""
    with contextlib.ExitStack() as stack:
        if heartbeat:
            stack.enter_context(Heartbeat(run.store, run.run_id))
        return _execute_logged(run, stderr, resume)


def _execute_logged(run: _Run, stderr: TextIO, resume: dict[str, Any] | None) -> RunResult:
    store, run_id = run.store, run.run_id
    with RunLog(run.folder) as log:
        log_line = log.line
        verb = f"resumed after epoch {resume['epoch']}" if resume else "started"
        rank, processes = world()
        spread = f" x {processes} processes (DistributedDataParallel)" if processes > 1 else ""
        log_line(
            f"run {run.name}: model {run.project.model.name}, device {run.device}{spread}, {_placed()}, {verb} {utcnow()}"
        )
        try:
            result = _train(run, stderr, log_line, resume)
        except KeyboardInterrupt:
            store.set_status(run_id, "cancelled", ("running",), ended_at=utcnow())
            result = RunResult(run.name, "cancelled", monitor=run.monitor)
            last = "cancelled"
        except BaseException as exc:
            failure, error = _end_failed(store, run_id, run.folder, exc, run.reserve)
            with contextlib.suppress(DiskFullError, OSError):  # the error raised says why
                log_line(f"failed: {error}")
            if failure is exc:
                raise
            raise failure from exc
        else:
            if result.status == "finished":
                last = f"finished: {result.summary()}"
            elif result.best_epoch:
                last = f"{result.status}: best {result.monitor} {result.best_metric:.4f} at epoch {result.best_epoch}"
            else:
                last = f"{result.status} before its first epoch ended"
        # The run's end is recorded: a full disk that refuses the log this line does
        # not make it fail.
        with contextlib.suppress(DiskFullError):
            log_line(last)
        return result


def _end_failed(
    store: RunRecords, run_id: int, folder: Path, exc: BaseException, reserve: DiskReserve
) -> tuple[BaseException, str]:
    """Record the run ``failed`` because of ``exc``: the error to raise (``exc``, or
    for a full disk one that names the command that carries on once there is room:
    ``ml resume`` from the last.pt it kept, else ``ml rerun``) and the line recorded.

    A store on a full disk gets the reserve's room and is asked again. If even that
    fails, the run cannot be recorded at all: it reads ``crashed`` once this process is
    gone, and the user still sees the disk-full line; a failure of another kind is
    then raised as the store's own full disk."""
    failure = exc
    if isinstance(exc, DiskFullError):
        command = "resume" if (folder / LAST).is_file() else "rerun"
        failure = DiskFullError(exc.what, f"free some space there, then: ml {command} {folder.name}")
    error = failure.message if isinstance(failure, VmlError) else f"{type(failure).__name__}: {failure}"
    try:
        try:
            store.set_status(run_id, "failed", ("running",), ended_at=utcnow(), error=error)
        except DiskFullError:
            if not reserve.release():
                raise
            store.set_status(run_id, "failed", ("running",), ended_at=utcnow(), error=error)
    except DiskFullError:
        if not isinstance(failure, DiskFullError):
            raise
    return failure, error


class RunLog:
    """A run's ``log.txt``, appended a line at a time (each written to the file as it
    comes); a full disk raises ``DiskFullError`` naming it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOG_FILE
        try:
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise self._error(exc, 0) from exc

    def line(self, text: str) -> None:
        try:
            self._file.write(text + "\n")
        except OSError as exc:
            raise self._error(exc, len(text.encode("utf-8")) + 1) from exc

    def _error(self, exc: OSError, needed: int) -> OSError | DiskFullError:
        return disk_full(self.path, needed) if is_disk_full(exc) else exc

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        # Lines are flushed as they are written: closing can only fail to write what a
        # full disk already refused, and that error was raised then.
        with contextlib.suppress(OSError):
            self._file.close()


# Room a run holds on its disk while it trains (``.disk-reserve`` in its folder) and
# gives back when a full disk keeps the store from recording how the run ended.
# Measured: recording a failure writes 4 pages to the store's WAL (16 KiB), a heartbeat
# 3 (12 KiB), which may come first; the log's last line one block.
RESERVE_BYTES = 256 * 1024
RESERVE_FILE = ".disk-reserve"


class DiskReserve:
    """``RESERVE_BYTES`` held in ``folder`` while a run on the project's store (not a
    cluster relay: its store is on another machine) trains. Where even that much is
    not free, nothing is held."""

    def __init__(self, folder: Path, store: RunRecords) -> None:
        self.path = folder / RESERVE_FILE if store.path is not None else None
        self.held = False

    def __enter__(self) -> DiskReserve:
        if self.path is not None:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)  # allocated, not a sparse file
                finally:
                    os.close(fd)
                self.held = True
            except OSError:
                self.path.unlink(missing_ok=True)
        return self

    def release(self) -> bool:
        """Give the room back; False if none was held."""
        held, self.held = self.held, False
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        return held

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class _Run:
    """What the loop needs to know about the run it trains."""

    project: ProjectConfig
    name: str
    hparams: dict[str, Any]
    task: str
    monitor: str
    data: PreparedData
    model: torch.nn.Module
    device: torch.device
    folder: Path
    store: RunRecords
    run_id: int
    reserve: DiskReserve


def _train(
    run: _Run, stderr: TextIO, log_line: Callable[[str], None], resume: dict[str, Any] | None
) -> RunResult:
    project, name, hparams, data, device = run.project, run.name, run.hparams, run.data, run.device
    folder, store, run_id = run.folder, run.store, run.run_id
    generator = torch.Generator().manual_seed(hparams["random_seed"])
    splits = {
        s: Tensors(_tensor(data.x(s), device), _tensor(data.y(s), device)) for s in ("train", "val", "test")
    }
    classification = run.task == "classification"
    model = run.model
    loss_fn = loss_function(hparams["loss"])
    optimizer = build_optimizer(
        hparams["optimizer"],
        model.parameters(),
        hparams["learning_rate"],
        hparams["momentum"],
        hparams["weight_decay"],
    )
    extra = {
        "model_name": project.model.name,
        "task": run.task,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "hyperparameters": hparams,
        # What predict and export need to prepare new inputs the way training did.
        "input_type": project.data.input.type,
        "features": list(data.features or []),
        "preprocess": [dict(op) for op in project.data.preprocess],
        "preprocess_state": {
            key.removeprefix("state."): torch.from_numpy(np.array(value))
            for key, value in data.arrays.items()
            if key.startswith("state.")
        },
    }
    best = BestCheckpoint(folder, run.monitor, extra)
    scheduler = build_schedule(optimizer, hparams)
    say = _printer(stderr)
    if stderr.isatty():
        bar = ProgressBar(stderr)
        progress = [bar, LogLines([log_line], [log_line, bar.print], hparams["log_every"])]
        notify = bar.print
    else:
        progress = [LogLines([log_line, say], [log_line, say], hparams["log_every"])]
        notify = say
    cancel = CancelOnSignal(notify)
    rank, processes = world()
    trainer = Trainer(
        parallel=DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if processes > 1
        else None,
        shard=(rank, processes),
        model=model,
        optimizer=optimizer,
        train=splits["train"],
        val=splits["val"],
        epochs=hparams["epochs"],
        batch_size=hparams["batch_size"],
        generator=generator,
        loss_fn=loss_fn,
        classification=classification,
        grad_clip=hparams["grad_clip"],
        mixed_precision=hparams["mixed_precision"],
        # Checkpoints run before output and recording, so both can report "best".
        callbacks=[
            cancel,
            best,
            *([EpochCheckpoints(folder, hparams["keep_checkpoints"])] if hparams["keep_checkpoints"] else []),
            StepSchedule(scheduler),
            LastCheckpoint(folder, scheduler, extra),
            *progress,
            StoreRecorder(store, run_id, best),
            *(
                [
                    EarlyStopping(
                        run.monitor, hparams["early_stopping_patience"], hparams["early_stopping_delta"]
                    )
                ]
                if hparams["early_stopping_patience"]
                else []
            ),
        ],
    )
    if hparams["mixed_precision"] and device.type != "cuda":
        message = f"--mixed-precision applies on CUDA only: training in float32 on {device}"
        log_line(message)
        notify(message)
    if resume is not None:
        restore(trainer, scheduler, resume)
    trainer.fit()
    if trainer.stop_reason == "failed":
        store.set_status(
            run_id,
            "failed",
            ("running",),
            ended_at=utcnow(),
            error=trainer.failure,
            epoch=trainer.epoch,
            step=trainer.step,
        )
        return RunResult(
            name,
            "failed",
            best_metric=best.best,
            best_epoch=best.best_epoch,
            monitor=best.monitor,
            error=trainer.failure,
        )
    if trainer.stop_reason == "early-stopped":
        message = f"early stopping after epoch {trainer.epoch}: no {run.monitor} improvement in {hparams['early_stopping_patience']} epochs"
        store.add_event(run_id, "early-stopped", message)
        log_line(message)
        notify(message)
    if trainer.stop_reason == "cancelled":
        store.set_status(
            run_id, "cancelled", ("running",), ended_at=utcnow(), epoch=trainer.epoch, step=trainer.step
        )
        return RunResult(
            name, "cancelled", best_metric=best.best, best_epoch=best.best_epoch, monitor=best.monitor
        )
    model.load_state_dict(load_checkpoint(folder / BEST)["model"])
    scores, predictions = predict_split(model, splits["test"], loss_fn, data.classes)
    try:
        if rank == 0:  # under torchrun the others write nothing anyway
            scores |= keep_evaluation(folder, predictions)
    except Exception as exc:  # the trained model is kept whatever the metrics or the disk say
        if isinstance(exc, DiskFullError):
            message = f"evaluation failed: {exc.what}; free some space there, then: ml test {name}"
        else:
            message = f"evaluation failed: {type(exc).__name__}: {exc} (ml test {name} tries again)"
        store.add_event(run_id, "evaluation-failed", message)
        log_line(message)
        notify(message)
    store.set_status(run_id, "finished", ("running",), ended_at=utcnow(), **scores)
    return RunResult(
        name, "finished", scores["test_acc"], scores["test_loss"], best.best, best.best_epoch, best.monitor
    )


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    # Cache arrays are read-only memory maps; torch wants memory it may write.
    return torch.from_numpy(np.array(array)).to(device)


def _placed() -> str:
    """What this process was given to train on: its CPU threads and, when pinned, its GPUs."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{torch.get_num_threads()} CPU thread(s)" + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus else "")


def _printer(stream: TextIO) -> Callable[[str], None]:
    """Print lines to ``stream``; if the reader goes away (``ml train | head``), keep
    training and stop printing rather than fail the run."""
    alive = True

    def say(line: str) -> None:
        nonlocal alive
        if alive:
            try:
                print(line, file=stream, flush=True)
            except (BrokenPipeError, ValueError):
                alive = False

    return say


def _write_config(
    folder: Path, project: ProjectConfig, name: str, hparams: dict[str, Any], data: PreparedData
) -> None:
    """The run's fully resolved config, in vergeml.yaml's shape plus the run's name,
    data fingerprint and classes."""
    d = project.data
    resolved = {
        "name": name,
        "model": project.model.name,
        "samples-dir": os.path.relpath(d.samples_dir, project.root),
        "val-split": _split_value(d.val_split, project.root),
        "test-split": _split_value(d.test_split, project.root),
        "data": {
            "input": {
                "type": d.input.type,
                **{display_key(k): v for k, v in d.input.options().items() if v is not None},
            },
            "cache": d.cache,
            "preprocess": [dict(op) for op in d.preprocess],
        },
        "train": {display_key(k): v for k, v in hparams.items()},
        "fingerprint": data.fingerprint,
        "classes": list(data.classes),
    }
    write_text_atomic(folder / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))


def _write_repro(
    folder: Path,
    project: ProjectConfig,
    name: str,
    hparams: dict[str, Any],
    data: PreparedData,
    device: torch.device,
    command: str | None,
) -> None:
    """The run's reproducibility record (``vml.repro``), written as it starts."""
    run = {
        "run": name,
        "recorded_at": utcnow(),
        "command": command,
        "seeds": {"random_seed": hparams["random_seed"]},
        "data_fingerprint": data.fingerprint,
    }
    write_record(folder, project.root, run, runtime_facts(device))


def _split_value(split: Split, root: Path) -> str | int:
    """A split as written in vergeml.yaml."""
    if split.path is not None:
        return os.path.relpath(split.path, root)
    return int(split.amount) if split.kind == "count" else str(split)
