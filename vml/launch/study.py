"""A study of ``ml tune`` as recorded: its search space and settings (the ``study``
column of its sweep) and its trials (the sweep's runs, numbered by ``trial``).

The store is the study's only record. Optuna's study lives in the driver's memory and
is rebuilt from these records when a study is resumed or shown: finished trials with
their value, pruned ones with the per-epoch values they reported, failed ones as
failed. Nothing here starts or stops a run (see ``vml.launch.tune``).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vml.config import ProjectConfig, monitor_direction
from vml.errors import NotFoundError
from vml.launch.sweep import Axis, Overrides
from vml.params import HyperParam, display_key
from vml.store import RunStore

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "asha", "hyperband", "none")
# Successive halving keeps the best third of the trials at each rung (ASHA's usual
# factor); Hyperband runs brackets of it.
REDUCTION_FACTOR = 3


@dataclass(frozen=True)
class StudySpec:
    """What a study searches and how: the swept hyperparameters (``space``), the
    values every trial gets (``fixed``), Optuna's sampler and pruner, the monitored
    metric and its direction, how many trials, for how long, and the sampler's seed."""

    space: tuple[Axis, ...]
    fixed: Overrides
    sampler: str = "tpe"
    pruner: str = "median"
    monitor: str = "val_acc"
    trials: int = 20
    epochs: int = 20  # the most epochs a trial trains (Hyperband's largest budget)
    timeout: float | None = None  # seconds after which no new trial starts
    seed: int | None = None
    source: str = ""  # the command line or runs file it came from

    @property
    def direction(self) -> str:
        return monitor_direction(self.monitor)

    def to_json(self) -> str:
        data = asdict(self)
        data["fixed"] = {key: list(value) for key, value in self.fixed.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudySpec:
        data = json.loads(text)
        data["space"] = tuple(Axis(**{**a, "values": tuple(a["values"])}) for a in data["space"])
        data["fixed"] = {key: tuple(value) for key, value in data["fixed"].items()}
        return cls(**data)


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO and warns about experimental options: the
    driver says what happened in its own words."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def declared(config: ProjectConfig) -> dict[str, HyperParam]:
    return {p.name: p for p in config.declared_hyperparameters()}


def distributions(config: ProjectConfig, spec: StudySpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna's distribution of each swept hyperparameter: a range is a float or int
    range (log or linear), a list is a categorical choice of typed values."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = declared(config)
    result = {}
    for axis in spec.space:
        if axis.is_range:
            assert axis.low is not None and axis.high is not None
            if axis.integer:
                result[axis.key] = IntDistribution(int(axis.low), int(axis.high), log=axis.log)
            else:
                result[axis.key] = FloatDistribution(axis.low, axis.high, log=axis.log)
        else:
            result[axis.key] = CategoricalDistribution([params[axis.key].parse(v) for v in axis.values])
    return result


def as_text(value: Any) -> str:
    """A sampled value as a user would type it: floats to 6 significant digits (what
    the trial trains with, and what its repeat command says)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def trial_overrides(spec: StudySpec, params: dict[str, Any]) -> Overrides:
    """A trial's overrides: the fixed ones and its sampled values."""
    flags = {axis.key: axis.flag for axis in spec.space}
    return spec.fixed | {key: (flags[key], as_text(value)) for key, value in params.items()}


@dataclass
class Recorded:
    """A recorded study: its id, spec, sweep row and trials (runs, by trial number)."""

    id: str
    spec: StudySpec
    sweep: dict[str, Any]
    runs: list[dict[str, Any]]


def load_study(store: RunStore, study_id: str) -> Recorded:
    """The study ``study_id`` as recorded; ``NotFoundError`` if there is none."""
    row = store.sweep(study_id)
    if row is None or not row.get("study"):
        known = [s for s in store.sweep_ids() if (store.sweep(s) or {}).get("study")]
        hint = f" (studies: {', '.join(known[:5])})" if known else " (ml tune starts one)"
        raise NotFoundError(f"no study {study_id!r}{hint}")
    runs = sorted(store.sweep_runs(study_id), key=lambda r: (r["trial"] is None, r["trial"], r["id"]))
    return Recorded(study_id, StudySpec.from_json(row["study"]), row, runs)


def trial_params(config: ProjectConfig, spec: StudySpec, run: dict[str, Any]) -> dict[str, Any]:
    """The sampled values of a trial's run, inside their distributions."""
    dists = distributions(config, spec)
    params = {}
    for axis in spec.space:
        value = run["hyperparameters"].get(axis.key)
        if axis.is_range and value is not None:
            assert axis.low is not None and axis.high is not None
            value = min(max(value, axis.low), axis.high)  # rounding to 6 digits may step out
            value = int(value) if axis.integer else float(value)
        params[axis.key] = value
    return {key: value for key, value in params.items() if key in dists}


def intermediate_values(store: RunStore, run: dict[str, Any], monitor: str) -> dict[int, float]:
    """A trial's monitored value at each epoch it completed."""
    return {
        point["epoch"]: point["value"]
        for point in store.metrics(run["id"], monitor)
        if point["value"] is not None and math.isfinite(point["value"])
    }


def trial_state(run: dict[str, Any]) -> str:
    """Optuna's state of a trial's run: COMPLETE, PRUNED, FAIL or RUNNING."""
    if run["status"] == "finished":
        return "COMPLETE" if _finite(run["best_metric"]) else "FAIL"
    if run["status"] == "pruned" or (run["status"] == "cancelled" and run.get("prune_reason")):
        return "PRUNED"
    if run["status"] in ("queued", "running"):
        return "RUNNING"
    return "FAIL"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def frozen_trials(store: RunStore, config: ProjectConfig, study: Recorded) -> list[optuna.trial.FrozenTrial]:
    """The study's ended trials as Optuna's, for ``study.add_trials``."""
    import optuna
    from optuna.trial import TrialState

    dists = distributions(config, study.spec)
    trials = []
    for run in study.runs:
        state = trial_state(run)
        if state == "RUNNING" or (run["status"] == "cancelled" and not run["pid"]):
            continue  # running (adopted by the driver), or cancelled before it started
        params = trial_params(config, study.spec, run)
        if set(params) != set(dists):
            continue  # a run whose hyperparameters the space no longer covers
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                value=run["best_metric"] if state == "COMPLETE" else None,
                intermediate_values=intermediate_values(store, run, study.spec.monitor),
                state=getattr(TrialState, state),
                user_attrs={"run": run["name"]},
            )
        )
    return trials


def prune_reason(spec: StudySpec, study: optuna.Study, epoch: int, value: float) -> str:
    """Why the pruner stopped a trial at ``epoch``, in words: ``pruned at epoch 3:
    val_acc 0.71 below the median 0.86 at epoch 3``."""
    from optuna.trial import TrialState

    worse = "below" if spec.direction == "maximize" else "above"
    head = f"pruned at epoch {epoch}: {spec.monitor} {value:.4g}"
    if spec.pruner == "median":
        others = [
            t.intermediate_values[epoch]
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if epoch in t.intermediate_values
        ]
        if others:
            return f"{head} {worse} the median {statistics.median(others):.4g} at epoch {epoch}"
    return f"{head} not in the best 1/{REDUCTION_FACTOR} of the trials at epoch {epoch} ({spec.pruner})"


def repeat_command(spec: StudySpec, run: dict[str, Any]) -> str:
    """The ``ml train ...`` command that trains a trial's point again."""
    values = {key: run["hyperparameters"].get(key) for key in [*spec.fixed, *(a.key for a in spec.space)]}
    flags = [f"--{display_key(key)}={as_text(value)}" for key, value in values.items() if value is not None]
    return " ".join(["ml train", *flags])


def summarize(store: RunStore, config: ProjectConfig, study_id: str) -> dict[str, Any]:
    """A recorded study as ``ml tune show --format json`` prints it: ``study``,
    ``best`` (``instance``, ``value``, ``hyperparameters``, ``command``), ``trials``
    (``instance``, ``state``, ``value``...), ``importance`` (hyperparameter -> share),
    ``best_so_far`` ([trial, best value]) and ``median_by_epoch`` (the median pruner's
    line: the median of the finished trials at each epoch)."""
    recorded = load_study(store, study_id)
    spec = recorded.spec
    keys = [axis.key for axis in spec.space]
    trials = [
        {
            "trial": run["trial"],
            "instance": run["name"],
            "state": run["status"],
            "value": run["best_metric"],
            "epochs": run["epoch"] or 0,
            "hyperparameters": {key: run["hyperparameters"].get(key) for key in keys},
            "reason": run.get("prune_reason") if run["status"] == "pruned" else None,
        }
        for run in recorded.runs
    ]
    better = max if spec.direction == "maximize" else min
    done = [t for t in trials if t["state"] == "finished" and _finite(t["value"])]
    best_trial = better(done, key=lambda t: t["value"]) if done else None
    best = None
    if best_trial is not None:
        run = next(r for r in recorded.runs if r["name"] == best_trial["instance"])
        best = {
            "instance": best_trial["instance"],
            "trial": best_trial["trial"],
            "value": best_trial["value"],
            "hyperparameters": best_trial["hyperparameters"],
            "command": repeat_command(spec, run),
        }
    so_far, current = [], None
    for trial in trials:
        if trial in done:
            current = trial["value"] if current is None else better(current, trial["value"])
        if current is not None and trial["state"] not in ("queued", "running"):
            so_far.append([trial["trial"], current])
    by_epoch: dict[int, list[float]] = {}
    for run in recorded.runs:
        if run["status"] == "finished":
            for epoch, value in intermediate_values(store, run, spec.monitor).items():
                by_epoch.setdefault(epoch, []).append(value)
    sweep = recorded.sweep
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    return {
        "study": study_id,
        "state": _state(sweep),
        "source": spec.source,
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "monitor": spec.monitor,
        "direction": spec.direction,
        "target_trials": spec.trials,
        "space": {axis.key: axis.text for axis in spec.space},
        "fixed": {key: value for key, (_, value) in spec.fixed.items()},
        "counts": counts,
        "epochs_trained": sum(t["epochs"] for t in trials),
        "best": best,
        "trials": trials,
        "importance": importance(store, config, recorded),
        "best_so_far": so_far,
        "median_by_epoch": {epoch: statistics.median(values) for epoch, values in sorted(by_epoch.items())},
    }


def _state(sweep: dict[str, Any]) -> str:
    """``starting`` (no driver yet), ``running``, ``stopped`` (asked to stop) or
    ``ended`` (its driver finished or died)."""
    from vml.liveness import recorded_process_alive

    if sweep["ended_at"] is None and not sweep["pid"]:
        return "starting"
    if sweep["ended_at"] is None and recorded_process_alive(sweep):
        return "running"
    return "stopped" if sweep.get("stop_requested") else "ended"


def importance(store: RunStore, config: ProjectConfig, study: Recorded) -> dict[str, float]:
    """How much each hyperparameter explains the finished trials' values (Optuna's
    default evaluator, PED-ANOVA); empty until two trials finished with different
    values."""
    import optuna

    trials = frozen_trials(store, config, study)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    quiet_optuna()
    rebuilt = optuna.create_study(direction=study.spec.direction)
    rebuilt.add_trials(trials)
    try:
        return {
            key: round(float(value), 4)
            for key, value in optuna.importance.get_param_importances(rebuilt).items()
        }
    except (ValueError, RuntimeError):  # too few distinct points for the evaluator
        return {}
