"""``ml cache``: list the data cache's entries with the runs that used them, prune the
ones no run uses (a dry run unless --yes), clear them all, and never touch an entry a
running or queued run uses. One real run is trained per module; each test works on a
copy of that project."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import run_ml_in_process_report_torch

from vml import api
from vml.data.cache import CacheStore
from vml.data.prepare import prepare_data
from vml.store import RunStore

RUN = "kept-run"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = api.create_project(tmp_path_factory.mktemp("cache-cmd") / "demo")
    out = io.StringIO()
    result = api.Project(root).train_in_process(["--epochs=1"], name=RUN, stderr=out)
    assert result.status == "finished", out.getvalue()
    return root


@pytest.fixture
def trained(trained_once: Path, tmp_path: Path) -> Path:
    """A fresh copy of a project with one finished run and its cache entry."""
    return Path(shutil.copytree(trained_once, tmp_path / "demo"))


def cache_dir(root: Path) -> Path:
    return root / ".cache"


def entry_names(root: Path) -> list[str]:
    return sorted(p.name for p in cache_dir(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def listed(ml, root: Path) -> list[dict]:
    result = ml("cache", "--format", "json", cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # fails on anything but one JSON document


def run_fingerprint(root: Path) -> str:
    (run,) = [r for r in api.Project(root).records() if r["name"] == RUN]
    return run["fingerprint"]


def unused_entry(root: Path, seed: int) -> str:
    """A real entry no run references: the same data split with another seed."""
    data = prepare_data(api.Project(root).config, seed=seed)
    assert not data.reused
    return data.fingerprint


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_list_shows_the_entry_and_the_run_that_used_it(trained: Path, ml) -> None:
    (entry,) = listed(ml, trained)
    assert entry["fingerprint"] == run_fingerprint(trained) == entry_names(trained)[0]
    assert entry["runs"] == [RUN]
    assert entry["status"] == "ok" and entry["problem"] is None
    assert entry["source"] == "data/digits.csv"
    on_disk = sum(p.stat().st_size for p in (cache_dir(trained) / entry["fingerprint"]).iterdir())
    assert entry["size"] == on_disk > 0
    assert entry["created"] and entry["last_used"]

    for args in (("cache",), ("cache", "list")):
        result = ml(*args, cwd=trained)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert lines[0].split() == [
            "fingerprint",
            "source",
            "size",
            "created",
            "last",
            "used",
            "runs",
            "status",
        ]
        row = lines[2].split()
        assert row[0] == entry["fingerprint"][:12]
        assert row[1:4] == ["data/digits.csv", *_human(entry["size"]).split()]
        assert row[-2:] == [RUN, "ok"]
        assert lines[-1] == f"total: 1 entry, {_human(entry['size'])}"

    result = ml("cache", "list", "--format", "csv", cwd=trained)
    assert result.returncode == 0, result.stderr
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["fingerprint"] == entry["fingerprint"]
    assert (row["size"], row["runs"], row["status"]) == (str(entry["size"]), RUN, "ok")

    result = ml("cache", "--format", "xml", cwd=trained)
    assert result.returncode == 2
    assert result.stderr == "ml: error: unknown format 'xml' (use one of: table, json, csv)\n"


def _human(size: int) -> str:
    from vml.errors import human_size

    return human_size(size)


def test_prune_is_a_dry_run_until_yes_and_keeps_used_entries(trained: Path, ml) -> None:
    used = run_fingerprint(trained)
    unused = unused_entry(trained, seed=7)
    damaged = unused_entry(trained, seed=8)
    truncate(cache_dir(trained) / damaged / "x_train.npy")
    stale = cache_dir(trained) / ".tmp-stale"
    (stale / "sub").mkdir(parents=True)
    (stale / "x_train.npy").write_bytes(b"x" * 100)
    age(stale, 2 * 3600)
    fresh = cache_dir(trained) / ".tmp-fresh"  # a writer may still be filling it
    fresh.mkdir()
    before = entry_names(trained)
    assert before == sorted([used, unused, damaged])

    by_fp = {e["fingerprint"]: e for e in listed(ml, trained)}
    assert {fp: e["status"] for fp, e in by_fp.items()} == {used: "ok", unused: "ok", damaged: "damaged"}
    assert by_fp[damaged]["problem"] == "x_train.npy does not match its checksum"
    assert by_fp[unused]["runs"] == by_fp[damaged]["runs"] == []

    planned = api.prune_cache(api.Project(trained), dry_run=True)
    assert {(i["kind"], i["name"]) for i in planned} == {
        ("entry", unused),
        ("entry", damaged),
        ("staging", ".tmp-stale"),
    }
    result = ml("cache", "prune", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert unused[:12] in result.stdout and damaged[:12] in result.stdout and ".tmp-stale" in result.stdout
    assert used[:12] not in result.stdout
    freed = sum(i["size"] for i in planned)
    assert result.stdout.splitlines()[-1] == (
        f"would remove 2 entries and 1 other file, freeing {_human(freed)} (add --yes to remove)"
    )
    assert entry_names(trained) == before and stale.is_dir()  # a dry run removes nothing

    result = ml("cache", "prune", "--yes", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"removed 2 entries and 1 other file, freed {_human(freed)}"
    assert entry_names(trained) == [used]
    assert sorted(p.name for p in cache_dir(trained).iterdir() if p.name.startswith(".")) == [".tmp-fresh"]
    assert [e["fingerprint"] for e in listed(ml, trained)] == [used]

    result = ml("cache", "prune", "--yes", cwd=trained)
    assert result.stdout == "nothing to prune: every cache entry is used by a run\n"

    # An entry a finished run used is still pruned once it is damaged.
    truncate(cache_dir(trained) / used / "y_test.npy")
    (entry,) = listed(ml, trained)
    assert (entry["status"], entry["runs"]) == ("damaged", [RUN])
    result = ml("cache", "prune", "--yes", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert "damaged: y_test.npy does not match its checksum" in result.stdout
    assert entry_names(trained) == []


def test_entries_of_running_and_queued_runs_are_never_removed(trained: Path, ml) -> None:
    used = run_fingerprint(trained)
    queued = unused_entry(trained, seed=7)
    with RunStore(api.Project(trained).db_path) as store:
        (run,) = store.runs()
        store.update_run(run["id"], status="running")
        store.create_run("waiting", run["model"], {}, status="queued", fingerprint=queued)
    (trained / "trainings" / "waiting").mkdir()
    truncate(cache_dir(trained) / used / "x_train.npy")  # even when damaged

    assert ml("cache", "prune", "--yes", cwd=trained).stdout.startswith("nothing to prune")
    result = ml("cache", "clear", "--yes", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "kept 2 entries used by running or queued runs\n"
    assert entry_names(trained) == sorted([used, queued])


def test_clear_asks_for_yes_off_a_terminal_then_removes_everything(trained: Path, ml) -> None:
    unused_entry(trained, seed=7)
    stat_cache = cache_dir(trained) / "stat-cache.json"
    assert stat_cache.is_file() and len(entry_names(trained)) == 2

    result = ml("cache", "clear", cwd=trained)  # stdin is closed: no prompt
    assert result.returncode == 2
    assert result.stderr.startswith("ml: error: ") and result.stderr.endswith("(add --yes)\n")
    assert len(result.stderr.splitlines()) == 1
    assert len(entry_names(trained)) == 2 and stat_cache.is_file()

    result = ml("cache", "clear", "--yes", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert "removed 2 entries and 1 other file, freed " in result.stdout
    assert entry_names(trained) == [] and not stat_cache.exists()
    assert [p.name for p in cache_dir(trained).iterdir()] == []

    result = ml("cache", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the cache is empty (ml train prepares the data and caches it in .cache/)\n"


def test_a_project_without_a_cache_prints_a_friendly_line(project: Path, ml) -> None:
    result = ml("cache", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the cache is empty (ml train prepares the data and caches it in .cache/)\n"
    assert listed(ml, project) == []
    assert ml("cache", "prune", cwd=project).stdout.startswith("nothing to prune")
    assert not cache_dir(project).exists()


def test_touch_records_last_use_without_writing_the_entry(trained: Path) -> None:
    store = CacheStore(cache_dir(trained))
    (entry,) = store.entries()
    age(entry.path, 3 * 86400)
    files = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in entry.path.iterdir()}
    (old,) = store.entries()
    store.touch(entry.fingerprint)
    (new,) = store.entries()
    assert old.last_used < new.last_used
    assert new.created == entry.created
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in entry.path.iterdir()} == files
    store.touch("0" * 32)  # a missing entry is not an error

    assert store.remove(entry.fingerprint)
    assert not store.remove(entry.fingerprint)
    assert list(cache_dir(trained).glob(".tmp-*")) == []


def test_listing_and_pruning_do_not_import_torch(trained: Path) -> None:
    for args in (["cache"], ["cache", "prune"]):
        out, imported = run_ml_in_process_report_torch(args, cwd=trained)
        assert RUN in out or "nothing to prune" in out
        assert not imported, f"ml {' '.join(args)} imported torch"


def test_cache_help_is_documented(ml, tmp_path: Path) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    for sub in ((), ("list",), ("prune",), ("clear",)):
        result = ml("cache", *sub, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        first = next(line.strip() for line in lines[1:] if line.strip())
        assert first in doc, f"docs/cli.md lacks `ml cache {' '.join(sub)} --help`'s {first!r}"
        options = [line for line in lines if line.startswith("  -")]
        assert options and all(len(line.split("  ")) > 1 for line in options)
