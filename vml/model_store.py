"""The model store, ``PROJECT/models/NAME/vN/``: a run's exported model kept under a
name of its own, in numbered versions, apart from ``trainings/`` so that deleting or
pruning the run leaves it.

A version folder holds what ``ml export`` writes (``weights.pt``, ``model.pt2``,
``labels.json``, ``preprocess.json``, the resolved ``config.yaml``), the run's
``best.pt`` (what ``ml serve`` loads, as ``ml predict`` does), its reproducibility
record, a copy of a project model's ``./file.py`` and ``model.json``: the facts
``ml models`` lists, read without torch.

A version is written into a hidden folder beside the others and renamed to ``vN``
once complete, so a crash or a full disk leaves no half version, and two ``ml store``
at once take different numbers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vml.atomic import fsync_dir, shared_mode, write_text_atomic
from vml.errors import NotFoundError, UsageError, disk_full, is_disk_full
from vml.paths import BEST, REPRO_FILE, REPRO_PATCH, models_dir
from vml.store.columns import TEST_METRICS

MODEL_FILE = "model.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION_PATTERN = re.compile(r"v([1-9][0-9]{0,8})")
LATEST = "latest"


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME``, ``NAME:latest`` (the newest version: None) or ``NAME:vN``."""
    name, _, version = text.partition(":")
    check_name(name)
    if not version or version == LATEST:
        return name, None
    match = VERSION_PATTERN.fullmatch(version)
    if match is None:
        raise UsageError(f"{text!r}: the version must be like v2, or latest (e.g. {name}:v1)")
    return name, int(match.group(1))


def check_name(name: str) -> str:
    """A model name: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
    digit, at most 64 characters (a folder name on every system)."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a model name (use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters, e.g. digits-mlp)"
        )
    return name


def versions(root: Path, name: str) -> list[int]:
    """The version numbers stored under ``name``, oldest first."""
    try:
        entries = os.listdir(models_dir(root) / name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = (VERSION_PATTERN.fullmatch(entry) for entry in entries)
    return sorted(int(match.group(1)) for match in found if match)


def stored_models(root: Path, name: str | None = None) -> list[dict[str, Any]]:
    """Every stored version (of model ``name``), by name then version: its
    ``model.json`` with its ``folder`` and its size in bytes."""
    base = models_dir(root)
    if name is not None:
        names = [check_name(name)]
    elif base.is_dir():
        names = sorted(entry for entry in os.listdir(base) if NAME_PATTERN.fullmatch(entry))
    else:
        names = []
    return [_described(base / model / f"v{version}") for model in names for version in versions(root, model)]


def find_model(root: Path, ref: str) -> dict[str, Any]:
    """The stored version ``NAME[:vN]`` names (the newest for a bare name or
    ``:latest``), as ``stored_models`` describes it."""
    name, version = parse_ref(ref)
    known = versions(root, name)
    if not known:
        names = sorted({m["name"] for m in stored_models(root)})
        hint = (
            f"stored: {', '.join(names)}"
            if names
            else "none is stored yet; ml store RUN --as NAME stores one"
        )
        raise NotFoundError(f"no stored model {name!r} ({hint})")
    if version is None:
        version = known[-1]
    elif version not in known:
        listed = ", ".join(f"v{v}" for v in known)
        raise NotFoundError(f"model {name!r} has no version v{version} (it has {listed})")
    return _described(models_dir(root) / name / f"v{version}")


def exists(root: Path, name: str) -> bool:
    """Whether any version of model ``name`` is stored (a bad name is none)."""
    return bool(NAME_PATTERN.fullmatch(name)) and bool(versions(root, name))


def store_run(root: Path, run: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    """Store run ``run`` (its store row; its files in ``folder``) as the next version
    of model ``name``; returns the new version as ``stored_models`` describes it."""
    from vml.store.runs import utcnow  # not at import: ml serve's completion lists models
    from vml.train.inference import export, load_best

    check_name(name)
    model, checkpoint = load_best(folder, root)
    base = models_dir(root) / name
    staging: Path | None = None
    try:
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=base, prefix=".v", suffix=".tmp"))
        export(model, checkpoint, folder, staging)
        for kept in (BEST, REPRO_FILE, REPRO_PATCH):
            if (folder / kept).is_file():
                shutil.copy2(folder / kept, staging / kept)
        source = _model_source(root, checkpoint["model_name"])
        if source is not None:
            (staging / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / source, staging / source)
        facts = {
            "name": name,
            "run": run["name"],
            "run_status": run["status"],
            "model": checkpoint["model_name"],
            "task": "regression" if not checkpoint["classes"] else "classification",
            "labels": list(checkpoint["classes"]),
            "input_type": checkpoint.get("input_type"),
            "input_shape": list(checkpoint["input_shape"]),
            "features": list(checkpoint.get("features") or []),
            "test_metrics": {key: run.get(key) for key in TEST_METRICS if run.get(key) is not None},
            "commit": _commit(folder),
            "stored_at": utcnow(),
        }
        version = _place(root, name, staging, facts)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(exc):
            raise disk_full(base, _size(folder)) from exc
        raise
    return _described(base / f"v{version}")


def delete_version(root: Path, ref: str) -> dict[str, Any]:
    """Remove stored version ``NAME:vN`` (a bare name is refused: name the version);
    the model's folder goes with its last version. Returns what was removed."""
    name, version = parse_ref(ref)
    if version is None:
        known = versions(root, name)
        listed = ", ".join(f"{name}:v{v}" for v in known) or "none"
        raise UsageError(
            f"name the version to delete, e.g. {name}:v{known[-1] if known else 1} (stored: {listed})"
        )
    found = find_model(root, ref)
    folder = Path(found["folder"])
    # Out of sight first: a version is there whole or not at all.
    doomed = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".deleting-", suffix=".tmp"))
    os.replace(folder, doomed / folder.name)
    shutil.rmtree(doomed, ignore_errors=True)
    try:
        folder.parent.rmdir()  # the last version: the name goes too
    except OSError:
        pass
    return found


def _place(root: Path, name: str, staging: Path, facts: dict[str, Any]) -> int:
    """Rename the complete ``staging`` folder to the next free ``vN``; returns N."""
    base = models_dir(root) / name
    while True:
        version = max(versions(root, name), default=0) + 1
        write_text_atomic(staging / MODEL_FILE, json.dumps({**facts, "version": version}, indent=2) + "\n")
        os.chmod(staging, shared_mode(0o777))
        try:
            os.rename(staging, base / f"v{version}")  # fails when another store took vN
        except OSError as exc:
            if (base / f"v{version}").exists():
                continue
            raise exc
        fsync_dir(base)
        return version


def _described(folder: Path) -> dict[str, Any]:
    try:
        facts = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        facts = {
            "name": folder.parent.name,
            "version": int(folder.name[1:]),
            "note": f"{MODEL_FILE} unreadable",
        }
    return {
        **facts,
        "ref": f"{facts['name']}:v{facts['version']}",
        "folder": str(folder),
        "size": _size(folder),
    }


def _model_source(root: Path, model_name: str) -> Path | None:
    """A project model's file (``./net.py:Net``), relative to the project; None for a
    built-in or plugin model."""
    if ".py:" not in model_name:
        return None
    path = (root / model_name.rpartition(":")[0]).resolve()
    return path.relative_to(root.resolve()) if path.is_file() else None


def _commit(folder: Path) -> str | None:
    try:
        record = json.loads((folder / REPRO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (record.get("git") or {}).get("commit")


def _size(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file())
