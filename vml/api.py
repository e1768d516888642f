"""The library behind ``ml`` and the dashboard: projects, runs and templates.

The CLI and the TUI only parse, call this module and render. Nothing here imports
torch at module level; training code is imported when a run starts.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vml.config import (
    ProjectConfig,
    find_project_root,
    load_project,
    load_run_project,
    parse_cli_overrides,
    recorded_project,
    resolve_hyperparameters,
    resolve_task,
)
from vml.errors import ConflictError, NotFoundError, UsageError
from vml.names import generate_name, validate_name
from vml.paths import PROJECT_FILE, db_path, trainings_dir
from vml.run import Run, RunFailed
from vml.store.runs import ACTIVE_STATES, DELETED, ENDED_STATES, RUN_STATES, TEST_METRICS
from vml.views import LIST_COLUMNS, check_column, known_columns, public_run, run_value, sort_order

if TYPE_CHECKING:
    from vml.evaluate.plots import CurvePlot, MatrixPlot
    from vml.launch import Say
    from vml.launch.study import StudySpec
    from vml.launch.sweep import Planned, Queued
    from vml.serve.source import Served
    from vml.store.selection import Selection

__all__ = ["ACTIVE_STATES", "ENDED_STATES", "RUN_STATES", "Project", "Run", "RunFailed", "create_project", "templates"]

DEFAULT_TEMPLATE = "default"
# The most runs at once, CPU threads or GPUs per run a sweep or study may ask for.
SCHEDULER_LIMIT = 4096
# Runs ml prune deletes in one transaction.
PRUNE_BATCH = 1_000


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


def template_for_model(model: str) -> str:
    """The template whose vergeml.yaml trains ``model`` (VergeML's ``ml --model=cnn new
    NAME``): the default template if it does, else the first by name."""
    import yaml

    models = {
        t.name: str((yaml.safe_load(t.files.joinpath(PROJECT_FILE).read_text(encoding="utf-8")) or {}).get("model"))
        for t in templates()
    }
    found = [name for name, trains in models.items() if trains.lower() == model.lower()]
    if not found:
        listed = ", ".join(f"{name} (model {trains})" for name, trains in models.items())
        raise UsageError(f"no template trains model {model!r} (templates: {listed}; ml new NAME --template NAME)")
    return DEFAULT_TEMPLATE if DEFAULT_TEMPLATE in found else found[0]


def create_project(path: Path | str, template: str = DEFAULT_TEMPLATE) -> Path:
    """Copy ``template`` into ``path``, which must not exist or be empty."""
    target = Path(path)
    chosen = {t.name: t for t in templates()}.get(template)
    if chosen is None:
        names = ", ".join(t.name for t in templates())
        raise UsageError(f"unknown template {template!r} (available: {names}; see ml new --list-templates)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty (pick a new directory name)")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, or where nothing may be made (/proc)
        raise UsageError(f"cannot create {target}: {exc.strerror} (pick a directory you can write)") from None
    _copy_tree(chosen.files, target)
    generate = _GENERATED.get(chosen.name)
    if generate is not None:
        generate(target)
    return target


def _digit_images(target: Path) -> None:
    from vml.data.digit_images import write_digit_images

    digits = resources.files("vml.templates") / DEFAULT_TEMPLATE / "data" / "digits.csv"
    write_digit_images(digits, target / "data")


# Templates whose data is written when the project is made instead of shipped: the
# images template's 1797 PNGs come from the default template's digits.csv.
_GENERATED: dict[str, Callable[[Path], None]] = {"images": _digit_images}


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

    ``Project()`` finds the project at or above the current directory (or
    ``VML_PROJECT_DIR``, set by ``ml --project-dir``); ``Project(path)`` opens the one
    at ``path`` (or above it).
    """

    def __init__(self, path: Path | str | None = None) -> None:
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
        return trainings_dir(self.root)

    @property
    def db_path(self) -> Path:
        return db_path(self.root)

    def records(
        self, status: str | list[str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every recorded run (or those in ``status``; the newest ``limit``) as a store
        record, newest first. Live runs whose process died are marked ``crashed`` on
        the way; an ended run whose folder was deleted shows as ``deleted``."""
        from vml import catalog

        return list(catalog.rows(self.root, self._selection(status=status), limit))

    def sweep_ids(self) -> list[str]:
        """The ids of the recorded sweeps, newest first."""
        if not self.db_path.exists():
            return []
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            return store.sweep_ids()

    def study_ids(self) -> list[str]:
        """The ids of the recorded studies (``ml tune``), newest first."""
        if not self.db_path.exists():
            return []
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            return store.study_ids()

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
        filtered by ``status`` and the ``where`` conditions; at most ``limit``. The
        filter, the sort and the limit are done by SQLite."""
        from vml import catalog

        return catalog.public_runs(self.root, self._selection(sort, status, where), limit)

    def count_runs(self, status: str | list[str] | None = None, where: str | list[str] | None = None) -> int:
        """How many runs ``list_runs`` with these filters would return."""
        from vml import catalog

        return catalog.count(self.root, self._selection(status=status, where=where))

    def runs_json(
        self, sort: str | None = None, status: str | list[str] | None = None, where: str | list[str] | None = None
    ) -> Iterator[str]:
        """``list_runs``' runs as JSON text, one run at a time (``ml list --format json``
        streams them: flat memory however many runs there are)."""
        from vml import catalog

        return catalog.json_lines(self.root, self._selection(sort, status, where))

    def _selection(
        self,
        sort: str | None = None,
        status: str | list[str] | None = None,
        where: str | list[str] | None = None,
    ) -> Selection:
        """The checked filters and sort of a listing: unknown states, columns and
        malformed conditions are refused here, before anything is read."""
        from vml.query import parse_conditions
        from vml.store.selection import Selection

        states = [status] if isinstance(status, str) else status
        for state in states or ():
            if state not in RUN_STATES:
                raise UsageError(f"unknown status {state!r} (use one of: {', '.join(RUN_STATES)})")
        known = self.known_columns() if sort or where else set()
        conditions = parse_conditions([where] if isinstance(where, str) else where, known) if where else ()
        return Selection(states, tuple(conditions), sort_order(sort, known) if sort else None)

    def matching(self, runs: list[dict[str, Any]], where: str | list[str] | None) -> list[dict[str, Any]]:
        """The public runs among ``runs`` (held in memory, as the dashboard does) that
        meet every ``where`` condition."""
        if not where:
            return runs
        from vml.query import parse_conditions

        conditions = parse_conditions([where] if isinstance(where, str) else where, self.known_columns(runs))
        return [run for run in runs if all(c.matches(run_value(run, c.column)) for c in conditions)]

    def list_columns(self) -> tuple[str, ...]:
        """``ml list``'s columns: ``list: columns:`` from vergeml.yaml, or the defaults."""
        chosen = self.config.list_columns
        if not chosen:
            return LIST_COLUMNS
        known = self.known_columns()
        for column in chosen:
            check_column(column, known, f"list.columns of {PROJECT_FILE}", "use a column of ml list --format json")
        return ("instance", *(c for c in chosen if c != "instance"))

    def known_columns(self, runs: Iterable[dict[str, Any]] = ()) -> set[str]:
        """Columns ``ml list`` can show or filter on: the run fields, the
        hyperparameters any run was recorded with (and those of ``runs``) and those
        the project declares."""
        from vml import catalog

        declared = {p.name for p in self.config.declared_hyperparameters()}
        return known_columns(runs, declared | catalog.hyperparameter_keys(self.root))

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
        from vml.launch.process import taken_names

        return taken_names(self.root)

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
        split: str = "all",
    ) -> dict[str, int]:
        """Write what the model will see (images as PNG, tables as CSV) under
        ``directory``, at most ``per_split`` samples of ``split`` (train, val, test or
        all); returns the counts."""
        from vml.data.prepare import SPLITS, prepare_data
        from vml.data.preview import write_previews

        if split not in (*SPLITS, "all"):
            raise UsageError(f"unknown split {split!r} (use one of: {', '.join(SPLITS)}, all)")
        hparams = self.resolve(overrides)
        data = prepare_data(
            self.config,
            hparams["random_seed"],
            say=lambda line: print(line, file=stderr),
            task=resolve_task(hparams)[0],
        )
        return write_previews(data, Path(directory), per_split, SPLITS if split == "all" else (split,))

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
        self._require_clean([hparams])
        _start_evaluation_helper()
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

    def _require_clean(self, hparams: list[dict[str, Any]]) -> None:
        """Refuse runs that ask for a clean git tree (``require_clean``) on a dirty one."""
        from vml.repro import require_clean

        require_clean(self.root, hparams)

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
        from vml.launch.process import record_queued, spawn_worker

        hparams = self.resolve(overrides)
        self._require_clean([hparams])
        run_name = record_queued(self.config, self.new_run_name(name), name is None, hparams)
        return Run(self, run_name, spawn_worker(self.root, run_name, processes=gpus))

    def plan_sweep(
        self, overrides: list[str], draws: int | None = None, seed: int | None = None
    ) -> list[Planned]:
        """The runs of a sweep from command-line words (``["--lr=0.001,0.01"]``): the
        grid, or ``draws`` random points (``seed`` for the draws). Every run is checked
        (``UsageError`` names the first bad value) before any is returned."""
        from vml.launch.sweep import Planned, expand

        parsed = parse_cli_overrides(overrides)
        return [Planned(run) for run in expand(self.config, parsed, draws, seed)]

    def is_sweep(self, overrides: list[str]) -> bool:
        """Whether command-line words sweep a hyperparameter (a list or a range)."""
        from vml.launch.sweep import split_axes

        return bool(split_axes(self.config, parse_cli_overrides(overrides))[1])

    def plan_runs_file(self, path: Path | str) -> tuple[list[Planned], dict[str, Any]]:
        """The runs of a runs file and its ``config:`` settings (parallel,
        gpus_per_run, cpus_per_run, only, backend, address); ``UsageError`` lists
        every problem of every entry."""
        from vml.launch.runsfile import read_runs_file

        read = read_runs_file(self.config, Path(path))
        return read.entries, read.settings

    def queue(
        self,
        runs: list[Planned],
        source: str,
        *,
        parallel: int | None = None,
        gpus_per_run: int | None = None,
        cpus_per_run: int | None = None,
        needed: bool = False,
        backend: str = "local",
        address: str | None = None,
    ) -> Queued:
        """Record ``runs`` as one sweep of queued runs with how they are to run
        (``parallel`` at a time, GPUs and CPU threads per run, the ``backend``);
        with ``needed``, runs that match a finished run are skipped. Nothing is
        recorded when a setting is refused. Start it with ``run_sweep`` (here) or
        ``start_sweep`` (in the background)."""
        from vml.launch import sweep as sweeps

        settings = self._queue_settings(parallel, gpus_per_run, cpus_per_run, backend, address, len(runs))
        return sweeps.queue(self.config, runs, source, needed, **settings)

    def _queue_settings(
        self,
        parallel: int | None,
        gpus_per_run: int | None,
        cpus_per_run: int | None,
        backend: str,
        address: str | None,
        count: int,
    ) -> dict[str, Any]:
        """A sweep's scheduler settings, checked: ``UsageError`` for a refused one."""
        from vml.launch import BACKENDS
        from vml.launch.process import Placement, placement

        # More is a typo, and --parallel 100000000000000000000 filled the memory
        # building its slots (the process was killed) before this limit.
        limited = (("parallel", parallel), ("cpus-per-run", cpus_per_run), ("gpus-per-run", gpus_per_run))
        for setting, value in limited:
            if value is not None and value > SCHEDULER_LIMIT:
                raise UsageError(f"--{setting} {value}: at most {SCHEDULER_LIMIT} (e.g. --{setting} 2)")
        if parallel is not None and parallel < 1:
            raise UsageError(f"--parallel {parallel}: run at least 1 at a time (e.g. --parallel 2)")
        if cpus_per_run is not None and cpus_per_run < 1:
            raise UsageError(f"--cpus-per-run {cpus_per_run}: give each run at least 1 (e.g. --cpus-per-run 2)")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise UsageError(f"--gpus-per-run {gpus_per_run}: 0 (the CPU) or more")
        if backend not in BACKENDS:
            raise UsageError(f"--backend {backend}: use {' or '.join(BACKENDS)}")
        if backend == "ray":
            from vml.launch.ray import require_ray

            require_ray()  # before anything is recorded
            # Ray places the tasks by their CPU and GPU requests, across the cluster.
            chosen = Placement(tuple(() for _ in range(parallel or count or 1)), cpus_per_run or 1)
        else:
            chosen = placement(parallel, gpus_per_run, cpus_per_run)
        return {
            "parallel": chosen.parallel,
            "gpus_per_run": gpus_per_run,
            "cpus_per_run": chosen.cpus_per_run,
            "backend": backend,
            "address": address,
        }

    def plan_study(
        self,
        overrides: list[str],
        *,
        trials: int = 20,
        sampler: str = "tpe",
        pruner: str = "median",
        timeout: str | float | None = None,
        seed: int | None = None,
        source: str = "",
    ) -> StudySpec:
        """A study of ``ml tune`` from command-line words (``["--lr=1e-4:1e-1:log"]``,
        the sweep syntax), checked before anything is recorded: ``UsageError`` names
        the first problem. ``timeout`` is seconds or a duration like ``20m``."""
        from vml.launch.tune import plan_study

        return plan_study(
            self.config,
            parse_cli_overrides(overrides),
            trials=trials,
            sampler=sampler,
            pruner=pruner,
            timeout=_seconds(timeout, "--timeout"),
            seed=seed,
            source=source,
        )

    def plan_tune_file(self, path: Path | str, **given: Any) -> dict[str, Any]:
        """The study of a runs file's ``tune:`` block (``spec``) and its scheduler
        settings (``name``, ``parallel``, ``backend``...), checked; the settings
        ``given`` (``trials=40``; None: not given) replace the file's."""
        from vml.launch.tune import read_tune_file

        return read_tune_file(self.config, Path(path), lambda value: _seconds(value, "timeout"), **given)

    def create_study(
        self,
        spec: StudySpec,
        name: str | None = None,
        *,
        parallel: int | None = None,
        gpus_per_run: int | None = None,
        cpus_per_run: int | None = None,
        backend: str = "local",
        address: str | None = None,
    ) -> str:
        """Record a study (its trials are asked for as it runs) and return its id:
        ``name``, or a new ``st-...``. Start it with ``run_sweep`` (here) or
        ``start_sweep`` (in the background)."""
        from vml.launch.sweep import new_sweep_id
        from vml.launch.tune import record_study
        from vml.store import RunStore

        settings = self._queue_settings(parallel, gpus_per_run, cpus_per_run, backend, address, spec.trials)
        self._require_clean([resolve_hyperparameters(self.config, spec.fixed)])
        study_id = validate_name(name) if name else "st-" + new_sweep_id().removeprefix("sw-")
        with RunStore(self.db_path) as store:
            if store.sweep(study_id) is not None:
                raise UsageError(
                    f"--name {study_id}: a study or sweep of that name exists (continue it with"
                    f" ml tune --resume {study_id}, or pick another name)"
                )
            record_study(store, study_id, spec, **settings)
        return study_id

    def resume_study(self, study_id: str, trials: int | None = None, timeout: str | float | None = None) -> StudySpec:
        """Make a recorded study run again from what its runs recorded (``trials``: a
        new total; ``timeout``: no new trial after it). ``UsageError`` while its driver
        still runs."""
        from vml.launch.tune import reopen_study
        from vml.liveness import reap, reap_sweeps, recorded_process_alive
        from vml.store import RunStore

        if trials is not None and trials < 1:
            raise UsageError(f"--trials {trials}: a study needs at least 1 trial (e.g. --trials 20)")
        if not self.db_path.exists():
            raise NotFoundError(f"no study {study_id!r} (ml tune starts one)")
        with RunStore(self.db_path) as store:
            reap(store, store.runs(ACTIVE_STATES))
            reap_sweeps(store)
            row = store.sweep(study_id)
            if row is not None and row["study"] and row["ended_at"] is None:
                if recorded_process_alive(row):
                    raise UsageError(
                        f"study {study_id} is running (pid {row['pid']}): ml cancel --sweep {study_id} stops it"
                    )
            return reopen_study(store, study_id, trials=trials, timeout=_seconds(timeout, "--timeout"))

    def study(self, study_id: str) -> dict[str, Any]:
        """A study as ``ml tune show`` prints it: its settings, best trial (with the
        ``ml train`` command that repeats it), every trial's state and value, the
        hyperparameter importances and the best value after each trial."""
        from vml import catalog
        from vml.launch.study import summarize
        from vml.store import RunStore

        if not self.db_path.exists():
            raise NotFoundError(f"no study {study_id!r} (ml tune starts one)")
        catalog.reap_live(self.root)  # trials whose process died read crashed
        with RunStore(self.db_path) as store:
            return summarize(store, self.config, study_id)

    def run_sweep(
        self,
        sweep_id: str,
        say: Say = lambda name, event: None,
        interrupted: Callable[[], None] = lambda: None,
    ) -> dict[str, str]:
        """Run a queued sweep here until every run ended; each run's final status.
        ``say(name, event)`` hears each start and end. On KeyboardInterrupt (Ctrl-C)
        ``interrupted()`` is called, the sweep is cancelled, its workers are waited
        for, and the KeyboardInterrupt is raised again."""
        from vml.launch import backend_for

        backend = backend_for(self.config, sweep_id, say)
        try:
            return backend.run()
        except KeyboardInterrupt:
            interrupted()
            self.cancel_sweep(sweep_id)
            backend.run()  # waits for the workers to stop
            raise

    def start_sweep(self, sweep_id: str) -> None:
        """Run a queued sweep in a background scheduler process (its output in
        ``trainings/.sweeps/SWEEP.txt``) and return at once."""
        from vml.launch.process import start_detached_scheduler

        start_detached_scheduler(self.root, sweep_id)

    def cancel_sweep(self, sweep_id: str, timeout: float = 30.0) -> dict[str, str]:
        """Cancel a sweep: its queued runs leave the queue at once, its running runs
        stop at their next batch (see ``Run.cancel``). The new status of each run it
        touched."""
        from vml.launch.sweep import cancel

        return cancel(self.config, sweep_id, timeout)

    def compare(self, refs: list[str]) -> tuple[list[dict[str, Any]], list[tuple[str, list[Any], bool]]]:
        """The runs ``refs`` (names, prefixes, @last) as public runs, and their
        comparison rows: ``(field, value per run, differs)``."""
        from vml.views import compare_rows, final_values

        if len(refs) < 2:
            raise UsageError("compare needs two or more runs, e.g. ml compare @last brave-otter")
        rows = [self.find_run(ref) for ref in refs]
        runs = [public_run(row) for row in rows]
        finals = [final_values(Run(self, row["name"]).metrics()) for row in rows]
        return runs, compare_rows(runs, finals)

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
        first, each as its ``instance``, ``status``, ``training_start`` and
        ``training_end``. Queued and running runs are never pruned."""
        from datetime import datetime, timezone

        from vml.liveness import parse_age

        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than {exc}") from None
        states = status or list(ENDED_STATES)
        for state in states:
            if state not in ENDED_STATES:
                raise UsageError(f"cannot prune {state!r} runs (prune one of: {', '.join(ENDED_STATES)})")
        try:
            cutoff = (datetime.now(timezone.utc) - age).isoformat(timespec="milliseconds")
        except OverflowError:  # before the year 1: no run ended that long ago
            return []
        if not self.db_path.exists():
            return []
        from vml.store import RunStore

        with RunStore(self.db_path) as store:
            doomed = store.ended_before(cutoff, states)
            if not dry_run:
                # A batch at a time: its rows go in one transaction, then its folders,
                # so an interrupted prune leaves no record without its folder.
                for start in range(0, len(doomed), PRUNE_BATCH):
                    batch = doomed[start : start + PRUNE_BATCH]
                    store.delete_runs([row["id"] for row in batch])
                    for row in batch:
                        shutil.rmtree(self.trainings_dir / row["name"], ignore_errors=True)
        return [
            {"instance": r["name"], "status": r["status"], "training_start": r["started_at"], "training_end": r["ended_at"]}
            for r in doomed
        ]

    def find_run(self, ref: str) -> dict[str, Any]:
        """A run by full name, ``@name``, a unique prefix, or ``@last`` (the newest),
        found through the store's name index."""
        from vml import catalog

        return catalog.find(self.root, ref)

    def _kept_run(self, ref: str) -> dict[str, Any]:
        """``find_run``, refused for a run whose folder is gone (``deleted``)."""
        run = self.find_run(ref)
        if run["status"] == DELETED:
            raise NotFoundError(f"run {run['name']!r} was deleted (its folder is gone)")
        return run

    def _prepare_for(self, run: dict[str, Any], stderr: TextIO, purpose: str):
        """The data a run trained on, prepared again (from the cache when unchanged);
        refused, before any work, when the data or preprocessing changed since."""
        from vml.data.prepare import DataChanged, prepare_data

        if run["status"] == DELETED:
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

    def resume(self, ref: str, stderr: TextIO = sys.stderr, epochs: int | None = None):
        """Continue a cancelled, failed, killed or crashed run from its ``last.pt``,
        in this process; returns a ``RunResult``. With ``epochs``, continue it (also a
        finished one) to ``epochs`` epochs in all, more than it has done."""
        run = self.find_run(ref)
        name, status = run["name"], run["status"]
        if status in ACTIVE_STATES:
            raise UsageError(
                f"run {name!r} is {status}: there is nothing to resume (ml wait {name} waits for its end)"
            )
        if status == DELETED:
            raise NotFoundError(f"run {name!r} was deleted (its folder is gone)")
        done = run["epoch"] or 0
        if epochs is None and status == "finished":
            raise UsageError(
                f"run {name!r} already finished after {done} epochs "
                f"(ml resume {name} --epochs N continues it to N > {done} epochs; ml train starts a new one)"
            )
        if epochs is not None:
            epochs = _epochs_value(epochs)
            if epochs <= done:
                raise UsageError(
                    f"--epochs {epochs} is not more than the {done} epochs run {name!r} has done "
                    f"(continue it with --epochs {done + 1} or more)"
                )
        config = self._same_model(run, "resume")
        _start_evaluation_helper()
        data = self._prepare_for(run, stderr, "resume")
        from vml.train.runner import resume_run

        return resume_run(config, run, data, stderr=stderr, epochs=epochs)

    def config_of(self, name: str) -> ProjectConfig:
        """The project settings run ``name`` trained with: its own project file (a
        runs-file entry's, kept in its folder) or the project's."""
        return load_run_project(self.root, name, self.config)

    def test(self, ref: str, stderr: TextIO = sys.stderr) -> dict[str, Any]:
        """Evaluate a run's best checkpoint on its test split again: its scores and
        metrics (recorded on an ended run), its ``predictions.npz`` and
        ``evaluation.json`` written anew (what ``ml plot`` reads)."""
        run = self.find_run(ref)
        _start_evaluation_helper()
        data = self._prepare_for(run, stderr, "testing it")
        from vml.store import RunStore
        from vml.train.inference import load_best, test_split_scores

        folder = self.trainings_dir / run["name"]
        model, checkpoint = load_best(folder, self.root)
        scores = test_split_scores(model, checkpoint, data.x("test"), data.y("test"), folder)
        if run["status"] not in ACTIVE_STATES:  # a live run records its own at its end
            with RunStore(self.db_path) as store:
                store.update_run(run["id"], **scores)
        return {"instance": run["name"], **scores}

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
        if target.exists() and not target.is_dir():
            raise UsageError(f"{target} is a file (pick a new directory)")
        if target.exists() and any(target.iterdir()):
            raise UsageError(f"{target} is not empty (pick a new directory)")
        from vml.train.inference import export, load_best

        model, checkpoint = load_best(self.trainings_dir / run["name"], self.root)
        try:
            return export(model, checkpoint, self.trainings_dir / run["name"], target)
        except OSError as exc:  # a full disk is DiskFullError; this is a place not to write
            raise UsageError(
                f"cannot write {target}: {exc.strerror} (pick a directory you can write)"
            ) from None

    def plot(
        self,
        ref: str,
        kind: str,
        *,
        normalize: bool = False,
        label: str | None = None,
        out: Path | str | None = None,
    ) -> CurvePlot | MatrixPlot:
        """What ``ml plot KIND RUN`` draws (``confusion-matrix``, ``roc`` or ``pr``),
        from the run's ``evaluation.json``; with ``out``, also written there as an
        image (PNG, SVG or PDF by its suffix)."""
        from vml.evaluate import plots

        plots.check_kind(kind)
        if out is not None:
            from vml.evaluate.figures import check_output

            check_output(Path(out))
        name, evaluation = self._evaluation(ref)
        if kind == "confusion-matrix":
            drawn = plots.confusion_matrix(evaluation, name, normalize, label)
        else:
            if normalize:
                raise UsageError(f"--normalize applies to confusion-matrix plots, not {kind}")
            drawn = plots.curves(evaluation, name, kind, label)
        if out is not None:
            from vml.evaluate.figures import write_figure

            write_figure(drawn, Path(out))
        return drawn

    def compare_plot(
        self, refs: list[str], kind: str, label: str | None = None, out: Path | str | None = None
    ) -> CurvePlot:
        """Several runs' ROC or PR curves in one plot (``ml compare A B --plot roc``):
        the positive class of binary runs, or ``label`` against the rest."""
        from vml.evaluate import plots

        if kind not in plots.CURVE_KINDS:
            raise UsageError(f"--plot {kind}: compare overlays roc or pr curves (e.g. --plot roc)")
        if len(refs) < 2:
            raise UsageError("compare needs two or more runs, e.g. ml compare @last brave-otter --plot roc")
        if out is not None:
            from vml.evaluate.figures import check_output

            check_output(Path(out))
        drawn = []
        for ref in refs:
            name, evaluation = self._evaluation(ref)
            plot = plots.curves(evaluation, name, kind, label)
            if len(plot.curves) > 1:
                raise UsageError(
                    f"run {name!r} has {len(plot.curves)} classes: pick the one to compare with --class "
                    f"(e.g. --class {plot.curves[0].name})"
                )
            drawn.append((name, plot))
        overlaid = plots.overlay(drawn)
        if out is not None:
            from vml.evaluate.figures import write_figure

            write_figure(overlaid, Path(out))
        return overlaid

    def _evaluation(self, ref: str) -> tuple[str, dict[str, Any]]:
        run = self._kept_run(ref)
        if run["status"] in ACTIVE_STATES:
            raise UsageError(
                f"run {run['name']!r} is {run['status']}: it is evaluated on its test split when it finishes"
            )
        return run["name"], Run(self, run["name"]).evaluation()

    def rerun_plan(self, ref: str) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """The run ``ref`` names, and what differs now from its reproducibility record:
        ``(what, then, now)`` for the commit, uncommitted changes, packages, data
        fingerprint, device and versions that changed (none: it reruns as it ran)."""
        run, config, _ = self._rerun_source(ref)  # refused before torch is imported
        _start_evaluation_helper()  # a rerun follows: scikit-learn loads meanwhile
        from vml.data.prepare import data_fingerprint
        from vml.repro import current_state, differences
        from vml.train.runner import resolve_device
        from vml.train.runtime import runtime_facts

        hparams = run["hyperparameters"]
        record = Run(self, run["name"]).reproduction()
        now = current_state(
            self.root,
            data_fingerprint(config, hparams["random_seed"], resolve_task(hparams)[0]),
            runtime_facts(resolve_device(hparams["device"])),
        )
        return run, differences(record, now) if record else [("record", "none (a run from before vml kept them)", "-")]

    def _rerun_source(self, ref: str) -> tuple[dict[str, Any], ProjectConfig, dict[str, Any] | None]:
        """The ended run ``ref`` names, the project settings it trained with (those its
        config.yaml recorded), and them as a project file for the rerun to keep."""
        run = self.find_run(ref)
        if run["status"] in ACTIVE_STATES:
            raise UsageError(f"run {run['name']!r} is {run['status']} (rerun it once it has ended)")
        if run["status"] == DELETED:
            raise NotFoundError(f"run {run['name']!r} was deleted (its folder and record of how it ran are gone)")
        recorded = recorded_project(self.root, self.trainings_dir / run["name"])
        if recorded is None:  # a run from before config.yaml: the settings of today
            return run, self._same_model(run, "rerun"), None
        return run, *recorded

    def _same_model(self, run: dict[str, Any], verb: str) -> ProjectConfig:
        """The project settings ``run`` trained with, refused when they now name
        another model than it trained."""
        config = self.config_of(run["name"])
        if run["model"] != config.model.name:
            raise UsageError(
                f"run {run['name']!r} trained model {run['model']!r} but {config.file.name} now names "
                f"{config.model.name!r} (put it back to {verb})"
            )
        return config

    def rerun(self, ref: str, name: str | None = None, stderr: TextIO = sys.stderr):
        """Train a new run with run ``ref``'s resolved hyperparameters, seed and data,
        recorded as its rerun, in this process; returns a ``RunResult``."""
        from vml.data.prepare import prepare_data
        from vml.train.runner import train_run

        run, config, settings = self._rerun_source(ref)
        hparams = run["hyperparameters"]
        hparams = resolve_hyperparameters(config, {}) | hparams  # a hyperparameter added since: its default
        run_name = self.new_run_name(name)
        self._require_clean([hparams])
        _start_evaluation_helper()
        data = prepare_data(
            config, hparams["random_seed"], say=lambda line: print(line, file=stderr), task=resolve_task(hparams)[0]
        )
        return train_run(
            config,
            run_name,
            hparams,
            data,
            stderr=stderr,
            name_generated=name is None,
            rerun_of=run["name"],
            project_file=settings,
        )

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Two runs side by side (``ml diff A B``): the hyperparameters and metrics that
        differ, their environments (versions, packages, device, host) and their code:
        the git diff between their commits and each one's uncommitted changes."""
        from vml.repro import diff_records, load_patch
        from vml.views import changed_hyperparameters

        rows = [self.find_run(a), self.find_run(b)]
        if rows[0]["name"] == rows[1]["name"]:
            raise UsageError(f"{a} and {b} are the same run {rows[0]['name']!r} (diff two runs)")
        runs = [public_run(row) for row in rows]
        names = [run["instance"] for run in runs]
        records = [Run(self, name).reproduction() for name in names]
        metrics = [
            {"metric": key, "values": [run[key] for run in runs]}
            for key in ("best_metric", *TEST_METRICS)
            if any(run[key] is not None for run in runs)
        ]
        return {
            "runs": names,
            "hyperparameters": [
                {"name": key, "values": [run["hyperparameters"].get(key) for run in runs]}
                for key in changed_hyperparameters(runs)
            ],
            "metrics": metrics,
            **diff_records(records[0], records[1]),
            "patches": [load_patch(self.trainings_dir / name) for name in names],
        }

    # Using a run outside vml: the model store, ml serve, TensorBoard and MLflow.

    def store_model(self, ref: str, name: str) -> dict[str, Any]:
        """Put run ``ref``'s exported model, labels, resolved config and
        reproducibility record under ``models/NAME/vN/``, the next version; returns
        the version (``ref``: ``NAME:vN``, ``folder``, ``size``, ...)."""
        from vml import model_store

        model_store.check_name(name)
        run = self._kept_run(ref)
        if run["status"] in ACTIVE_STATES:
            raise UsageError(
                f"run {run['name']!r} is {run['status']}: store it once it ends (ml wait {run['name']})"
            )
        return model_store.store_run(self.root, run, self.trainings_dir / run["name"], name)

    def models(self, name: str | None = None) -> list[dict[str, Any]]:
        """The stored model versions (of ``name``), by name then version."""
        from vml import model_store

        return model_store.stored_models(self.root, name)

    def delete_model(self, ref: str) -> dict[str, Any]:
        """Remove the stored version ``NAME:vN``; returns it as ``models`` listed it."""
        from vml import model_store

        return model_store.delete_version(self.root, ref)

    def served(self, ref: str) -> Served:
        """What ``ml serve REF`` serves: ``NAME``, ``NAME:vN`` or ``NAME:latest`` from the
        model store, or a run (``@name`` is always a run). A bare word naming both a
        stored model and a run is refused."""
        from vml import model_store
        from vml.serve.source import Served

        if ":" in ref:
            return self._served_model(model_store.find_model(self.root, ref))
        if not ref.startswith("@") and model_store.exists(self.root, ref):
            if self._has_run(ref):
                raise UsageError(
                    f"{ref!r} is both a stored model and a run (say {ref}:latest for the model, @{ref} for the run)"
                )
            return self._served_model(model_store.find_model(self.root, ref))
        run = self._kept_run(ref)
        folder = self.trainings_dir / run["name"]
        record = Run(self, run["name"]).reproduction() or {}
        return Served(
            folder=folder,
            root=self.root,
            run=run["name"],
            test_metrics={key: run[key] for key in TEST_METRICS if run.get(key) is not None},
            commit=(record.get("git") or {}).get("commit"),
        )

    def serve(self, ref: str, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve ``ref`` (a run or a stored model, as ``served`` finds it) over HTTP
        until interrupted."""
        from vml.serve import serve

        serve(self.served(ref), host=host, port=port, **options)

    def _has_run(self, name: str) -> bool:
        from vml.store import RunStore

        if not self.db_path.is_file():
            return False
        with RunStore(self.db_path) as store:
            return store.run_by_name(name) is not None

    def _served_model(self, version: dict[str, Any]) -> Served:
        from vml.serve.source import Served

        folder = Path(version["folder"])
        return Served(
            folder=folder,
            root=folder,
            run=version.get("run", ""),
            model=version["ref"],
            test_metrics=version.get("test_metrics") or {},
            commit=version.get("commit"),
        )

    def export_tensorboard(self, refs: list[str], logdir: Path | str) -> list[dict[str, Any]]:
        """Write runs ``refs`` as TensorBoard event files, a folder ``logdir/NAME`` each
        (an earlier export's replaced): scalars per step and per epoch at their recorded
        wall times, hyperparameters for the HParams view. Returns per run its
        ``instance``, ``folder`` and the counts of ``scalars`` and ``hyperparameters``."""
        from vml.export.events import export_runs

        return export_runs(self.db_path, self._exported_rows(refs), Path(logdir))

    def tensorboard(
        self,
        refs: list[str] | None = None,
        logdir: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 6006,
        stderr: TextIO = sys.stderr,
    ) -> None:
        """Export runs ``refs`` (every run not deleted when none is named) and run
        TensorBoard on them until Ctrl-C. Without ``logdir`` they go to
        ``trainings/.tensorboard``, which then holds just these runs. ``port`` 0: a
        free one."""
        from vml.errors import VmlError
        from vml.export import board
        from vml.export.events import DEFAULT_LOGDIR, export_runs, keep_only

        board.require_tensorboard()
        rows = self._exported_rows(refs) if refs else [r for r in self.records() if r["status"] != DELETED]
        if not rows:
            raise NotFoundError("there are no runs yet (start one with: ml train)")
        port = board.free_port(host) if port == 0 else port
        board.check_port(host, port)
        target = Path(logdir) if logdir is not None else self.trainings_dir / DEFAULT_LOGDIR
        exported = export_runs(self.db_path, rows, target)
        if logdir is None:
            keep_only(target, {run["instance"] for run in exported})
        print(f"ml: exported {len(exported)} run{'s' * (len(exported) != 1)} to {target}", file=stderr)
        if host not in board.LOOPBACK:
            print(f"ml: warning: TensorBoard listens on {host}: whoever reaches this machine sees the runs", file=stderr)
        shown = f"[{host}]" if ":" in host else host
        print(f"ml: TensorBoard at http://{shown}:{port}/ (Ctrl-C stops it)", file=stderr, flush=True)
        code = board.run_board(target, host, port)
        if code:
            raise VmlError(f"TensorBoard stopped with exit code {code} (its output above says why)")

    def export_mlflow(
        self, refs: list[str], tracking_uri: str, experiment: str | None = None
    ) -> list[dict[str, Any]]:
        """Make an MLflow run at ``tracking_uri`` for each of runs ``refs`` in experiment
        ``experiment`` (default: the project folder's name; made when missing), replacing
        an earlier export of it: params, metrics with steps and times, tags, ``best.pt``.
        Returns per run its ``instance``, MLflow ``run_id`` and what was logged."""
        from vml.export.mlflow_runs import export_runs

        rows = self._exported_rows(refs)
        return export_runs(rows, self.db_path, self.trainings_dir, tracking_uri, experiment or self.root.name)

    def _exported_rows(self, refs: list[str]) -> list[dict[str, Any]]:
        """The store rows of runs ``refs``, each once, in the order named; all found
        before anything is written."""
        rows: dict[str, dict[str, Any]] = {}
        for ref in refs:
            run = self.find_run(ref)
            rows.setdefault(run["name"], run)
        return list(rows.values())


# The data cache (``ml cache``). Entries are kept while a run in one of these states
# uses them; a run whose folder was deleted no longer holds its entry.
CACHE_KEEP_STATES = ("running", "queued")


def _epochs_value(epochs: Any) -> int:
    """``epochs`` as ``ml train --epochs`` reads it, refused in its words when it
    would refuse it."""
    from vml.params import TRAINING_PARAMS

    param = next(p for p in TRAINING_PARAMS if p.name == "epochs")
    try:
        return param.parse(epochs)
    except ValueError as exc:
        raise UsageError(
            f"invalid value --epochs={epochs}: {exc}; expected int {param.describe_range()}"
        ) from None


def _start_evaluation_helper() -> None:
    """Let scikit-learn load in a helper process while this one imports torch (see
    ``vml.evaluate.service``)."""
    from vml.evaluate.service import start_helper

    start_helper()


def _seconds(value: str | float | None, flag: str) -> float | None:
    """A duration as seconds: a number, or text like ``90s``, ``20m``, ``2h``."""
    if value is None or isinstance(value, (int, float)):
        return value
    from vml.liveness import parse_age

    try:
        return parse_age(value).total_seconds()
    except ValueError:
        raise UsageError(f"{flag} {value}: not a duration (use e.g. 90s, 20m or 2h)") from None


def _cache_store(project: Project):
    from vml.data.cache import CacheStore

    return CacheStore(project.config.cache_dir)


def _runs_by_fingerprint(project: Project) -> dict[str, list[dict[str, Any]]]:
    """Recorded runs (oldest first) grouped by data fingerprint, deleted runs left out."""
    found: dict[str, list[dict[str, Any]]] = {}
    for run in reversed(project.records()):
        if run["fingerprint"] and run["status"] != DELETED:
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
