"""The library behind ``ml`` and the dashboard: projects, runs and templates.

The CLI and the TUI only parse, call this module and render. Nothing here imports
torch at module level; training code is imported when a run starts.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TextIO

from vml.config import (
    PROJECT_FILE,
    ProjectConfig,
    find_project_root,
    load_project,
    parse_cli_overrides,
    resolve_hyperparameters,
    resolve_task,
)
from vml.errors import ConflictError, NotFoundError, UsageError
from vml.names import generate_name, validate_name
from vml.run import Run, RunFailed

__all__ = ["Project", "Run", "RunFailed", "create_project", "templates"]

DB_FILE = "vml.db"
DEFAULT_TEMPLATE = "default"


@dataclass(frozen=True)
class Template:
    """A project template shipped with vml."""

    name: str
    summary: str
    files: Traversable


def templates() -> list[Template]:
    """The templates ``ml new`` can use; the summary is the first comment of their
    vergeml.yaml."""
    found = []
    for entry in resources.files("vml.templates").iterdir():
        spec = entry.joinpath(PROJECT_FILE)
        if entry.is_dir() and spec.is_file():
            first = spec.read_text(encoding="utf-8").splitlines()[0]
            found.append(Template(entry.name, first.lstrip("# ").strip(), entry))
    return sorted(found, key=lambda t: t.name)


def create_project(path: Path | str, template: str = DEFAULT_TEMPLATE) -> Path:
    """Copy ``template`` into ``path``, which must not exist or be empty."""
    target = Path(path)
    chosen = {t.name: t for t in templates()}.get(template)
    if chosen is None:
        names = ", ".join(t.name for t in templates())
        raise UsageError(f"unknown template {template!r} (available: {names}; see ml new --list-templates)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty (pick a new directory name)")
    target.mkdir(parents=True, exist_ok=True)
    _copy_tree(chosen.files, target)
    return target


def _copy_tree(source: Traversable, target: Path) -> None:
    for entry in source.iterdir():
        if entry.name.startswith(("__", ".")):
            continue
        if entry.is_dir():
            (target / entry.name).mkdir()
            _copy_tree(entry, target / entry.name)
        else:
            with entry.open("rb") as src, (target / entry.name).open("wb") as dst:
                shutil.copyfileobj(src, dst)


class Project:
    """A project directory: its ``vergeml.yaml``, data and ``trainings/``.

    ``Project()`` finds the project at or above the current directory;
    ``Project(path)`` opens the one at ``path`` (or above it).
    """

    def __init__(self, path: Path | str = ".") -> None:
        self.root = find_project_root(path)
        self._config: ProjectConfig | None = None

    @property
    def config(self) -> ProjectConfig:
        """The checked ``vergeml.yaml`` (read once)."""
        if self._config is None:
            self._config = load_project(self.root)
        return self._config

    @property
    def trainings_dir(self) -> Path:
        return self.root / "trainings"

    @property
    def db_path(self) -> Path:
        return self.trainings_dir / DB_FILE

    def records(
        self, status: str | list[str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every recorded run (or those in ``status``; the newest ``limit``) as a store
        record, newest first. Live runs whose process died are marked ``crashed`` on
        the way; an ended run whose folder was deleted shows as ``deleted``."""
        if not self.db_path.exists():
            return []
        from vml.lifecycle import reap, reap_sweeps
        from vml.store import RunStore

        states = [status] if isinstance(status, str) else status
        # "deleted" is not stored: it is read from the folders, so those rows are filtered here.
        stored = None if states is None or "deleted" in states else states
        with RunStore(self.db_path) as store:
            reap(store, store.runs(ACTIVE_STATES))
            reap_sweeps(store)
            rows = store.runs(stored, limit)
        for row in rows:
            # A live run keeps its state (it can still be cancelled) even if its folder went.
            if row["status"] not in ACTIVE_STATES and not (self.trainings_dir / row["name"]).is_dir():
                row["status"] = "deleted"
        return [row for row in rows if states is None or row["status"] in states]

    def sweep_ids(self) -> list[str]:
        """The ids of the recorded sweeps, newest first."""
        if not self.db_path.exists():
            return []
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            return [row[0] for row in store.conn.execute("select id from sweeps order by created_at desc")]

    def count_records(self, status: str | list[str] | None = None) -> int:
        """How many runs are recorded (in ``status``, as stored)."""
        if not self.db_path.exists():
            return 0
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            return store.count([status] if isinstance(status, str) else status)

    def runs(self, status: str | list[str] | None = None, where: str | list[str] | None = None) -> list[Run]:
        """The runs, newest first; ``status`` keeps those in the given states, ``where``
        those matching conditions like ``"test_acc>0.9"`` (see ``ml list --where``)."""
        return [Run(self, r["instance"]) for r in self.list_runs(status=status, where=where)]

    def run(self, ref: str) -> Run:
        """A run by full name, ``@name``, a unique prefix, or ``@last``."""
        return Run(self, self.find_run(ref)["name"])

    def list_runs(
        self,
        sort: str | None = None,
        status: str | list[str] | None = None,
        where: str | list[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs in the shape ``ml list`` shows, newest first or sorted by ``sort``,
        filtered by ``status`` and the ``where`` conditions; at most ``limit``."""
        states = [status] if isinstance(status, str) else status
        for state in states or ():
            if state not in RUN_STATES:
                raise UsageError(f"unknown status {state!r} (use one of: {', '.join(RUN_STATES)})")
        newest = limit if not (sort or where) else None
        runs = self.matching([public_run(row) for row in self.records(states, newest)], where)
        runs = sort_runs(runs, sort) if sort else runs
        return runs[:limit] if limit is not None else runs

    def matching(self, runs: list[dict[str, Any]], where: str | list[str] | None) -> list[dict[str, Any]]:
        """The public runs among ``runs`` that meet every ``where`` condition."""
        if not where:
            return runs
        from vml.query import parse_conditions

        conditions = parse_conditions([where] if isinstance(where, str) else where, known_columns(self, runs))
        return [run for run in runs if all(c.matches(run_value(run, c.column)) for c in conditions)]

    def list_columns(self) -> tuple[str, ...]:
        """``ml list``'s columns: ``list: columns:`` from vergeml.yaml, or the defaults."""
        chosen = self.config.list_columns
        if not chosen:
            return LIST_COLUMNS
        known = known_columns(self, [])
        for column in chosen:
            if column not in known:
                import difflib

                close = difflib.get_close_matches(column, sorted(known), n=1)
                hint = f"did you mean {close[0]}?" if close else "use a column of ml list --format json"
                raise UsageError(f"unknown column {column!r} in list.columns of {PROJECT_FILE} ({hint})")
        return ("instance", *(c for c in chosen if c != "instance"))

    def resolve(self, overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Any]:
        """The hyperparameters a run would get: defaults < vergeml.yaml < ``overrides``
        (a mapping, or command-line words like ``["--epochs=5"]``)."""
        if overrides is None:
            parsed = {}
        elif isinstance(overrides, dict):
            parsed = parse_cli_overrides(f"--{k}={v}" for k, v in overrides.items())
        else:
            parsed = parse_cli_overrides(overrides)
        return resolve_hyperparameters(self.config, parsed)

    def taken_names(self) -> set[str]:
        """Names a new run cannot have: those of the runs and of the folders in trainings/."""
        taken = {row["name"] for row in self.records()}
        if self.trainings_dir.is_dir():
            taken |= {p.name for p in self.trainings_dir.iterdir()}
        return taken

    def new_run_name(self, name: str | None = None) -> str:
        """``name`` checked, or a fresh generated name unused in this project."""
        taken = self.taken_names()
        if name is None:
            return generate_name(taken)
        name = validate_name(name)
        if name in taken:
            raise UsageError(f"a run named {name!r} already exists (pick another --name)")
        return name

    def preview(
        self,
        directory: Path | str,
        per_split: int = 50,
        overrides: list[str] | None = None,
        stderr: TextIO = sys.stderr,
    ) -> dict[str, int]:
        """Write what the model will see (images as PNG, tables as CSV) under
        ``directory``, at most ``per_split`` samples a split; returns the counts."""
        from vml.data.prepare import prepare_data
        from vml.data.preview import write_previews

        hparams = self.resolve(overrides)
        data = prepare_data(
            self.config,
            hparams["random_seed"],
            say=lambda line: print(line, file=stderr),
            task=resolve_task(hparams)[0],
        )
        return write_previews(data, Path(directory), per_split)

    def train_in_process(
        self,
        overrides: dict[str, Any] | list[str] | None = None,
        name: str | None = None,
        stderr: TextIO = sys.stderr,
    ):
        """Train in this process, blocking, with progress on ``stderr``; returns a
        ``RunResult``. Invalid input raises ``UsageError`` before a run is recorded."""
        hparams = self.resolve(overrides)
        run_name = self.new_run_name(name)
        from vml.data.prepare import prepare_data

        # Data problems surface here, before the seconds it takes to import torch.
        data = prepare_data(
            self.config,
            hparams["random_seed"],
            say=lambda line: print(line, file=stderr),
            task=resolve_task(hparams)[0],
        )
        from vml.train.runner import train_run

        return train_run(self.config, run_name, hparams, data, stderr=stderr, name_generated=name is None)

    def train(self, name: str | None = None, **hyperparameters: Any) -> Run:
        """Start a run in a background worker process and return at once:
        ``project.train(learning_rate=1e-3, epochs=10)``. Bad hyperparameters raise
        ``UsageError`` before anything is recorded; what goes wrong later (the data,
        the model) ends the run as ``failed``."""
        return self.start(hyperparameters, name)

    def start(
        self, overrides: dict[str, Any] | list[str] | None = None, name: str | None = None, gpus: int = 1
    ) -> Run:
        """``train()`` with the overrides as a mapping or command-line words (what
        ``ml train --detach`` calls); ``gpus`` > 1 trains on that many GPUs (or CPU
        processes, without CUDA) with DistributedDataParallel."""
        if gpus < 1:
            raise UsageError(f"--gpus {gpus}: train on at least 1 (e.g. --gpus 2)")
        hparams = self.resolve(overrides)
        run_name = self.record_queued(self.new_run_name(name), name is None, hparams)
        return Run(self, run_name, self.spawn_worker(run_name, processes=gpus))

    def record_queued(
        self,
        name: str,
        name_generated: bool,
        hparams: dict[str, Any],
        model: str | None = None,
        **fields: Any,
    ) -> str:
        """Record a ``queued`` run with resolved ``hparams`` (of the project's model, or
        ``model``) and make its folder; its name (a generated one is replaced if
        another process took it meanwhile)."""
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            _, name = store.create_run_with_folder(
                name,
                name_generated,
                model or self.config.model.name,
                hparams,
                status="queued",
                epochs=hparams["epochs"],
                monitor=resolve_task(hparams)[1],
                **fields,
            )
        return name

    def spawn_worker(self, name: str, env: dict[str, str] | None = None, processes: int = 1):
        """Start the worker process of queued run ``name`` (``python -m
        vml.train.worker``; through torchrun with ``processes`` > 1, one per GPU) and
        record it on the run; the ``subprocess.Popen``."""
        import subprocess

        from vml.lifecycle import process_identity
        from vml.store import RunStore
        from vml.store.runs import utcnow

        launcher = [sys.executable, "-m"]
        if processes > 1:
            launcher += ["torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m"]
        with (self.trainings_dir / name / WORKER_OUTPUT).open("ab") as output:
            # Its own session: the worker outlives this process and a Ctrl-C in this
            # terminal, and ml cancel can signal its whole process group.
            process = subprocess.Popen(
                [*launcher, "vml.train.worker", str(self.root), name],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        try:
            identity = process_identity(process.pid)
        except Exception:  # it already exited: it recorded why
            identity = {"pid": process.pid}
        with RunStore(self.db_path) as store:
            # Only while queued: the worker may have claimed the run already.
            store.update_queued(name, heartbeat=utcnow(), **identity)
        return process

    def delete(self, ref: str, force: bool = False, timeout: float = 30.0) -> str:
        """Delete a run's record, metrics and folder; its name. A queued or running run
        is refused unless ``force``, which cancels it first (see ``Run.cancel``)."""
        from vml.store import RunStore

        row = self.find_run(ref)
        if row["status"] in ACTIVE_STATES:
            if not force:
                raise ConflictError(
                    f"run {row['name']!r} is {row['status']} (cancel it first, or use --force)"
                )
            Run(self, row["name"]).cancel(timeout)
        with RunStore(self.db_path) as store:
            store.delete_run(row["id"])
        shutil.rmtree(self.trainings_dir / row["name"], ignore_errors=True)
        return row["name"]

    def prune(
        self, older_than: str, status: list[str] | None = None, dry_run: bool = True
    ) -> list[dict[str, Any]]:
        """Runs that ended more than ``older_than`` (``7d``, ``12h``, ...) ago, in
        ``status`` (default: every ended state), deleted unless ``dry_run``; newest
        first. Queued and running runs are never pruned."""
        from datetime import datetime, timezone

        from vml.lifecycle import parse_age
        from vml.store.runs import ENDED_STATES

        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than {exc}") from None
        states = status or list(ENDED_STATES)
        for state in states:
            if state not in ENDED_STATES:
                raise UsageError(f"cannot prune {state!r} runs (prune one of: {', '.join(ENDED_STATES)})")
        cutoff = datetime.now(timezone.utc) - age
        doomed = [
            run
            for run in self.list_runs(status=states)
            if datetime.fromisoformat(run["training_end"] or run["training_start"]) < cutoff
        ]
        if not dry_run:
            for run in doomed:
                self.delete(f"@{run['instance']}")
        return doomed

    def find_run(self, ref: str) -> dict[str, Any]:
        """A run by full name, ``@name``, a unique prefix, or ``@last`` (the newest)."""
        runs = self.records()
        if not runs:
            raise NotFoundError("there are no runs yet (start one with: ml train)")
        if ref == "@last":
            return runs[0]
        name = ref.removeprefix("@")
        for run in runs:
            if run["name"] == name:
                return run
        matches = [run for run in runs if run["name"].startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(run["name"] for run in matches[:10])
            raise UsageError(f"{ref!r} matches {len(matches)} runs: {shown} (type more of the name)")
        import difflib

        close = difflib.get_close_matches(name, [run["name"] for run in runs], n=1)
        hint = f"did you mean {close[0]}?" if close else "ml list shows the runs"
        raise NotFoundError(f"no run named {ref!r} ({hint})")

    def _prepare_for(self, run: dict[str, Any], stderr: TextIO, purpose: str):
        """The data a run trained on, prepared again (from the cache when unchanged);
        refused, before any work, when the data or preprocessing changed since."""
        from vml.data.prepare import DataChanged, prepare_data

        if run["status"] == "deleted":
            raise NotFoundError(f"run {run['name']!r} was deleted (its folder is gone)")
        hparams = run["hyperparameters"]
        try:
            return prepare_data(
                self.config_of(run["name"]),
                hparams["random_seed"],
                say=lambda line: print(line, file=stderr),
                task=resolve_task(hparams)[0],
                expect=run["fingerprint"],
            )
        except DataChanged:
            raise UsageError(
                f"the data or preprocessing changed since run {run['name']!r} started "
                f"({purpose} needs the same data; undo the change or start a new run)"
            ) from None

    def resume(self, ref: str, stderr: TextIO = sys.stderr):
        """Continue a cancelled, failed or crashed run from its ``last.pt``, in this
        process; returns a ``RunResult``."""
        run = self.find_run(ref)
        if run["status"] == "finished":
            raise UsageError(f"run {run['name']!r} already finished (start a new one with ml train)")
        config = self.config_of(run["name"])
        if run["model"] != config.model.name:
            raise UsageError(
                f"run {run['name']!r} trained model {run['model']!r} but {config.file.name} now names "
                f"{config.model.name!r} (put it back to resume)"
            )
        data = self._prepare_for(run, stderr, "resume")
        from vml.train.runner import resume_run

        return resume_run(config, run, data, stderr=stderr)

    def config_of(self, name: str) -> ProjectConfig:
        """The project settings run ``name`` trained with: its own project file (a
        runs-file entry's, kept in its folder) or the project's."""
        own = self.trainings_dir / name / RUN_PROJECT_FILE
        return load_project(self.root, own) if own.is_file() else self.config

    def test(self, ref: str, stderr: TextIO = sys.stderr) -> dict[str, Any]:
        """Evaluate a run's best checkpoint on its test split again."""
        run = self.find_run(ref)
        data = self._prepare_for(run, stderr, "testing it")
        from vml.train.inference import load_best, test_split_scores

        model, checkpoint = load_best(self.trainings_dir / run["name"], self.root)
        return {
            "instance": run["name"],
            **test_split_scores(model, checkpoint, data.x("test"), data.y("test")),
        }

    def predict(self, ref: str, files: list[Path | str], top: int = 3) -> list[dict[str, Any]]:
        """Top-``top`` labels with probabilities for image files or CSV rows."""
        run = self.find_run(ref)
        from vml.train.inference import load_best, predict, read_inputs

        model, checkpoint = load_best(self.trainings_dir / run["name"], self.root)
        x, names = read_inputs([Path(f) for f in files], checkpoint)
        return predict(model, checkpoint, x, names, top)

    def export(self, ref: str, directory: Path | str) -> list[str]:
        """Write the run's best weights, config, labels, preprocessing and (when the
        model allows) a ``torch.export`` program, usable without vml."""
        run = self.find_run(ref)
        target = Path(directory)
        if target.exists() and any(target.iterdir()):
            raise UsageError(f"{target} is not empty (pick a new directory)")
        from vml.train.inference import export, load_best

        model, checkpoint = load_best(self.trainings_dir / run["name"], self.root)
        return export(model, checkpoint, self.trainings_dir / run["name"], target)


LIST_COLUMNS = ("instance", "model", "status", "training_start", "epoch", "batch", "test_acc", "test_loss")
RUN_STATES = ("queued", "running", "finished", "failed", "cancelled", "killed", "crashed", "deleted")
ACTIVE_STATES = ("queued", "running")
WORKER_OUTPUT = "worker.txt"
# A runs-file entry that changes project settings trains with its own project file,
# kept in its folder.
RUN_PROJECT_FILE = "vergeml.yaml"


PUBLIC_KEYS = (
    "instance",
    "model",
    "status",
    "training_start",
    "training_end",
    "epoch",
    "epochs",
    "batch",
    "batches",
    "test_acc",
    "test_loss",
    "monitor",
    "best_metric",
    "best_epoch",
    "fingerprint",
    "error",
    "sweep",
    "hyperparameters",
)


def public_run(row: dict[str, Any]) -> dict[str, Any]:
    """A store row in the shape users see (``ml list --format json``)."""
    return {
        "instance": row["name"],
        "model": row["model"],
        "status": row["status"],
        "training_start": row["started_at"],
        "training_end": row["ended_at"],
        "epoch": row["epoch"],
        "epochs": row["epochs"],
        "batch": row["step"],
        "batches": row["steps"],
        "test_acc": row["test_acc"],
        "test_loss": row["test_loss"],
        "monitor": row["monitor"],
        "best_metric": row["best_metric"],
        "best_epoch": row["best_epoch"],
        "fingerprint": row["fingerprint"],
        "error": row["error"],
        "sweep": row.get("sweep"),
        "hyperparameters": row["hyperparameters"],
    }


def show_run(project: Project, row: dict[str, Any]) -> dict[str, Any]:
    """A store row in the shape ``ml show --format json`` prints: the public fields
    plus where the run lives and its process."""
    folder = project.trainings_dir / row["name"]
    best = folder / "best.pt"
    return {
        **public_run(row),
        "pid": row["pid"],
        "host": row["host"],
        "heartbeat": row["heartbeat"],
        "resources": json.loads(row["resources"]) if row.get("resources") else None,
        "folder": str(folder),
        "checkpoint": str(best) if best.is_file() else None,
        "log": str(folder / "log.txt"),
    }


def _known_columns(runs: list[dict[str, Any]]) -> set[str]:
    known = set(PUBLIC_KEYS)
    for run in runs:
        known |= set(run["hyperparameters"])
    return known


def known_columns(project: Project, runs: list[dict[str, Any]]) -> set[str]:
    """Columns ``ml list`` can show or filter on: the run fields, the hyperparameters
    of ``runs`` and those the project declares."""
    return _known_columns(runs) | {p.name for p in project.config.declared_hyperparameters()}


def run_value(run: dict[str, Any], key: str) -> Any:
    """A column of a public run: one of its fields or a hyperparameter."""
    return run[key] if key in run else run["hyperparameters"].get(key)


def sort_runs(runs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Sort by ``key`` ascending, or descending for ``key:desc`` / ``-key``; runs
    without a value go last."""
    from vml.params import normalize_key

    descending = key.startswith("-") or key.endswith(":desc")
    field = normalize_key(key.lstrip("-").removesuffix(":desc").removesuffix(":asc"))
    known = _known_columns(runs)
    if field not in known:
        import difflib

        close = difflib.get_close_matches(field, sorted(known), n=1)
        hint = f"did you mean {close[0]}?" if close else f"e.g. {', '.join(LIST_COLUMNS[:4])}"
        raise UsageError(f"cannot sort by {key!r}: no such column ({hint})")
    present = [r for r in runs if run_value(r, field) is not None]
    missing = [r for r in runs if run_value(r, field) is None]
    return sorted(present, key=lambda r: run_value(r, field), reverse=descending) + missing


# The data cache (``ml cache``). Entries are kept while a run in one of these states
# uses them; a run whose folder was deleted no longer holds its entry.
CACHE_KEEP_STATES = ("running", "queued")


def _cache_store(project: Project):
    from vml.data.cache import CacheStore

    return CacheStore(project.config.cache_dir)


def _runs_by_fingerprint(project: Project) -> dict[str, list[dict[str, Any]]]:
    """Recorded runs (oldest first) grouped by data fingerprint, deleted runs left out."""
    found: dict[str, list[dict[str, Any]]] = {}
    for run in reversed(project.records()):
        if run["fingerprint"] and run["status"] != "deleted":
            found.setdefault(run["fingerprint"], []).append(run)
    return found


def _entry_dict(entry, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fingerprint": entry.fingerprint,
        "source": entry.source,
        "size": entry.size,
        "created": entry.created,
        "last_used": entry.last_used,
        "status": entry.status,
        "problem": entry.problem,
        "runs": [run["name"] for run in runs],
    }


def _removal(kind: str, name: str, size: int, reason: str, entry: dict | None = None) -> dict[str, Any]:
    """One item ``prune_cache``/``clear_cache`` removes (or would remove)."""
    entry = entry or {}
    return {
        "kind": kind,  # entry, staging (a leftover of a writer that died) or stat-cache
        "name": name,
        "fingerprint": entry.get("fingerprint"),
        "source": entry.get("source"),
        "size": size,
        "status": entry.get("status"),
        "reason": reason,
    }


def cache_entries(project: Project) -> list[dict[str, Any]]:
    """The data cache's entries, oldest first: fingerprint, source, size (bytes),
    created and last_used (ISO UTC), status (``ok`` or ``damaged``, with ``problem``)
    and the names of the runs that used each one."""
    users = _runs_by_fingerprint(project)
    found = [_entry_dict(e, users.get(e.fingerprint, [])) for e in _cache_store(project).entries()]
    return sorted(found, key=lambda e: (e["created"] or e["last_used"], e["fingerprint"]))


def prune_cache(project: Project, dry_run: bool = True) -> list[dict[str, Any]]:
    """Remove (or with ``dry_run`` only list) the entries no recorded run uses, damaged
    entries and staging folders left by writers that died. An entry used by a running
    or queued run is always kept."""
    store = _cache_store(project)
    users = _runs_by_fingerprint(project)
    doomed = []
    for entry in store.entries():
        runs = users.get(entry.fingerprint, [])
        if any(run["status"] in CACHE_KEEP_STATES for run in runs):
            continue
        if entry.status == "damaged":
            reason = f"damaged: {entry.problem}"
        elif not runs:
            reason = "no run uses it"
        else:
            continue
        doomed.append(
            (
                entry.fingerprint,
                _removal("entry", entry.fingerprint, entry.size, reason, _entry_dict(entry, runs)),
            )
        )
    removed = [item for fp, item in doomed if dry_run or store.remove(fp)]
    for item in store.garbage():
        if dry_run or store.remove_garbage(item):
            removed.append(_removal("staging", item.path.name, item.size, "left by an interrupted write"))
    return removed


def clear_cache(project: Project, dry_run: bool = False) -> list[dict[str, Any]]:
    """Remove every entry except those used by running or queued runs, stale staging
    folders and the stat cache (the file hashes it remembers are computed again); with
    ``dry_run`` only list them."""
    from vml.data.fingerprint import STAT_CACHE

    store = _cache_store(project)
    users = _runs_by_fingerprint(project)
    removed = []
    for entry in store.entries():
        runs = users.get(entry.fingerprint, [])
        if any(run["status"] in CACHE_KEEP_STATES for run in runs):
            continue
        if store.remove(entry.fingerprint):
            removed.append(
                _removal("entry", entry.fingerprint, entry.size, "cleared", _entry_dict(entry, runs))
            )
    for item in store.garbage():
        if store.remove_garbage(item):
            removed.append(_removal("staging", item.path.name, item.size, "left by an interrupted write"))
    stat_cache = store.directory / STAT_CACHE
    try:
        size = stat_cache.stat().st_size
        stat_cache.unlink()
    except FileNotFoundError:
        pass
    else:
        removed.append(_removal("stat-cache", STAT_CACHE, size, "cleared"))
    return removed
