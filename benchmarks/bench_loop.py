"""Training-loop speed: vml's Trainer vs a hand-written PyTorch loop, and `ml train` start-up.

Both loops train the same MLP on the same synthetic data with the same seed, batch size,
optimizer and thread count, on CPU, on one shared model, epochs interleaved. The
start-up line times `ml train` from process start to its first step line. Everything is
written under one temporary directory, removed at the end.

    .venv/bin/python benchmarks/bench_loop.py [--epochs 30] [--samples 16384] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from report import Line, finish
from torch import nn

from vml.api import create_project
from vml.models import get_model
from vml.params import TRAINING_PARAMS
from vml.store import RunStore
from vml.train.callbacks import Callback
from vml.train.cancel import CancelOnSignal
from vml.train.checkpoint import BestCheckpoint, LastCheckpoint
from vml.train.loop import Tensors, Trainer, build_optimizer, evaluate
from vml.train.progress import LogLines
from vml.train.recorder import StoreRecorder
from vml.train.schedule import StepSchedule, build_schedule

SEED = 42
FEATURES = 64
CLASSES = 10
VAL_SAMPLES = 2_000
BATCH = 64
LR = 1e-3
LOG_EVERY = 10
MODEL_ARGS = {"hidden_size": 256, "hidden_layers": 2, "dropout": 0.1}
TARGET_RATIO = 1.03
STARTUP_REPEATS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "loop.json"


# --- the data and the two loops ---------------------------------------------------------


def make_data(samples: int) -> tuple[Tensors, Tensors]:
    """Seeded Gaussian features labelled by a random linear teacher plus noise, so
    validation accuracy climbs for a few epochs and best.pt is rewritten now and then, as
    in a real run."""
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(samples + VAL_SAMPLES, FEATURES, generator=g)
    teacher = torch.randn(FEATURES, CLASSES, generator=g)
    # Noisy labels (about 70% learnable): the loss never goes to 0, so the gradients and
    # Adam's state stay away from subnormal floats, which are slow on CPUs.
    y = (x @ teacher + 4 * torch.randn(len(x), CLASSES, generator=g)).argmax(1)
    train = Tensors(x[:samples].clone(), y[:samples].clone())
    return train, Tensors(x[samples:].clone(), y[samples:].clone())


def build_model() -> nn.Module:
    torch.manual_seed(SEED)
    return get_model("mlp").build((FEATURES,), CLASSES, **MODEL_ARGS)


def save_fsynced(state: dict[str, Any], path: Path) -> None:
    """What a careful hand-written loop does: save to a temp file, fsync, rename."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RawLoop:
    """The obvious hand-written loop: randperm, slice, zero_grad, forward, cross-entropy,
    backward, step, and the per-step metrics vml keeps: ``loss.item()`` and (unless
    ``accuracy`` is False) the batch's correct count. ``epoch()`` then does what vml does
    per epoch: validate and write a last and (on improvement) a best checkpoint, fsynced."""

    def __init__(self, train: Tensors, val: Tensors, folder: Path, accuracy: bool = True) -> None:
        folder.mkdir(parents=True)
        self.train, self.val, self.folder, self.accuracy = train, val, folder, accuracy
        self.model = build_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.generator = torch.Generator().manual_seed(SEED)
        self.best = -math.inf
        self.steps_s = math.nan

    def epoch(self) -> float:
        """Train one epoch, validate, checkpoint; the mean training loss."""
        model, optimizer, x, y = self.model, self.optimizer, self.train.x, self.train.y
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=self.generator)
        total, correct = 0.0, 0
        for i in range(0, len(y), BATCH):
            index = order[i : i + BATCH]
            xb, yb = x[index], y[index]
            optimizer.zero_grad()
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            if self.accuracy:
                correct += (out.argmax(1) == yb).sum().item()
        self.steps_s = time.perf_counter() - start
        _, val_acc = evaluate(model, self.val)
        save_fsynced(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, self.folder / "last.pt"
        )
        if val_acc > self.best:
            self.best = val_acc
            save_fsynced({"model": model.state_dict()}, self.folder / "best.pt")
        return total / len(y)


class StepTimer(Callback):
    """Last in the callback list: times one ``fit()`` call from ``on_train_start`` to the
    end of the last step's callbacks, i.e. the shuffle plus every step, no validation."""

    def __init__(self) -> None:
        self.start = self.steps_s = math.nan

    def on_train_start(self, trainer: Trainer) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step == trainer.steps_per_epoch:
            self.steps_s = time.perf_counter() - self.start


class VmlLoop:
    """vml's Trainer with the callbacks ``runner._train`` gives a run off a terminal, in its
    order, on a real RunStore row and run folder (``bare``: with no callbacks but the
    timer). ``epoch()`` runs ``fit()`` for one more epoch."""

    def __init__(self, train: Tensors, val: Tensors, folder: Path, bare: bool = False) -> None:
        folder.mkdir(parents=True)
        hparams = {p.name: p.default for p in TRAINING_PARAMS} | MODEL_ARGS
        hparams |= {"batch_size": BATCH, "learning_rate": LR, "optimizer": "adam", "log_every": LOG_EVERY}
        hparams |= {"random_seed": SEED, "device": "cpu"}
        self.store = RunStore(folder.parent / "vml.db")
        self.run_id = self.store.create_run(
            folder.name,
            "mlp",
            hparams,
            fingerprint="0" * 32,
            epochs=hparams["epochs"],
            steps=-(-len(train) // BATCH),
            monitor="val_acc",
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        self.log = (folder / "log.txt").open("a", encoding="utf-8", buffering=1)
        self.stderr = io.StringIO()  # stands in for a piped stderr

        def log_line(line: str) -> None:
            self.log.write(line + "\n")

        def say(line: str) -> None:
            print(line, file=self.stderr, flush=True)

        model = build_model()
        optimizer = build_optimizer("adam", model.parameters(), LR, 0.9, 0.0)
        extra = {
            "model_name": "mlp",
            "task": "classification",
            "classes": [str(c) for c in range(CLASSES)],
            "input_shape": [FEATURES],
            "hyperparameters": hparams,
            "input_type": "csv",
            "features": [f"f{i}" for i in range(FEATURES)],
            "preprocess": [{"op": "standardize"}],
            "preprocess_state": {"mean": torch.zeros(FEATURES), "std": torch.ones(FEATURES)},
        }
        scheduler = build_schedule(optimizer, hparams)
        best = BestCheckpoint(folder, "val_acc", extra)
        self.timer = StepTimer()
        self.callbacks: list[Callback] = [
            CancelOnSignal(say),
            best,
            StepSchedule(scheduler),
            LastCheckpoint(folder, scheduler, extra),
            LogLines([log_line, say], [log_line, say], LOG_EVERY),
            StoreRecorder(self.store, self.run_id, best),
            self.timer,
        ]
        if bare:
            self.callbacks = [self.timer]
        self.trainer = Trainer(
            model=model,
            optimizer=optimizer,
            train=train,
            val=val,
            epochs=0,
            batch_size=BATCH,
            generator=torch.Generator().manual_seed(SEED),
            callbacks=self.callbacks,
        )

    @property
    def steps_s(self) -> float:
        return self.timer.steps_s

    def epoch(self) -> float:
        """One more epoch through ``fit()``; the mean training loss."""
        self.trainer.epochs = self.trainer.epoch + 1
        self.trainer.fit()
        if self.trainer.stop_reason is not None:
            raise RuntimeError(f"vml's loop stopped: {self.trainer.stop_reason} {self.trainer.failure}")
        return self.trainer.logs["loss"]

    def close(self) -> None:
        self.log.close()
        self.store.close()


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


# --- where vml's extra time per step goes -------------------------------------------------


def callback_costs(vml: VmlLoop) -> dict[str, dict[str, float]]:
    """One more vml epoch with each callback's hooks timed in place: total ms in
    ``on_step_end`` and ``on_epoch_end`` per callback."""
    costs: dict[str, dict[str, float]] = {}
    originals = []
    for callback in vml.callbacks:
        if callback is vml.timer:
            continue
        name = type(callback).__name__
        costs[name] = {"on_step_end": 0.0, "on_epoch_end": 0.0}
        for hook in ("on_step_end", "on_epoch_end"):
            method = getattr(callback, hook)

            def wrapped(trainer: Trainer, method=method, slot=costs[name], hook=hook) -> None:
                start = time.perf_counter()
                method(trainer)
                slot[hook] += time.perf_counter() - start

            setattr(callback, hook, wrapped)
            originals.append((callback, hook))
    try:
        vml.epoch()
    finally:
        for callback, hook in originals:
            delattr(callback, hook)
    return costs


def bench_loop(root: Path, samples: int, epochs: int) -> list[Line]:
    """Interleaved epochs after one warm-up each, the order rotated every round (raw, vml,
    bare, raw-loss; vml, bare, raw-loss, raw; ...). A ratio is the median of the rounds'
    ratios, so a machine that slows down for a while slows both sides of a ratio alike."""
    train, val = make_data(samples)
    loops: dict[str, Any] = {
        "raw": RawLoop(train, val, root / "raw"),
        "vml": VmlLoop(train, val, root / "trainings" / "bench-run"),
        "bare": VmlLoop(train, val, root / "bare" / "bench-run", bare=True),
        "raw-loss": RawLoop(train, val, root / "raw-loss", accuracy=False),
    }
    vml = loops["vml"]
    steps = math.ceil(samples / BATCH)
    times: dict[str, dict[str, list[float]]] = {k: {"epoch": [], "steps": [], "cpu": []} for k in loops}
    try:
        # Warm-up, each from the same global RNG state, so dropout masks match too: the
        # loops must do the same arithmetic and end epoch 1 with the same loss.
        warm = {}
        for key, loop in loops.items():
            torch.manual_seed(SEED)
            warm[key] = loop.epoch()
        if not all(math.isclose(warm["raw"], loss, rel_tol=1e-5) for loss in warm.values()):
            raise RuntimeError(f"the loops differ: epoch-1 training losses {warm}")
        # From here on all loops train one shared model and optimizer: two instances of
        # the same model can differ by 2-4% in speed (where their tensors sit in memory),
        # as much as the overhead measured here.
        shared = vml.trainer
        for loop in loops.values():
            if isinstance(loop, RawLoop):
                loop.model, loop.optimizer = shared.model, shared.optimizer
        loops["bare"].trainer.model, loops["bare"].trainer.optimizer = shared.model, shared.optimizer
        keys = list(loops)
        for round_ in range(epochs):
            shift = round_ % len(keys)
            for key in keys[shift:] + keys[:shift]:
                loop = loops[key]
                cpu = time.process_time()
                times[key]["epoch"].append(timed(loop.epoch)[0])
                times[key]["cpu"].append(time.process_time() - cpu)
                times[key]["steps"].append(loop.steps_s)
        costs = callback_costs(vml)
        lines_logged = vml.stderr.getvalue().count("step:[")
    finally:
        vml.close()
        loops["bare"].close()

    def median(key: str, kind: str) -> float:
        return statistics.median(times[key][kind])

    def ratio(key: str, kind: str, base: str = "raw") -> float:
        return statistics.median(a / b for a, b in zip(times[key][kind], times[base][kind], strict=True))

    lines = []
    for label, kind in (("steps only", "steps"), ("whole epoch", "epoch")):
        r, v, q = median("raw", kind), median("vml", kind), ratio("vml", kind)
        lines.append(
            Line(
                name=f"vml loop, {label} (vml/raw)",
                target=f"<= {TARGET_RATIO:.2f}x",
                measured=f"{q:.3f}x (vml {v:.3f} s, raw {r:.3f} s)",
                passed=q <= TARGET_RATIO,
                values={"ratio": q, "vml_s": v, "raw_s": r},
            )
        )
    for key, name, base in (
        ("bare", "Trainer, no callbacks, steps only", "raw"),
        ("raw", "raw with accuracy / raw loss only", "raw-loss"),
    ):
        q, t, b = ratio(key, "steps", base), median(key, "steps"), median(base, "steps")
        lines.append(
            Line(
                name=name,
                target="(report)",
                measured=f"{q:.3f}x ({key} {t:.3f} s, {base} {b:.3f} s)",
                passed=None,
                values={"ratio": q, f"{key}_s": t, f"{base}_s": b},
            )
        )
    per_step_us = {
        name: {
            "on_step_end_us": hooks["on_step_end"] / steps * 1e6,
            "on_epoch_end_ms": hooks["on_epoch_end"] * 1e3,
        }
        for name, hooks in costs.items()
    }
    r = median("raw", "steps")
    us = {key: (ratio(key, "steps") - 1) * r / steps * 1e6 for key in ("vml", "bare")}
    in_hooks = sum(c["on_step_end_us"] for c in per_step_us.values())
    spread = max(times["raw"]["epoch"]) / min(times["raw"]["epoch"])
    cpu_ratio = ratio("vml", "cpu")
    profile = [
        f"per step, steps only: raw {r / steps * 1e6:.1f} us; vml {us['vml']:+.1f} us, of which the "
        f"Trainer without callbacks {us['bare']:+.1f} us and the callbacks {us['vml'] - us['bare']:+.1f} us",
        "callback hooks, timed in place over one epoch:",
        *(
            f"  {name:<16} on_step_end {c['on_step_end_us']:6.2f} us/step   on_epoch_end {c['on_epoch_end_ms']:7.2f} ms"
            for name, c in per_step_us.items()
        ),
        f"  {'all':<16} on_step_end {in_hooks:6.2f} us/step",
        f"whole-epoch CPU time vml/raw {cpu_ratio:.3f}x; raw epochs spread {spread:.2f}x (max/min)",
    ]
    lines[0].values |= {
        "steps_per_epoch": steps,
        "samples": samples,
        "epochs": epochs,
        "step_lines_logged": lines_logged,
        "us_per_step_over_raw": us,
        "callbacks": per_step_us,
        "cpu_ratio_whole_epoch": cpu_ratio,
        "raw_epoch_spread": spread,
        "times": times,
    }
    lines[0].profile = "\n".join(profile)
    return lines


# --- start-up of `ml train` -----------------------------------------------------------------


def time_to_line(command: list[str], cwd: Path, marker: bytes) -> float:
    """Seconds from starting ``command`` to the first stderr line holding ``marker``; the
    process is then left to finish (and must succeed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = math.nan
    seen: list[bytes] = []
    for raw_line in proc.stderr:
        if math.isnan(first) and marker in raw_line:
            first = time.perf_counter() - start
        seen.append(raw_line)
    if proc.wait() != 0 or math.isnan(first):
        tail = b"".join(seen[-5:]).decode(errors="replace")
        raise RuntimeError(f"{command[1:]} exited {proc.returncode} without a {marker!r} line:\n{tail}")
    return first


TRAIN = ["-m", "vml", "train", "--epochs=1", "--log-every=1", "--device=cpu"]
READY = "; import sys; print('ready', file=sys.stderr, flush=True)"
IMPORT_TORCH = "import torch" + READY
TORCH_AND_ADAM = "import torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)])" + READY


def bench_startup(root: Path) -> Line:
    """Best of 3 each, in turn: `ml train` to its first step line; ``import torch``, and
    ``import torch`` plus one Adam optimizer, each to a line printed right after."""
    project = create_project(root / "demo")
    time_to_line([sys.executable, *TRAIN], project, b"step:[")  # warm: data cache, bytecode
    train, bare, with_adam = [], [], []
    for _ in range(STARTUP_REPEATS):
        train.append(time_to_line([sys.executable, *TRAIN], project, b"step:["))
        bare.append(time_to_line([sys.executable, "-c", IMPORT_TORCH], root, b"ready"))
        with_adam.append(time_to_line([sys.executable, "-c", TORCH_AND_ADAM], root, b"ready"))
    t, b, a = min(train), min(bare), min(with_adam)
    return Line(
        name="ml train: start to first step line",
        target="(report)",
        measured=f"{t:.2f} s (import torch {b:.2f} s, +{t - b:.2f} s; torch + Adam {a:.2f} s, +{t - a:.2f} s)",
        passed=None,
        values={
            "first_step_s": t,
            "import_torch_s": b,
            "import_torch_and_adam_s": a,
            "over_import_torch_s": t - b,
            "over_torch_and_adam_s": t - a,
            "all_first_step_s": train,
            "all_import_torch_s": bare,
            "all_torch_and_adam_s": with_adam,
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs per loop, after 1 warm-up")
    parser.add_argument("--samples", type=int, default=16_384, help="training samples (64 features)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads, all loops (default 1)"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-") as tmp:
        root = Path(tmp)
        lines = bench_loop(root, args.samples, args.epochs)
        lines.append(bench_startup(root))
    elapsed = time.perf_counter() - started

    machine = {"torch": torch.__version__, "threads": args.threads}
    run_args = {"epochs": args.epochs, "samples": args.samples, "batch_size": BATCH}
    return finish(lines, elapsed, args.json, machine, run_args)


if __name__ == "__main__":
    sys.exit(main())
