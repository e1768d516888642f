"""``ml serve`` over HTTP beside the same predict function called in-process.

The demo is ``ml new demo`` (digits: 64 columns, 10 labels, the MLP) and one short
``ml train --device=cpu`` in it; then ``ml serve RUN --port 0`` as a user starts it,
a real process, asked over loopback by clients using the standard library's
``http.client`` with keep-alive (one connection per client: a lighter client than
httpx, so the numbers say more about the server).

1. One digits row per request (``POST /predict`` with ``{"rows": [ROW]}``, top 3), from
   1 client and from 8 clients at once (threads): requests per second and the p50 / p99
   latency, each request timed from before it is sent to its answer read. Beside it,
   in this process, ``Predictor.rows([ROW], 3)`` (what the endpoint runs in its thread
   pool: the rows checked and scaled, the model in inference mode, the top labels):
   its p50 and p99, and the ratio HTTP p50 / in-process p50. Target: p50 < 5 ms at 1
   client.
2. 1,000-row requests: rows per second as JSON rows and as a CSV body, beside
   ``Predictor.rows`` on the same 1,000 rows in-process (ratio).

The server runs with one torch thread per prediction (``--threads=1``, the default)
and, as a second line of each, with one per CPU (torch's own default), to show what
the thread count does.

    .venv/bin/python benchmarks/bench_serve.py [--requests 2000] [--big-requests 40] [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from report import Line, child_env, finish, versions

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
P50_TARGET_MS = 5.0
CLIENTS = 8
BIG_ROWS = 1000
START_LINE = re.compile(r"at http://127\.0\.0\.1:(\d+) ")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Served:
    """``python -m vml serve RUN --port 0`` in ``project``; ``port`` once it listens."""

    def __init__(self, project: Path, run: str, env: dict[str, str], threads: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vml", "serve", run, "--port", "0", f"--threads={threads}"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            self.stop()
            raise SystemExit("ml serve said nothing in 120 s") from None
        found = START_LINE.search(line)
        if found is None:
            self.stop()
            raise SystemExit(f"ml serve did not start: {line} {self.process.stderr.read()[-2000:]}")
        self.port = int(found[1])

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def post(connection: http.client.HTTPConnection, body: bytes, kind: str) -> float:
    """One ``POST /predict``; its seconds, from sending to the answer read."""
    start = time.perf_counter()
    connection.request("POST", "/predict", body=body, headers={"Content-Type": kind})
    response = connection.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise SystemExit(f"POST /predict answered {response.status}: {data[:500]!r}")
    return elapsed


def clients(port: int, body: bytes, kind: str, count: int, requests: int) -> dict[str, Any]:
    """``count`` clients at once, each sending ``requests`` requests on its own
    connection (after 20 untimed ones): every latency and the requests per second."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(count + 1)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(20):
            post(connection, body, kind)
        ready.wait()
        mine = [post(connection, body, kind) for _ in range(requests)]
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "wall_s": wall,
        "per_second": len(latencies) / wall,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def in_process(project: Path, run: str, rows: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """``Predictor.rows`` in this process, on one torch thread as ``ml serve`` runs it:
    one row ``repeats`` times, and 1,000 rows."""
    import torch

    from vml.api import Project
    from vml.serve.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor(Project(project).served(run))
    one = [rows[0]]
    for _ in range(50):
        predictor.rows(one, 3)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.rows(one, 3)
        times.append(time.perf_counter() - start)
    big = rows[:BIG_ROWS]
    big_times = []
    for _ in range(5):
        start = time.perf_counter()
        predictor.rows(big, 3)
        big_times.append(time.perf_counter() - start)
    return {
        "p50_ms": percentile(times, 0.5) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "big_rows_per_second": BIG_ROWS / statistics.median(big_times),
    }


def measure(
    project: Path, run: str, env: dict[str, str], threads: int, rows: list[dict[str, Any]], args
) -> dict[str, Any]:
    """One server's numbers: 1 and 8 clients of single rows, 1,000-row JSON and CSV."""
    one = json.dumps({"rows": [rows[0]]}).encode()
    big = json.dumps({"rows": rows[:BIG_ROWS]}).encode()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows[:BIG_ROWS])
    big_csv = text.getvalue().encode()
    server = Served(project, run, env, threads)
    try:
        found = {
            "one_client": clients(server.port, one, "application/json", 1, args.requests),
            "clients": clients(server.port, one, "application/json", CLIENTS, args.requests // CLIENTS),
            "big_json": clients(server.port, big, "application/json", 1, args.big_requests),
            "big_csv": clients(server.port, big_csv, "text/csv", 1, args.big_requests),
        }
    finally:
        server.stop()
    for key in ("big_json", "big_csv"):
        found[key]["rows_per_second"] = found[key]["per_second"] * BIG_ROWS
    found["body_bytes"] = {"one": len(one), "big_json": len(big), "big_csv": len(big_csv)}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="single-row requests per measurement")
    parser.add_argument("--big-requests", type=int, default=40, help="1,000-row requests per measurement")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the demo's training")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-serve-") as tmp:
        root = Path(tmp)
        env = child_env(root)
        subprocess.run(
            [sys.executable, "-m", "vml", "new", "demo"], cwd=root, check=True, capture_output=True
        )
        project = root / "demo"
        trained = subprocess.run(
            [
                sys.executable,
                "-m",
                "vml",
                "train",
                "--device=cpu",
                f"--epochs={args.epochs}",
                "--name=served",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        if trained.returncode != 0:
            raise SystemExit(f"ml train failed: {trained.stderr[-2000:]}")
        with (project / "data" / "digits.csv").open() as handle:  # numbers, as a client sends them
            rows = [
                {k: int(v) if k != "label" else v for k, v in row.items()} for row in csv.DictReader(handle)
            ]
        default_threads = _torch_threads()  # before in_process sets one
        local = in_process(project, "served", rows, args.requests)
        sides = {
            "one_thread": measure(project, "served", env, 1, rows, args),
            "cpu_threads": measure(project, "served", env, os.cpu_count() or 1, rows, args),
        }
    elapsed = time.perf_counter() - started
    lines = []
    for side, found in sides.items():
        threads = "--threads=1, the default" if side == "one_thread" else f"--threads={os.cpu_count()}"
        one, many = found["one_client"], found["clients"]
        lines += [
            Line(
                f"1 row, 1 client, p50 ({threads})",
                f"< {P50_TARGET_MS:g} ms",
                f"{one['p50_ms']:.2f} ms (p99 {one['p99_ms']:.2f} ms, {one['per_second']:,.0f} req/s;"
                f" in-process p50 {local['p50_ms']:.3f} ms, HTTP/in-process {one['p50_ms'] / local['p50_ms']:.1f}x)",
                one["p50_ms"] < P50_TARGET_MS if side == "one_thread" else None,
                one | {"in_process": local},
            ),
            Line(
                f"1 row, {CLIENTS} clients ({threads})",
                "report",
                f"{many['per_second']:,.0f} req/s, p50 {many['p50_ms']:.2f} ms, p99 {many['p99_ms']:.2f} ms",
                None,
                many,
            ),
            Line(
                f"{BIG_ROWS:,}-row requests, JSON / CSV ({threads})",
                "report",
                f"{found['big_json']['rows_per_second']:,.0f} / {found['big_csv']['rows_per_second']:,.0f} rows/s"
                f" (p50 {found['big_json']['p50_ms']:.1f} / {found['big_csv']['p50_ms']:.1f} ms a request;"
                f" in-process {local['big_rows_per_second']:,.0f} rows/s,"
                f" JSON {found['big_json']['rows_per_second'] / local['big_rows_per_second']:.2f}x)",
                None,
                {"json": found["big_json"], "csv": found["big_csv"], "body_bytes": found["body_bytes"]},
            ),
        ]
    import vml

    machine = versions("torch", "fastapi", "starlette", "uvicorn", "h11", "numpy") | {
        "vml": vml.__version__,
        "torch_threads_default": default_threads,
    }
    return finish(lines, elapsed, args.json, machine, vars(args) | {"json": str(args.json)})


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
