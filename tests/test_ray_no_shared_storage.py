"""The Ray backend on a two-node cluster whose worker node does not see the project:
the project travels with the tasks, the runs' files come back into trainings/, and
``ml cancel`` still reaches a run there.

Both nodes run on this machine in a network namespace of their own that has only a
loopback, so every Ray address is 127.0.0.1; the worker node also runs in a mount
namespace with a tmpfs over the project's parent folder. The head has no CPUs, so
every run lands on the worker node. It needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

DEADLINE = 180.0
RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6379  # free: the cluster has a network namespace to itself

NET = """import math
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes, width: int = 16):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.layers(x)
"""


def isolation_missing(scratch: Path) -> str | None:
    """Why this machine cannot run the cluster test, or None."""
    if os.geteuid() != 0:
        return "needs root to make namespaces and mount a tmpfs (CI runs as root)"
    for tool in ("unshare", "nsenter", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux, iproute2) to isolate the Ray nodes"
    probe = subprocess.run(
        [
            "unshare",
            "--net",
            "--uts",
            "--mount",
            "sh",
            "-c",
            f"ip link set lo up && mount -t tmpfs probe {scratch}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"unshare/mount not allowed here: {probe.stderr.strip() or probe.returncode}"
    return None


class Cluster:
    """A Ray head and worker node started in their own process groups, and their logs."""

    def __init__(self, hidden: Path) -> None:
        # Ray's socket paths must stay short: a folder straight under /tmp, outside `hidden`.
        self.base = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))
        token = uuid.uuid4().hex
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.processes: list[subprocess.Popen] = []
        # The namespaces' holder: a loopback only, and a hostname that resolves to it
        # (Ray falls back to resolving the hostname when it finds no outside route).
        holder = self._start(
            [
                "unshare",
                "--net",
                "--uts",
                "sh",
                "-c",
                "ip link set lo up && hostname localhost && echo up && exec sleep 3600",
            ],
            "holder",
            stdout=subprocess.PIPE,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"up", (
            "namespace holder failed"
        )
        self.enter = ["nsenter", f"--net=/proc/{holder.pid}/ns/net", f"--uts=/proc/{holder.pid}/ns/uts"]
        options = ["--disable-usage-stats", "--block"]
        self._start(
            [*self.enter, RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--num-cpus=0",
             "--include-dashboard=false", f"--port={PORT}", f"--temp-dir={self.base}/head", *options],
            "head",
        )  # fmt: skip
        worker = f"{RAY} start --address=127.0.0.1:{PORT} --num-cpus=1 --temp-dir={self.base}/worker {' '.join(options)}"
        self._start(
            [
                *self.enter,
                "unshare",
                "--mount",
                "sh",
                "-c",
                f"mount -t tmpfs vml-hidden {hidden} && exec {worker}",
            ],
            "worker",
        )

    def _start(self, command: list[str], name: str, **options) -> subprocess.Popen:
        log = (self.base / f"{name}.log").open("wb")
        options.setdefault("stdout", log)
        process = subprocess.Popen(
            command, env=self.env, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, **options
        )
        self.processes.append(process)
        return process

    def dead(self) -> list[str]:
        """The parts of the cluster that have exited (all run until ``stop``)."""
        return [" ".join(p.args[-3:]) for p in self.processes if p.poll() is not None]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.base.glob("*.log")
        )

    def stop(self) -> None:
        """Kill every process of both nodes: their process groups, then any Ray
        process still naming this cluster's folder (a worker that left its group)."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=30)
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and str(self.base).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    scratch = Path(tempfile.mkdtemp(prefix="vr-probe", dir="/tmp"))
    try:
        missing = isolation_missing(scratch)
    finally:
        scratch.rmdir()
    if missing:
        pytest.skip(f"two-node Ray cluster without shared storage: {missing}")
    running = Cluster(hidden=tmp_path)
    try:
        yield running
    finally:
        running.stop()


def runs(project: Path) -> dict[str, dict]:
    """The recorded runs by name; none before ``ml queue`` has made the store."""
    if not (project / "trainings" / "vml.db").is_file():
        return {}
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        if not db.execute("select 1 from sqlite_master where name = 'runs'").fetchone():
            return {}
        return {r["name"]: dict(r) for r in db.execute("select * from runs")}


def test_a_sweep_on_a_node_without_the_project_brings_its_files_back(
    cluster: Cluster, project: Path, ml, tmp_path: Path
) -> None:
    (project / "net.py").write_text(NET)
    (project / ".gitignore").write_text("data/\n")  # ignored by git, still sent: the runs need it
    (project / "runs.yaml").write_text(
        f"config:\n  backend: ray\n  address: 127.0.0.1:{PORT}\n  parallel: 1\n"
        "runs:\n"
        "  tiny:\n    epochs: 1\n    hidden-size: 16\n"
        "  own-net:\n    model: ./net.py:Net\n    epochs: 1\n"  # a project file of its own
        "  long:\n    epochs: 100000\n    hidden-size: 16\n"
    )
    env = {**cluster.env, "HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    queue = subprocess.Popen(
        [*cluster.enter, sys.executable, "-m", "vml", "queue", "runs.yaml"],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        end = time.monotonic() + DEADLINE
        while not (
            len(now := runs(project)) == 3
            and {now["tiny"]["status"], now["own-net"]["status"]} == {"finished"}
            and now["long"]["status"] == "running"
            and now["long"]["epoch"] >= 1
        ):
            assert queue.poll() is None, f"ml queue ended early: {queue.communicate()}\n{cluster.logs()}"
            assert not cluster.dead(), f"{cluster.dead()} exited\n{cluster.logs()}"
            assert time.monotonic() < end, f"timed out: {runs(project)}\n{cluster.logs()}"
            time.sleep(0.2)
        cancelled = ml("cancel", "long", "--timeout", "120", cwd=project, timeout=DEADLINE)
        assert cancelled.returncode == 0, cancelled.stderr
        out, err = queue.communicate(timeout=DEADLINE)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(queue.pid, signal.SIGKILL)
    assert queue.returncode == 1, err  # not all finished: one was cancelled
    assert "sweep" in out and "2 of 3 finished" in out, err
    assert "long: cancelled" in err
    recorded = runs(project)
    assert {name: r["status"] for name, r in recorded.items()} == {
        "tiny": "finished",
        "own-net": "finished",
        "long": "cancelled",
    }
    assert all(r["host"].startswith("ray:") for r in recorded.values())
    assert recorded["own-net"]["model"] == "./net.py:Net"
    for name in ("tiny", "own-net"):
        folder = project / "trainings" / name
        assert {"best.pt", "last.pt", "log.txt", "config.yaml"} <= {p.name for p in folder.iterdir()}
        assert torch.load(folder / "best.pt", weights_only=True)["epoch"] == 1
        assert "finished: test_acc" in (folder / "log.txt").read_text()
    long = project / "trainings" / "long"
    assert torch.load(long / "best.pt", weights_only=True)["epoch"] >= 1
    assert "cancelled" in (long / "log.txt").read_text()
    assert not list((project / "trainings").rglob(".*.tmp"))
    # The runs trained on the worker node, in the copy Ray unpacked there.
    assert list((cluster.base / "worker").rglob("working_dir_files/*/data/digits.csv"))
