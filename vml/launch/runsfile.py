"""Runs files: a family of runs in one YAML file, for ``ml queue runs.yaml``.

    config:                 # all optional
      parallel: 2           # runs at once
      gpus-per-run: 1       # or cpus-per-run: 4
      only: [small, wide]   # start only these entries
      backend: local        # or ray (with address: auto or ray://host:10001)
    runs:
      small:
        learning-rate: 0.01
      wide:
        template: wide.yaml # another project file as the base (default vergeml.yaml)
        hidden-size: 512
        train: {epochs: 5}

Each entry names a run and gives only what it changes: hyperparameters (any
spelling), or project settings (``model``, ``data``, ``train``, the splits), which
give the run a project file of its own (kept in its folder as ``vergeml.yaml``).
``<name>`` in a value becomes the entry's name. Every problem of every entry is
reported before anything is queued.

flexNN's (ThunderTorch's) multi-model file is read as such:

    Nbr_processes: 2        # -> parallel; GPU_per_model, CPU_per_model -> gpus/cpus-per-run
    Model_run: [Model001]   # -> only, in this order (a lone name too)
    Model001:               # an entry, at the top level
      Template: vergeml.yaml
      learning-rate: 0.01

Its flags may also sit in ``config:`` (later flexNN versions), in any case, and
``<model_name>`` is ``<name>``. ``runs:`` beside top-level models or flags, or
``config:`` beside top-level flags, is refused in one line: it is half of each.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vml.config import (
    SCHEMA,
    TOP_LEVEL_HYPERPARAMS,
    ProjectConfig,
    load_project,
    read_user_yaml,
    resolve_hyperparameters,
)
from vml.errors import UsageError
from vml.launch.sweep import Planned
from vml.names import validate_name
from vml.params import display_key, normalize_key
from vml.paths import project_file

CONFIG_KEYS = {
    "parallel": int,
    "gpus_per_run": int,
    "cpus_per_run": int,
    "only": list,
    "backend": str,
    "address": str,
}
BACKENDS = ("local", "ray")
# flexNN's (ThunderTorch's) multi-model flags, any case, and the settings they stand for.
FLEXNN_FLAGS = {
    "nbr_processes": "parallel",
    "gpu_per_model": "gpus_per_run",
    "cpu_per_model": "cpus_per_run",
    "model_run": "only",
}
FLEXNN_NAMES = {
    "nbr_processes": "Nbr_processes",
    "gpu_per_model": "GPU_per_model",
    "cpu_per_model": "CPU_per_model",
    "model_run": "Model_run",
}
NEEDS_RUNS = (
    "needs a 'runs:' mapping of run names to what each changes, or flexNN's models at the top level "
    "(Model001: {Template: vergeml.yaml}); see ml help sweeps"
)
# Keys of an entry that change the project file rather than a hyperparameter.
PROJECT_KEYS = {key for key in SCHEMA if key not in TOP_LEVEL_HYPERPARAMS}


@dataclass
class RunsFile:
    path: Path
    entries: list[Planned]  # each with its name, and maybe a project file of its own
    settings: dict[str, Any] = field(default_factory=dict)


def load_yaml(path: Path, topic: str) -> tuple[Any, str]:
    """A runs file's YAML tree and its path as shown in errors; ``UsageError`` for a
    missing file or a syntax error (``ml help TOPIC`` has the format)."""
    shown = os.path.relpath(path)
    try:
        return read_user_yaml(path), shown
    except FileNotFoundError:
        raise UsageError(f"no runs file {shown} (see ml help {topic} for its format)") from None


def read_runs_file(project: ProjectConfig, path: Path) -> RunsFile:
    """Read and check a runs file, in vml's layout or flexNN's; ``UsageError`` lists
    every problem found."""
    tree, shown = load_yaml(path, "sweeps")
    if isinstance(tree, dict) and "tune" in tree and "runs" not in tree:
        raise UsageError(f"{shown}: a tune: block starts a study: ml tune {shown}")
    if not isinstance(tree, dict):
        raise UsageError(f"{shown}: {NEEDS_RUNS}")
    problems: list[str] = []
    vml_layout = any(_norm(key) == "runs" for key in tree)
    blocks: dict[str, tuple[str, Any]] = {}  # "runs"/"config" -> (the key as written, its value)
    flags: list[tuple[str, Any]] = []  # flexNN's flags before the first model
    top: dict[str, Any] = {}  # flexNN's models
    for raw, value in tree.items():
        key = _norm(raw)
        if key in ("runs", "config"):
            if key in blocks:
                problems.append(f"{raw}: given twice (as {blocks[key][0]} too); keep one")
            blocks[key] = (str(raw), value)
        elif key in FLEXNN_FLAGS:
            flags.append((str(raw), value))
        elif key in CONFIG_KEYS:
            problems.append(f"{raw}: a setting goes under config:, e.g. config: {{{raw}: {value}}}")
        elif vml_layout and (key == "tune" or not isinstance(value, (dict, type(None)))):
            problems.append(f"{raw}: unknown top-level key (use config: and runs:)")
        elif value is None or isinstance(value, dict):
            top[str(raw)] = value
        else:
            problems.append(_unknown_flag(str(raw), value))
    _refuse_a_mix(shown, blocks, flags, top)
    config_raw, config = blocks.get("config", ("config", None))
    if config is not None and not isinstance(config, dict):
        problems.append(f"{config_raw} must be a mapping, e.g. {config_raw}: {{parallel: 2}}")
    written = (
        [(f"{config_raw}.{k}", str(k), v) for k, v in config.items()] if isinstance(config, dict) else []
    )
    settings = _settings(written + [(raw, raw, v) for raw, v in flags], problems, not vml_layout)
    _, runs = blocks.get("runs", ("runs", top))
    if not isinstance(runs, dict) or not runs:
        if problems:  # a misspelt flag or model may be why no entry was found
            _raise(shown, problems)
        raise UsageError(f"{shown}: {NEEDS_RUNS}")
    entries = []
    for name, body in runs.items():
        entry = _entry(project, path, str(name), body, problems)
        if entry is not None:
            entries.append(entry)
    if "only" in settings:
        where, chosen = settings.pop("only")
        named = [str(n) for n in runs]
        missing = [str(n) for n in chosen if str(n) not in named]
        if missing:
            problems.append(
                f"{where} names no such run: {', '.join(missing)} (runs: {', '.join(sorted(named))})"
            )
        by_name = {entry.name: entry for entry in entries}
        if _norm(where.rsplit(".", 1)[-1]) == "model_run":  # flexNN trains them in Model_run's order
            entries = [by_name[str(n)] for n in dict.fromkeys(chosen) if str(n) in by_name]
        else:
            entries = [entry for entry in entries if entry.name in {str(n) for n in chosen}]
    if problems:
        _raise(shown, problems)
    return RunsFile(path, entries, settings)


def _norm(key: Any) -> str:
    return normalize_key(str(key))


def _raise(shown: str, problems: list[str]) -> None:
    listed = "\n".join(f"  {problem}" for problem in problems)
    raise UsageError(f"{shown} has {len(problems)} problem(s); nothing was queued:\n{listed}")


def _refuse_a_mix(
    shown: str, blocks: dict[str, tuple[str, Any]], flags: list[tuple[str, Any]], top: dict[str, Any]
) -> None:
    """One line for a file that is half vml's layout and half flexNN's: ``runs:`` with
    top-level models or flags, or ``config:`` with top-level flags."""
    if "runs" in blocks and (flags or top):
        runs = blocks["runs"][0]
        named = _some([raw for raw, _ in flags] + list(top))
        raise UsageError(
            f"{shown} mixes vml's {runs}: with flexNN's top-level {named}: put every entry under {runs}: "
            f"and every setting under config: (or drop {runs}: and keep the entries at the top level)"
        )
    if "config" in blocks and flags:
        config = blocks["config"][0]
        raise UsageError(
            f"{shown} mixes {config}: with flexNN's top-level {_some([raw for raw, _ in flags])}: "
            f"move them into {config}: (or drop {config}: and keep its settings at the top level)"
        )


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _unknown_flag(raw: str, value: Any) -> str:
    close = difflib.get_close_matches(_norm(raw), list(FLEXNN_FLAGS), n=1)
    hint = f"did you mean {FLEXNN_NAMES[close[0]]}? " if close else ""
    return (
        f"{raw}: {value!r}: unknown flag ({hint}flags: {', '.join(FLEXNN_NAMES.values())}); "
        f"a model's entry is a mapping, e.g. {raw}: {{learning-rate: 0.01}}"
    )


def _settings(written: list[tuple[str, str, Any]], problems: list[str], flexnn: bool) -> dict[str, Any]:
    """Check settings given as (where, key as written, value), flexNN's flags as the
    vml settings they stand for; messages name each as written. ``only`` comes back
    as (where, names)."""
    settings: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for where, raw, value in written:
        key = FLEXNN_FLAGS.get(_norm(raw), _norm(raw))
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            names = [*CONFIG_KEYS, *FLEXNN_FLAGS]
            close = difflib.get_close_matches(_norm(raw), names, n=1)
            hint = f"did you mean {FLEXNN_NAMES.get(close[0]) or display_key(close[0])}? " if close else ""
            known = ", ".join(display_key(k) for k in CONFIG_KEYS)
            if flexnn:
                known += "; or flexNN's " + ", ".join(FLEXNN_NAMES.values())
            problems.append(f"{where}: unknown setting ({hint}use {known})")
            continue
        if key in seen:
            problems.append(f"{where}: sets what {seen[key]} sets; keep one")
            continue
        seen[key] = where
        if key == "only" and isinstance(value, str) and _norm(raw) == "model_run":
            value = [value]  # flexNN takes a lone model's name too
        minimum = 0 if key == "gpus_per_run" else 1
        if not isinstance(value, kind) or isinstance(value, bool):
            problems.append(
                f"{where}: {value!r} is not {'a list' if kind is list else 'an integer' if kind is int else 'text'}"
            )
        elif kind is int and value < minimum:
            problems.append(f"{where}: {value} is too small (at least {minimum})")
        elif key == "backend" and value not in BACKENDS:
            problems.append(f"{where}: {value!r} is not one of {', '.join(BACKENDS)}")
        else:
            settings[key] = (where, value) if key == "only" else value
    return settings


def _entry(project: ProjectConfig, path: Path, name: str, body: Any, problems: list[str]) -> Planned | None:
    where = f"run {name!r}"
    try:
        validate_name(name)
    except UsageError as exc:
        problems.append(f"{where}: {exc.message}")
        return None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        problems.append(f"{where}: give a mapping of what it changes, e.g. learning-rate: 0.01")
        return None
    body = _substitute(body, name)
    templates = [key for key in body if _norm(key) == "template"]  # flexNN writes Template:
    if len(templates) > 1:
        problems.append(f"{where}: {' and '.join(map(str, templates))} both name its template; keep one")
        return None
    template = body.pop(templates[0]) if templates else None
    thunder = [
        str(k)
        for k, v in body.items()
        if _norm(k) in ("data_loader", "trainer") or (_norm(k) == "model" and isinstance(v, dict))
    ]
    if thunder:
        problems.append(
            f"{where}: {', '.join(thunder)}: ThunderTorch's single-model keys, which vml does not read "
            "(give hyperparameters or vml's model/data/train settings, e.g. epochs: 3 for max_epochs)"
        )
        return None
    settings = {normalize_key(str(k)): v for k, v in body.items() if normalize_key(str(k)) in PROJECT_KEYS}
    hyper = {k: v for k, v in body.items() if normalize_key(str(k)) not in PROJECT_KEYS}
    config, tree = project, None
    if template is not None or settings:
        tree, config = _own_project(project, path, template, settings, where, problems)
        if config is None:
            return None
    overrides = {normalize_key(str(k)): (f"--{k}", _text(v)) for k, v in hyper.items()}
    for key, value in overrides.items():
        try:
            resolve_hyperparameters(config, {key: value})
        except UsageError as exc:
            problems.append(f"{where}: {exc.message}")
    return Planned(overrides, name, tree, config)


def _own_project(
    project: ProjectConfig,
    path: Path,
    template: Any,
    settings: dict[str, Any],
    where: str,
    problems: list[str],
) -> tuple[dict[str, Any] | None, ProjectConfig | None]:
    """The entry's project file (template or vergeml.yaml, with its settings) as a
    tree, and the checked config it makes."""
    base_file = project_file(project.root)  # vergeml.yaml, or the one ml --file names
    if template is not None:
        base_file = (path.parent / str(template)).resolve()
        if not base_file.is_relative_to(project.root):
            problems.append(f"{where}: template {template} is outside the project")
            return None, None
        if not base_file.is_file():
            problems.append(f"{where}: template {template}: no such file")
            return None, None
    base = read_user_yaml(base_file) or {}
    if not isinstance(base, dict):
        problems.append(f"{where}: template {template or base_file.name} must be a mapping of keys")
        return None, None
    tree = {normalize_key(str(k)): v for k, v in base.items()}
    for key, value in settings.items():
        if key == "train" and isinstance(value, dict) and isinstance(tree.get("train"), dict):
            tree["train"] = {**tree["train"], **value}
        else:
            tree[key] = value
    tree = {display_key(k): v for k, v in tree.items()}
    return tree, _checked(project, tree, where, problems)


def _checked(
    project: ProjectConfig, tree: dict[str, Any], where: str, problems: list[str]
) -> ProjectConfig | None:
    """Load ``tree`` as a project file (written to a temporary file in the project)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=project.root, delete=False) as file:
        yaml.safe_dump(tree, file, sort_keys=False)
    try:
        return load_project(project.root, Path(file.name))
    except UsageError as exc:
        # The temporary file's name and line mean nothing to the user: the entry does.
        temporary = os.path.relpath(file.name)
        message = exc.message
        if message.startswith(temporary):
            message = message[len(temporary) :].lstrip(":0123456789 ")
        problems.append(f"{where}: {message}")
        return None
    finally:
        os.unlink(file.name)


def _substitute(value: Any, name: str) -> Any:
    if isinstance(value, str):  # flexNN's spelling is <model_name>
        return value.replace("<name>", name).replace("<model_name>", name)
    if isinstance(value, dict):
        return {k: _substitute(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, name) for v in value]
    return value


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
