"""The fingerprint cache under ``.cache/``: built once, reused without re-reading the
data, rebuilt when the data or the pipeline changes or an entry is damaged, off with
``cache: none``, and safe when two processes build the same entry at once."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import xxhash

from vml import api

SEED = 42


def train(root: Path, name: str) -> str:
    """One short real run in this process; returns what it printed."""
    out = io.StringIO()
    result = api.Project(root).train_in_process(["--epochs=1"], name=name, stderr=out)
    assert result.status == "finished", out.getvalue()
    return out.getvalue()


def prepare_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("data: ")]
    assert len(lines) == 1, output
    return lines[0]


def entries(root: Path) -> list[Path]:
    cache = root / ".cache"
    if not cache.is_dir():
        return []
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".cache").iterdir() if p.name.startswith("."))


def fingerprint_of(root: Path, name: str) -> str:
    (run,) = [r for r in api.Project(root).records() if r["name"] == name]
    return run["fingerprint"]


def assert_entry_ok(entry: Path) -> dict:
    """Check an entry on disk against its manifest, independently of vml's loader."""
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["fingerprint"] == entry.name
    listed = {info["file"] for info in manifest["arrays"].values()}
    assert listed == {p.name for p in entry.glob("*.npy")}
    assert {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"} <= set(manifest["arrays"])
    for info in manifest["arrays"].values():
        path = entry / info["file"]
        assert xxhash.xxh3_128_hexdigest(path.read_bytes()) == info["xxh3"], path.name
        array = np.load(path, allow_pickle=False)
        assert list(array.shape) == info["shape"]
        assert str(array.dtype) == info["dtype"]
    return manifest


def mtimes(entry: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_first_run_builds_one_entry_second_reuses_it(project: Path) -> None:
    output = train(project, "first")
    line = prepare_line(output)
    (entry,) = entries(project)
    assert line == f"data: prepared data/digits.csv (1437 train, 180 val, 180 test) -> .cache/{entry.name}"
    manifest = assert_entry_ok(entry)
    assert manifest["classes"] == [str(d) for d in range(10)]
    assert fingerprint_of(project, "first") == entry.name
    assert leftovers(project) == []

    stat_cache = project / ".cache" / "stat-cache.json"
    stat_text, stat_mtime = stat_cache.read_text(), stat_cache.stat().st_mtime_ns
    csv_key = str((project / "data" / "digits.csv").resolve())
    assert csv_key in json.loads(stat_text)
    before = mtimes(entry)

    output = train(project, "second")
    assert prepare_line(output) == (
        f"data: reusing cache .cache/{entry.name} (data and preprocessing unchanged)"
    )
    assert entries(project) == [entry]
    assert fingerprint_of(project, "second") == entry.name
    # Nothing was hashed or written: the CSV was not read again, the entry not rebuilt.
    assert stat_cache.read_text() == stat_text
    assert stat_cache.stat().st_mtime_ns == stat_mtime
    assert mtimes(entry) == before


def test_training_hyperparameters_do_not_change_the_fingerprint(project: Path) -> None:
    train(project, "first")
    out = io.StringIO()
    result = api.Project(project).train_in_process(
        ["--epochs=1", "--learning-rate=0.01", "--batch-size=32"], name="other", stderr=out
    )
    assert result.status == "finished"
    assert "reusing cache" in prepare_line(out.getvalue())
    assert len(entries(project)) == 1


def test_editing_the_csv_makes_a_new_entry_beside_the_old(project: Path) -> None:
    train(project, "before")
    (old,) = entries(project)
    old_mtimes = mtimes(old)

    csv_file = project / "data" / "digits.csv"
    lines = csv_file.read_text().splitlines(keepends=True)
    values = lines[1].split(",")
    values[0] = "1" if values[0] == "0" else "0"  # one pixel, same length, still valid
    lines[1] = ",".join(values)
    csv_file.write_text("".join(lines))

    line = prepare_line(train(project, "after"))
    assert line.startswith("data: prepared data/digits.csv ")
    assert len(entries(project)) == 2
    new = next(e for e in entries(project) if e != old)
    assert line.endswith(f"-> .cache/{new.name}")
    assert fingerprint_of(project, "after") == new.name
    assert mtimes(old) == old_mtimes  # the old entry is left alone
    assert_entry_ok(old)
    assert_entry_ok(new)


def test_changing_preprocess_makes_a_new_entry_and_switching_back_reuses(project: Path) -> None:
    train(project, "standardized")
    (standardized,) = entries(project)
    spec = project / "vergeml.yaml"

    edit(spec, "- op: standardize", "- op: normalize")
    line = prepare_line(train(project, "normalized"))
    assert line.startswith("data: prepared ")
    assert len(entries(project)) == 2
    normalized = next(e for e in entries(project) if e != standardized)
    x = np.load(normalized / "x_train.npy")
    assert x.min() == pytest.approx(0.0) and x.max() == pytest.approx(1.0)

    edit(spec, "- op: normalize", "- op: standardize")
    line = prepare_line(train(project, "back"))
    assert line == f"data: reusing cache .cache/{standardized.name} (data and preprocessing unchanged)"
    assert len(entries(project)) == 2


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _overwrite(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])  # same size, different values
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


def _empty_manifest(path: Path) -> None:
    (path.parent / "manifest.json").write_text("")


def _manifest_not_a_mapping(path: Path) -> None:
    (path.parent / "manifest.json").write_text("null")  # valid JSON, wrong shape


@pytest.mark.parametrize(
    "damage",
    [_truncate, _overwrite, _delete, _empty_manifest, _manifest_not_a_mapping],
    ids=lambda f: f.__name__[1:],
)
def test_damaged_entry_is_detected_and_rebuilt(project: Path, damage) -> None:
    train(project, "first")
    (entry,) = entries(project)
    good = (entry / "x_train.npy").read_bytes()
    damage(entry / "x_train.npy")

    lines = [line for line in train(project, "second").splitlines() if line.startswith("data: ")]
    assert lines == [
        f"data: cache entry .cache/{entry.name} is damaged; rebuilding it",
        f"data: prepared data/digits.csv (1437 train, 180 val, 180 test) -> .cache/{entry.name}",
    ]
    assert entries(project) == [entry]
    assert_entry_ok(entry)
    assert (entry / "x_train.npy").read_bytes() == good
    assert leftovers(project) == []
    assert "reusing cache" in prepare_line(train(project, "third"))


def test_cache_none_writes_no_entry(project: Path) -> None:
    edit(project / "vergeml.yaml", "cache: auto", "cache: none")
    for name in ("one", "two"):
        line = prepare_line(train(project, name))
        assert line == "data: prepared data/digits.csv (1437 train, 180 val, 180 test); cache is off"
        assert entries(project) == []
    runs = api.Project(project).records()
    assert {r["status"] for r in runs} == {"finished"}
    # The fingerprint is still recorded, the same for the same data.
    assert len({r["fingerprint"] for r in runs}) == 1


def _prepare_in_child(root: str, barrier, results) -> None:
    from vml.data.prepare import prepare_data

    config = api.Project(root).config
    barrier.wait(timeout=60)
    data = prepare_data(config, SEED)
    results.put(
        (data.fingerprint, xxhash.xxh3_128_hexdigest(np.ascontiguousarray(data.x("train")).tobytes()))
    )


def test_two_processes_preparing_at_once_leave_one_good_entry(project: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for _ in range(3):  # a few rounds, each from an empty cache
        cache = project / ".cache"
        for entry in entries(project):
            for f in entry.iterdir():
                f.unlink()
            entry.rmdir()
        barrier, results = ctx.Barrier(2), ctx.Queue()
        children = [
            ctx.Process(target=_prepare_in_child, args=(str(project), barrier, results)) for _ in range(2)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=120)
            assert child.exitcode == 0
        got = [results.get(timeout=10) for _ in children]
        assert len({fp for fp, _ in got}) == 1
        assert len({digest for _, digest in got}) == 1  # both see the same data
        (entry,) = entries(project)
        assert entry.name == got[0][0]
        assert_entry_ok(entry)
        assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] == []
        stat_cache = json.loads((cache / "stat-cache.json").read_text())  # whole, valid JSON
        assert str((project / "data" / "digits.csv").resolve()) in stat_cache

    # A real run after the race reuses the entry.
    assert "reusing cache" in prepare_line(train(project, "after-race"))
