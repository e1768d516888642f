"""Each preprocessing op on real images, through ``prepare_data`` as ``ml train`` runs
it: shapes, values, which splits an op touches, and what the cache makes of a change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_factories import (
    cache_entries,
    copy_project,
    image_project,
    prepare,
    set_preprocess,
)
from PIL import Image

from vml.data.prepare import PreparedData
from vml.errors import UsageError
from vml.preprocess import OPS

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


def test_help_for_one_op_shows_its_options(tmp_path: Path, ml) -> None:
    result = ml("help", "random-crop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "random-crop" in out.splitlines()[0]
    assert "training split only" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"width", "height"} <= set(rows)
    assert "required" in rows["width"] and ">= 1" in rows["height"]
