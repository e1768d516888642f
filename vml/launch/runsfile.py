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
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vml.config import (
    PROJECT_FILE,
    SCHEMA,
    TOP_LEVEL_HYPERPARAMS,
    ProjectConfig,
    load_project,
    resolve_hyperparameters,
)
from vml.errors import UsageError
from vml.launch.sweep import Planned
from vml.names import validate_name
from vml.params import display_key, normalize_key

CONFIG_KEYS = {
    "parallel": int,
    "gpus_per_run": int,
    "cpus_per_run": int,
    "only": list,
    "backend": str,
    "address": str,
}
BACKENDS = ("local", "ray")
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
        return yaml.safe_load(path.read_text(encoding="utf-8")), shown
    except FileNotFoundError:
        raise UsageError(f"no runs file {shown} (see ml help {topic} for its format)") from None
    except yaml.YAMLError as exc:
        raise UsageError(
            f"{shown}: YAML syntax error: {getattr(exc, 'problem', exc)} (fix its indentation or quoting)"
        ) from None


def read_runs_file(project: ProjectConfig, path: Path) -> RunsFile:
    """Read and check a runs file; ``UsageError`` lists every problem found."""
    tree, shown = load_yaml(path, "sweeps")
    if isinstance(tree, dict) and "tune" in tree and "runs" not in tree:
        raise UsageError(f"{shown}: a tune: block starts a study: ml tune {shown}")
    if not isinstance(tree, dict) or not isinstance(tree.get("runs"), dict) or not tree["runs"]:
        raise UsageError(
            f"{shown}: needs a 'runs:' mapping of run names to what each changes (see ml help sweeps)"
        )
    problems: list[str] = []
    unknown = set(tree) - {"config", "runs"}
    if unknown:
        problems.append(
            f"unknown top-level key(s) {', '.join(sorted(map(str, unknown)))} (use config: and runs:)"
        )
    settings = _settings(tree.get("config") or {}, problems)
    entries = []
    for name, body in tree["runs"].items():
        entry = _entry(project, path, str(name), body, problems)
        if entry is not None:
            entries.append(entry)
    only = settings.pop("only", None)
    if only is not None:
        named = {str(n) for n in tree["runs"]}
        missing = [str(n) for n in only if str(n) not in named]
        if missing:
            problems.append(
                f"config.only names no such run: {', '.join(missing)} (runs: {', '.join(sorted(named))})"
            )
        entries = [e for e in entries if e.name in {str(n) for n in only}]
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise UsageError(f"{shown} has {len(problems)} problem(s); nothing was queued:\n{listed}")
    return RunsFile(path, entries, settings)


def _settings(config: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(config, dict):
        problems.append("config must be a mapping, e.g. config: {parallel: 2}")
        return {}
    settings: dict[str, Any] = {}
    for raw_key, value in config.items():
        key = normalize_key(str(raw_key))
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            problems.append(
                f"config.{raw_key}: unknown setting (use {', '.join(display_key(k) for k in CONFIG_KEYS)})"
            )
        elif not isinstance(value, kind) or isinstance(value, bool):
            problems.append(
                f"config.{raw_key}: {value!r} is not {'a list' if kind is list else 'an integer' if kind is int else 'text'}"
            )
        elif kind is int and value < (0 if key == "gpus_per_run" else 1):
            problems.append(
                f"config.{raw_key}: {value} is too small (at least {0 if key == 'gpus_per_run' else 1})"
            )
        elif key == "backend" and value not in BACKENDS:
            problems.append(f"config.backend: {value!r} is not one of {', '.join(BACKENDS)}")
        else:
            settings[key] = value
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
    template = body.pop("template", None)
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
    project: ProjectConfig, path: Path, template: Any, settings: dict[str, Any], where: str, problems: list[str]
) -> tuple[dict[str, Any] | None, ProjectConfig | None]:
    """The entry's project file (template or vergeml.yaml, with its settings) as a
    tree, and the checked config it makes."""
    base_file = project.root / PROJECT_FILE
    if template is not None:
        base_file = (path.parent / str(template)).resolve()
        if not base_file.is_relative_to(project.root):
            problems.append(f"{where}: template {template} is outside the project")
            return None, None
        if not base_file.is_file():
            problems.append(f"{where}: template {template}: no such file")
            return None, None
    base = yaml.safe_load(base_file.read_text(encoding="utf-8")) or {}
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
    if isinstance(value, str):
        return value.replace("<name>", name)
    if isinstance(value, dict):
        return {k: _substitute(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, name) for v in value]
    return value


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
