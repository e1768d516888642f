"""A run's reproducibility record, ``trainings/NAME/repro.json``: the code (git commit,
branch, the patch of uncommitted changes, untracked source files), the environment
(Python, vml, the installed packages), the host, the command line, the seed and the
data fingerprint. The training process adds its torch, CUDA and GPU facts.

Nothing here imports torch: ``ml show`` and ``ml diff`` read records, and ``ml
train --require-clean`` asks ``tree_state`` before anything is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vml.atomic import write_bytes_atomic, write_text_atomic
from vml.errors import UsageError
from vml.paths import CACHE_DIR, MODELS_DIR, REPRO_FILE, REPRO_PATCH, TRAININGS_DIR
from vml.version import __version__

RECORD_VERSION = 1
# Untracked files that are code or settings; data (CSV, images) is covered by the
# data fingerprint instead.
SOURCE_SUFFIXES = frozenset(
    ".py .pyx .pyi .ipynb .yaml .yml .json .toml .cfg .ini .txt .md .sh .c .cc .cpp .h .cu".split()
)
UNTRACKED_LISTED = 100  # files named in the record; more are counted
UNTRACKED_HASHED_BYTES = 1 << 20  # an untracked file this size or smaller is hashed
PATCH_LIMIT_BYTES = 8 << 20  # a larger patch is cut there (and says so)
GIT_TIMEOUT_SECONDS = 20


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # GIT_OPTIONAL_LOCKS=0: `git status` refreshes the index under index.lock, which
    # fails when two runs start in the same repository at once.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, env=env, timeout=GIT_TIMEOUT_SECONDS, check=False
    )


def git_state(root: Path) -> dict[str, Any]:
    """The git facts of the repository holding project ``root``: ``repository``
    (None outside one, with a ``note``), ``commit``, ``branch``, ``dirty``, the
    ``changed`` tracked files, the ``patch`` text and the ``untracked`` source files.
    The project's ``trainings/``, ``.cache/`` and ``models/`` are never counted."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        return {"repository": None, "note": "git is not installed"}
    except subprocess.TimeoutExpired:
        return {"repository": None, "note": "git did not answer in time"}
    if top.returncode != 0:
        error = top.stderr.decode(errors="replace").strip().splitlines()
        note = (
            "not in a git repository"
            if "not a git repository" in top.stderr.decode(errors="replace")
            else (f"git failed: {error[-1] if error else top.returncode}")
        )
        return {"repository": None, "note": note}
    repo = Path(top.stdout.decode().strip())
    head = _git(repo, "rev-parse", "--verify", "-q", "HEAD")
    commit = head.stdout.decode().strip() if head.returncode == 0 else None
    branch = _git(repo, "symbolic-ref", "-q", "--short", "HEAD").stdout.decode().strip() or None
    skipped = _skipped_prefixes(root, repo)
    status = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout.decode(
        errors="replace"
    )
    changed = [path for path in _changed_paths(status) if not path.startswith(skipped)]
    patch = _git(repo, "diff", "HEAD", "--no-color", "--no-ext-diff").stdout if commit else b""
    untracked = [
        path
        for path in _git(repo, "ls-files", "--others", "--exclude-standard", "-z").stdout.decode().split("\0")
        if path and not path.startswith(skipped) and Path(path).suffix.lower() in SOURCE_SUFFIXES
    ]
    return {
        "repository": str(repo),
        "commit": commit,
        "branch": branch,
        "dirty": bool(changed or untracked),
        "changed": changed,
        "patch": patch.decode(errors="replace"),
        "untracked": [_untracked_entry(repo / path, path) for path in sorted(untracked)[:UNTRACKED_LISTED]],
        "untracked_more": max(len(untracked) - UNTRACKED_LISTED, 0),
    }


def _changed_paths(porcelain: str) -> list[str]:
    """The paths of ``git status --porcelain=v1 -z``: ``XY path``, and a rename's or
    copy's source path as the next entry (skipped)."""
    entries = iter(porcelain.split("\0"))
    paths = []
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            next(entries, None)
    return paths


def _skipped_prefixes(root: Path, repo: Path) -> tuple[str, ...]:
    """The project's own output folders (runs, cache, the model store), as paths
    relative to the repository."""
    try:
        project = Path(root).resolve().relative_to(repo.resolve())
    except ValueError:
        return ()
    folders = (TRAININGS_DIR, CACHE_DIR, MODELS_DIR)
    return tuple(f"{(project / name).as_posix()}/".removeprefix("./") for name in folders)


def _untracked_entry(path: Path, shown: str) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError:
        return {"path": shown, "size": None, "sha256": None}
    digest = None
    if size <= UNTRACKED_HASHED_BYTES:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return {"path": shown, "size": size, "sha256": digest}


def tree_state(root: Path) -> tuple[str, str] | None:
    """Why the tree holding project ``root`` is not clean, and what to do about it
    (``("2 changed files (...)", "commit or stash the changes")``), or None when it is
    clean."""
    state = git_state(root)
    if state["repository"] is None:
        return f"{root} is {state['note']}", "put the project under git"
    if state["commit"] is None:
        return f"the repository at {state['repository']} has no commit yet", "commit the code"
    parts = []
    if state["changed"]:
        parts.append(f"{_count(len(state['changed']), 'changed file')} ({_some(state['changed'])})")
    untracked = [entry["path"] for entry in state["untracked"]]
    if untracked:
        count = len(untracked) + state["untracked_more"]
        parts.append(f"{_count(count, 'untracked source file')} ({_some(untracked, count)})")
    return (
        (f"the code is not committed: {', '.join(parts)}", "commit or stash the changes") if parts else None
    )


def require_clean(root: Path, hparams: list[dict[str, Any]]) -> None:
    """Refuse (``UsageError``) when one of the runs about to be recorded asks for a
    clean tree (``--require-clean``) and project ``root``'s is not."""
    if not any(h.get("require_clean") for h in hparams):
        return
    found = tree_state(root)
    if found is not None:
        why, fix = found
        raise UsageError(f"--require-clean: {why} ({fix}, or train with --require-clean=false)")


def _some(paths: list[str], total: int | None = None, shown: int = 3) -> str:
    """``a.py, b.py, c.py and 4 more``."""
    more = (total or len(paths)) - shown
    return ", ".join(paths[:shown]) + (f" and {more} more" if more > 0 else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted by name."""
    from importlib.metadata import distributions

    found = {}
    for dist in distributions():
        name, version = _name_and_version(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        if name and name.lower() not in found:
            found[name.lower()] = f"{name}=={version}"
    return [found[key] for key in sorted(found)]


def _name_and_version(metadata: str) -> tuple[str | None, str | None]:
    """The ``Name:`` and ``Version:`` headers of a distribution's metadata. Read from
    the header block alone: ``dist.metadata`` parses the whole file as an e-mail
    (0.43 s for 79 packages, measured; this: 0.035 s), and every run pays it."""
    name = version = None
    for line in metadata.partition("\n\n")[0].splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return name, version


def environment() -> dict[str, Any]:
    """This process's Python, platform, host, vml and installed packages."""
    import platform
    import socket

    packages = installed_packages()
    return {
        "vml": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": packages,
        "packages_hash": packages_hash(packages),
    }


def packages_hash(packages: list[str]) -> str:
    """A short hash of a package list: two records with the same hash have the same
    packages."""
    return hashlib.sha256("\n".join(packages).encode()).hexdigest()[:16]


def _code(root: Path) -> tuple[dict[str, Any], bytes]:
    """The git state as a record keeps it, and the patch's bytes."""
    git = git_state(root)
    patch = git.pop("patch", "").encode()
    if git["repository"] is not None:
        git |= {
            "patch_file": REPRO_PATCH if patch else None,
            "patch_sha256": hashlib.sha256(patch).hexdigest()[:16] if patch else None,
            "patch_lines": patch.count(b"\n"),
            "patch_truncated": len(patch) > PATCH_LIMIT_BYTES,
        }
    return git, patch


def write_record(folder: Path, root: Path, run: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    """Write run folder ``folder``'s ``repro.json`` (and ``repro.patch`` when the tree
    has uncommitted changes): the git state of project ``root``, the environment,
    ``run`` (name, command, seed, data fingerprint) and ``runtime`` (what the training
    process runs on: torch, CUDA, the device). Returns the record."""
    git, patch = _code(root)
    if patch:
        write_bytes_atomic(folder / REPRO_PATCH, patch[:PATCH_LIMIT_BYTES])
    record = {"record": RECORD_VERSION, **run, "git": git, **environment(), **runtime}
    write_text_atomic(folder / REPRO_FILE, json.dumps(record, indent=1))
    return record


def current_state(root: Path, fingerprint: str, runtime: dict[str, Any]) -> dict[str, Any]:
    """What a run started now would record (nothing is written): to compare with an
    old record before a rerun."""
    return {"git": _code(root)[0], **environment(), **runtime, "data_fingerprint": fingerprint}


# The facts of a record compared by ml rerun and ml diff, with how they read.
ENVIRONMENT_FIELDS = (
    ("python", "Python"),
    ("torch", "torch"),
    ("cuda", "CUDA"),
    ("cudnn", "cuDNN"),
    ("device", "device"),
    ("gpus", "GPUs"),
    ("host", "host"),
    ("vml", "vml"),
)


def differences(then: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(what, then, now)`` for each fact of record ``then`` that ``now`` (a record or
    ``current_state``) does not share: the commit, the uncommitted changes, the
    untracked source files, the packages, the data fingerprint and the environment."""
    found = []
    old_git, new_git = then["git"], now["git"]
    if old_git.get("commit") != new_git.get("commit"):
        found.append(("commit", _commit_text(old_git), _commit_text(new_git)))
    if old_git.get("patch_sha256") != new_git.get("patch_sha256"):
        found.append(("uncommitted changes", _patch_text(old_git), _patch_text(new_git)))
    old_files, new_files = _untracked(old_git), _untracked(new_git)
    if old_files != new_files:
        changed = [
            path for path in sorted(old_files.keys() & new_files.keys()) if old_files[path] != new_files[path]
        ]
        new, gone = new_files.keys() - old_files.keys(), old_files.keys() - new_files.keys()
        parts = [f"{len(changed)} changed"] if changed else []
        parts += [f"{len(new)} new"] if new else []
        parts += [f"{len(gone)} no longer untracked"] if gone else []
        found.append(
            ("untracked source files", f"{len(old_files)}", f"{len(new_files)} ({', '.join(parts)})")
        )
    if then["packages_hash"] != now["packages_hash"]:
        changes = package_changes(then["packages"], now["packages"])
        found.append(("packages", f"{len(then['packages'])} installed", _changes_text(changes)))
    if then.get("data_fingerprint") != now.get("data_fingerprint"):
        found.append(
            ("data fingerprint", str(then.get("data_fingerprint")), str(now.get("data_fingerprint")))
        )
    for key, shown in ENVIRONMENT_FIELDS:
        if then.get(key) != now.get(key):
            found.append((shown, _text(then.get(key)), _text(now.get(key))))
    return found


def diff_records(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Two runs' records compared (``ml diff``): ``environment`` (the facts that
    differ), ``packages`` (added, removed, changed) and ``code`` (their commits and
    the ``git diff`` between them)."""
    if a is None or b is None:
        missing = "the first run" if a is None else "the second run"
        return {"environment": [], "packages": None, "code": {"note": f"{missing} has no repro.json"}}
    environment_rows = [
        {"field": shown, "values": [a.get(key), b.get(key)]}
        for key, shown in ENVIRONMENT_FIELDS
        if a.get(key) != b.get(key)
    ]
    if a.get("data_fingerprint") != b.get("data_fingerprint"):
        environment_rows.append(
            {"field": "data fingerprint", "values": [a["data_fingerprint"], b["data_fingerprint"]]}
        )
    packages = (
        package_changes(a["packages"], b["packages"]) if a["packages_hash"] != b["packages_hash"] else None
    )
    commits = [a["git"].get("commit"), b["git"].get("commit")]
    code: dict[str, Any] = {"commits": commits}
    untracked = [_untracked(a["git"]), _untracked(b["git"])]
    if untracked[0] != untracked[1]:
        code["untracked"] = [sorted(files) for files in untracked]
    if None in commits:
        code["note"] = "a run was not in a git repository"
    elif commits[0] == commits[1]:
        code["note"] = f"the same commit {short(commits[0])}"
    else:
        code["diff"] = code_diff(a["git"]["repository"], commits[0], commits[1])
        if code["diff"] is None:
            code["note"] = f"the repository no longer has commit {short(commits[0])} or {short(commits[1])}"
    return {"environment": environment_rows, "packages": packages, "code": code}


def _commit_text(git: dict[str, Any]) -> str:
    if git.get("repository") is None:
        return "not in git"
    return f"{short(git.get('commit'))} ({git.get('branch') or 'detached'})"


def _patch_text(git: dict[str, Any]) -> str:
    return f"{git['patch_lines']} lines of patch" if git.get("patch_sha256") else "none"


def _untracked(git: dict[str, Any]) -> dict[str, str | None]:
    return {entry["path"]: entry["sha256"] for entry in git.get("untracked", [])}


def _changes_text(changes: dict[str, list[str]]) -> str:
    parts = [f"{len(v)} {k}" for k, v in changes.items() if v]
    some = (changes["changed"] + changes["added"] + changes["removed"])[:3]
    return ", ".join(parts) + (
        f" ({'; '.join(some)}{'; ...' if sum(map(len, changes.values())) > 3 else ''})" if some else ""
    )


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def load_record(folder: Path) -> dict[str, Any] | None:
    """The record kept in run folder ``folder``, or None (a run from before vml kept
    them)."""
    path = folder / REPRO_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_patch(folder: Path) -> str:
    """The uncommitted changes kept beside a run's record ('' when none)."""
    path = folder / REPRO_PATCH
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def package_changes(before: list[str], after: list[str]) -> dict[str, list[str]]:
    """``added``, ``removed`` and ``changed`` (``numpy 2.4.6 -> 2.4.7``) packages."""
    old = dict(entry.split("==", 1) for entry in before)
    new = dict(entry.split("==", 1) for entry in after)
    return {
        "added": [f"{name} {new[name]}" for name in new if name not in old],
        "removed": [f"{name} {old[name]}" for name in old if name not in new],
        "changed": [
            f"{name} {old[name]} -> {new[name]}" for name in new if name in old and old[name] != new[name]
        ],
    }


def code_diff(repository: str, commit_a: str, commit_b: str) -> str | None:
    """``git diff`` between two recorded commits, or None when the repository no
    longer has one of them."""
    result = _git(Path(repository), "diff", "--no-color", "--no-ext-diff", commit_a, commit_b)
    return result.stdout.decode(errors="replace") if result.returncode == 0 else None


def short(commit: str | None) -> str:
    return commit[:10] if commit else "-"


def record_fields(record: dict[str, Any]) -> list[tuple[str, str]]:
    """A record as ``(field, text)`` lines, the way ``ml show`` prints it."""
    git = record["git"]
    if git.get("repository") is None:
        code = str(git.get("note", "not in a git repository"))
    else:
        state = "dirty" if git["dirty"] else "clean"
        code = f"{short(git['commit'])} on {git['branch'] or '(detached)'}, {state}"
        if git["changed"]:
            code += f": {_count(len(git['changed']), 'changed file')}"
        if git.get("patch_file"):
            code += f" ({git['patch_file']}, {git['patch_lines']} lines)"
    untracked = [entry["path"] for entry in git.get("untracked", [])]
    fields = [("code", code)]
    if untracked:
        fields.append(("untracked", _some(untracked, len(untracked) + git.get("untracked_more", 0))))
    gpus = ", ".join(record.get("gpus") or []) or "none"
    fields += [
        ("python", f"{record['python']} ({record['executable']})"),
        (
            "torch",
            f"{record.get('torch', '-')}, CUDA {record.get('cuda') or '-'}, cuDNN {record.get('cudnn') or '-'}",
        ),
        (
            "device",
            f"{record.get('device', '-')} (GPUs: {gpus}, {record.get('cpu_threads', '-')} CPU threads)",
        ),
        ("packages", f"{len(record['packages'])} installed (hash {record['packages_hash']})"),
        ("host", record["host"]),
        ("command", record.get("command") or "-"),
        ("seed", str(record["seeds"].get("random_seed"))),
        ("data", str(record["data_fingerprint"])),
    ]
    return fields
