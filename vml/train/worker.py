"""The worker process of a run started in the background: ``python -m vml.train.worker
PROJECT NAME`` trains the queued run NAME of the project at PROJECT and records it.

Its progress goes to the run's log.txt; what it prints (warnings, a crash's traceback)
goes to worker.txt beside it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from vml.api import RUN_PROJECT_FILE
from vml.config import load_project
from vml.errors import VmlError
from vml.train.runner import start_queued_run


def main(argv: list[str]) -> int:
    project_root, name = argv
    # A process started from a background job inherits SIGINT ignored; ml cancel
    # stops a worker with SIGINT, so it must always raise KeyboardInterrupt here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    own = Path(project_root) / "trainings" / name / RUN_PROJECT_FILE
    with open(os.devnull, "w") as quiet:  # the log has every line already
        try:
            project = load_project(project_root, own if own.is_file() else None)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: ml train --gpus N
                from vml.train.distributed import start_distributed

                result = start_distributed(project, name, quiet)
            else:
                result = start_queued_run(project, name, stderr=quiet)
        except VmlError as exc:  # e.g. cancelled while this process started
            print(f"worker: {exc.message}", file=sys.stderr)
            return 1
    return 0 if result.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
