"""Preprocessing ops, declared once: name, options, help.

Two kinds, run in this order: image ops transform each image (``resize``, ``crop``,
the flips, ``augment``...), then scalers (``standardize``, ``normalize``) are fitted on
the training split and applied to every split. Every op takes VergeML's ``apply``: the
splits it touches (image ops: every split, the random ones only the training split,
unless ``apply`` names others). Images are float32 arrays (height, width, channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vml.errors import did_you_mean
from vml.params import HyperParam, display_key, normalize_key

if TYPE_CHECKING:
    # Imported where used: checking vergeml.yaml (every ml command) reads OPS and must
    # not pay ~0.1 s for numpy.
    import numpy as np

State = "dict[str, np.ndarray]"
Images = "list[np.ndarray]"
ImageFn = "Callable[[np.ndarray, dict[str, Any], np.random.Generator], np.ndarray]"
SplitsFn = "Callable[[Images, np.ndarray, dict[str, Any], np.random.Generator], tuple[Images, np.ndarray]]"

SPLITS = ("train", "val", "test")  # the one definition: vml.data reads it from here
# A new image at ``ml predict`` is prepared as the held-out test split is.
PREDICT_SPLIT = "test"


@dataclass(frozen=True)
class OpOption(HyperParam):
    """An op's option. ``aliases`` are other spellings of it (VergeML's names);
    ``optional``: a None default means "not given", not "required"; ``values`` limits
    numbers to a set; ``recorded=False`` leaves the option out of the checked entry (and
    so the data fingerprint) while it is at its default, so projects written before it
    existed keep their caches and runs."""

    aliases: tuple[str, ...] = ()
    optional: bool = False
    values: tuple[Any, ...] = ()
    recorded: bool = True

    def parse(self, value: Any) -> Any:
        if self.optional and value is None:
            return None
        parsed = super().parse(value)
        if self.values and parsed not in self.values:
            raise ValueError(f"{value!r} is not allowed")
        return parsed

    def describe_range(self) -> str:
        return " or ".join(map(str, self.values)) if self.values else super().describe_range()

    def shown_default(self) -> str:
        """The default as ``ml help`` shows it."""
        if self.default is None:
            return "not set" if self.optional else "required"
        return str(self.default)


_APPLY_WORDS = ("x", "y", *SPLITS, "all")


@dataclass(frozen=True)
class SplitsOption(OpOption):
    """VergeML's ``apply``: a list or comma-separated string of x, y, train, val, test,
    all. Parsed to the splits the op touches (its default when none is named)."""

    def parse(self, value: Any) -> tuple[str, ...]:
        if value is None:  # apply: null, as VergeML: the default
            return self.default
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        words = [str(item).strip().lower() for item in items]
        if not words or "" in words:
            raise ValueError(f"{value!r} is not a list of splits")
        for word in words:
            if word == "y":
                raise ValueError("'y' is not supported, as vml's labels are class names, not images")
            if word not in _APPLY_WORDS:
                raise ValueError(f"{word!r} is not allowed")
        named = [s for s in SPLITS if s in words]
        if "all" in words:
            if named:
                raise ValueError(
                    f"'all' together with {', '.join(named)} is ambiguous; give the splits or all alone"
                )
            return SPLITS
        # Only x (the images, as always in vml): no restriction, the op's default splits.
        return tuple(named) or self.default

    @property
    def type_name(self) -> str:
        return "list"

    def describe_range(self) -> str:
        return "x, train, val, test or all, as a list or comma-separated"

    def shown_default(self) -> str:
        return "all" if self.default == SPLITS else ", ".join(self.default)


def _apply_option(default: tuple[str, ...], scaler: bool = False) -> SplitsOption:
    text = (
        "Only every split (all or x): a scaler scales all splits alike."
        if scaler
        else "The splits the op touches (x: the images; y is not supported)."
    )
    return SplitsOption("apply", tuple, default, text, recorded=False)


@dataclass(frozen=True)
class ScalerOp:
    """Fitted on the training split's features, then applied to every split."""

    name: str
    help: str
    options: tuple[OpOption, ...]
    fit: Callable[[np.ndarray, dict[str, Any]], State]
    apply: Callable[[np.ndarray, State, dict[str, Any]], np.ndarray]
    vergeml: str = ""

    def __post_init__(self) -> None:
        # Every op takes apply (VergeML's OperationPlugin); a scaler only with every split.
        object.__setattr__(self, "options", (*self.options, _apply_option(SPLITS, scaler=True)))


@dataclass(frozen=True)
class ImageOp:
    """Transforms the images of the splits in its ``apply`` (default: every split, or
    only train for the random ``augmentation`` ops). ``elsewhere`` is what it does to the
    other splits (None: nothing); ``vergeml`` notes where VergeML's op differs."""

    name: str
    help: str
    options: tuple[OpOption, ...]
    apply: SplitsFn
    augmentation: bool = False
    elsewhere: SplitsFn | None = None
    vergeml: str = ""

    def __post_init__(self) -> None:
        splits = ("train",) if self.augmentation else SPLITS
        object.__setattr__(self, "options", (*self.options, _apply_option(splits)))


Op = ScalerOp | ImageOp


class OpError(Exception):
    """A bad op in ``data.preprocess``; ``path`` points into the list."""

    def __init__(self, path: tuple, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# --- scalers -------------------------------------------------------------------------


def _fit_standardize(x: np.ndarray, options: dict[str, Any]) -> State:
    import numpy as np

    std = x.std(axis=0)
    # Constant features (blank pixels) would divide by zero; leave them centred at 0.
    return {"mean": x.mean(axis=0), "std": np.where(std > 0, std, 1.0)}


def _apply_standardize(x: np.ndarray, state: State, options: dict[str, Any]) -> np.ndarray:
    return (x - state["mean"]) / state["std"]


def _fit_normalize(x: np.ndarray, options: dict[str, Any]) -> State:
    import numpy as np

    low, high = x.min(axis=0), x.max(axis=0)
    return {"low": low, "span": np.where(high > low, high - low, 1.0)}


def _apply_normalize(x: np.ndarray, state: State, options: dict[str, Any]) -> np.ndarray:
    unit = (x - state["low"]) / state["span"]
    return options["min"] + unit * (options["max"] - options["min"])


# --- image ops -----------------------------------------------------------------------


def _each(fn: ImageFn) -> SplitsFn:
    def apply(images: Images, labels: np.ndarray, options: dict, rng: np.random.Generator):
        return [fn(image, options, rng) for image in images], labels

    return apply


# PIL's resampling filters by VergeML's names; antialias is PIL's old name for LANCZOS.
RESIZE_METHODS = {
    "nearest": "NEAREST",
    "box": "BOX",
    "bilinear": "BILINEAR",
    "hamming": "HAMMING",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "antialias": "LANCZOS",
}
RESIZE_MODES = ("fill", "aspect-fill", "aspect-fit")


def _scale(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """``image`` resized to ``size`` (width, height), channel by channel in float (PIL
    mode F) so nothing is quantised."""
    import numpy as np
    from PIL import Image

    if image.shape[1::-1] == size:
        return image
    resample = getattr(Image.Resampling, RESIZE_METHODS[method])
    channels = [
        np.asarray(Image.fromarray(image[:, :, c], mode="F").resize(size, resample))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


def _fit_size(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The size PIL's ``thumbnail`` gives: the aspect kept, within the box, never larger."""
    if box_width >= width and box_height >= height:
        return width, height
    aspect = width / height
    if box_width / box_height >= aspect:
        fitted = min(
            math.floor(box_height * aspect),
            math.ceil(box_height * aspect),
            key=lambda n: abs(aspect - n / box_height),
        )
        return max(fitted, 1), box_height
    fitted = min(
        math.floor(box_width / aspect),
        math.ceil(box_width / aspect),
        key=lambda n: 0 if n == 0 else abs(aspect - box_width / n),
    )
    return box_width, max(fitted, 1)


def _resize(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
    """VergeML's resize modes: fill stretches to the size; aspect-fill scales to cover it
    and cuts the centre; aspect-fit shrinks to fit inside it (never enlarges) and pads
    with black, centred."""
    import numpy as np

    width, height, method, mode = options["width"], options["height"], options["method"], options["mode"]
    h, w = image.shape[:2]
    if mode == "fill":
        out = _scale(image, (width, height), method)
    elif mode == "aspect-fill":
        ratio = max(width / w, height / h)
        # The tolerance keeps float noise (8/3 * 3 = 8.000000001) from adding a pixel.
        size = (math.ceil(w * ratio - 1e-9), math.ceil(h * ratio - 1e-9))
        top, left = math.ceil((size[1] - height) / 2), math.ceil((size[0] - width) / 2)
        out = _scale(image, size, method)[top : top + height, left : left + width]
    else:
        size = _fit_size(w, h, width, height)
        top, left = math.ceil((height - size[1]) / 2), math.ceil((width - size[0]) / 2)
        out = np.zeros((height, width, image.shape[2]), dtype=np.float32)
        out[top : top + size[1], left : left + size[0]] = _scale(image, size, method)
    if options.get("channels") == 1:
        return _grayscale(out, options, rng)
    if options.get("channels") == 3:
        return _rgb(out, options, rng)
    return out


def _grayscale(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    if image.shape[2] == 1:
        return image
    # ITU-R 601-2 luma, as PIL's convert("L").
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (image[:, :, :3] @ weights)[:, :, None]


def _rgb(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]


def _crop_at(image: np.ndarray, options: dict, top: int, left: int) -> np.ndarray:
    return image[top : top + options["height"], left : left + options["width"]]


def _crop_offsets(image: np.ndarray, options: dict) -> tuple[int, int]:
    spare_h, spare_w = image.shape[0] - options["height"], image.shape[1] - options["width"]
    if spare_h < 0 or spare_w < 0:
        raise ValueError(
            f"cannot crop {options['width']}x{options['height']} from an image of "
            f"{image.shape[1]}x{image.shape[0]} (add a larger resize before it)"
        )
    return spare_h, spare_w


def _crop(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
    spare_h, spare_w = _crop_offsets(image, options)
    x, y = options.get("x"), options.get("y")
    if x is not None and y is not None:
        if x > spare_w or y > spare_h:
            raise ValueError(
                f"cannot crop {options['width']}x{options['height']} at x {x}, y {y} from an image of "
                f"{image.shape[1]}x{image.shape[0]} (make x <= {spare_w} and y <= {spare_h})"
            )
        return _crop_at(image, options, y, x)
    top, left = {
        "top-left": (0, 0),
        "top-right": (0, spare_w),
        "bottom-left": (spare_h, 0),
        "bottom-right": (spare_h, spare_w),
    }.get(options.get("position", "center"), (spare_h // 2, spare_w // 2))
    return _crop_at(image, options, top, left)


def _random_crop(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
    spare_h, spare_w = _crop_offsets(image, options)
    return _crop_at(image, options, int(rng.integers(spare_h + 1)), int(rng.integers(spare_w + 1)))


def _flip(axis: int) -> ImageFn:
    def flip(image: np.ndarray, options: dict, rng: np.random.Generator) -> np.ndarray:
        import numpy as np

        if rng.random() < options["probability"]:
            return np.flip(image, axis=axis).copy()
        return image

    return flip


def _augment(images: Images, labels: np.ndarray, options: dict, rng: np.random.Generator):
    """Each image plus ``variants`` copies, randomly rotated, shifted and zoomed."""
    import numpy as np
    from scipy import ndimage

    out: Images = []
    for image in images:
        out.append(image)
        height, width = image.shape[:2]
        centre = np.array([(height - 1) / 2, (width - 1) / 2])
        for _ in range(options["variants"]):
            angle = math.radians(rng.uniform(-options["rotate"], options["rotate"]))
            scale = 1 + rng.uniform(-options["zoom"], options["zoom"])
            shift = rng.uniform(-options["shift"], options["shift"], size=2) * (height, width)
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            matrix = rotation / scale
            offset = centre - matrix @ (centre + shift)
            out.append(
                np.stack(
                    [
                        ndimage.affine_transform(image[:, :, c], matrix, offset, order=1, mode="nearest")
                        for c in range(image.shape[2])
                    ],
                    axis=2,
                )
            )
    return out, np.repeat(labels, options["variants"] + 1)


def _size_options(what: str) -> tuple[OpOption, ...]:
    return (
        OpOption("width", int, None, f"Width of the {what} in pixels.", minimum=1),
        OpOption("height", int, None, f"Height of the {what} in pixels.", minimum=1),
    )


_PROBABILITY = (
    OpOption("probability", float, 0.5, "Chance that an image is flipped.", 0, 1, aliases=("chance",)),
)
_FLIP_NOTE = (
    "there chance defaults to 1 and the op to every split (it mirrors every image); "
    "here to 0.5 and the training split (write chance: 1 and apply: all for VergeML's)."
)

OPS: dict[str, Op] = {
    op.name: op
    for op in (
        ScalerOp(
            "standardize",
            "Scale each feature to mean 0 and standard deviation 1.",
            (),
            _fit_standardize,
            _apply_standardize,
        ),
        ScalerOp(
            "normalize",
            "Scale each feature linearly into [min, max] (min-max).",
            (
                OpOption("min", float, 0.0, "Lower end of the output range."),
                OpOption("max", float, 1.0, "Upper end of the output range."),
            ),
            _fit_normalize,
            _apply_normalize,
        ),
        ImageOp(
            "resize",
            "Resize every image to width x height.",
            (
                *_size_options("result"),
                OpOption(
                    "channels",
                    int,
                    None,
                    "Channels of the result: 1 (grey) or 3 (RGB); not set: as the image's.",
                    values=(1, 3),
                    optional=True,
                    recorded=False,
                ),
                OpOption(
                    "method",
                    str,
                    "bilinear",
                    "PIL resampling filter (antialias is lanczos).",
                    choices=tuple(RESIZE_METHODS),
                    recorded=False,
                ),
                OpOption(
                    "mode",
                    str,
                    "fill",
                    "fill: stretch; aspect-fill: cover, then cut the centre; "
                    "aspect-fit: shrink to fit (never enlarge), pad with black.",
                    choices=RESIZE_MODES,
                    recorded=False,
                ),
            ),
            _each(_resize),
            vergeml="there method defaults to antialias (lanczos); here to bilinear, which "
            "keeps pixel values in range (lanczos rings past 0 and 1 at sharp edges).",
        ),
        ImageOp("grayscale", "Turn colour images into one grey channel.", (), _each(_grayscale)),
        ImageOp(
            "rgb",
            "Give every image three colour channels (grey is repeated, alpha dropped).",
            (),
            _each(_rgb),
        ),
        ImageOp(
            "crop",
            "Cut width x height out of every image, at position or at x, y.",
            (
                *_size_options("crop"),
                OpOption(
                    "position",
                    str,
                    "center",
                    "Where to cut, when x and y are not set.",
                    choices=("top-left", "top-right", "bottom-left", "bottom-right", "center"),
                    recorded=False,
                ),
                OpOption(
                    "x", int, None, "Left edge in pixels (with y).", minimum=0, optional=True, recorded=False
                ),
                OpOption(
                    "y", int, None, "Top edge in pixels (with x).", minimum=0, optional=True, recorded=False
                ),
            ),
            _each(_crop),
        ),
        ImageOp(
            "random-crop",
            "Cut width x height at a random place; the splits it does not apply to get the centre.",
            _size_options("crop"),
            _each(_random_crop),
            augmentation=True,
            elsewhere=_each(_crop),
            vergeml="there it cuts every split at random by default, and splits outside apply "
            "stay uncut; here those get the centre, so every split has one size.",
        ),
        ImageOp(
            "flip-horizontal",
            "Mirror images left to right, each with the given probability.",
            _PROBABILITY,
            _each(_flip(axis=1)),
            augmentation=True,
            vergeml=_FLIP_NOTE,
        ),
        ImageOp(
            "flip-vertical",
            "Mirror images top to bottom, each with the given probability.",
            _PROBABILITY,
            _each(_flip(axis=0)),
            augmentation=True,
            vergeml=_FLIP_NOTE,
        ),
        ImageOp(
            "augment",
            "Add randomly rotated, shifted and zoomed copies of each image.",
            (
                OpOption("variants", int, 1, "Extra copies of each image.", minimum=1, maximum=100),
                OpOption("rotate", float, 10.0, "Largest rotation in degrees.", minimum=0, maximum=180),
                OpOption(
                    "shift", float, 0.1, "Largest shift as a fraction of the size.", minimum=0, maximum=0.5
                ),
                OpOption("zoom", float, 0.1, "Largest zoom in or out as a fraction.", minimum=0, maximum=0.9),
            ),
            _augment,
            augmentation=True,
            vergeml="there each image becomes variants plain copies, on every split; here the "
            "image stays and variants transformed copies join it, on the training split.",
        ),
    )
}


def vergeml_notes(ops: list[Any]) -> tuple[str, ...]:
    """One line for each entry written VergeML's way (``chance``, ``apply``, resize's
    ``mode``...) that leaves out an option whose default differs here: it does not do
    what it did in VergeML, so the user hears what it does and how to get VergeML's."""
    notes = []
    for entry in ops:
        if not isinstance(entry, dict):
            continue
        name = normalize_key(str(entry.get("op", ""))).replace("_", "-")
        given = set(entry) - {"op"}
        if name in ("flip-horizontal", "flip-vertical") and given & {"chance", "apply"}:
            if "apply" not in given:
                notes.append(
                    f"{name} without apply mirrors training images only here (VergeML: every split); "
                    "write apply: all for VergeML's"
                )
            elif not given & {"chance", "probability"}:
                notes.append(
                    f"{name} without chance mirrors an image with chance 0.5 here (VergeML: 1); "
                    "write chance: 1 for VergeML's"
                )
        elif name == "resize" and given & {"mode", "channels", "apply"} and "method" not in given:
            notes.append(
                "resize without method resizes bilinear here (VergeML: antialias); write method: antialias for VergeML's"
            )
    return tuple(notes)


def check_ops(ops: list[Any], images: bool | None) -> tuple[dict[str, Any], ...]:
    """Validate ``data.preprocess`` entries; return them with options filled in.
    ``images`` says whether the input is images (None: not known until it is read)."""
    checked = []
    seen_scaler = None
    for index, entry in enumerate(ops):
        if isinstance(entry, str):
            entry = {"op": entry}
        if not isinstance(entry, dict) or "op" not in entry:
            raise OpError((index,), "each preprocess entry needs an op, e.g. - op: standardize")
        name = normalize_key(str(entry["op"])).replace("_", "-")
        op = OPS.get(name)
        if op is None:
            hint = did_you_mean(name, OPS, f"known ops: {', '.join(OPS)}")
            raise OpError((index, "op"), f"unknown preprocess op {entry['op']!r}: {hint}")
        if isinstance(op, ImageOp):
            if images is False:
                raise OpError(
                    (index, "op"), f"op {name} works on images, but this project's input is a table"
                )
            if seen_scaler:
                raise OpError((index, "op"), f"image op {name} must come before {seen_scaler} (move it up)")
        else:
            seen_scaler = name
        checked.append({"op": name, **_check_options(op, entry, index)})
    return tuple(checked)


def _check_options(op: Op, entry: dict, index: int) -> dict[str, Any]:
    declared = {p.name: p for p in op.options}
    spellings = {alias: p for p in op.options for alias in p.aliases} | declared
    options = {p.name: p.default for p in op.options}
    given: dict[str, str] = {}  # option name -> the spelling used
    for key, value in entry.items():
        if key == "op":
            continue
        param = spellings.get(key)
        if param is None:
            known = ", ".join(display_key(k) for k in declared) or "none"
            hint = did_you_mean(key, spellings, f"options: {known}", show=display_key)
            raise OpError(
                (index, key, "__key__"), f"unknown option {display_key(key)!r} for op {op.name} ({hint})"
            )
        if param.name in given:
            first = display_key(given[param.name])
            raise OpError(
                (index, key, "__key__"),
                f"op {op.name} got {first} and {display_key(key)}, two spellings of one option (keep one)",
            )
        given[param.name] = key
        try:
            options[param.name] = param.parse(value)
        except ValueError as exc:
            raise OpError(
                (index, key),
                f"invalid {display_key(key)} for op {op.name}: {exc} (allowed: {param.describe_range()})",
            ) from None
    for name, value in options.items():
        if value is None and not getattr(declared[name], "optional", False):
            raise OpError((index,), f"op {op.name} needs {display_key(name)} (e.g. {display_key(name)}: 32)")
    _check_combinations(op, options, given, index)
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in options.items()
        if getattr(declared[name], "recorded", True) or value != declared[name].default
    }


def _check_combinations(op: Op, options: dict[str, Any], given: dict[str, str], index: int) -> None:
    if isinstance(op, ScalerOp) and tuple(options["apply"]) != SPLITS:
        raise OpError(
            (index, given["apply"]),
            f"invalid apply for op {op.name}: a scaler is fitted on train and must scale every split "
            "(and every prediction) alike (drop apply, or use apply: all)",
        )
    if op.name == "crop" and (options["x"] is None) != (options["y"] is None):
        have, lack = ("x", "y") if options["y"] is None else ("y", "x")
        raise OpError(
            (index, given[have]),
            f"op crop needs both x and y, or neither (add {lack}, or drop {have} to cut at position)",
        )


def _options(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's options with the declared defaults filled in (entries leave out
    options at their default, and older checkpoints lack the newer ones)."""
    op = OPS[entry["op"]]
    return {p.name: p.default for p in op.options} | {k: v for k, v in entry.items() if k != "op"}


def image_ops(ops: tuple[dict[str, Any], ...]) -> list[tuple[ImageOp, dict[str, Any]]]:
    return [(OPS[e["op"]], _options(e)) for e in ops if isinstance(OPS[e["op"]], ImageOp)]


def apply_image_ops(
    ops: tuple[dict[str, Any], ...],
    images: Images,
    labels: np.ndarray,
    rng: np.random.Generator,
    train: bool,
    split: str | None = None,
) -> tuple[Images, np.ndarray]:
    """Run the image ops in order over one split's images. ``split`` names it; without
    it, ``train`` says train or not (new images at ``ml predict``, prepared as test)."""
    split = split or ("train" if train else PREDICT_SPLIT)
    for op, options in image_ops(ops):
        if split in options["apply"]:
            images, labels = op.apply(images, labels, options, rng)
        elif op.elsewhere is not None:
            images, labels = op.elsewhere(images, labels, options, rng)
    return images, labels


def fit_and_apply(
    ops: tuple[dict[str, Any], ...], splits: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], State]:
    """Fit each scaler on ``splits['train']`` and apply it to all splits, in order.
    Returns the transformed splits and each scaler's fitted state as ``op<i>.<key>``
    arrays (kept so predictions can be preprocessed the same way)."""
    import numpy as np

    splits = dict(splits)
    states: State = {}
    for index, entry in enumerate(ops):
        op = OPS[entry["op"]]
        if not isinstance(op, ScalerOp):
            continue
        options = _options(entry)
        state = op.fit(splits["train"], options)
        for split, x in splits.items():
            splits[split] = op.apply(x, state, options).astype(np.float32)
        states.update({f"op{index}.{key}": value for key, value in state.items()})
    return splits, states
