"""Content hashes with a stat cache, and the fingerprint of a data pipeline.

Hashing uses xxHash's XXH3 (fast, non-cryptographic): the fingerprint detects change,
it does not defend against forgery.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import xxhash

from vml.atomic import write_text_atomic

STAT_CACHE = "stat-cache.json"
_CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    """XXH3-128 of a file's bytes."""
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class StatCache:
    """Maps (path, size, mtime_ns, inode) to a content hash, so an unchanged file is
    not read again. A changed stat means that one file is hashed again."""

    def __init__(self, cache_dir: Path) -> None:
        self.file = cache_dir / STAT_CACHE
        try:
            self.entries: dict[str, list] = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.hashed: list[Path] = []

    def content_hash(self, path: Path) -> str:
        """The file's hash, from the cache when its stat is unchanged."""
        stat = path.stat()
        key = os.path.abspath(path)  # resolve() costs an lstat per path part; the inode is in the signature
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cached = self.entries.get(key)
        if cached and cached[:3] == signature:
            return cached[3]
        digest = hash_file(path)
        self.entries[key] = [*signature, digest]
        self.hashed.append(path)
        return digest

    def save(self) -> None:
        """Persist the cache if anything was hashed (a lost write only costs a re-hash)."""
        if self.hashed:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.file, json.dumps(self.entries, indent=0))


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable digest of JSON-serialisable pipeline parts."""
    return xxhash.xxh3_128_hexdigest(json.dumps(parts, sort_keys=True, default=str).encode())
