"""Each preprocessing op on real images, through ``prepare_data`` as ``ml train`` runs
it: shapes, values, which splits an op touches, and what the cache makes of a change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_factories import (
    SEED,
    cache_entries,
    copy_project,
    image_project,
    prepare,
    set_preprocess,
)
from PIL import Image

from vml import api
from vml.data.prepare import PreparedData, data_fingerprint
from vml.errors import UsageError
from vml.params import display_key
from vml.preprocess import OPS, OpError, apply_image_ops, check_ops

SPLITS = ("train", "val", "test")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """200 grey 8x8 digits, no preprocessing."""
    return image_project(tmp_path / "plain", per_class=20)


def with_ops(root: Path, ops: list[dict[str, Any]], name: str) -> PreparedData:
    """The data of a copy of ``root`` with ``ops`` (same files, same seed)."""
    copy = copy_project(root, root.parent / name)
    set_preprocess(copy, ops)
    return prepare(copy)


def shapes(data: PreparedData) -> dict[str, tuple[int, ...]]:
    return {s: data.x(s).shape for s in SPLITS}


def test_resize_gives_n_c_height_width(images: Path) -> None:
    data = with_ops(images, [{"op": "resize", "width": 10, "height": 6}], "resized")
    assert shapes(data) == {"train": (160, 1, 6, 10), "val": (20, 1, 6, 10), "test": (20, 1, 6, 10)}
    assert data.input_shape == (1, 6, 10)


def test_resize_keeps_the_picture(images: Path) -> None:
    plain = prepare(images)
    same = with_ops(images, [{"op": "resize", "width": 8, "height": 8}], "same")
    double = with_ops(images, [{"op": "resize", "width": 16, "height": 16}], "double")
    for split in SPLITS:
        np.testing.assert_array_equal(same.x(split), plain.x(split))
        np.testing.assert_array_equal(double.y(split), plain.y(split))
        # Bilinear upscaling keeps each image's brightness and range.
        np.testing.assert_allclose(
            double.x(split).mean(axis=(1, 2, 3)), plain.x(split).mean(axis=(1, 2, 3)), atol=0.03
        )
        assert 0 <= double.x(split).min() and double.x(split).max() <= 1 + 1e-6


def test_grayscale_turns_colour_into_one_channel(tmp_path: Path) -> None:
    root = image_project(tmp_path / "colour", per_class=10, rgb_every=1)
    colour = prepare(root)
    assert colour.input_shape == (3, 8, 8)

    grey = with_ops(root, [{"op": "grayscale"}], "grey")

    assert grey.input_shape == (1, 8, 8)
    for split in SPLITS:
        r, g, b = (colour.x(split)[:, c] for c in range(3))
        np.testing.assert_allclose(grey.x(split)[:, 0], 0.299 * r + 0.587 * g + 0.114 * b, atol=1e-5)


def test_rgb_gives_mixed_grey_and_colour_images_three_channels(tmp_path: Path) -> None:
    root = image_project(tmp_path / "mixed", per_class=10, rgb_every=3)
    with pytest.raises(UsageError, match="differ in size or channels"):
        prepare(root)

    data = with_ops(root, [{"op": "rgb"}], "rgb")

    assert data.input_shape == (3, 8, 8)
    # The grey images became three equal channels; the colour ones kept theirs.
    train = data.x("train")
    grey = (train[:, 0] == train[:, 1]).all(axis=(1, 2)) & (train[:, 1] == train[:, 2]).all(axis=(1, 2))
    assert 0 < grey.sum() < len(train)


def test_crop_cuts_the_centre(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "crop", "width": 4, "height": 6}], "cropped")
    for split in SPLITS:
        np.testing.assert_array_equal(data.x(split), plain.x(split)[:, :, 1:7, 2:6])


def test_random_crop_moves_the_window_in_train_only(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "random-crop", "width": 4, "height": 6}], "random-crop")

    assert shapes(data) == {"train": (160, 1, 6, 4), "val": (20, 1, 6, 4), "test": (20, 1, 6, 4)}
    for split in ("val", "test"):  # the centre, as crop would cut it
        np.testing.assert_array_equal(data.x(split), plain.x(split)[:, :, 1:7, 2:6])
    offsets = set()
    for crop, full in zip(data.x("train"), plain.x("train"), strict=True):
        found = [
            (top, left)
            for top in range(3)
            for left in range(5)
            if np.array_equal(crop, full[:, top : top + 6, left : left + 4])
        ]
        assert found, "a training crop is not a window of its image"
        offsets.add(found[0])
    assert len(offsets) > 5  # not always the same place


@pytest.mark.parametrize(
    ("op", "axis"), [("flip-horizontal", -1), ("flip-vertical", -2)], ids=["horizontal", "vertical"]
)
def test_flip_with_probability_one_mirrors_every_training_image(images: Path, op: str, axis: int) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": op, "probability": 1.0}], op)

    np.testing.assert_array_equal(data.x("train"), np.flip(plain.x("train"), axis=axis))
    np.testing.assert_array_equal(data.y("train"), plain.y("train"))
    for split in ("val", "test"):
        np.testing.assert_array_equal(data.x(split), plain.x(split))


def test_flip_at_the_default_probability_mirrors_some(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "flip-horizontal"}], "half")
    mirrored = np.flip(plain.x("train"), axis=-1)
    flipped = [not np.array_equal(a, b) for a, b in zip(data.x("train"), plain.x("train"), strict=True)]
    assert all(
        np.array_equal(a, m if f else b)
        for a, b, m, f in zip(data.x("train"), plain.x("train"), mirrored, flipped, strict=True)
    )
    assert 40 < sum(flipped) < 120


def test_augment_variants_triple_the_training_set_only(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "augment", "variants": 2}], "augmented")

    assert len(data.y("train")) == 3 * len(plain.y("train"))
    np.testing.assert_array_equal(data.y("train"), np.repeat(plain.y("train"), 3))
    np.testing.assert_array_equal(data.x("train")[::3], plain.x("train"))  # each original, then its copies
    changed = [
        not np.allclose(data.x("train")[i], data.x("train")[i - i % 3]) for i in range(len(data.y("train")))
    ]
    assert sum(changed) > 0.9 * 2 * len(plain.y("train"))
    assert data.input_shape == plain.input_shape
    for split in ("val", "test"):
        np.testing.assert_array_equal(data.x(split), plain.x(split))
        np.testing.assert_array_equal(data.y(split), plain.y(split))


def test_standardize_fits_on_train_and_applies_train_statistics(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "standardize"}], "standardized")

    train = plain.x("train")
    varies = train.std(axis=0) > 0
    np.testing.assert_allclose(data.x("train").mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x("train").std(axis=0)[varies], 1, atol=1e-4)
    mean, std = train.mean(axis=0), np.where(varies, train.std(axis=0), 1)
    for split in ("val", "test"):
        np.testing.assert_allclose(data.x(split), (plain.x(split) - mean) / std, atol=1e-5)
        own = plain.x(split)
        # Not the split's own statistics.
        assert not np.allclose(
            data.x(split), (own - own.mean(axis=0)) / np.where(own.std(axis=0) > 0, own.std(axis=0), 1)
        )


def test_normalize_maps_train_into_min_max(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "normalize", "min": -1, "max": 2}], "normalized")

    train = plain.x("train")
    low, high = train.min(axis=0), train.max(axis=0)
    varies = high > low
    assert np.allclose(data.x("train").min(axis=0)[varies], -1, atol=1e-5)
    assert np.allclose(data.x("train").max(axis=0)[varies], 2, atol=1e-5)
    span = np.where(varies, high - low, 1)
    for split in ("val", "test"):
        np.testing.assert_allclose(data.x(split), -1 + 3 * (plain.x(split) - low) / span, atol=1e-5)


# ---- cache -----------------------------------------------------------------------------


def test_changing_an_op_option_adds_a_cache_entry_beside_the_old(images: Path) -> None:
    set_preprocess(images, [{"op": "resize", "width": 8, "height": 8}])
    lines: list[str] = []
    first = prepare(images, lines)
    (old,) = cache_entries(images)
    assert first.fingerprint == old

    set_preprocess(images, [{"op": "resize", "width": 10, "height": 8}])
    second = prepare(images, lines)

    assert second.input_shape == (1, 8, 10) and not second.reused
    assert lines[-1].endswith(f"-> .cache/{second.fingerprint}")
    assert cache_entries(images) == sorted([old, second.fingerprint])

    set_preprocess(images, [{"op": "resize", "width": 8, "height": 8}])
    again = prepare(images, lines)
    assert again.reused and again.fingerprint == old
    assert lines[-1] == f"data: reusing cache .cache/{old} (data and preprocessing unchanged)"


def test_touching_an_image_is_a_hit_rewriting_its_pixels_a_miss(images: Path) -> None:
    first = prepare(images)
    image = sorted((images / "samples" / "7").glob("*.png"))[0]
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    lines: list[str] = []
    touched = prepare(images, lines)
    assert touched.reused and touched.fingerprint == first.fingerprint
    assert lines == [f"data: reusing cache .cache/{first.fingerprint} (data and preprocessing unchanged)"]

    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels, mode="L").save(image)
    lines.clear()
    rewritten = prepare(images, lines)

    assert not rewritten.reused and rewritten.fingerprint != first.fingerprint
    assert lines[0].startswith("data: prepared samples (160 train, 20 val, 20 test) -> .cache/")
    assert cache_entries(images) == sorted([first.fingerprint, rewritten.fingerprint])
    assert not all(np.array_equal(rewritten.x(s), first.x(s)) for s in SPLITS)


# ---- help ------------------------------------------------------------------------------


def test_help_preprocess_lists_every_op(tmp_path: Path, ml) -> None:
    result = ml("help", "preprocess", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headings = [line[3:].strip() for line in result.stdout.splitlines() if line.startswith("## ")]
    assert headings == list(OPS)
    documented = ("resize", "grayscale", "rgb", "crop", "random-crop", "flip-horizontal")
    documented += ("flip-vertical", "augment", "standardize", "normalize")
    assert set(documented) <= set(headings)
    # Every op takes VergeML's apply; the flips also take its chance.
    assert result.stdout.count("\n| apply | list |") == len(OPS)
    assert result.stdout.count("\n| probability or chance | float | 0.5 |") == 2


def test_help_for_one_op_shows_its_options(tmp_path: Path, ml) -> None:
    result = ml("help", "random-crop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "random-crop" in out.splitlines()[0]
    assert "training split only" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"width", "height"} <= set(rows)
    assert "required" in rows["width"] and ">= 1" in rows["height"]


# ---- VergeML's options, on synthetic images -------------------------------------------


def run_ops(ops: list[dict[str, Any]], image: np.ndarray, split: str = "train") -> np.ndarray:
    """``image`` (height, width, channels) through ``ops`` as the ``split`` split."""
    out, _ = apply_image_ops(
        check_ops(ops, images=True),
        [image.astype(np.float32)],
        np.zeros(1),
        np.random.default_rng(0),
        split == "train",
        split,
    )
    return out[0]


def ramp(height: int, width: int, channels: int = 1) -> np.ndarray:
    """Distinct pixel values, so a crop or flip shows where it came from."""
    return np.arange(height * width * channels, dtype=np.float32).reshape(height, width, channels) / 100


@pytest.mark.parametrize(
    ("position", "rows", "columns"),
    [
        ("top-left", slice(0, 2), slice(0, 3)),
        ("top-right", slice(0, 2), slice(3, 6)),
        ("bottom-left", slice(3, 5), slice(0, 3)),
        ("bottom-right", slice(3, 5), slice(3, 6)),
        ("center", slice(1, 3), slice(1, 4)),
    ],
)
def test_crop_position_picks_the_corner(position: str, rows: slice, columns: slice) -> None:
    image = ramp(5, 6)
    out = run_ops([{"op": "crop", "width": 3, "height": 2, "position": position}], image)
    np.testing.assert_array_equal(out, image[rows, columns])


def test_crop_at_x_y_cuts_there_and_refuses_past_the_edge() -> None:
    image = ramp(5, 6)
    crop = {"op": "crop", "width": 3, "height": 2, "position": "bottom-right"}
    # x and y win over position, as in VergeML; 0 is the edge.
    np.testing.assert_array_equal(run_ops([{**crop, "x": 2, "y": 0}], image), image[0:2, 2:5])
    with pytest.raises(ValueError, match=r"cannot crop 3x2 at x 4, y 0 from an image of 6x5 \(make x <= 3"):
        run_ops([{**crop, "x": 4, "y": 0}], image)


def test_resize_modes_fill_aspect_fill_and_aspect_fit() -> None:
    wide = ramp(4, 8) + 0.5  # 8 wide, 4 high; no pixel is 0, so padding shows
    size = {"op": "resize", "width": 8, "height": 8}

    fill = run_ops([size], wide)
    assert fill.shape == (8, 8, 1)

    # aspect-fill scales to cover 8x8 (16x8), then cuts the centre columns.
    covered = run_ops([{**size, "width": 16}], wide)
    np.testing.assert_allclose(run_ops([{**size, "mode": "aspect-fill"}], wide), covered[:, 4:12])

    # aspect-fit keeps the 8x4 picture whole (it never enlarges) and pads black above and below.
    fit = run_ops([{**size, "mode": "aspect-fit"}], wide)
    np.testing.assert_array_equal(fit[2:6], wide)
    assert not fit[:2].any() and not fit[6:].any()
    # A larger picture shrinks to fit: 16x8 becomes 8x4, centred.
    shrunk = run_ops([{**size, "mode": "aspect-fit"}], ramp(8, 16) + 0.5)
    assert shrunk[2:6].all() and not shrunk[:2].any() and not shrunk[6:].any()


def test_resize_method_and_channels() -> None:
    image = ramp(3, 4, channels=3)
    size = {"op": "resize", "width": 8, "height": 6}
    np.testing.assert_array_equal(
        run_ops([{**size, "method": "nearest"}], image), image.repeat(2, axis=0).repeat(2, axis=1)
    )
    lanczos = run_ops([{**size, "method": "lanczos"}], image)
    np.testing.assert_array_equal(run_ops([{**size, "method": "antialias"}], image), lanczos)
    assert not np.allclose(run_ops([size], image), lanczos)  # the default is bilinear

    grey = run_ops([{**size, "channels": 1}], image)
    colour = run_ops([size], image)
    assert grey.shape == (6, 8, 1)
    np.testing.assert_allclose(grey[:, :, 0], colour @ np.array([0.299, 0.587, 0.114]), atol=1e-5)
    assert run_ops([{**size, "channels": 3}], ramp(3, 4)).shape == (6, 8, 3)


@pytest.mark.parametrize("spelling", ["chance", "probability"])
def test_chance_is_vergeml_spelling_of_probability(spelling: str) -> None:
    (entry,) = check_ops([{"op": "flip-vertical", spelling: 1}], images=True)
    assert entry == {"op": "flip-vertical", "probability": 1.0}
    image = ramp(3, 2)
    np.testing.assert_array_equal(run_ops([entry], image), image[::-1])


def test_apply_picks_the_splits_an_op_touches() -> None:
    image = ramp(3, 4)
    mirrored = image[:, ::-1]
    flip = {"op": "flip-horizontal", "chance": 1}
    touched = {
        str(apply): [
            split
            for split in SPLITS
            if not np.array_equal(run_ops([{**flip, "apply": apply}], image, split), image)
        ]
        for apply in (None, ["val"], "x, test", "all", "train,val")
    }
    assert touched == {
        "None": ["train"],  # vml's default for a random op (VergeML's: every split)
        "['val']": ["val"],
        "x, test": ["test"],
        "all": ["train", "val", "test"],
        "train,val": ["train", "val"],
    }
    np.testing.assert_array_equal(run_ops([{**flip, "apply": "val"}], image, "val"), mirrored)
    # A deterministic op skips the splits it is not applied to.
    assert run_ops([{"op": "resize", "width": 2, "height": 2, "apply": ["test"]}], image, "val").shape == (
        3,
        4,
        1,
    )


def test_random_crop_outside_apply_takes_the_centre() -> None:
    image = ramp(5, 6)
    crop = {"op": "random-crop", "width": 2, "height": 3, "apply": ["val"]}
    np.testing.assert_array_equal(run_ops([crop], image, "train"), image[1:4, 2:4])


def test_a_new_image_at_predict_is_prepared_as_the_test_split() -> None:
    image = ramp(3, 4)
    for apply, changed in ((["test"], True), (["val"], False), (["train"], False)):
        ops = check_ops([{"op": "flip-horizontal", "chance": 1, "apply": apply}], images=True)
        out, _ = apply_image_ops(ops, [image], np.zeros(1), np.random.default_rng(0), train=False)
        assert (not np.array_equal(out[0], image)) == changed, apply


def test_apply_val_through_the_pipeline_leaves_train_untouched(images: Path) -> None:
    plain = prepare(images)
    data = with_ops(images, [{"op": "flip-horizontal", "chance": 1.0, "apply": ["val"]}], "val-only")
    np.testing.assert_array_equal(data.x("val"), np.flip(plain.x("val"), axis=-1))
    for split in ("train", "test"):
        np.testing.assert_array_equal(data.x(split), plain.x(split))


@pytest.mark.parametrize(
    ("entry", "needles"),
    [
        (
            {"op": "flip-horizontal", "chance": 1, "probability": 1},
            ["got chance and probability", "keep one"],
        ),
        ({"op": "resize", "width": 8, "height": 8, "channels": 2}, ["invalid channels", "1 or 3"]),
        ({"op": "resize", "width": 8, "height": 8, "method": "cubic"}, ["'cubic'", "bicubic"]),
        ({"op": "resize", "width": 8, "height": 8, "mode": "fit"}, ["'fit'", "aspect-fit"]),
        ({"op": "crop", "width": 2, "height": 2, "position": "middle"}, ["'middle'", "top-left"]),
        ({"op": "crop", "width": 2, "height": 2, "x": 1}, ["needs both x and y", "add y"]),
        ({"op": "augment", "apply": ["x", "y"]}, ["'y' is not supported", "class names"]),
        ({"op": "rgb", "apply": "train, evaluation"}, ["'evaluation'", "x, train, val, test or all"]),
        ({"op": "grayscale", "apply": ["all", "val"]}, ["'all' together with val is ambiguous"]),
        ({"op": "standardize", "apply": "train"}, ["scaler is fitted on train", "apply: all"]),
    ],
    ids=lambda value: (
        "-".join(f"{k}={v}" for k, v in value.items() if k not in ("width", "height"))
        if isinstance(value, dict)
        else ""
    ),
)
def test_bad_vergeml_option_is_one_line(entry: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(OpError) as caught:
        check_ops([entry], images=True)
    message = caught.value.message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_bad_op_option_through_ml_exits_2_with_one_line(tmp_path: Path, ml) -> None:
    root = image_project(tmp_path / "bad", per_class=2)
    set_preprocess(root, [{"op": "resize", "width": 8, "height": 8, "mode": "stretch"}])
    result = ml("preprocess", "out", cwd=root)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error: vergeml.yaml:") and "invalid mode for op resize: 'stretch'" in first
    assert "fill, aspect-fill, aspect-fit" in first
    assert not (root / "out").exists() and not (root / ".cache").exists()


def test_new_options_at_their_default_leave_the_fingerprint_alone(images: Path) -> None:
    def key(ops: list[dict[str, Any]]) -> str:
        set_preprocess(images, ops)
        return data_fingerprint(api.Project(images).config, seed=SEED)

    crop = {"op": "crop", "width": 4, "height": 4}
    flip = {"op": "flip-horizontal", "probability": 1}
    plain = key([crop, flip])
    # Written out at VergeML's or vml's defaults: the same data, the same cache entry.
    assert key([{**crop, "position": "center", "apply": "all"}, {**flip, "apply": ["x", "train"]}]) == plain
    assert key([crop, {"op": "flip-horizontal", "chance": 1}]) == plain
    changed = [
        key([{**crop, "position": "top-left"}, flip]),
        key([{**crop, "x": 0, "y": 0}, flip]),
        key([crop, {**flip, "apply": "all"}]),
        key([{"op": "resize", "width": 8, "height": 8, "method": "nearest"}, crop, flip]),
    ]
    assert len({plain, *changed}) == 5


def test_help_resize_lists_vergeml_options_with_values_and_defaults(tmp_path: Path, ml) -> None:
    result = ml("help", "resize", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")]
        for line in result.stdout.splitlines()
        if line.startswith("| ")
    }
    assert {"width", "height", "channels", "method", "mode", "apply"} <= set(rows)
    assert rows["method"][2:4] == ["bilinear", "nearest, box, bilinear, hamming, bicubic, lanczos, antialias"]
    assert rows["mode"][2:4] == ["fill", "fill, aspect-fill, aspect-fit"]
    assert rows["channels"][2:4] == ["not set", "1 or 3"]
    assert rows["apply"][1:3] == ["list", "all"] and "train, val, test" in rows["apply"][3]
    assert "Differs from VergeML" in result.stdout and "antialias" in result.stdout


def test_a_vergeml_entry_that_would_do_otherwise_here_is_said_as_the_data_is_prepared(images: Path) -> None:
    copy = copy_project(images, images.parent / "noted")
    set_preprocess(
        copy,
        [
            {"op": "resize", "width": 8, "height": 8, "mode": "fill"},  # no method: bilinear here
            {"op": "flip-horizontal", "chance": 0.3},  # no apply: training images only here
            {"op": "flip-vertical", "chance": 1, "apply": "all"},  # VergeML's meaning, spelled out
        ],
    )
    lines: list[str] = []
    prepare(copy, lines)
    notes = [line for line in lines if line.startswith("data: note:")]
    assert notes == [
        "data: note: resize without method resizes bilinear here (VergeML: antialias); "
        "write method: antialias for VergeML's",
        "data: note: flip-horizontal without apply mirrors training images only here (VergeML: every split); "
        "write apply: all for VergeML's",
    ]


def test_the_data_docs_name_every_option_of_every_op() -> None:
    # One declaration per op: a new option is documented in docs/data.md's op table
    # (apply, which every op takes, is described once below it).
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")}
    for op in OPS.values():
        assert op.name in rows, f"docs/data.md's op table has no row for {op.name}"
        for option in op.options:
            if option.name != "apply":
                names = [display_key(n) for n in (option.name, *option.aliases)]
                assert all(f"`{n}`" in rows[op.name] for n in names), f"docs/data.md: {op.name} lacks {names}"
