"""Dashboard speed: first screen, UI-thread work per refresh, keystroke-to-screen on 10,000 runs; idle use.

`ml dashboard` (``vml.tui.app.Dashboard``) runs inside Textual's ``App.run_test`` at
120x40, on a project with 10,000 finished runs and 4 running ones whose progress moves
five times a second, beside the same measurements on a project with 40 finished runs
(one screenful) and the same 4 running ones. Each app runs in a child process of this
script that imports what a dashboard imports, not the torch that building the projects
pulls in (a garbage collection walks every object in the process). The timing hooks
wrap methods of the dashboard's classes in the child. Everything is written under one
temporary directory, removed at the end.

The idle line runs the app on its own project (``bench_scale.fill``), nothing running,
and reads the child's CPU time and resident memory over 20 s; ``--idle-only`` measures
only it (100,000 runs: about 90 s).

    .venv/bin/python benchmarks/bench_dashboard.py [--runs 10000] [--idle-only] [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from report import Line, finish, versions
from rich.console import Console
from textual._compositor import CompositorUpdate

import vml
from vml import api
from vml.live import LiveRuns
from vml.liveness import process_identity
from vml.names import generate_name
from vml.store import RunStore
from vml.store.runs import utcnow
from vml.tui.app import Dashboard, RunsScreen
from vml.tui.table import RunTable

SEED = 42
BASELINE_RUNS = 40  # one screenful
RUNNING = 4
RUNNING_EPOCHS, RUNNING_STEPS = 20, 50
UPDATE_SECONDS = 0.2  # how often the running runs move
SIZE = (120, 40)
FIRST_SCREEN_REPEATS = 5
CYCLES = 20  # refreshes timed per project
WARM_CYCLES = 2  # refreshes after the full list before timing starts
PRESSES = 25  # downs then ups, twice
PROFILE_CYCLES, PROFILE_PRESSES = 10, 10
LIVE_REPEATS = 3
LIVE_WARM_CALLS = 10
IMPORT_REPEATS = 3
DEADLINE = 60.0
FIRST_SCREEN_TARGET_S = 1.0
REFRESH_TARGET_S = 0.050
KEY_TARGET_S = 0.100
IDLE_SETTLE_S = 3.0  # after all runs are in the table, before the idle window
IDLE_S = 20.0
IDLE_CPU_TARGET = 2.0  # percent of a core, at 100,000 runs (issue 16)
IDLE_RSS_TARGET_MB = 250
SCRIPT = Path(__file__).resolve()
RESULTS = SCRIPT.parent / "results" / "dashboard.json"
# What a terminal is sent: the headless driver of run_test writes nothing, so each frame
# is also turned into escape sequences here, as App._display does for a real terminal.
TERMINAL = Console(
    file=io.StringIO(), force_terminal=True, color_system="truecolor", width=SIZE[0], height=SIZE[1]
)


# --- the projects ------------------------------------------------------------------------


def add_running(root: Path, count: int = RUNNING) -> list[int]:
    """``count`` runs that say ``running`` for this process (pid, host and start time of
    the benchmark's parent process, alive throughout, so no reader marks them crashed),
    newer than every finished run, part way through their epochs so progress and ETA
    show."""
    project = api.Project(root)
    base = project.resolve()
    identity = process_identity(os.getpid())
    rng = random.Random(SEED + 1)
    now = datetime.now(timezone.utc)
    ids = []
    with RunStore(project.db_path) as store:
        taken = store.names()
        for i in range(count):
            name = generate_name(taken, rng)
            taken.add(name)
            stamp = (now - timedelta(minutes=2 + 3 * i)).isoformat(timespec="milliseconds")
            hparams = base | {"epochs": RUNNING_EPOCHS, "random_seed": rng.randrange(1000)}
            run_id = store.create_run(
                name,
                project.config.model.name,
                hparams,
                fingerprint=f"{rng.getrandbits(128):032x}",
                epochs=RUNNING_EPOCHS,
                steps=RUNNING_STEPS,
                monitor="val_acc",
                **identity,
                created_at=stamp,
                started_at=stamp,
                heartbeat=stamp,
            )
            store.update_run(run_id, epoch=2 + 4 * i, step=1 + 10 * i)
            (project.trainings_dir / name).mkdir()
            ids.append(run_id)
    return ids


class Mover(threading.Thread):
    """Every 0.2 s, one more step (and epoch, at an epoch's end) and a fresh heartbeat
    for each running run, through its own RunStore per project (connections are per
    thread), as a training's recorder and heartbeat would."""

    def __init__(self, projects: list[tuple[Path, list[int]]]) -> None:
        super().__init__(name="bench-mover", daemon=True)
        self.projects = projects
        self.stop = threading.Event()
        self.ticks = 0

    def run(self) -> None:
        stores = [(RunStore(db), ids) for db, ids in self.projects]
        try:
            state = {}
            for store, ids in stores:
                for row in store.runs(["running"]):
                    if row["id"] in ids:
                        state[store, row["id"]] = [row["epoch"], row["step"]]
            while not self.stop.wait(UPDATE_SECONDS):
                for store, ids in stores:
                    for run_id in ids:
                        progress = state[store, run_id]
                        progress[1] += 1
                        if progress[1] > RUNNING_STEPS:
                            progress[0], progress[1] = (progress[0] + 1) % RUNNING_EPOCHS, 1
                        store.update_run(run_id, epoch=progress[0], step=progress[1], heartbeat=utcnow())
                self.ticks += 1
        finally:
            for store, _ in stores:
                store.close()


# --- timing hooks --------------------------------------------------------------------------


@dataclass
class Show:
    start: float
    seconds: float
    rows: int
    ui_cpu: float  # the UI thread's CPU time (thread_time) at the start


@dataclass
class Probe:
    """What the hooks record, reset for each app."""

    shows: list[Show] = field(default_factory=list)
    paints: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds), outermost
    lines: list[tuple[float, float]] = field(default_factory=list)  # RunTable.render_line (start, s)
    segments: list[tuple[float, float]] = field(default_factory=list)  # frames to escape sequences
    refreshes: list[tuple[float, float]] = field(default_factory=list)  # LiveRuns.refresh (end, s)
    collections: list[tuple[float, float, int]] = field(default_factory=list)  # gc: (start, s, generation)
    gc_started: float = 0.0
    first_line: float | None = None  # first render_line of a data row
    first_frame: float | None = None  # end of the first frame holding a data row
    row_in_frame: bool = False
    key_row: int | None = None  # the cursor row a keystroke is waiting for
    key_painted: bool = False
    key_frame: float | None = None
    key_event: asyncio.Event | None = None
    depth: int = 0


PROBE = Probe()


def on_gc(phase: str, info: dict[str, int]) -> None:
    """A garbage collection holds the GIL, so it stalls the UI thread whichever thread runs it."""
    if phase == "start":
        PROBE.gc_started = time.perf_counter()
    else:
        PROBE.collections.append(
            (PROBE.gc_started, time.perf_counter() - PROBE.gc_started, info["generation"])
        )


def gc_within(start: float, stop: float) -> float:
    return sum(s for t, s, _ in PROBE.collections if start <= t < stop)


@contextlib.contextmanager
def hooks() -> Iterator[None]:
    """Wrap the methods the measurements read; put them back afterwards."""
    targets = [
        (RunTable, "render_line"),
        (RunsScreen, "_show"),
        (RunsScreen, "_on_timer_update"),
        (RunsScreen, "_refresh_layout"),
        (RunsScreen, "_compositor_refresh"),
        (Dashboard, "_display"),
        (LiveRuns, "refresh"),
    ]
    own = {(owner, name): owner.__dict__.get(name) for owner, name in targets}  # None: inherited
    originals = {(owner, name): getattr(owner, name) for owner, name in targets}
    render_line = originals[RunTable, "render_line"]
    show = originals[RunsScreen, "_show"]
    display = originals[Dashboard, "_display"]
    refresh = originals[LiveRuns, "refresh"]

    def timed_render_line(self: RunTable, y: int) -> Any:
        start = time.perf_counter()
        strip = render_line(self, y)
        end = time.perf_counter()
        PROBE.lines.append((start, end - start))
        row = int(self.scroll_offset.y) + y - 1
        if y >= 1 and row < self.row_count:
            PROBE.row_in_frame = True
            if PROBE.first_line is None:
                PROBE.first_line = end
            if row == self.cursor_row == PROBE.key_row:
                PROBE.key_painted = True
        return strip

    def timed_show(self: RunsScreen, *args: Any) -> None:
        cpu = time.thread_time()
        start = time.perf_counter()
        show(self, *args)
        PROBE.shows.append(Show(start, time.perf_counter() - start, self.table.row_count, cpu))

    def painting(method: Callable[..., Any]) -> Callable[..., Any]:
        """Time the outermost of the screen's paint entry points (they call each other)."""

        def timed(self: RunsScreen, *args: Any, **kwargs: Any) -> Any:
            PROBE.depth += 1
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                PROBE.depth -= 1
                if PROBE.depth == 0:
                    PROBE.paints.append((start, time.perf_counter() - start))

        return timed

    def timed_display(self: Dashboard, screen: Any, renderable: Any) -> None:
        display(self, screen, renderable)
        if renderable is None:
            return
        if self.is_headless and isinstance(renderable, CompositorUpdate):
            start = time.perf_counter()
            renderable.render_segments(TERMINAL)
            PROBE.segments.append((start, time.perf_counter() - start))
        end = time.perf_counter()
        if PROBE.row_in_frame and PROBE.first_frame is None:
            PROBE.first_frame = end
        PROBE.row_in_frame = False
        if PROBE.key_painted and PROBE.key_frame is None:
            PROBE.key_frame = end
            if PROBE.key_event is not None:
                PROBE.key_event.set()

    def timed_refresh(self: LiveRuns) -> bool:
        start = time.perf_counter()
        changed = refresh(self)
        end = time.perf_counter()
        PROBE.refreshes.append((end, end - start))
        return changed

    RunTable.render_line = timed_render_line  # type: ignore[method-assign]
    RunsScreen._show = timed_show  # type: ignore[method-assign]
    for name in ("_on_timer_update", "_refresh_layout", "_compositor_refresh"):
        setattr(RunsScreen, name, painting(originals[RunsScreen, name]))
    Dashboard._display = timed_display  # type: ignore[method-assign]
    LiveRuns.refresh = timed_refresh  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(on_gc)
        for (owner, name), method in own.items():
            if method is None:
                delattr(owner, name)
            else:
                setattr(owner, name, method)


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Let the app run until ``condition`` holds. Sleeps between checks rather than
    ``pilot.pause()``, which forces a repaint and keeps the event loop busy."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def runs_screen(app: Dashboard) -> RunsScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, RunsScreen)
    return screen


def check_running(app: Dashboard, total: int) -> None:
    """The table shows every run, and the running ones as running, with progress and ETA."""
    screen = runs_screen(app)
    table = screen.table
    if table.row_count != total:
        raise RuntimeError(f"the table shows {table.row_count} runs, the store holds {total}")
    status, progress, eta = (screen.columns.index(c) for c in ("status", "progress", "eta"))
    top = table.rows[:RUNNING]
    if any(row[status] != "running" or row[eta] == "-" or "%" not in row[progress] for row in top):
        raise RuntimeError(f"the newest rows are not the running runs with progress and ETA: {top}")


# --- the measurements (in a child process) -------------------------------------------------


def reset_probe() -> None:
    """A clean slate for the next app: no hook records, no garbage left to collect."""
    gc.collect()
    PROBE.__init__()  # type: ignore[misc]


async def first_screen(root: Path, total: int, profiler: cProfile.Profile | None = None) -> dict[str, float]:
    """From constructing the app to the end of the first frame that paints a data row
    of the runs table; then on to the frame after all runs are in the table."""
    reset_probe()
    if profiler:
        profiler.enable()
    start = time.perf_counter()
    app = Dashboard(api.Project(root))
    async with app.run_test(size=SIZE):
        entered = time.perf_counter()
        await until(lambda: PROBE.first_frame is not None, "the first screen")
        await until(lambda: any(s.rows == total for s in PROBE.shows), "all runs in the table")
        full = next(s for s in PROBE.shows if s.rows == total)
        await until(lambda: any(p[0] > full.start for p in PROBE.paints), "the frame after all runs")
        after = next(p for p in PROBE.paints if p[0] > full.start)
        if profiler:
            profiler.disable()
        check_running(app, total)
    assert PROBE.first_frame is not None and PROBE.first_line is not None
    return {
        "first_screen_s": PROBE.first_frame - start,
        "first_line_s": PROBE.first_line - start,
        "run_test_entered_s": entered - start,
        "first_show_rows": PROBE.shows[0].rows,
        "all_runs_s": after[0] + after[1] - start,
        "full_show_s": full.seconds,
        "full_show_paint_s": after[1],
        "first_frame_at": PROBE.first_frame,
        "all_runs_at": after[0] + after[1],
    }


def cycles(shows: list[Show], end: float) -> list[dict[str, Any]]:
    """The UI thread's work per refresh: each ``_show``, plus the paints, table lines and
    escape sequences from it to the next ``_show`` (or ``end``)."""
    out = []
    for show, after in zip(shows, [*shows[1:], None], strict=True):
        stop = after.start if after else end

        def within(spans: list[tuple[float, float]], start: float = show.start, stop: float = stop) -> float:
            return sum(s for t, s in spans if start <= t < stop)

        paint = within(PROBE.paints)
        work = [(show.start, show.start + show.seconds)]
        work += [(t, t + s) for t, s in PROBE.paints if show.start <= t < stop]
        gc_in_work = sum(s for t, s, _ in PROBE.collections if any(a <= t < b for a, b in work))
        out.append(
            {
                "show_s": show.seconds,
                "paint_s": paint,
                "render_line_s": within(PROBE.lines),
                "lines": sum(1 for t, _ in PROBE.lines if show.start <= t < stop),
                "segments_s": within(PROBE.segments),
                "work_s": show.seconds + paint,
                "ui_cpu_s": after.ui_cpu - show.ui_cpu if after else None,
                "gc_s": gc_within(show.start, stop),
                "gc_in_work_s": gc_in_work,
            }
        )
    return out


def worker_cycles(shows: list[Show]) -> list[dict[str, float]]:
    """The refresh worker's time before each ``_show``: ``LiveRuns.refresh``, then the
    rest (the rows' cells and column widths, and the hand-over to the UI thread)."""
    out = []
    for show in shows:
        before = [(end, s) for end, s in PROBE.refreshes if end <= show.start]
        if before:
            end, seconds = before[-1]
            out.append({"live_refresh_s": seconds, "cells_s": show.start - end})
    return out


def gc_summary(start: float, stop: float) -> dict[str, Any]:
    """The garbage collections (any thread) between ``start`` and ``stop``, by generation."""
    found = [(s, g) for t, s, g in PROBE.collections if start <= t < stop]
    return {
        f"gen{g}": {
            "count": sum(1 for _, x in found if x == g),
            "total_s": sum(s for s, x in found if x == g),
            "max_s": max((s for s, x in found if x == g), default=0.0),
        }
        for g in range(3)
    } | {"seconds": stop - start}


async def steady(
    root: Path,
    total: int,
    n_cycles: int = CYCLES,
    presses: int = PRESSES,
    profiler: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """One app: wait for all runs, time ``n_cycles`` refreshes, then ``4 * presses``
    keystrokes (down, then up, twice) while refreshes go on."""
    reset_probe()
    app = Dashboard(api.Project(root))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: any(s.rows == total for s in PROBE.shows), "all runs in the table")
        full = next(i for i, s in enumerate(PROBE.shows) if s.rows == total)
        begin = full + 1 + WARM_CYCLES
        await until(lambda: len(PROBE.shows) > begin, "the first timed refresh", DEADLINE + WARM_CYCLES)
        if profiler:
            profiler.enable()
        table = runs_screen(app).table
        newest = list(table.rows[:RUNNING])
        await until(lambda: len(PROBE.shows) > begin + n_cycles, "the refreshes", DEADLINE + n_cycles)
        timed = PROBE.shows[begin : begin + n_cycles]
        refresh_cycles = cycles(timed, PROBE.shows[begin + n_cycles].start)
        check_running(app, total)
        if table.rows[:RUNNING] == newest:
            raise RuntimeError(f"the running runs did not move during the refreshes: {newest}")

        keys = []
        keys_start, shows_before_keys = time.perf_counter(), len(PROBE.shows)
        for key in ["down"] * presses + ["up"] * presses + ["down"] * presses + ["up"] * presses:
            row = table.cursor_row + (1 if key == "down" else -1)
            PROBE.key_row, PROBE.key_painted, PROBE.key_frame = row, False, None
            PROBE.key_event = asyncio.Event()
            start = time.perf_counter()
            await pilot.press(key)
            pressed = time.perf_counter()
            await asyncio.wait_for(PROBE.key_event.wait(), DEADLINE)
            assert PROBE.key_frame is not None
            if table.cursor_row != row:
                raise RuntimeError(f"{key} left the cursor on row {table.cursor_row}, not {row}")
            keys.append(
                {
                    "key_to_screen_s": PROBE.key_frame - start,
                    "press_returned_s": pressed - start,
                    "gc_s": gc_within(start, PROBE.key_frame),
                }
            )
        if profiler:
            profiler.disable()
        keys_end = time.perf_counter()
    return {
        "cycles": refresh_cycles,
        "worker": worker_cycles(timed),
        "keys": keys,
        "refreshes_during_keys": len(PROBE.shows) - shows_before_keys,
        "full_show_s": PROBE.shows[full].seconds,
        "gc_refreshes": gc_summary(timed[0].start, PROBE.shows[begin + n_cycles].start),
        "gc_keys": gc_summary(keys_start, keys_end),
    }


def live_refresh(root: Path) -> dict[str, Any]:
    """``LiveRuns.refresh()`` alone, in this thread: the first call on a new LiveRuns
    (cold: every run read and decoded), then calls on the same one (warm: only the
    running runs re-read). Median of 3 cold; median of 10 warm after each cold."""
    cold, warm, changed = [], [], 0
    project = api.Project(root)
    for _ in range(LIVE_REPEATS):
        gc.collect()
        live = LiveRuns(project)
        start = time.perf_counter()
        live.refresh()
        cold.append(time.perf_counter() - start)
        for _ in range(LIVE_WARM_CALLS):
            time.sleep(0.05)
            start = time.perf_counter()
            changed += live.refresh()
            warm.append(time.perf_counter() - start)
    return {
        "cold_s": statistics.median(cold),
        "warm_s": statistics.median(warm),
        "warm_max_s": max(warm),
        "all_cold_s": cold,
        "all_warm_s": warm,
        "warm_changed": changed,
        "runs": len(live.runs),
    }


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak (``/proc/self/status``), MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


async def idle(root: Path, total: int, seconds: float) -> dict[str, Any]:
    """One app on a project where nothing runs or changes: the first screen, the time
    to all runs in the table, then, after ``IDLE_SETTLE_S``, the CPU the process uses
    over ``seconds`` (the app sleeps meanwhile: no checks, no repaints forced) and its
    resident memory."""
    reset_probe()
    start = time.perf_counter()
    app = Dashboard(api.Project(root))
    async with app.run_test(size=SIZE):
        await until(lambda: PROBE.first_frame is not None, "the first screen")
        loaded_deadline = DEADLINE + total / 1_000  # reading 100,000 runs takes a while
        await until(
            lambda: runs_screen(app).table.row_count == total, "all runs in the table", loaded_deadline
        )
        loaded = time.perf_counter()
        await asyncio.sleep(IDLE_SETTLE_S)
        cpu, wall, shows = cpu_seconds(), time.perf_counter(), len(PROBE.shows)
        await asyncio.sleep(seconds)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        memory = memory_mb()
        if runs_screen(app).table.row_count != total:
            raise RuntimeError(f"the table shows {runs_screen(app).table.row_count} runs, the store {total}")
        idle_shows = len(PROBE.shows) - shows
    assert PROBE.first_frame is not None
    return {
        "first_screen_s": PROBE.first_frame - start,
        "all_runs_s": loaded - start,
        "cpu_percent": 100 * cpu / wall,
        "idle_s": wall,
        "idle_shows": idle_shows,
        "rss_mb": memory["rss"],
        "peak_rss_mb": memory["peak"],
        "first_frame_at": PROBE.first_frame,
    }


def profile_text(profiler: cProfile.Profile, what: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    return f"cProfile of the UI thread, {what}:\n" + out.getvalue()


def child(kind: str, root: Path, total: int, idle_s: float = IDLE_S) -> dict[str, Any]:
    """One measurement in this (child) process: ``idle``, ``first``, ``steady`` or ``profile``."""
    wall, clock = time.time(), time.perf_counter()  # to turn perf_counter times into wall times
    with hooks():
        if kind == "idle":
            result = asyncio.run(idle(root, total, idle_s))
            result["first_frame_wall"] = wall + result.pop("first_frame_at") - clock
            return result
        if kind == "first":
            result = asyncio.run(first_screen(root, total))
            result["first_frame_wall"] = wall + result.pop("first_frame_at") - clock
            result["all_runs_wall"] = wall + result.pop("all_runs_at") - clock
            return result
        if kind == "steady":
            live = live_refresh(root)
            return asyncio.run(steady(root, total)) | {"live": live}
        first, rest = cProfile.Profile(), cProfile.Profile()
        asyncio.run(first_screen(root, total, first))
        asyncio.run(steady(root, total, PROFILE_CYCLES, PROFILE_PRESSES, rest))
        return {
            "profile": "\n\n".join(
                (
                    profile_text(first, "from Dashboard() to all runs in the table"),
                    profile_text(rest, f"{PROFILE_CYCLES} refreshes and {4 * PROFILE_PRESSES} keystrokes"),
                )
            )
        }


# --- the parent: projects, children, report ------------------------------------------------


def run_child(
    kind: str, root: Path, total: int, env: dict[str, str], out: Path, idle_s: float = IDLE_S
) -> dict[str, Any]:
    """Run ``child(kind, ...)`` in a fresh interpreter; its result, with the wall time
    at which it was started (``popen_wall``)."""
    args = [sys.executable, str(SCRIPT), "--child", kind, "--root", str(root), "--total", str(total)]
    args += ["--json", str(out), "--idle-seconds", str(idle_s)]
    started = time.time()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text()) | {"popen_wall": started}


def import_time(env: dict[str, str]) -> dict[str, float]:
    """Seconds to import ``vml.tui.app`` (and ``textual.app`` alone) in a fresh
    interpreter, timed inside it; one untimed run first (bytecode), then best of 3."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    out = {}
    for module in ("vml.tui.app", "textual.app"):
        args = [sys.executable, "-c", code.format(module)]
        subprocess.run(args, env=env, check=True, capture_output=True)
        runs = [
            float(subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout)
            for _ in range(IMPORT_REPEATS)
        ]
        out[module] = min(runs)
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def summary(side: dict[str, Any]) -> dict[str, float]:
    work = [c["work_s"] for c in side["cycles"]]
    keys = [k["key_to_screen_s"] for k in side["keys"]]
    firsts = side["first"]
    return {
        "first_screen_s": statistics.median(f["first_screen_s"] for f in firsts),
        "process_first_screen_s": statistics.median(f["first_frame_wall"] - f["popen_wall"] for f in firsts),
        "all_runs_s": statistics.median(f["all_runs_s"] for f in firsts),
        "work_median_s": statistics.median(work),
        "work_p90_s": p90(work),
        "work_max_s": max(work),
        "work_max_gc_s": max(side["cycles"], key=lambda c: c["work_s"])["gc_in_work_s"],
        "show_median_s": statistics.median(c["show_s"] for c in side["cycles"]),
        "paint_median_s": statistics.median(c["paint_s"] for c in side["cycles"]),
        "render_line_median_s": statistics.median(c["render_line_s"] for c in side["cycles"]),
        "segments_median_s": statistics.median(c["segments_s"] for c in side["cycles"]),
        "ui_cpu_median_s": statistics.median(c["ui_cpu_s"] for c in side["cycles"] if c["ui_cpu_s"]),
        "worker_refresh_median_s": statistics.median(w["live_refresh_s"] for w in side["worker"]),
        "worker_cells_median_s": statistics.median(w["cells_s"] for w in side["worker"]),
        "key_median_s": statistics.median(keys),
        "key_p90_s": p90(keys),
        "key_max_s": max(keys),
        "key_max_gc_s": max(side["keys"], key=lambda k: k["key_to_screen_s"])["gc_s"],
        "press_returned_median_s": statistics.median(k["press_returned_s"] for k in side["keys"]),
    }


def gc_text(side: dict[str, Any]) -> str:
    gc_refreshes, gc_keys = side["gc_refreshes"], side["gc_keys"]
    gen2 = gc_refreshes["gen2"]["count"] + gc_keys["gen2"]["count"]
    gen2_max = max(gc_refreshes["gen2"]["max_s"], gc_keys["gen2"]["max_s"])
    gen1_max = max(gc_refreshes["gen1"]["max_s"], gc_keys["gen1"]["max_s"])
    seconds = gc_refreshes["seconds"] + gc_keys["seconds"]
    return f"{gen2} full in {seconds:.0f} s, longest {ms(gen2_max)}; gen1 longest {ms(gen1_max)}"


def idle_line(root: Path, runs: int, env: dict[str, str]) -> Line:
    """The idle dashboard on its own project of ``runs`` finished runs (filled in bulk by
    ``bench_scale.fill``, 50 metric rows each), nothing running: one untimed child
    (bytecode of what loads lazily), then one measured."""
    from bench_scale import fill

    project = api.create_project(root / f"idle-{runs}")
    filled = fill(project, runs)
    out = root / "idle.json"
    run_child("idle", project, runs, env, out, idle_s=0.0)
    got = run_child("idle", project, runs, env, out)
    process_s = got["first_frame_wall"] - got["popen_wall"]
    return Line(
        name=f"idle dashboard, {runs:,} runs, nothing running",
        target=f"< {IDLE_CPU_TARGET:.0f}% of a core, < {IDLE_RSS_TARGET_MB} MB, first screen < {FIRST_SCREEN_TARGET_S:.0f} s",
        measured=(
            f"{got['cpu_percent']:.2f}% of a core over {got['idle_s']:.0f} s ({got['idle_shows']} table updates); "
            f"RSS {got['rss_mb']:.0f} MB (peak {got['peak_rss_mb']:.0f}); first screen {got['first_screen_s']:.3f} s "
            f"from Dashboard(), {process_s:.3f} s from process start; all runs in the table {got['all_runs_s']:.2f} s"
        ),
        passed=(
            got["cpu_percent"] < IDLE_CPU_TARGET
            and got["peak_rss_mb"] < IDLE_RSS_TARGET_MB
            and got["first_screen_s"] < FIRST_SCREEN_TARGET_S
        ),
        values=got | {"process_first_screen_s": process_s, "fill": filled},
    )


def lines_for(sides: dict[int, dict[str, Any]], runs: int, imports: dict[str, float]) -> list[Line]:
    base, big = summary(sides[BASELINE_RUNS]), summary(sides[runs])
    label = f"{runs:,} vs {BASELINE_RUNS} runs (+{RUNNING} running)"

    def versus(key: str) -> str:
        return f"{big[key] / base[key]:.2f}x; {BASELINE_RUNS} runs {ms(base[key])}"

    first = Line(
        name=f"first full screen, {label}",
        target=f"< {FIRST_SCREEN_TARGET_S:.1f} s",
        measured=(
            f"{big['first_screen_s']:.3f} s from Dashboard() ({versus('first_screen_s')}); "
            f"{big['process_first_screen_s']:.3f} s from process start "
            f"({big['process_first_screen_s'] / base['process_first_screen_s']:.2f}x); "
            f"all {runs:,} runs in the table {big['all_runs_s']:.2f} s"
        ),
        passed=big["first_screen_s"] < FIRST_SCREEN_TARGET_S,
        values={
            "ratio": big["first_screen_s"] / base["first_screen_s"],
            "runs": big["first_screen_s"],
            "baseline": base["first_screen_s"],
            "process_s": big["process_first_screen_s"],
            "baseline_process_s": base["process_first_screen_s"],
            "all_runs_s": big["all_runs_s"],
            "baseline_all_runs_s": base["all_runs_s"],
            "import_s": imports,
            "repeats": sides[runs]["first"],
            "baseline_repeats": sides[BASELINE_RUNS]["first"],
        },
    )
    refresh = Line(
        name=f"UI-thread work per refresh (p90), {label}",
        target=f"< {REFRESH_TARGET_S * 1e3:.0f} ms",
        measured=(
            f"{ms(big['work_p90_s'])} (median {ms(big['work_median_s'])}, max {ms(big['work_max_s'])} "
            f"with {ms(big['work_max_gc_s'])} of gc; median {versus('work_median_s')}; "
            f"_show {ms(big['show_median_s'])} + paint {ms(big['paint_median_s'])}, of which table lines "
            f"{ms(big['render_line_median_s'])}, escape codes {ms(big['segments_median_s'])})"
        ),
        passed=big["work_p90_s"] < REFRESH_TARGET_S,
        values={
            "ratio": big["work_median_s"] / base["work_median_s"],
            "summary": big,
            "baseline_summary": base,
            "cycles": sides[runs]["cycles"],
            "baseline_cycles": sides[BASELINE_RUNS]["cycles"],
        },
    )
    key = Line(
        name=f"keystroke to screen (p90), {label}",
        target=f"< {KEY_TARGET_S * 1e3:.0f} ms",
        measured=(
            f"{ms(big['key_p90_s'])} (median {ms(big['key_median_s'])}, max {ms(big['key_max_s'])} "
            f"with {ms(big['key_max_gc_s'])} of gc; "
            f"{big['key_p90_s'] / base['key_p90_s']:.2f}x; {BASELINE_RUNS} runs {ms(base['key_p90_s'])}; "
            f"{len(sides[runs]['keys'])} keys, {sides[runs]['refreshes_during_keys']} refreshes meanwhile)"
        ),
        passed=big["key_p90_s"] < KEY_TARGET_S,
        values={
            "ratio": big["key_p90_s"] / base["key_p90_s"],
            "keys": sides[runs]["keys"],
            "baseline_keys": sides[BASELINE_RUNS]["keys"],
        },
    )
    worker = Line(
        name=f"refresh worker per cycle (off the UI thread), {label}",
        target="(report)",
        measured=(
            f"LiveRuns.refresh {ms(big['worker_refresh_median_s'])} + cells {ms(big['worker_cells_median_s'])} "
            f"({BASELINE_RUNS} runs {ms(base['worker_refresh_median_s'])} + "
            f"{ms(base['worker_cells_median_s'])}); UI-thread CPU per 1 s cycle {ms(big['ui_cpu_median_s'])} "
            f"({ms(base['ui_cpu_median_s'])})"
        ),
        passed=None,
        values={"worker": sides[runs]["worker"], "baseline_worker": sides[BASELINE_RUNS]["worker"]},
    )
    live_big, live_base = sides[runs]["live"], sides[BASELINE_RUNS]["live"]
    live = Line(
        name=f"LiveRuns.refresh() alone, {label}",
        target="(report)",
        measured=(
            f"cold {ms(live_big['cold_s'])} ({live_big['cold_s'] / live_base['cold_s']:.0f}x; "
            f"{ms(live_base['cold_s'])}), warm {ms(live_big['warm_s'])} "
            f"({live_big['warm_s'] / live_base['warm_s']:.0f}x; {ms(live_base['warm_s'])})"
        ),
        passed=None,
        values={"runs": live_big, "baseline": live_base},
    )
    collected = Line(
        name=f"garbage collections while refreshing and typing, {label}",
        target="(report)",
        measured=f"{gc_text(sides[runs])} ({BASELINE_RUNS} runs: {gc_text(sides[BASELINE_RUNS])})",
        passed=None,
        values={
            "refreshes": sides[runs]["gc_refreshes"],
            "keys": sides[runs]["gc_keys"],
            "baseline_refreshes": sides[BASELINE_RUNS]["gc_refreshes"],
            "baseline_keys": sides[BASELINE_RUNS]["gc_keys"],
        },
    )
    return [first, refresh, key, worker, live, collected]


def main(argv: list[str] | None = None) -> int:
    """Build both projects, run every measurement in child processes, print the table
    and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in the big project")
    parser.add_argument(
        "--profile", action="store_true", help="profile the UI thread even when every target is met"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument(
        "--idle-only", action="store_true", help="only the idle line (a quick look at 100,000 runs)"
    )
    parser.add_argument("--child", choices=("idle", "first", "steady", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--idle-seconds", type=float, default=IDLE_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.json.write_text(json.dumps(child(args.child, args.root, args.total, args.idle_seconds)))
        return 0

    # bench_store imports torch (through vml.train), which a dashboard's process does
    # not: only this parent imports it, never the children that measure.
    from bench_store import child_env, fill_project, short_paths

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-") as tmp:
        root = Path(tmp)
        env = child_env(root)
        imports = import_time(env)
        idle = idle_line(root, args.runs, env)
        if args.idle_only:
            elapsed = time.perf_counter() - started
            run_args = {"runs": args.runs, "idle_only": True, "size": SIZE}
            return finish(
                [idle], elapsed, args.json, versions("textual", "rich") | {"vml": vml.__version__}, run_args
            )
        projects, totals, running = {}, {}, []
        setup: dict[str, Any] = {}
        for n in (BASELINE_RUNS, args.runs):
            projects[n] = api.create_project(root / f"runs-{n}")
            setup[f"fill_{n}_s"] = fill_project(projects[n], n)["fill_s"]
            running.append((api.Project(projects[n]).db_path, add_running(projects[n])))
            totals[n] = n + RUNNING
        out = root / "child.json"
        mover = Mover(running)
        mover.start()
        try:
            sides: dict[int, dict[str, Any]] = {n: {"first": []} for n in projects}
            for n, project in projects.items():  # untimed: bytecode, page cache
                run_child("first", project, totals[n], env, out)
            for _ in range(FIRST_SCREEN_REPEATS):  # in turn: baseline, many runs, baseline, ...
                for n, project in projects.items():
                    sides[n]["first"].append(run_child("first", project, totals[n], env, out))
            for n, project in projects.items():
                sides[n] |= run_child("steady", project, totals[n], env, out)
            lines = [*lines_for(sides, args.runs, imports), idle]
            if args.profile or any(line.passed is False for line in lines):
                profile = run_child("profile", projects[args.runs], totals[args.runs], env, out)
                lines[0].profile = short_paths(profile["profile"])
        finally:
            mover.stop.set()
            mover.join()
        lines[0].values["setup"] = setup | {"mover_ticks": mover.ticks}
    elapsed = time.perf_counter() - started

    machine = versions("textual", "rich") | {"vml": vml.__version__}
    run_args = {"runs": args.runs, "profile": args.profile, "size": SIZE}
    return finish(lines, elapsed, args.json, machine, run_args)


if __name__ == "__main__":
    sys.exit(main())
