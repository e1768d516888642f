"""Data-pipeline speed: fingerprinting, re-checking an unchanged folder, cache hit vs miss.

Each measurement times vml beside its baseline in the same run and reports a ratio, so
the numbers compare like with like on whatever machine runs it. Everything is written
under one temporary directory, removed at the end.

    .venv/bin/python benchmarks/bench_data.py [--size-gb 1.0] [--files 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from report import Line, finish

from vml.api import Project, create_project
from vml.config import ProjectConfig
from vml.data.fingerprint import STAT_CACHE, StatCache, fingerprint
from vml.data.prepare import prepare_data

REPEATS = 3
CHUNK = 1 << 20  # the baseline reads in 1 MiB chunks, as vml does
BLOB_BYTES = 64 << 20  # the 1 GB data set is 64 MiB files
SMALL_FILE_BYTES = 200  # about an 8x8 PNG
CLASSES = 10
CSV_ROWS = 200_000
CSV_COLUMNS = 64
SEED = 42
RESULTS = Path(__file__).resolve().parent / "results" / "data.json"
PROFILE_FORMAT = "\nprofile of the cache hit, {name}:\n{profile}"


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``run`` takes, and what it returned."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def alternate(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[float, float]:
    """Best seconds of each of two functions, called in turn ``REPEATS`` times."""
    a, b = [], []
    for _ in range(REPEATS):
        a.append(timed(first)[0])
        b.append(timed(second)[0])
    return min(a), min(b)


def raw_hash(path: Path) -> str:
    """The baseline: XXH3-128 of a file read in 1 MiB chunks, nothing else."""
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_blobs(folder: Path, size_gb: float) -> list[Path]:
    """About ``size_gb`` GB of random bytes in 64 MiB files (the last one may be shorter)."""
    folder.mkdir()
    rng = np.random.default_rng(SEED)
    total = int(size_gb * 1e9)
    paths = []
    for i in range(-(-total // BLOB_BYTES)):
        path = folder / f"blob-{i:03d}.bin"
        path.write_bytes(rng.bytes(min(BLOB_BYTES, total - i * BLOB_BYTES)))
        paths.append(path)
    return paths


def bench_fingerprint(root: Path, size_gb: float) -> Line:
    """Hash a warm ~1 GB data set: raw chunked XXH3 vs a cold StatCache plus fingerprint."""
    files = write_blobs(root / "blobs", size_gb)
    size = sum(f.stat().st_size for f in files)
    empty = root / "empty-cache"  # never saved to, so every StatCache starts cold

    def baseline() -> dict[str, str]:
        return {f.name: raw_hash(f) for f in files}

    def vml() -> str:
        stats = StatCache(empty)
        return fingerprint({f.name: stats.content_hash(f) for f in files})

    raw_s, vml_s = alternate(baseline, vml)
    ratio = vml_s / raw_s
    raw_rate, vml_rate = size / 1e9 / raw_s, size / 1e9 / vml_s
    return Line(
        name=f"fingerprint {size / 1e9:.2f} GB (vml/raw time)",
        target="<= 2.00x",
        measured=f"{ratio:.2f}x ({vml_rate:.2f} vs {raw_rate:.2f} GB/s)",
        passed=ratio <= 2,
        values={
            "bytes": size,
            "raw_s": raw_s,
            "vml_s": vml_s,
            "raw_gb_s": raw_rate,
            "vml_gb_s": vml_rate,
            "ratio": ratio,
        },
    )


def write_small_files(folder: Path, count: int) -> list[Path]:
    """``count`` files of random 200-byte content spread over 10 class folders."""
    rng = np.random.default_rng(SEED)
    paths = []
    for i in range(count):
        path = folder / f"class_{i % CLASSES}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(SMALL_FILE_BYTES))
        paths.append(path)
    return paths


def bench_recheck(root: Path, count: int) -> Line:
    """Re-check an unchanged folder of small files: cold pass (hash + save) vs warm pass
    (StatCache loaded from disk, stat only)."""
    paths = write_small_files(root / "images", count)
    cache_dir = root / "stat-cache"

    def cold() -> None:
        (cache_dir / STAT_CACHE).unlink(missing_ok=True)
        stats = StatCache(cache_dir)
        for path in paths:
            stats.content_hash(path)
        stats.save()

    def warm() -> None:
        stats = StatCache(cache_dir)
        for path in paths:
            stats.content_hash(path)
        if stats.hashed:
            raise RuntimeError(f"warm pass hashed {len(stats.hashed)} unchanged files")

    cold_s, warm_s = alternate(cold, warm)
    return Line(
        name=f"re-check {count:,} unchanged files (warm)",
        target="< 1.00 s",
        measured=f"{warm_s:.3f} s (cold {cold_s:.3f} s, warm/cold {warm_s / cold_s:.2f})",
        passed=warm_s < 1,
        values={"files": count, "cold_s": cold_s, "warm_s": warm_s, "ratio": warm_s / cold_s},
    )


def make_large_project(target: Path) -> Path:
    """A project from the default template reading a seeded CSV of 200,000 rows x 64
    numeric columns + label."""
    create_project(target)
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(CSV_ROWS, CSV_COLUMNS)).round(4)
    labels = rng.integers(0, CLASSES, size=CSV_ROWS)
    header = ",".join([*(f"f{i}" for i in range(CSV_COLUMNS)), "label"])
    np.savetxt(
        target / "data" / "large.csv",
        np.column_stack([x, labels]),
        delimiter=",",
        fmt=["%.4f"] * CSV_COLUMNS + ["%d"],
        header=header,
        comments="",
    )
    yaml_file = target / "vergeml.yaml"
    text = yaml_file.read_text()
    if "file: digits.csv" not in text:
        raise RuntimeError("the default template no longer reads digits.csv; update this benchmark")
    yaml_file.write_text(text.replace("file: digits.csv", "file: large.csv"))
    return target


def hit_profile(config: ProjectConfig) -> str:
    """cProfile's top 10 (by cumulative time) of one cache-hit ``prepare_data``."""
    profiler = cProfile.Profile()
    profiler.runcall(prepare_data, config, SEED)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(10)
    return out.getvalue()


def bench_prepare(name: str, project: Path) -> Line:
    """prepare_data on an empty .cache (miss) vs again on the entry it wrote (hit), best
    of 3 each; .cache is cleared before every miss."""
    config = Project(project).config
    misses, hits = [], []
    for _ in range(REPEATS):
        shutil.rmtree(config.cache_dir, ignore_errors=True)
        miss_s, missed = timed(lambda: prepare_data(config, seed=SEED))
        hit_s, hit = timed(lambda: prepare_data(config, seed=SEED))
        if missed.reused or not hit.reused:
            raise RuntimeError(f"{name}: expected a miss then a hit")
        misses.append(miss_s)
        hits.append(hit_s)
    miss_s, hit_s = min(misses), min(hits)
    ratio = hit_s / miss_s
    rows = sum(len(missed.y(s)) for s in ("train", "val", "test"))
    line = Line(
        name=f"prepare {name} ({rows:,} rows) hit/miss",
        target="< 5.0%",
        measured=f"{ratio:.1%} (hit {hit_s:.3f} s, miss {miss_s:.3f} s)",
        passed=ratio < 0.05,
        values={"rows": rows, "miss_s": miss_s, "hit_s": hit_s, "ratio": ratio},
    )
    if not line.passed:
        line.profile = hit_profile(config)
    return line


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="data set size to fingerprint")
    parser.add_argument("--files", type=int, default=10_000, help="small files to re-check")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.gettempdir())
    needed = args.size_gb * 1e9 + 0.5e9
    if shutil.disk_usage(scratch).free < needed:
        print(f"bench_data: {scratch} needs {needed / 1e9:.1f} GB free (lower --size-gb)", file=sys.stderr)
        return 1

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-", dir=scratch) as tmp:
        root = Path(tmp)
        lines = [bench_fingerprint(root, args.size_gb), bench_recheck(root, args.files)]
        lines.append(bench_prepare("digits", create_project(root / "demo")))
        lines.append(bench_prepare("large csv", make_large_project(root / "large")))
    elapsed = time.perf_counter() - started

    machine = {"numpy": np.__version__, "xxhash": xxhash.VERSION}
    run_args = {"size_gb": args.size_gb, "files": args.files, "repeats": REPEATS}
    return finish(lines, elapsed, args.json, machine, run_args, PROFILE_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
