"""Hyperparameter declarations: each knob is declared once, with its type, default,
range or choices and one line of help. Validation, ``ml help train`` and (later) the
dashboard's new-run form all read these declarations."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# The run store keeps hyperparameters in SQLite, whose integers are 64-bit: an int
# beyond these is refused as it is parsed, not when it is recorded.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def normalize_key(key: str) -> str:
    """Canonical form of a key: ``learning-rate``, ``learningRate`` -> ``learning_rate``."""
    key = _CAMEL.sub("_", key.strip())
    return re.sub(r"[-\s]+", "_", key).lower()


def display_key(key: str, like: str = "-") -> str:
    """Show a canonical key in the user's spelling: hyphens unless they typed underscores."""
    return key if "_" in like and "-" not in like else key.replace("_", "-")


@dataclass(frozen=True)
class HyperParam:
    """One declared hyperparameter.

    ``type`` is ``int``, ``float``, ``str`` or ``bool``; ``minimum``/``maximum`` bound
    numbers (``exclusive_minimum`` makes the lower bound strict); ``choices`` limits
    strings.
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = field(default_factory=tuple)
    pattern: str | None = None
    pattern_text: str = ""

    @property
    def type_name(self) -> str:
        return "choice" if self.choices else self.type.__name__

    def describe_range(self) -> str:
        """The allowed values in words, e.g. ``>= 1``, ``(0, 1]``, ``sgd, adam``."""
        if self.choices:
            return ", ".join(self.choices)
        if self.pattern:
            return self.pattern_text
        low = self.minimum
        high = self.maximum
        if low is not None and high is not None:
            left = "(" if self.exclusive_minimum else "["
            return f"{left}{_num(low)}, {_num(high)}]"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_num(low)}"
        if high is not None:
            return f"<= {_num(high)}"
        return "any"

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (a string from the command line or a YAML scalar) to this
        parameter's type and check its range. Raises ``ValueError`` with a reason."""
        converted = self._convert(value)
        self._check(converted)
        return converted

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"true", "yes", "on", "1"}:
                return True
            if text in {"false", "no", "off", "0"}:
                return False
            raise ValueError(f"{value!r} is not true or false")
        if self.type is int:
            if isinstance(value, bool):
                raise ValueError(f"{value!r} is not an integer")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            text = str(value).strip()
            try:
                return int(text)
            except ValueError:
                if text.lstrip("+-").isdecimal():  # over Python's 4300-digit limit
                    small = text[0] == "-"
                    bound = f"too small (at least {INT_MIN})" if small else f"too large (at most {INT_MAX})"
                    raise ValueError(f"a number of {len(text)} characters is {bound}") from None
                raise ValueError(f"{value!r} is not an integer") from None
        if self.type is float:
            if isinstance(value, bool):
                raise ValueError(f"{value!r} is not a number")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{value!r} is not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"{value!r} is not a finite number")
            return number
        text = str(value).strip()
        if self.choices:
            # Matched regardless of case, returned as declared (a model's Literal
            # choices may be mixed-case).
            declared = {choice.lower(): choice for choice in self.choices}
            if text.lower() not in declared:
                raise ValueError(f"{value!r} is not allowed")
            return declared[text.lower()]
        if self.pattern:
            text = text.lower()
            if not re.fullmatch(self.pattern, text):
                raise ValueError(f"{value!r} is not allowed")
        return text

    def _check(self, value: Any) -> None:
        if self.type not in (int, float):
            return
        if self.type is int and self.maximum is None and value > INT_MAX:
            raise ValueError(f"{value!r} is too large (at most {INT_MAX})")
        if self.type is int and self.minimum is None and value < INT_MIN:
            raise ValueError(f"{value!r} is too small (at least {INT_MIN})")
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                raise ValueError(f"{value!r} is out of range")
            if not self.exclusive_minimum and value < self.minimum:
                raise ValueError(f"{value!r} is out of range")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{value!r} is out of range")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")
CLASSIFICATION_LOSSES = ("cross-entropy",)
REGRESSION_LOSSES = ("mse", "l1", "smooth-l1")

# Knobs of the training loop itself, shared by every model.
TRAINING_PARAMS: tuple[HyperParam, ...] = (
    HyperParam("epochs", int, 20, "Passes over the training split.", minimum=1),
    HyperParam("batch_size", int, 64, "Samples per optimizer step.", minimum=1),
    HyperParam(
        "learning_rate",
        float,
        0.001,
        "Step size of the optimizer.",
        minimum=0,
        maximum=10,
        exclusive_minimum=True,
    ),
    HyperParam("optimizer", str, "adam", "Update rule for the weights.", choices=OPTIMIZERS),
    HyperParam("momentum", float, 0.9, "Momentum for the sgd-family optimizers.", minimum=0, maximum=1),
    HyperParam("weight_decay", float, 0.0, "L2 penalty on the weights.", minimum=0, maximum=1),
    HyperParam(
        "loss",
        str,
        "cross-entropy",
        "What training minimises; mse, l1 and smooth-l1 make it a regression.",
        choices=CLASSIFICATION_LOSSES + REGRESSION_LOSSES,
    ),
    HyperParam(
        "monitor",
        str,
        "auto",
        "Validation metric that picks best.pt (auto: val_acc, or val_loss for a regression).",
        choices=("auto", "val_acc", "val_loss"),
    ),
    HyperParam(
        "lr_schedule",
        str,
        "constant",
        "How the learning rate changes: step, cosine, or warmup (linear ramp, then constant).",
        choices=("constant", "step", "cosine", "warmup"),
    ),
    HyperParam("lr_step_epochs", int, 10, "step: epochs between learning-rate drops.", minimum=1),
    HyperParam(
        "lr_gamma",
        float,
        0.1,
        "step: factor applied at each drop.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
    ),
    HyperParam("warmup_epochs", int, 2, "warmup: epochs to ramp the learning rate up.", minimum=1),
    HyperParam(
        "early_stopping_patience", int, 0, "Stop after N epochs without improvement (0: never).", minimum=0
    ),
    HyperParam("early_stopping_delta", float, 0.0, "Smallest change that counts as improvement.", minimum=0),
    HyperParam("grad_clip", float, 0.0, "Clip the gradient norm to this (0: off).", minimum=0),
    HyperParam("keep_checkpoints", int, 0, "Also keep epoch-N.pt for the last N epochs.", minimum=0),
    HyperParam("mixed_precision", bool, False, "Train in float16 with loss scaling (CUDA only)."),
    HyperParam("log_every", int, 10, "Print a step line every N steps (off a terminal).", minimum=1),
    HyperParam("random_seed", int, 42, "Seed for splits, weights and shuffling.", minimum=0),
    HyperParam(
        "require_clean", bool, False, "Refuse to start unless the git tree is clean (all code committed)."
    ),
    HyperParam(
        "device",
        str,
        "auto",
        "Where to train: auto picks CUDA when present.",
        pattern=r"auto|cpu|(cuda|gpu)(:[0-9]+)?",
        pattern_text="auto, cpu, cuda, cuda:N, gpu, gpu:N",
    ),
)
# Switches: given bare on the command line (``--require-clean``), they mean true.
SWITCHES = frozenset(p.name for p in TRAINING_PARAMS if p.type is bool)
