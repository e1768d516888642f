"""Preprocessing ops, declared once: name, options, help.

Two kinds, run in this order: image ops transform each image (``resize``, ``crop``,
the flips, ``augment``...; the random ones only touch the training split), then
scalers (``standardize``, ``normalize``) are fitted on the training split and applied
to every split. Images are float32 arrays of shape (height, width, channels).
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
ImageFn = "Callable[[np.ndarray, dict[str, Any], np.random.Generator, bool], np.ndarray]"


@dataclass(frozen=True)
class ScalerOp:
    """Fitted on the training split's features, then applied to every split."""

    name: str
    help: str
    options: tuple[HyperParam, ...]
    fit: Callable[[np.ndarray, dict[str, Any]], State]
    apply: Callable[[np.ndarray, State, dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class ImageOp:
    """Transforms images one by one; ``augmentation`` ops change only the training
    split (val and test images pass through, or are centre-cropped)."""

    name: str
    help: str
    options: tuple[HyperParam, ...]
    apply: Callable[
        [Images, np.ndarray, dict[str, Any], np.random.Generator, bool], tuple[Images, np.ndarray]
    ]
    augmentation: bool = False


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


def _each(fn: ImageFn) -> Callable[..., tuple[Images, np.ndarray]]:
    def apply(images: Images, labels: np.ndarray, options: dict, rng: np.random.Generator, train: bool):
        return [fn(image, options, rng, train) for image in images], labels

    return apply


def _resize(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
    import numpy as np
    from PIL import Image

    size = (options["width"], options["height"])
    if image.shape[1::-1] == size:
        return image
    channels = [
        np.asarray(Image.fromarray(image[:, :, c], mode="F").resize(size, Image.Resampling.BILINEAR))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


def _grayscale(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
    import numpy as np

    if image.shape[2] == 1:
        return image
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (image[:, :, :3] @ weights)[:, :, None]


def _rgb(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
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


def _crop(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
    spare_h, spare_w = _crop_offsets(image, options)
    return _crop_at(image, options, spare_h // 2, spare_w // 2)


def _random_crop(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
    spare_h, spare_w = _crop_offsets(image, options)
    if not train:
        return _crop_at(image, options, spare_h // 2, spare_w // 2)
    return _crop_at(image, options, int(rng.integers(spare_h + 1)), int(rng.integers(spare_w + 1)))


def _flip(axis: int) -> ImageFn:
    def flip(image: np.ndarray, options: dict, rng: np.random.Generator, train: bool) -> np.ndarray:
        import numpy as np

        if train and rng.random() < options["probability"]:
            return np.flip(image, axis=axis).copy()
        return image

    return flip


def _augment(images: Images, labels: np.ndarray, options: dict, rng: np.random.Generator, train: bool):
    """Each training image plus ``variants`` copies, randomly rotated, shifted and zoomed."""
    import numpy as np

    if not train:
        return images, labels
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


def _size_options(what: str) -> tuple[HyperParam, ...]:
    return (
        HyperParam("width", int, None, f"Width of the {what} in pixels.", minimum=1),
        HyperParam("height", int, None, f"Height of the {what} in pixels.", minimum=1),
    )


_PROBABILITY = (HyperParam("probability", float, 0.5, "Chance that a training image is flipped.", 0, 1),)

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
                HyperParam("min", float, 0.0, "Lower end of the output range."),
                HyperParam("max", float, 1.0, "Upper end of the output range."),
            ),
            _fit_normalize,
            _apply_normalize,
        ),
        ImageOp(
            "resize",
            "Resize every image to width x height (bilinear).",
            _size_options("result"),
            _each(_resize),
        ),
        ImageOp("grayscale", "Turn colour images into one grey channel.", (), _each(_grayscale)),
        ImageOp(
            "rgb",
            "Give every image three colour channels (grey is repeated, alpha dropped).",
            (),
            _each(_rgb),
        ),
        ImageOp(
            "crop", "Cut the centre width x height out of every image.", _size_options("crop"), _each(_crop)
        ),
        ImageOp(
            "random-crop",
            "Cut width x height at a random place from training images; the centre from val and test.",
            _size_options("crop"),
            _each(_random_crop),
            augmentation=True,
        ),
        ImageOp(
            "flip-horizontal",
            "Mirror training images left to right, each with the given probability.",
            _PROBABILITY,
            _each(_flip(axis=1)),
            augmentation=True,
        ),
        ImageOp(
            "flip-vertical",
            "Mirror training images top to bottom, each with the given probability.",
            _PROBABILITY,
            _each(_flip(axis=0)),
            augmentation=True,
        ),
        ImageOp(
            "augment",
            "Add randomly rotated, shifted and zoomed copies of each training image.",
            (
                HyperParam(
                    "variants", int, 1, "Extra copies of each training image.", minimum=1, maximum=100
                ),
                HyperParam("rotate", float, 10.0, "Largest rotation in degrees.", minimum=0, maximum=180),
                HyperParam(
                    "shift", float, 0.1, "Largest shift as a fraction of the size.", minimum=0, maximum=0.5
                ),
                HyperParam(
                    "zoom", float, 0.1, "Largest zoom in or out as a fraction.", minimum=0, maximum=0.9
                ),
            ),
            _augment,
            augmentation=True,
        ),
    )
}


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
    options = {p.name: p.default for p in op.options}
    for key, value in entry.items():
        if key == "op":
            continue
        param = declared.get(key)
        if param is None:
            known = ", ".join(display_key(k) for k in declared) or "none"
            hint = did_you_mean(key, declared, f"options: {known}", show=display_key)
            raise OpError(
                (index, key, "__key__"), f"unknown option {display_key(key)!r} for op {op.name} ({hint})"
            )
        try:
            options[key] = param.parse(value)
        except ValueError as exc:
            raise OpError(
                (index, key),
                f"invalid {display_key(key)} for op {op.name}: {exc} (allowed: {param.describe_range()})",
            ) from None
    for name, value in options.items():
        if value is None:
            raise OpError((index,), f"op {op.name} needs {display_key(name)} (e.g. {display_key(name)}: 32)")
    return options


def image_ops(ops: tuple[dict[str, Any], ...]) -> list[tuple[ImageOp, dict[str, Any]]]:
    return [(OPS[e["op"]], _options(e)) for e in ops if isinstance(OPS[e["op"]], ImageOp)]


def apply_image_ops(
    ops: tuple[dict[str, Any], ...], images: Images, labels: np.ndarray, rng: np.random.Generator, train: bool
) -> tuple[Images, np.ndarray]:
    """Run the image ops in order over one split's images."""
    for op, options in image_ops(ops):
        images, labels = op.apply(images, labels, options, rng, train)
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


def _options(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "op"}
