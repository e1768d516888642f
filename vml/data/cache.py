"""The fingerprint store: prepared splits under ``.cache/<fingerprint>/``.

An entry is a folder of ``.npy`` arrays (they load without a parse step) and a
``manifest.json`` with their checksums. It is written in a temporary folder and
renamed into place, so a reader never sees half an entry; an entry whose files do not
match the manifest is treated as missing and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from vml.atomic import fsync_dir, shared_mode, write_text_atomic

MANIFEST = "manifest.json"


def _checksum(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


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
                path = entry / info["file"]
                if _checksum(path) != info["xxh3"]:
                    return None
                arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
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
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.rename(staging, target)
            except OSError:
                if self.load(fingerprint) is None:
                    raise
            fsync_dir(self.directory)
            return target
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
