"""The fingerprint store: prepared splits under ``.cache/<fingerprint>/``.

An entry is a folder of ``.npy`` arrays (they load without a parse step) and a
``manifest.json`` with their checksums. It is written in a temporary folder and
renamed into place, so a reader never sees half an entry; an entry whose files do not
match the manifest is treated as missing and rebuilt.

The entry folder's modification time records its last use: it is set when the entry is
renamed into place and by ``touch`` on a cache hit, and nothing else changes the
folder, so the files themselves are never written again. ``remove`` renames an entry
to a ``.tmp-`` name before deleting it, so a reader sees the whole entry or none.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from vml.atomic import fsync_dir, shared_mode, write_text_atomic
from vml.data.fingerprint import hash_file
from vml.errors import DiskFullError, disk_full, is_disk_full

MANIFEST = "manifest.json"
STAGING_PREFIX = ".tmp-"
# Staging folders (and temporary files) older than this belong to no live writer.
STALE_AFTER_S = 3600.0
# An entry is named by a fingerprint: XXH3-128 in hex. Other folders are not entries.
_ENTRY_NAME = re.compile(r"^[0-9a-f]{32}$")


def _checksum(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


@dataclass(frozen=True)
class CacheEntry:
    """What ``CacheStore.entries`` reports about one entry (times are ISO-8601 UTC)."""

    fingerprint: str
    path: Path
    source: str | None
    size: int
    created: str | None
    last_used: str
    status: str  # "ok" or "damaged"
    problem: str | None = None


@dataclass(frozen=True)
class Garbage:
    """A staging folder or temporary file left behind by a writer that is gone."""

    path: Path
    size: int


def _array_from_npy(raw: bytes) -> np.ndarray:
    """A read-only array over the bytes of a ``.npy`` file, without copying them (the
    checksum already read every byte, so mapping the file again would cost a second
    open and a path resolution per array)."""
    buffer = io.BytesIO(raw)
    major, _ = np.lib.format.read_magic(buffer)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(buffer)
    count = math.prod(shape)
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=buffer.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


class CacheStore:
    """Entries of prepared arrays keyed by fingerprint."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def entry_dir(self, fingerprint: str) -> Path:
        return self.directory / fingerprint

    def load(self, fingerprint: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and manifest of a verified entry, or None when it is missing
        or damaged."""
        entry = self.entry_dir(fingerprint)
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            arrays = {}
            for name, info in manifest["arrays"].items():
                raw = (entry / info["file"]).read_bytes()
                if xxhash.xxh3_128_hexdigest(raw) != info["xxh3"]:
                    return None
                arrays[name] = _array_from_npy(raw)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return arrays, manifest

    def save(self, fingerprint: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write an entry atomically. If another process wins the race, keep theirs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.entry_dir(fingerprint)
        staging = Path(tempfile.mkdtemp(dir=self.directory, prefix=".tmp-"))
        os.chmod(staging, shared_mode(0o777))
        try:
            files = {}
            for name, array in arrays.items():
                path = staging / f"{name}.npy"
                with path.open("wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
                files[name] = {
                    "file": path.name,
                    "xxh3": _checksum(path),
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                }
            manifest = {
                "fingerprint": fingerprint,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "arrays": files,
                **meta,
            }
            write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=2))
            if target.exists():
                # A damaged entry (or one another process just wrote) is replaced whole.
                if self.load(fingerprint) is not None:
                    return target
                self._discard(target)
            try:
                os.rename(staging, target)
            except OSError:
                if self.load(fingerprint) is None:
                    raise
            fsync_dir(self.directory)
            return target
        except (OSError, DiskFullError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            needed = sum(a.nbytes for a in arrays.values())
            # numpy tells a full disk as a short write, without errno: "OSError: 91968
            # requested and 48096 written".
            short = shutil.disk_usage(self.directory).free < needed
            if isinstance(exc, DiskFullError) or is_disk_full(exc) or short:
                raise disk_full(target, needed) from exc
            raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def entries(self) -> list[CacheEntry]:
        """Every entry, by fingerprint, each checked against its manifest (a damaged
        one has ``status == "damaged"`` and a ``problem``)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir()):
            if not _ENTRY_NAME.match(path.name) or not path.is_dir():
                continue
            try:
                used = path.stat().st_mtime
            except OSError:  # removed while we looked
                continue
            manifest, problem = _verify(path)
            created = manifest.get("created") if manifest else None
            source = manifest.get("source") if manifest else None
            found.append(
                CacheEntry(
                    fingerprint=path.name,
                    path=path,
                    source=source if isinstance(source, str) else None,
                    size=_size(path),
                    created=created if isinstance(created, str) else None,
                    last_used=datetime.fromtimestamp(used, timezone.utc).isoformat(timespec="seconds"),
                    status="damaged" if problem else "ok",
                    problem=problem,
                )
            )
        return found

    def garbage(self, older_than_s: float = STALE_AFTER_S) -> list[Garbage]:
        """Staging folders (``.tmp-*``) and temporary files (``.*.tmp``) untouched for
        ``older_than_s`` seconds: left by a process that died while writing."""
        if not self.directory.is_dir():
            return []
        cutoff = time.time() - older_than_s
        found = []
        for path in sorted(self.directory.iterdir()):
            staging = path.name.startswith(STAGING_PREFIX) and path.is_dir()
            temp_file = path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()
            try:
                if (staging or temp_file) and path.stat().st_mtime < cutoff:
                    found.append(Garbage(path, _size(path) if staging else path.stat().st_size))
            except OSError:
                continue
        return found

    def touch(self, fingerprint: str) -> None:
        """Record that the entry was used now (its folder's time; no file is written).
        Best effort: a cache shared read-only with this user is left as it is."""
        try:
            os.utime(self.entry_dir(fingerprint))
        except OSError:
            pass

    def remove(self, fingerprint: str) -> bool:
        """Delete an entry; False when there was none. It is renamed to a staging name
        first, so a reader sees the whole entry or a missing one, never half of it."""
        return self._discard(self.entry_dir(fingerprint))

    def remove_garbage(self, item: Garbage) -> bool:
        """Delete a leftover staging folder or temporary file."""
        if item.path.is_dir():
            return self._discard(item.path)
        try:
            item.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _discard(self, path: Path) -> bool:
        doomed = self.directory / f"{STAGING_PREFIX}rm-{uuid.uuid4().hex}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return False
        fsync_dir(self.directory)
        shutil.rmtree(doomed, ignore_errors=True)
        return True


def _verify(entry: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The entry's manifest (or None) and what is wrong with it (None when it verifies)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except FileNotFoundError:
        return None, f"{MANIFEST} is missing"
    except (OSError, ValueError) as exc:
        return None, f"{MANIFEST} is unreadable ({exc})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        return None, f"{MANIFEST} is not an entry manifest"
    for name, info in manifest["arrays"].items():
        try:
            path = entry / info["file"]
            if hash_file(path) != info["xxh3"]:
                return manifest, f"{info['file']} does not match its checksum"
        except FileNotFoundError:
            return manifest, f"{info['file']} is missing"
        except (OSError, KeyError, TypeError) as exc:
            return manifest, f"array {name}: {type(exc).__name__}: {exc}"
    return manifest, None


def _size(path: Path) -> int:
    """Bytes in the files under ``path``."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total
