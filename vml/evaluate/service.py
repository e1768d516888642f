"""Evaluating a run's kept predictions in a helper process that imported scikit-learn
while the run was starting.

Why a process: ``import sklearn.metrics`` costs 1.2-1.8 s (measured with
``benchmarks/bench_evaluate.py``; nearly all of it ``scipy.stats``, which
``sklearn.utils.fixes`` imports), against a 5% budget on the demo's ~7 s ``ml train``.
Imported in a thread while the run trains, it holds the interpreter lock against the
training loop (``Trainer.fit`` 0.84 -> 2.71 s). A process of its own imports it on
another core while the run imports torch, then waits; at the run's end it evaluates the
``predictions.npz`` it is sent (~0.1 s) and writes ``evaluation.json``.

The helper reads folder paths on stdin and answers each with one JSON line on stdout;
it ends when its stdin closes, so it never outlives the process that started it. When
there is no helper, or it fails, the evaluation runs in this process instead: the same
code, only slower to start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_helper: subprocess.Popen | None = None


def start_helper() -> None:
    """Start this process's helper, once (a no-op where scikit-learn is already
    imported, as in a run forked from the warm process)."""
    global _helper
    if _helper is not None or "sklearn.metrics" in sys.modules:
        return
    try:
        _helper = subprocess.Popen(
            [sys.executable, "-m", "vml.evaluate.service"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except OSError:  # no helper: evaluate in this process
        _helper = None


def evaluate_folder(folder: Path) -> dict[str, float | None]:
    """Evaluate the ``predictions.npz`` kept in run folder ``folder``, write its
    ``evaluation.json``, and return the metrics as run columns."""
    global _helper
    if _helper is not None and _helper.poll() is None:
        try:
            _helper.stdin.write(f"{folder}\n")
            _helper.stdin.flush()
            reply = json.loads(_helper.stdout.readline() or "null")
        except (OSError, ValueError):
            reply = None
        if isinstance(reply, dict) and "columns" in reply:
            return reply["columns"]
        stop_helper()  # it failed or died: this process evaluates from now on
    return _evaluate_here(folder)


def stop_helper() -> None:
    """End the helper (it also ends on its own when this process does)."""
    global _helper
    if _helper is not None:
        _helper.kill()
        _helper.wait()
        _helper = None


def _evaluate_here(folder: Path) -> dict[str, float | None]:
    from vml.evaluate.metrics import evaluate, run_columns
    from vml.evaluate.predictions import load_predictions
    from vml.evaluate.report import save_evaluation

    evaluation = evaluate(load_predictions(folder))
    save_evaluation(folder, evaluation)
    return run_columns(evaluation)


def _serve() -> None:
    import sklearn.metrics  # noqa: F401  (the point of this process: imported ahead of need)

    for line in sys.stdin:
        answer: dict[str, Any]
        try:
            answer = {"columns": _evaluate_here(Path(line.rstrip("\n")))}
        except Exception as exc:  # the caller evaluates itself and reports it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
