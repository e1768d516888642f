"""Shell completion: how long ``ml`` takes to answer one tab key, on 100,000 runs.

A project from ``create_project`` whose store is filled in bulk with 100,000 finished
runs (by default) named as ``ml train`` names them, without their metrics and folders
(completion reads only the name index; ``bench_scale.py`` times the commands on full
runs), and two stored models (version folders). Each completion is the real console script ``ml`` run as Typer's bash
script runs it (``_ML_COMPLETE=complete_bash COMP_WORDS=... COMP_CWORD=... ml``), timed
from start to exit, best of 15 (5 for the ones Typer answers), with the median beside;
the baselines are ``python -c pass`` (the interpreter) and ``ml --version`` (the whole
CLI imported). The issue's target: run names in under 100 ms, with no torch import,
checked in a child that reports ``sys.modules`` as it exits. Everything is written
under one temporary directory, removed at the end.

    .venv/bin/python benchmarks/bench_completion.py [--runs 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from report import Line, child_env, finish, versions

from vml.api import create_project
from vml.names import generate_name
from vml.store import RunStore

ML = str(Path(sys.executable).parent / "ml")
RESULTS = Path(__file__).resolve().parent / "results" / "completion.json"
SEED = 42
TARGET_S = 0.100
FAST, SLOW = 15, 5
# Reports, as the child exits, whether Typer and torch were imported.
MODULES = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('typer' in sys.modules, 'torch' in sys.modules, file=sys.stderr))\n"
    "from vml.cli import main\n"
    "main()\n"
)


def fill(root: Path, runs: int) -> dict[str, float]:
    """``runs`` finished runs with generated names, in one transaction; the seconds it took."""
    rng = random.Random(SEED)
    taken: set[str] = set()
    start = time.perf_counter()
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(runs):
        name = generate_name(taken, rng)
        taken.add(name)
        stamp = (now - timedelta(seconds=runs - i)).isoformat(timespec="milliseconds")
        rows.append((name, "mlp", "finished", stamp, stamp, stamp, stamp, '{"epochs": 5}'))
    columns = "name, model, status, created_at, started_at, ended_at, heartbeat, hyperparameters"
    with RunStore(root / "trainings" / "vml.db") as store, store.conn:
        store.conn.executemany(f"insert into runs ({columns}) values ({', '.join('?' * 8)})", rows)
    return {"fill_s": time.perf_counter() - start}


def bash_env(line: str, env: dict[str, str]) -> dict[str, str]:
    """The environment Typer's bash script gives ``ml`` for completing ``line`` (the word
    after its last space is the one being completed)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    return env | {"_ML_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}


def timed(args: list[str], cwd: Path, env: dict[str, str], times: int) -> dict[str, Any]:
    """Best and median seconds of ``args`` from start to exit, its least CPU seconds
    (user and system, from ``os.wait4``: what the other processes of a busy machine
    change least), and how many words its last answer had."""
    seconds, cpu, out = [], [], ""
    for _ in range(times):
        start = time.perf_counter()
        child = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds.append(time.perf_counter() - start)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        child.stdout.close()
        if child.returncode:
            raise RuntimeError(f"{args} exited {child.returncode}")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return {
        "s": min(seconds),
        "median_s": statistics.median(seconds),
        "cpu_s": min(cpu),
        "answers": len(out.split()),
    }


def imported(line: str, cwd: Path, env: dict[str, str]) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", MODULES], cwd=cwd, env=bash_env(line, env), capture_output=True, text=True
    )
    typer, torch = done.stderr.split()[-2:]
    return {"typer": typer == "True", "torch": torch == "True"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-completion-") as tmp:
        env = child_env(Path(tmp))
        root = create_project(Path(tmp) / "project")
        setup = fill(root, args.runs)
        for version in ("v1", "v2"):
            (root / "models" / "digits" / version).mkdir(parents=True)
        with RunStore(root / "trainings" / "vml.db") as store:
            name = store.newest_run()["name"]
        cases = {
            "show": (f"ml show {name[:3]}", FAST, True),
            "show_all": ("ml show ", FAST, True),
            "last": ("ml logs @la", FAST, True),
            "compare": (f"ml compare {name} {name[:4]}", FAST, True),
            "serve": ("ml serve ", FAST, True),
            "hyperparameter": ("ml train --lea", SLOW, False),
            "choice": ("ml train --optimizer ", SLOW, False),
            "command": ("ml sh", SLOW, False),
        }
        subprocess.run([ML, "--version"], cwd=root, env=env, capture_output=True)  # bytecode, page cache
        table: dict[str, Any] = {
            "pass": timed([sys.executable, "-c", "pass"], root, env, FAST),
            "version": timed([ML, "--version"], root, env, SLOW),
        }
        for key, (line, times, _fast) in cases.items():
            table[key] = {"line": line, **timed([ML], root, bash_env(line, env), times)}
            table[key]["imported"] = imported(line, root, env)
            print(f"{key}: {table[key]}", flush=True)
    lines = report(table, cases)
    return finish(
        lines,
        time.perf_counter() - started,
        args.json,
        {**versions("vml", "typer"), "sqlite": sqlite3.sqlite_version, "load": os.getloadavg()},
        {"runs": args.runs, "setup": setup, "table": table},
    )


def report(table: dict[str, Any], cases: dict[str, tuple[str, int, bool]]) -> list[Line]:
    """A line per completion (the run-name ones against the 100 ms target), its ratio to
    ``python -c pass``; one line for torch."""
    base = table["pass"]["s"]
    lines = [
        Line("python -c pass (baseline)", "", f"{base:.3f} s", None, table["pass"]),
        Line("ml --version (the CLI imported)", "", _time(table["version"], base), None, table["version"]),
    ]
    for key, (line, _times, fast) in cases.items():
        row = table[key]
        answered = f"{row['answers']} answers, {'no Typer' if not row['imported']['typer'] else 'Typer'}"
        lines.append(
            Line(
                f"{line!r} ({answered})",
                f"< {TARGET_S:.3f} s" if fast else "",
                _time(row, base),
                row["s"] < TARGET_S if fast else None,
                row,
            )
        )
    torch = [key for key in cases if table[key]["imported"]["torch"]]
    lines.append(Line("torch imported by a completion", "never", ", ".join(torch) or "never", not torch, {}))
    return lines


def _time(row: dict[str, Any], base: float) -> str:
    return f"{row['s']:.3f} s (median {row['median_s']:.3f}, CPU {row['cpu_s']:.3f}; {row['s'] / base:.1f}x pass)"


if __name__ == "__main__":
    sys.exit(main())
