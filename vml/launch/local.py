"""The local queue: a sweep's queued runs started K at a time, each in its own worker
process pinned to its GPUs (``CUDA_VISIBLE_DEVICES``) and CPU threads.

The queue is the store: a sweep's runs are recorded ``queued`` up front and started
in order as slots free up. Cancelling a queued run (``ml cancel``) takes it out of the
queue; a worker that dies does not stop the queue. The scheduler keeps a heartbeat on
its sweep like a worker does on its run. ``python -m vml.launch.local PROJECT SWEEP``
is a detached scheduler (``ml train --detach`` with a sweep).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

from vml.config import ProjectConfig
from vml.launch import Feeder, warm
from vml.launch.process import Placement, spawn_worker, worker_env
from vml.launch.warm import WarmStarter, WarmWorker
from vml.liveness import HEARTBEAT_SECONDS, process_identity
from vml.store import RunStore
from vml.store.runs import utcnow
from vml.views import ending

# How often the queue looks for newly queued or cancelled runs; a worker's exit wakes
# it at once (its sentinel), so the next run starts without waiting for a poll.
POLL_SECONDS = 0.2
# A study's driver follows its trials' epochs: a pruned trial stops within this of its
# epoch's end (plus a batch), for a few cheap reads of the store a turn.
FEED_POLL_SECONDS = 0.05


class LocalScheduler:
    """Runs the queued runs of ``sweep`` in ``project``, ``placement.parallel`` at a
    time, until none is queued or running, each forked from a warm process (see
    ``vml.launch.warm``). ``say(name, event)`` hears each start and end, and notes
    (``note: ...``) about warm starts."""

    def __init__(
        self,
        project: ProjectConfig,
        sweep: str,
        placement: Placement,
        say: Callable[[str, str], None] = lambda name, event: None,
    ) -> None:
        self.project = project
        self.sweep = sweep
        self.placement = placement
        self.say = say
        self.ended: dict[str, str] = {}  # the final status of each run it started
        self._running: dict[str, tuple[WarmWorker | subprocess.Popen, int]] = {}  # name -> (worker, slot)
        self._starter: WarmStarter | None = None
        self.feeder: Feeder | None = None

    def run(self) -> dict[str, str]:
        """Start and follow the runs until none is queued or running; ``ended``."""
        with RunStore(self.project.db_path) as store:
            store.update_sweep(self.sweep, **process_identity(os.getpid()), heartbeat=utcnow())
            beat = time.monotonic()
            while True:
                self._reap(store)
                # Slots by index: two CPU slots (or two runs sharing a GPU) look alike.
                busy = {index for _, index in self._running.values()}
                free = [i for i in range(self.placement.parallel) if i not in busy]
                if self.feeder is not None:
                    self.feeder.feed(store, len(free) - len(self._waiting(store)))
                queued = self._waiting(store)
                for name, index in zip(queued, free, strict=False):
                    slot = self.placement.slots[index]
                    env = worker_env(slot, self.placement.cpus_per_run)
                    self._running[name] = (self._start(name, env), index)
                    self.say(name, "started" + (f" on GPU {','.join(slot)}" if slot else ""))
                if time.monotonic() - beat >= HEARTBEAT_SECONDS:  # not every 50 ms turn of a study
                    beat = time.monotonic()
                    store.update_sweep(self.sweep, heartbeat=utcnow())
                if not self._running and not store.sweep_names(self.sweep, "queued") and self._exhausted():
                    break
                self._wait()
            if self.feeder is not None:
                self.feeder.finish(store)
            store.update_sweep(self.sweep, ended_at=utcnow())
        return self.ended

    def _waiting(self, store: RunStore) -> list[str]:
        """The sweep's queued runs not started yet (a started one reads queued until
        its worker claims it)."""
        return [name for name in store.sweep_names(self.sweep, "queued") if name not in self._running]

    def _exhausted(self) -> bool:
        return self.feeder is None or self.feeder.exhausted

    def _start(self, name: str, env: dict[str, str]) -> WarmWorker | subprocess.Popen:
        if not warm.enabled():
            return spawn_worker(self.project.root, name, env)
        if self._starter is None:
            self._starter = WarmStarter(lambda run, line: self.say(run, f"note: {line}"))
        return self._starter.start(self.project.root, name, env)

    def _wait(self) -> None:
        """Until a worker may have exited, or ``POLL_SECONDS``."""
        poll = POLL_SECONDS if self.feeder is None else FEED_POLL_SECONDS
        sentinels = [s for worker, _ in self._running.values() if (s := getattr(worker, "sentinel", None))]
        if sentinels:
            wait(sentinels, poll)
        else:
            time.sleep(poll)

    def _reap(self, store: RunStore) -> None:
        """Free the slots of workers that exited; a run its worker left live crashed."""
        for name, (process, _) in list(self._running.items()):
            code = process.poll()
            if code is None:
                continue
            del self._running[name]
            lost = getattr(process, "orphaned", False)  # forked from a warm process that died
            how = "ended (its exit code was lost with the warm process)" if lost else f"exited with code {code}"
            row = store.worker_gone(name, f"its worker {how} without recording an end")
            if row is not None:
                if self.feeder is not None:
                    row = self.feeder.settle(store, row)
                self.ended[name] = row["status"]
                self.say(name, ending(row))


def main(argv: list[str]) -> int:
    from vml.config import load_project
    from vml.launch import backend_for

    root, sweep = argv
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited ignored (see the worker)
    scheduler = backend_for(
        load_project(Path(root)), sweep, lambda name, event: print(f"{name}: {event}", flush=True)
    )
    ended = scheduler.run()
    return 0 if all(status == "finished" for status in ended.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
