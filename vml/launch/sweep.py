"""Sweeps: one command line that stands for many runs.

``--learning_rate=0.001,0.01,0.1 --batch_size=32,64`` is a grid: every combination,
6 runs, in the order the values were given (the last flag varies fastest). With
``--random N``, N points are drawn instead: from a list of values, or from a range of
a number, ``LOW:HIGH`` (uniform) or ``LOW:HIGH:log`` (log-uniform); integers stay
integers. Every point is checked like a single ``ml train`` before anything starts.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
from dataclasses import dataclass
from typing import Any

from vml.config import ProjectConfig, resolve_hyperparameters
from vml.errors import NotFoundError, UsageError
from vml.launch.process import record_queued, taken_names
from vml.launch.stop import cancel_run
from vml.names import generate_name, validate_name
from vml.params import TRAINING_PARAMS, HyperParam
from vml.paths import RUN_PROJECT_FILE, run_dir
from vml.repro import require_clean
from vml.store import RunStore
from vml.store.runs import utcnow

Overrides = dict[str, tuple[str, str]]  # canonical key -> (flag as typed, value)


@dataclass(frozen=True)
class Axis:
    """One swept hyperparameter: a list of values, or a numeric range to draw from."""

    key: str
    flag: str
    text: str  # as typed
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def draw(self, rng: random.Random) -> str:
        """One value, as text the way a user would type it."""
        if not self.is_range:
            return rng.choice(self.values)
        assert self.low is not None and self.high is not None
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return str(round(value)) if self.integer else f"{value:.6g}"


def split_axes(config: ProjectConfig, overrides: Overrides) -> tuple[Overrides, list[Axis]]:
    """The overrides with one value, and the swept ones (a comma list, or a range)."""
    declared = {p.name: p for p in config.declared_hyperparameters()}
    fixed: Overrides = {}
    axes: list[Axis] = []
    for key, (flag, raw) in overrides.items():
        param = declared.get(key)
        axis = _axis(key, flag, raw, param) if param is not None else None
        if axis is None:
            fixed[key] = (flag, raw)  # one value (an unknown key is reported by resolve)
        else:
            axes.append(axis)
    return fixed, axes


def _axis(key: str, flag: str, raw: str, param: HyperParam) -> Axis | None:
    numeric = param.type in (int, float)
    if numeric and ":" in raw:
        parts = raw.split(":")
        scale = parts[2].strip().lower() if len(parts) == 3 else "linear"
        if len(parts) not in (2, 3) or scale not in ("log", "linear"):
            raise UsageError(
                f"{flag}={raw} is not a range (use LOW:HIGH or LOW:HIGH:log, e.g. {flag}=1e-4:1e-1:log)"
            )
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise UsageError(
                f"{flag}={raw}: the ends of a range are numbers (e.g. {flag}=1e-4:1e-1:log)"
            ) from None
        if not low < high:
            raise UsageError(f"{flag}={raw}: the range is empty (LOW must be below HIGH)")
        if scale == "log" and low <= 0:
            raise UsageError(f"{flag}={raw}: a log range needs LOW > 0 (e.g. {flag}=1e-4:1e-1:log)")
        return Axis(key, flag, raw, low=low, high=high, log=scale == "log", integer=param.type is int)
    if "," in raw:
        values = tuple(v.strip() for v in raw.split(","))
        if any(not v for v in values):
            raise UsageError(f"{flag}={raw} has an empty value (list values like {flag}=0.001,0.01)")
        if len(set(values)) != len(values):
            raise UsageError(f"{flag}={raw} lists a value twice (keep one)")
        return Axis(key, flag, raw, values=values)
    return None


def expand(
    config: ProjectConfig, overrides: Overrides, draws: int | None = None, seed: int | None = None
) -> list[Overrides]:
    """The overrides of each run of the sweep: the grid, or ``draws`` random points.
    Each is checked (``UsageError`` names the first bad one) before any is returned."""
    fixed, axes = split_axes(config, overrides)
    if draws is None:
        ranges = [a for a in axes if a.is_range]
        if ranges:
            a = ranges[0]
            raise UsageError(
                f"{a.flag}={a.text} is a range: add --random N to draw N runs from it"
                f" (or list values, e.g. {a.flag}={a.low:g},{a.high:g})"
            )
        combos = itertools.product(*(a.values for a in axes)) if axes else [()]
        points = [dict(zip((a.key for a in axes), combo, strict=True)) for combo in combos]
    else:
        if draws < 1:
            raise UsageError(f"--random {draws}: draw at least 1 run (e.g. --random 10)")
        if not axes:
            raise UsageError(
                "--random needs a swept value, e.g. --learning-rate=1e-4:1e-1:log or --batch-size=32,64"
            )
        rng = random.Random(seed)
        points = [{a.key: a.draw(rng) for a in axes} for _ in range(draws)]
    flags = {a.key: a.flag for a in axes}
    runs = [fixed | {key: (flags[key], value) for key, value in point.items()} for point in points]
    for run in runs:
        resolve_hyperparameters(config, run)  # the first bad value stops the sweep here
    return runs


def describe(overrides: Overrides) -> str:
    """A run's overrides as flags: ``--learning-rate=0.01 --batch-size=32``."""
    return " ".join(f"{flag}={value}" for flag, value in overrides.values())


@dataclass
class Queued:
    """A sweep just recorded: its id, the runs queued and those skipped as done."""

    sweep: str | None  # None when every run was skipped
    names: list[str]
    skipped: list[tuple[str, str]]  # (what the run would have been, the finished run it matches)
    flags: dict[str, str]  # run name -> its overrides as flags
    parallel: int = 1  # runs at once
    cpus_per_run: int = 1  # CPU threads of each


def new_sweep_id() -> str:
    return "sw-" + secrets.token_hex(3)


@dataclass
class Planned:
    """A run to queue: its overrides, maybe a name, and maybe a project file of its
    own (a runs-file entry's: the YAML tree and the config it makes)."""

    overrides: Overrides
    name: str | None = None
    tree: dict[str, Any] | None = None
    config: ProjectConfig | None = None


def queue(
    project: ProjectConfig, runs: list[Planned], source: str, needed: bool = False, **settings: Any
) -> Queued:
    """Record ``runs`` as one sweep of ``queued`` runs, in order, with the scheduler
    ``settings`` (parallel, gpus_per_run, cpus_per_run, backend). With ``needed``, a
    run whose hyperparameters and data match a finished run is skipped."""
    import yaml

    done = _finished_by_key(project) if needed else {}
    todo, skipped = [], []
    for run in runs:
        config = run.config or project
        hparams = resolve_hyperparameters(config, run.overrides)
        match = done.get(_key(hparams, _fingerprint(config, hparams))) if needed else None
        if match:
            skipped.append((run.name or describe(run.overrides) or "(defaults)", match))
        else:
            todo.append((run, config, hparams))
    if not todo:
        return Queued(None, [], skipped, {}, settings.get("parallel", 1), settings.get("cpus_per_run", 1))
    require_clean(project.root, [hparams for _, _, hparams in todo])
    sweep = new_sweep_id()
    queued, flags = [], {}
    with RunStore(project.db_path) as store:
        store.create_sweep(sweep, source, **settings)
    taken = taken_names(project.root)
    for run, config, hparams in todo:
        chosen = _free(validate_name(run.name), taken) if run.name else generate_name(taken)
        chosen = record_queued(project, chosen, run.name is None, hparams, model=config.model.name, sweep=sweep)
        if run.tree is not None:
            with (run_dir(project.root, chosen) / RUN_PROJECT_FILE).open("w", encoding="utf-8") as file:
                yaml.safe_dump(run.tree, file, sort_keys=False)
        taken.add(chosen)
        queued.append(chosen)
        flags[chosen] = describe(run.overrides)
    return Queued(sweep, queued, skipped, flags, settings.get("parallel", 1), settings.get("cpus_per_run", 1))


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when a run has it already."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _fingerprint(config: ProjectConfig, hparams: dict[str, Any]) -> str:
    from vml.config import resolve_task
    from vml.data.prepare import data_fingerprint

    return data_fingerprint(config, hparams["random_seed"], resolve_task(hparams)[0])


def _key(hparams: dict[str, Any], fingerprint: str) -> str:
    return json.dumps([hparams, fingerprint], sort_keys=True)


def _finished_by_key(project: ProjectConfig) -> dict[str, str]:
    """Finished runs (whose folders are still there) by what makes them the same run:
    hyperparameters and data."""
    if not project.db_path.exists():
        return {}
    with RunStore(project.db_path) as store:
        finished = store.runs(["finished"])
    # A hyperparameter added to vml since a run was recorded: the run had its default.
    defaults = {p.name: p.default for p in TRAINING_PARAMS}
    return {
        _key(defaults | row["hyperparameters"], row["fingerprint"]): row["name"]
        for row in finished
        if row["fingerprint"] and run_dir(project.root, row["name"]).is_dir()
    }


def cancel(project: ProjectConfig, sweep_id: str, timeout: float = 30.0) -> dict[str, str]:
    """Cancel a sweep: its queued runs leave the queue at once, its running runs stop
    at their next batch (see ``cancel_run``). The new status of each run it touched."""
    with RunStore(project.db_path) as store:
        if store.sweep(sweep_id) is None:
            raise NotFoundError(f"no sweep {sweep_id!r} (ml list --columns instance,sweep shows them)")
        store.update_sweep(sweep_id, stop_requested=utcnow())  # a study's driver asks for no more trials
        statuses = {}
        for name in store.sweep_names(sweep_id, "queued"):
            row = store.run_by_name(name)
            if row and store.set_status(row["id"], "cancelled", ("queued",), ended_at=utcnow()):
                statuses[name] = "cancelled"
        running = store.sweep_names(sweep_id, "running") + store.sweep_names(sweep_id, "queued")
    for name in running:
        statuses[name] = cancel_run(project.db_path, name, timeout)
    return statuses
