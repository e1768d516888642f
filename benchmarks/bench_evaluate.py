"""A run's evaluation: what it adds to the demo's `ml train`, and `ml plot` speed.

The demo is ``ml new demo`` (the default template: digits, 20 epochs, the MLP) and
``ml train --device=cpu`` in it, as a user runs them, every command a fresh process.
Everything is written under one temporary directory, removed at the end.

1. Evaluation overhead: the same training run by a small driver (``DRIVER``) that calls
   ``vml.cli.main(["train", ...])``, with the evaluation, and without it: there the
   driver first replaces ``vml.train.runner.keep_evaluation`` (the metrics,
   ``predictions.npz``, ``evaluation.json``) with one returning ``{}`` and
   ``vml.evaluate.service.start_helper`` (the process that imports scikit-learn while the
   run imports torch) with a no-op, so the product needs no switch for the benchmark. Both sides time
   ``Trainer.fit`` and ``keep_evaluation`` in place and say when ``main`` returned (the
   rest to the exit is the interpreter's teardown). ``ml train`` itself runs in the same
   rounds, the order rotated each round; best of ``--rounds`` each. Target: with /
   without - 1 <= 5%. The evaluation's parts and the reproducibility record
   (``_write_repro``) are then timed alone in a fresh process (``--pieces-child``).
2. ``ml plot confusion-matrix|roc|pr RUN``: whole commands beside ``ml list`` in the same
   rounds, best of ``--rounds``. Target: < 1 s each. And, each in a fresh interpreter
   calling ``vml.cli.main``: whether torch (or scikit-learn) got imported.

    .venv/bin/python benchmarks/bench_evaluate.py [--rounds 5] [--epochs 20] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import Line, child_env, finish, versions

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.json"
OVERHEAD_TARGET, PLOT_TARGET = 0.05, 1.0
PLOT_KINDS = ("confusion-matrix", "roc", "pr")
SEED = 42  # the template's random-seed: the data split the runs read
# ``python -c DRIVER with|without ARGS...``: ``ml ARGS``, with or without the evaluation;
# then on stderr, as JSON, the seconds of the spans it timed and when main returned.
DRIVER = """\
import json, sys, time
import vml.train.runner as runner
from vml.train.loop import Trainer

if sys.argv[1] == "without":
    runner.keep_evaluation = lambda folder, predictions: {}
    import vml.evaluate.service as service

    service.start_helper = lambda: None
spans = {}


def timed(name, call):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spans[name] = time.perf_counter() - start

    return run


Trainer.fit = timed("fit_s", Trainer.fit)
runner.keep_evaluation = timed("keep_evaluation_s", runner.keep_evaluation)
from vml.cli import main

try:
    main(sys.argv[2:])
finally:
    print(json.dumps(spans | {"main_returned_at": time.time()}), file=sys.stderr)
"""
# ``python -c IMPORTS ARGS...``: ``ml ARGS`` in this interpreter; then on stderr whether
# torch and scikit-learn were imported (as tests/helpers.py checks it).
IMPORTS = """\
import json, sys
from vml.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({"torch": "torch" in sys.modules, "sklearn": "sklearn" in sys.modules}), file=sys.stderr)
"""


# --- the commands -----------------------------------------------------------------------


ENV: dict[str, str] = {}  # set by main()


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(args: list[str], cwd: Path) -> tuple[float, float, str, str]:
    """Seconds from start to exit, the command's CPU seconds, its stdout and stderr; a
    failure stops the benchmark."""
    cpu = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=ENV or None)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        shown = " ".join(arg if len(arg) < 80 else "CODE" for arg in args[:6])  # not the driver's source
        raise SystemExit(f"{shown} ... failed ({result.returncode}): {result.stderr[-3000:]}")
    return elapsed, children_cpu() - cpu, result.stdout, result.stderr


def rounds(commands: dict[str, Callable[[], Any]], count: int) -> dict[str, list[Any]]:
    """Each command ``count`` times, in turn, the order rotated each round (a, b, c;
    b, c, a; ...), so a slow spell of the machine falls on all of them."""
    names = list(commands)
    times: dict[str, list[Any]] = {name: [] for name in names}
    for i in range(count):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(commands[name]())
    return times


# --- 1. the evaluation's cost in ml train ------------------------------------------------


def train(project: Path, side: str, epochs: int) -> dict[str, Any]:
    """One demo training, whole command: ``ml train`` (side ``ml``) or the driver with
    or without the evaluation. Its wall and CPU seconds, the driver's spans and the
    run's name, after checking the run kept its evaluation files, or not, as the side
    says."""
    flags = ["train", "--device=cpu", f"--epochs={epochs}"]
    command = (
        [sys.executable, "-m", "vml", *flags]
        if side == "ml"
        else [sys.executable, "-c", DRIVER, side, *flags]
    )
    elapsed, cpu, out, err = run_timed(command, project)
    exited_at = time.time()
    found = re.search(r"^(\S+): finished", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"ml train ({side}) printed no finished run: {out[-1000:]} {err[-1000:]}")
    folder = project / "trainings" / found[1]
    kept = [(folder / name).is_file() for name in ("predictions.npz", "evaluation.json")]
    if kept != [side != "without"] * 2:
        raise SystemExit(f"run {found[1]} ({side}): predictions.npz, evaluation.json kept: {kept}")
    result = {"wall_s": elapsed, "cpu_s": cpu, "run": found[1]}
    if side != "ml":
        spans = json.loads(err.splitlines()[-1])
        result |= {k: v for k, v in spans.items() if k != "main_returned_at"}
        result["teardown_s"] = exited_at - spans["main_returned_at"]
    return result


def pieces_child(root: str, run: str) -> dict[str, Any]:
    """In a fresh process, after the imports a run makes: the end of ``_train`` timed
    piece by piece on run ``run``'s best model (the first call, as a run pays it, then
    the best of 3), and ``_write_repro`` as a run starts."""
    import numpy as np
    import torch

    from vml.config import load_project
    from vml.data.prepare import prepare_data
    from vml.evaluate.metrics import evaluate
    from vml.evaluate.predictions import save_predictions
    from vml.evaluate.report import save_evaluation
    from vml.train import runner
    from vml.train.inference import load_best
    from vml.train.loop import Tensors, loss_function

    project = load_project(Path(root))
    data = prepare_data(project, SEED)
    model, checkpoint = load_best(Path(root) / "trainings" / run, Path(root))
    test = Tensors(torch.from_numpy(np.array(data.x("test"))), torch.from_numpy(np.array(data.y("test"))))
    loss_fn = loss_function(checkpoint["hyperparameters"]["loss"])
    folder = Path(root) / "pieces"
    folder.mkdir()

    def first_and_best(call: Callable[[], Any]) -> tuple[float, float]:
        times = []
        for _ in range(4):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return times[0], min(times[1:])

    start, cpu = time.perf_counter(), time.process_time()
    import sklearn.metrics  # noqa: F401  (what the helper process imports ahead of need)

    found = {
        "import_sklearn_metrics_s": time.perf_counter() - start,
        "import_sklearn_metrics_cpu_s": time.process_time() - cpu,
    }
    predicted: list[Any] = []
    found["predict_split_first_s"], found["predict_split_s"] = first_and_best(
        lambda: predicted.append(runner.predict_split(model, test, loss_fn, data.classes)[1])
    )
    predictions = predicted[0]
    # keep_evaluation first: its first call is the run's first evaluate (scipy's lazy imports).
    found["keep_evaluation_first_s"], found["keep_evaluation_s"] = first_and_best(
        lambda: runner.keep_evaluation(folder, predictions)
    )
    evaluation = evaluate(predictions)
    for name, call in (
        ("save_predictions", lambda: save_predictions(folder, predictions)),
        ("evaluate", lambda: evaluate(predictions)),
        ("save_evaluation", lambda: save_evaluation(folder, evaluation)),
        (
            "write_repro",
            lambda: runner._write_repro(
                folder, project, "bench", {"random_seed": SEED}, data, torch.device("cpu"), "ml train"
            ),
        ),
    ):
        found[f"{name}_first_s"], found[f"{name}_s"] = first_and_best(call)
    found["test_rows"] = len(test)
    found["files_bytes"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    return found


def bench_train(project: Path, epochs: int, count: int) -> tuple[list[Line], str]:
    """The overhead lines, and the name of a run that kept its evaluation."""
    train(project, "ml", epochs)  # untimed: compiles the bytecode, makes the data cache
    sides = rounds(
        {side: lambda side=side: train(project, side, epochs) for side in ("ml", "with", "without")}, count
    )
    best = {side: min(r["wall_s"] for r in runs) for side, runs in sides.items()}
    best_cpu = {side: min(r["cpu_s"] for r in runs) for side, runs in sides.items()}
    overhead = best["with"] / best["without"] - 1
    cpu_overhead = best_cpu["with"] / best_cpu["without"] - 1

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in sides[side])

    run = sides["with"][-1]["run"]
    _, _, out, _ = run_timed(
        [sys.executable, __file__, "--pieces-child", json.dumps([str(project), run])], project
    )
    parts = json.loads(out.splitlines()[-1])
    repro = parts["write_repro_first_s"]
    each = ", ".join(
        f"{a['wall_s']:.2f}/{b['wall_s']:.2f}" for a, b in zip(sides["with"], sides["without"], strict=True)
    )
    ml_each = ", ".join(f"{r['wall_s']:.2f}" for r in sides["ml"])
    spans = ("fit_s", "keep_evaluation_s", "teardown_s")
    return [
        Line(
            f"demo ml train --epochs={epochs} (whole command, best of {count})",
            "report",
            f"{best['ml']:.2f} s (each {ml_each}; CPU {best_cpu['ml']:.2f} s;"
            f" the driver with evaluation {best['with']:.2f} s)",
            None,
            {"runs": sides["ml"], "best_s": best["ml"]},
        ),
        Line(
            "evaluation overhead: driver with / without evaluation - 1",
            f"<= {OVERHEAD_TARGET:.0%}",
            f"{overhead:+.1%} ({best['with']:.2f} s / {best['without']:.2f} s, {best['with'] - best['without']:+.2f} s;"
            f" each {each}; CPU {cpu_overhead:+.1%}, {best_cpu['with']:.2f} / {best_cpu['without']:.2f} s)",
            overhead <= OVERHEAD_TARGET,
            {
                "with": sides["with"],
                "without": sides["without"],
                "overhead": overhead,
                "cpu_overhead": cpu_overhead,
                "median_overhead": median("with", "wall_s") / median("without", "wall_s") - 1,
            },
        ),
        Line(
            "... where, with / without (medians)",
            "report",
            f"Trainer.fit {median('with', 'fit_s'):.2f} / {median('without', 'fit_s'):.2f} s (scikit-learn"
            f" loads in the helper process meanwhile); keep_evaluation {median('with', 'keep_evaluation_s') * 1000:.0f} ms;"
            f" main's return to exit {median('with', 'teardown_s'):.2f} / {median('without', 'teardown_s'):.2f} s",
            None,
            {side: {key: median(side, key) for key in spans} for side in ("with", "without")},
        ),
        Line(
            "... the evaluation's parts alone, in one process (first call)",
            "report",
            f"import sklearn.metrics {parts['import_sklearn_metrics_s']:.2f} s (CPU"
            f" {parts['import_sklearn_metrics_cpu_s']:.2f} s); predict_split {parts['predict_split_first_s'] * 1000:.1f} ms;"
            f" keep_evaluation {parts['keep_evaluation_first_s'] * 1000:.0f} ms (warm {parts['keep_evaluation_s'] * 1000:.0f}:"
            f" save_predictions {parts['save_predictions_s'] * 1000:.1f}, evaluate {parts['evaluate_s'] * 1000:.0f},"
            f" save_evaluation {parts['save_evaluation_s'] * 1000:.1f} ms)",
            None,
            parts,
        ),
        Line(
            "repro record (_write_repro, first call in a fresh process)",
            "report",
            f"{repro * 1000:.0f} ms (warm {parts['write_repro_s'] * 1000:.0f} ms) = {repro / best['ml']:.1%} of ml train",
            None,
            {"first_s": repro, "warm_s": parts["write_repro_s"], "share_of_train": repro / best["ml"]},
        ),
    ], run


# --- 2. ml plot ---------------------------------------------------------------------------


def bench_plot(project: Path, run: str, count: int) -> list[Line]:
    commands = {kind: ["plot", kind, run] for kind in PLOT_KINDS} | {"list": ["list"]}

    def timed(args: list[str]) -> Callable[[], float]:
        return lambda: run_timed([sys.executable, "-m", "vml", *args], project)[0]

    for args in commands.values():  # untimed: compiles the bytecode (plotext, the plots)
        timed(args)()
    times = rounds({name: timed(args) for name, args in commands.items()}, count)
    best = {name: min(values) for name, values in times.items()}
    lines = [
        Line(
            f"ml plot {kind} RUN (whole command, best of {count})",
            f"< {PLOT_TARGET:g} s",
            f"{best[kind]:.3f} s (ml list {best['list']:.3f} s, plot/list {best[kind] / best['list']:.2f}x)",
            best[kind] < PLOT_TARGET,
            {
                "seconds": times[kind],
                "list_seconds": times["list"],
                "ratio_to_list": best[kind] / best["list"],
            },
        )
        for kind in PLOT_KINDS
    ]
    imported = {
        kind: json.loads(run_timed([sys.executable, "-c", IMPORTS, *args], project)[3].splitlines()[-1])
        for kind, args in commands.items()
        if kind != "list"
    }
    torch = [kind for kind, found in imported.items() if found["torch"]]
    sklearn = [kind for kind, found in imported.items() if found["sklearn"]]
    lines.append(
        Line(
            "ml plot imports no torch (fresh interpreter each)",
            "no torch",
            f"torch in {', '.join(torch) or 'none'}; scikit-learn in {', '.join(sklearn) or 'none'}"
            f" (of {', '.join(PLOT_KINDS)})",
            not torch,
            imported,
        )
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command (best of)")
    parser.add_argument(
        "--epochs", type=int, default=20, help="epochs of each demo training (the template's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads of each training (OMP_NUM_THREADS; default: torch's, as a user runs it)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--pieces-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pieces_child:
        print(json.dumps(pieces_child(*json.loads(args.pieces_child))))
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-evaluate-") as tmp:
        root = Path(tmp)
        ENV.update(child_env(root))
        if args.threads:
            ENV["OMP_NUM_THREADS"] = str(args.threads)
        run_timed([sys.executable, "-m", "vml", "new", "demo"], root)
        project = root / "demo"
        lines, run = bench_train(project, args.epochs, args.rounds)
        lines += bench_plot(project, run, args.rounds)
    elapsed = time.perf_counter() - started
    import vml

    machine = versions("torch", "numpy", "scipy", "scikit-learn", "plotext") | {"vml": vml.__version__}
    return finish(lines, elapsed, args.json, machine, vars(args) | {"json": str(args.json)})


if __name__ == "__main__":
    sys.exit(main())
