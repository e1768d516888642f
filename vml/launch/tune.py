"""``ml tune``: a study that learns where to look and stops hopeless trials early.

Optuna does the search, in the driver's memory, by ask and tell: the driver asks its
sampler for a point, records it as an ordinary queued run of the study's sweep
(tagged with its trial number), and the backend (the local queue, Ray) starts it like
any other. The driver follows each running trial's monitored metric in vml's store,
reports it to the trial at each epoch, and when the pruner says so asks the run to
stop; the stopped run ends ``pruned`` with the reason, its best.pt kept. Workers know
nothing of Optuna and never open its storage: the store is the only record, so there
is no second database to lock, and a study whose driver died is rebuilt from its runs
(``--resume``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vml.config import ProjectConfig, resolve_hyperparameters, resolve_task
from vml.errors import UsageError, did_you_mean
from vml.launch.process import record_queued, taken_names
from vml.launch.stop import ask_to_stop
from vml.launch.study import (
    PRUNERS,
    REDUCTION_FACTOR,
    SAMPLERS,
    StudySpec,
    distributions,
    frozen_trials,
    load_study,
    prune_reason,
    quiet_optuna,
    trial_overrides,
    trial_params,
    trial_state,
)
from vml.launch.sweep import Overrides, describe, split_axes
from vml.names import generate_name
from vml.store import RunStore
from vml.store.runs import ACTIVE_STATES, utcnow

Say = Callable[[str, str], None]


def plan_study(
    config: ProjectConfig,
    overrides: Overrides,
    *,
    trials: int = 20,
    sampler: str = "tpe",
    pruner: str = "median",
    timeout: float | None = None,
    seed: int | None = None,
    source: str = "",
) -> StudySpec:
    """Check a study before anything is recorded: its space (the sweep syntax: lists,
    ``LOW:HIGH``, ``LOW:HIGH:log``), sampler, pruner and monitor. ``UsageError`` names
    the first problem and its fix."""
    if sampler not in SAMPLERS:
        hint = did_you_mean(sampler, SAMPLERS, f"use one of: {', '.join(SAMPLERS)}")
        raise UsageError(f"--sampler {sampler}: unknown ({hint})")
    if pruner not in PRUNERS:
        hint = did_you_mean(pruner, PRUNERS, f"use one of: {', '.join(PRUNERS)}")
        raise UsageError(f"--pruner {pruner}: unknown ({hint})")
    if trials < 1:
        raise UsageError(f"--trials {trials}: a study needs at least 1 trial (e.g. --trials 20)")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout {timeout:g}: give a positive duration (e.g. --timeout 20m)")
    fixed, axes = split_axes(config, overrides)
    if not axes:
        raise UsageError(
            "nothing to search: give a range or a list, e.g. --learning-rate=1e-4:1e-1:log --batch-size=32,64"
        )
    for axis in axes:
        if axis.key == "monitor":
            raise UsageError(
                f"{axis.flag}={axis.text}: a study follows one metric (e.g. {axis.flag}=val_loss)"
            )
        if axis.is_range and axis.integer and (axis.low != int(axis.low) or axis.high != int(axis.high)):  # type: ignore[arg-type]
            raise UsageError(
                f"{axis.flag}={axis.text}: {axis.key} is an integer: give whole ends (e.g. {axis.flag}=32:512:log)"
            )
        if sampler == "cmaes" and not axis.is_range:
            raise UsageError(
                f"{axis.flag}={axis.text}: --sampler cmaes samples numeric ranges only"
                f" (give a range like {axis.flag}=LOW:HIGH, or use --sampler tpe)"
            )
        if sampler == "grid" and axis.is_range:
            raise UsageError(
                f"{axis.flag}={axis.text}: --sampler grid needs lists of values"
                f" (e.g. {axis.flag}={axis.low:g},{axis.high:g}), or use --sampler tpe for a range"
            )
        for end in _ends(axis):  # every value the space can reach is a valid run
            resolve_hyperparameters(config, fixed | {axis.key: (axis.flag, end)})
    hparams = resolve_hyperparameters(config, fixed)
    monitor = resolve_task(hparams)[1]
    epoch_axis = next((a for a in axes if a.key == "epochs"), None)
    epochs = int(epoch_axis.high if epoch_axis and epoch_axis.is_range else hparams["epochs"])  # type: ignore[arg-type]
    if epoch_axis and not epoch_axis.is_range:
        epochs = max(int(v) for v in epoch_axis.values)
    if sampler == "grid":
        size = math.prod(len(a.values) for a in axes)
        trials = min(trials, size)  # each grid point once
    return StudySpec(
        space=tuple(axes),
        fixed=fixed,
        sampler=sampler,
        pruner=pruner,
        monitor=monitor,
        trials=trials,
        epochs=epochs,
        timeout=timeout,
        seed=seed,
        source=source,
    )


def _ends(axis) -> list[str]:
    if axis.is_range:
        low, high = axis.low, axis.high
        return [str(int(low)), str(int(high))] if axis.integer else [f"{low!r}", f"{high!r}"]
    return list(axis.values)


def make_sampler(config: ProjectConfig, spec: StudySpec, parallel: int):
    """Optuna's sampler for the spec: TPE (which starts from a few random points),
    random, grid (each point once) or CMA-ES."""
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        space = {key: list(d.choices) for key, d in distributions(config, spec).items()}  # type: ignore[attr-defined]
        return optuna.samplers.GridSampler(space, seed=spec.seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=spec.seed, n_startup_trials=startup_trials(spec))
    # The constant liar keeps parallel trials from being asked the same point while
    # the first is still running.
    return optuna.samplers.TPESampler(
        seed=spec.seed, n_startup_trials=startup_trials(spec), constant_liar=parallel > 1
    )


def startup_trials(spec: StudySpec) -> int:
    """Random trials before the model takes over: Optuna's 10, or a quarter of a
    smaller study (10 of 12 trials would leave TPE nothing to do)."""
    return max(2, min(10, spec.trials // 4))


def make_pruner(spec: StudySpec):
    """Optuna's pruner: median (stop a trial worse than the median of the finished
    ones at the same epoch), ASHA (successive halving), Hyperband, or none."""
    import optuna

    if spec.pruner == "median":
        # Prune once a tenth of the study finished (Optuna's 5 at 50 trials and more):
        # with 5 of 27, a study trained 37-48% of a 27-point grid's epochs, with 2,
        # 21-27% for the same best value on the synthetic task (bench_tune.py).
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, spec.trials // 10)))
    if spec.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION_FACTOR)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(spec.epochs, 1), reduction_factor=REDUCTION_FACTOR
        )
    return optuna.pruners.NopPruner()


def new_study(config: ProjectConfig, spec: StudySpec, parallel: int = 1):
    """An in-memory Optuna study with the spec's direction, sampler and pruner."""
    import optuna

    quiet_optuna()
    return optuna.create_study(
        direction=spec.direction, sampler=make_sampler(config, spec, parallel), pruner=make_pruner(spec)
    )


@dataclass
class Live:
    """A trial whose run has not ended: Optuna's trial, the run, the epochs reported."""

    trial: Any
    number: int  # the run's trial number
    name: str
    run_id: int
    epochs: int
    reported: int = 0
    pruning: str | None = None  # the reason, once the run was asked to stop


class TuneDriver:
    """Feeds a study's trials to a backend's queue (see ``Feeder``): called on every
    turn of the backend's loop with the number of free slots, it reports the running
    trials' new epochs, prunes, tells ended trials and asks for new ones."""

    def __init__(self, config: ProjectConfig, study_id: str, parallel: int, say: Say) -> None:
        self.config = config
        self.study_id = study_id
        self.say = say
        with RunStore(config.db_path) as store:
            recorded = load_study(store, study_id)
            self.spec = recorded.spec
            if self.spec.seed is not None and recorded.runs:
                # A resumed study's sampler must not replay the draws it made before.
                self.spec = replace(self.spec, seed=self.spec.seed + len(recorded.runs))
            self.study = new_study(config, self.spec, parallel)
            self.study.add_trials(frozen_trials(store, config, recorded))
            self.live: dict[str, Live] = {}
            self._adopt(store, recorded.runs)
        # vml's trial numbers, not Optuna's: a rebuilt study renumbers its trials, and
        # the runs keep the numbers they were given.
        self._next = 1 + max((r["trial"] for r in recorded.runs if r["trial"] is not None), default=-1)
        self._dists = distributions(config, self.spec)
        self._seen = 0  # the last metrics rowid read
        self._deadline = time.monotonic() + self.spec.timeout if self.spec.timeout else None
        self.stopped = False

    @property
    def asked(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    @property
    def exhausted(self) -> bool:
        """No trial will be asked for any more: enough were, the time is up, or the
        study was stopped."""
        timed_out = self._deadline is not None and time.monotonic() >= self._deadline
        return self.stopped or timed_out or self.asked >= self.spec.trials

    def _adopt(self, store: RunStore, runs: list[dict[str, Any]]) -> None:
        """Trials left running (or queued) by a driver that died: asked again with
        their values fixed, so that they are reported, pruned and told like new ones."""
        for run in runs:
            if trial_state(run) != "RUNNING":
                continue
            self.study.enqueue_trial(trial_params(self.config, self.spec, run), skip_if_exists=False)
            trial = self.study.ask(distributions(self.config, self.spec))
            epochs = run["epochs"] or self.spec.epochs
            self.live[run["name"]] = Live(trial, run["trial"], run["name"], run["id"], epochs)

    def feed(self, store: RunStore, free: int) -> None:
        """One turn: report and prune, tell the trials that ended, and queue up to
        ``free`` new ones."""
        self._check_stop(store)
        self._report(store)
        self._tell_ended(store)
        while free > 0 and not self.exhausted:
            self._ask(store)
            free -= 1

    def _check_stop(self, store: RunStore) -> None:
        if not self.stopped and (store.sweep(self.study_id) or {}).get("stop_requested"):
            self.stopped = True
            self.say(self.study_id, "stopping: no new trials (ml cancel --sweep)")

    def _ask(self, store: RunStore) -> None:
        trial = self.study.ask(self._dists)
        overrides = trial_overrides(self.spec, trial.params)
        hparams = resolve_hyperparameters(self.config, overrides)
        name = record_queued(
            self.config,
            generate_name(taken_names(self.config.root)),
            True,
            hparams,
            sweep=self.study_id,
            trial=self._next,
            command=self.spec.source or None,  # not the detached driver's own command line
        )
        trial.set_user_attr("run", name)
        self.say(name, f"note: trial {self._next}: {describe(overrides)}")
        self.live[name] = Live(trial, self._next, name, store.run_by_name(name)["id"], hparams["epochs"])  # type: ignore[index]
        self._next += 1

    def _report(self, store: RunStore) -> None:
        """Report each new epoch of the live trials; ask a trial the pruner gives up on
        to stop."""
        by_id = {live.run_id: live for live in self.live.values()}
        for rowid, run_id, epoch, value in store.metric_points_since(
            list(by_id), self.spec.monitor, self._seen
        ):
            self._seen = rowid
            live = by_id[run_id]
            if epoch <= live.reported or value is None or not math.isfinite(value):
                continue
            live.trial.report(value, epoch)
            live.reported = epoch
            if live.pruning is None and epoch < live.epochs and live.trial.should_prune():
                self._prune(store, live, epoch, value)

    def _prune(self, store: RunStore, live: Live, epoch: int, value: float) -> None:
        reason = prune_reason(self.spec, self.study, epoch, value)
        row = store.run_by_name(live.name)
        if row is None or row["status"] != "running":
            return  # it ended meanwhile: told as it ended
        live.pruning = reason
        store.update_run(live.run_id, prune_reason=reason)
        ask_to_stop(store, row)
        self.say(live.name, f"stopping: {reason}")

    def _tell_ended(self, store: RunStore) -> None:
        import optuna

        for name, live in list(self.live.items()):
            row = store.run_by_name(name)
            if row is None:  # deleted while it ran
                self._tell(live.trial, state=optuna.trial.TrialState.FAIL)
                del self.live[name]
                continue
            if row["status"] in ACTIVE_STATES:
                continue
            self._report(store)  # the epochs it recorded before it ended
            row = self.settle(store, row)
            state = trial_state(row)
            if state == "COMPLETE":
                self._tell(live.trial, row["best_metric"])
                if self.study.best_trial.number == live.trial.number:  # Optuna's numbers
                    value = row["best_metric"]
                    self.say(
                        name,
                        f"note: trial {live.number} is the best so far: {self.spec.monitor} {value:.4f}",
                    )
            else:
                self._tell(live.trial, state=getattr(optuna.trial.TrialState, state))
            del self.live[name]

    def _tell(self, trial: Any, value: float | None = None, **state: Any) -> None:
        try:
            self.study.tell(trial, value, **state)
        except RuntimeError as exc:
            # The grid sampler calls Study.stop() once every point was asked, which only
            # works inside optimize(); the trial is recorded before (a finally in tell).
            if "Study.stop" not in str(exc):
                raise

    def settle(self, store: RunStore, row: dict[str, Any]) -> dict[str, Any]:
        """A trial asked to stop by its pruner ends ``cancelled`` (the worker stopped as
        asked; only the driver knows why): record it ``pruned``, with the reason."""
        if row["status"] == "cancelled" and row.get("prune_reason"):
            if store.set_status(row["id"], "pruned", ("cancelled",)):
                store.add_event(row["id"], "pruned", row["prune_reason"])
            row = store.run_by_name(row["name"]) or row
        elif row["status"] not in ("cancelled", "pruned") and row.get("prune_reason"):
            # It ended (finished its last epoch) before the request reached it.
            store.update_run(row["id"], prune_reason=None)
            store.add_event(row["id"], "not-pruned", f"ended {row['status']} before the stop: {row['prune_reason']}")
            row = {**row, "prune_reason": None}
        return row

    def finish(self, store: RunStore) -> None:
        """After the backend's loop: tell what is left (a stopped study's trials)."""
        self._tell_ended(store)


def record_study(store: RunStore, study_id: str, spec: StudySpec, **settings: Any) -> None:
    """Record a new study as a sweep with its spec (no runs yet: the driver asks)."""
    store.create_sweep(study_id, spec.source, study=spec.to_json(), **settings)


def reopen_study(store: RunStore, study_id: str, **changes: Any) -> StudySpec:
    """Make a recorded study runnable again (``--resume``): no end, no stop request,
    and the given changes to its spec (``trials``, ``timeout``)."""
    spec = replace(load_study(store, study_id).spec, **{k: v for k, v in changes.items() if v is not None})
    store.update_sweep(study_id, study=spec.to_json(), ended_at=None, stop_requested=None, heartbeat=utcnow())
    return spec


TUNE_KEYS = {
    "trials": int,
    "sampler": str,
    "pruner": str,
    "timeout": (str, int, float),
    "seed": int,
    "name": str,
    "parallel": int,
    "gpus_per_run": int,
    "cpus_per_run": int,
    "backend": str,
    "address": str,
    "search": dict,
}


def read_tune_file(
    config: ProjectConfig, path: Any, seconds: Callable[[Any], float | None], **given: Any
) -> dict[str, Any]:
    """A runs file's ``tune:`` block: the study it describes (``spec``) and the
    scheduler settings (``parallel``, ``backend``...), with the settings ``given``
    (the command line's, None when not given) in place of the file's. Its
    ``search:`` maps each hyperparameter to a range (``1e-4:1e-1:log``), a list, or
    one value for every trial. ``UsageError`` for the first problem."""
    from vml.launch.runsfile import load_yaml
    from vml.params import normalize_key

    tree, shown = load_yaml(path, "tune")
    block = tree.get("tune") if isinstance(tree, dict) else None
    if not isinstance(block, dict):
        raise UsageError(f"{shown}: needs a 'tune:' block with a 'search:' mapping (see ml help tune)")
    settings = {normalize_key(str(key)): value for key, value in block.items()}
    for key, value in settings.items():
        if key not in TUNE_KEYS:
            hint = did_you_mean(key, TUNE_KEYS, f"use: {', '.join(TUNE_KEYS)}")
            raise UsageError(f"{shown}: tune: {key} is not a setting ({hint})")
        if not isinstance(value, TUNE_KEYS[key]) or isinstance(value, bool):
            raise UsageError(
                f"{shown}: tune: {key}: {value!r} is not a {getattr(TUNE_KEYS[key], '__name__', 'number or duration')}"
            )
    settings |= {key: value for key, value in given.items() if value is not None}
    search = settings.pop("search", None)
    if not search:
        raise UsageError(f"{shown}: tune: needs a 'search:' mapping, e.g. learning-rate: 1e-4:1e-1:log")
    overrides: Overrides = {}
    for key, value in search.items():
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        overrides[normalize_key(str(key))] = (f"--{key}", text)
    spec = plan_study(
        config,
        overrides,
        trials=settings.pop("trials", 20),
        sampler=settings.pop("sampler", "tpe"),
        pruner=settings.pop("pruner", "median"),
        timeout=seconds(settings.pop("timeout", None)),
        seed=settings.pop("seed", None),
        source=str(shown),
    )
    return {"spec": spec, **settings}
