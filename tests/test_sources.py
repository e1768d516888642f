"""The data sources a user brings: image folders, ``.npz`` files and CSVs, how they
are split into train/val/test, and the one-line errors for input that cannot work."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from data_factories import (
    NAMES,
    cache_entries,
    csv_project,
    digit_rows,
    digits,
    image_project,
    named_digits_project,
    npz_project,
    prepare,
    write_csv,
    write_images,
)
from PIL import Image
from test_bad_input import assert_nothing_recorded, assert_usage_error

from vml import api


def train(root: Path, *args: str, name: str):
    out = io.StringIO()
    result = api.Project(root).train_in_process(list(args), name=name, stderr=out)
    assert result.status == "finished", out.getvalue()
    return result


def sizes(data) -> dict[str, int]:
    return {split: len(data.y(split)) for split in ("train", "val", "test")}


def all_rows(data) -> np.ndarray:
    return np.concatenate([data.x(s).reshape(len(data.y(s)), -1) for s in ("train", "val", "test")])


# ---- labeled images --------------------------------------------------------------------


def test_image_folders_train_end_to_end_with_folder_names_as_classes(tmp_path: Path) -> None:
    root = image_project(tmp_path / "images", per_class=40, names=NAMES)

    result = train(root, "--epochs=5", "--learning-rate=0.01", name="folders")

    assert result.test_acc > 0.7
    config = yaml.safe_load((root / "trainings" / "folders" / "config.yaml").read_text())
    assert config["classes"] == sorted(NAMES)  # the folder names, alphabetically
    data = prepare(root)
    assert data.classes == tuple(sorted(NAMES))
    assert sizes(data) == {"train": 320, "val": 40, "test": 40}
    assert data.input_shape == (1, 8, 8)
    # Pixels arrive in [0, 1], grey as one channel.
    assert 0.0 <= data.x("train").min() and data.x("train").max() <= 1.0


# ---- npz -------------------------------------------------------------------------------


def test_npz_of_8x8_images_trains_as_one_channel_images(tmp_path: Path) -> None:
    _, x, y = digits()
    root = npz_project(tmp_path / "npz", x.reshape(-1, 8, 8).astype(np.float32), y)

    data = prepare(root)
    for split in ("train", "val", "test"):
        assert data.x(split).shape == (len(data.y(split)), 1, 8, 8)
    assert sum(sizes(data).values()) == len(y)
    assert data.classes == tuple(str(d) for d in range(10))
    # The values are the file's, image by image.
    assert sorted(map(bytes, all_rows(data).astype(np.int64))) == sorted(map(bytes, x.astype(np.int64)))

    result = train(root, "--epochs=2", "--learning-rate=0.01", name="npz-images")
    assert result.test_acc > 0.7


def test_npz_of_rows_is_a_table(tmp_path: Path) -> None:
    _, x, y = digits(20)
    root = npz_project(tmp_path / "table", x.astype(np.float64), y)

    data = prepare(root)

    assert data.x("train").ndim == 2 and data.input_shape == (64,)
    assert data.features == tuple(f"x[{i}]" for i in range(64))
    assert sizes(data) == {"train": 160, "val": 20, "test": 20}


def test_npz_with_custom_array_names(tmp_path: Path) -> None:
    _, x, y = digits(20)
    root = npz_project(tmp_path / "named", x, y, x_key="pixels", y_key="digits")

    data = prepare(root)

    assert data.input_shape == (64,)
    assert data.features[:2] == ("pixels[0]", "pixels[1]")
    assert data.classes == tuple(str(d) for d in range(10))
    assert sum(sizes(data).values()) == 200


# ---- csv -------------------------------------------------------------------------------


def test_csv_with_string_labels_trains_and_lists_finished(tmp_path: Path, ml) -> None:
    root = named_digits_project(tmp_path / "named", preprocess=[{"op": "standardize"}])

    result = train(root, "--epochs=2", "--learning-rate=0.01", name="words")

    assert result.test_acc > 0.8
    config = yaml.safe_load((root / "trainings" / "words" / "config.yaml").read_text())
    assert config["classes"] == sorted(NAMES)
    listed = ml("list", "--format", "json", cwd=root)
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert (run["instance"], run["status"], run["test_acc"]) == ("words", "finished", result.test_acc)


def test_features_pick_the_named_columns(tmp_path: Path) -> None:
    header, x, y = digits(20)
    chosen = ["pixel_3_3", "pixel_0_5", "pixel_4_4"]
    root = csv_project(tmp_path / "picked", [*header, "label"], digit_rows(x, y), source={"features": chosen})

    data = prepare(root)

    assert data.input_shape == (3,)
    assert data.features == tuple(chosen)
    (entry,) = cache_entries(root)
    manifest = json.loads((root / ".cache" / entry / "manifest.json").read_text())
    assert manifest["features"] == chosen
    # The columns hold the chosen pixels, in the order given.
    columns = [header.index(c) for c in chosen]
    expected = sorted(map(tuple, x[:, columns].tolist()))
    assert sorted(map(tuple, all_rows(data).astype(int).tolist())) == expected


def missing_project(root: Path, missing: str | None) -> tuple[Path, np.ndarray, set[int]]:
    """200 digit rows with a ``row_id`` column; four rows miss pixel_0_4 (blank, NA, ?)."""
    header, x, y = digits(20)
    rows = [[i, *r] for i, r in enumerate(digit_rows(x, y))]
    blanks = {3, 50, 120, 170}
    for i, marker in zip(sorted(blanks), ["", "NA", "", "?"], strict=True):
        rows[i][1 + header.index("pixel_0_4")] = marker
    source = {"missing": missing} if missing else {}
    root = csv_project(root, ["row_id", *header, "label"], rows, source=source)
    return root, x[:, header.index("pixel_0_4")].astype(float), blanks


def test_missing_drop_leaves_out_rows_with_empty_cells(tmp_path: Path) -> None:
    root, _, blanks = missing_project(tmp_path / "drop", "drop")

    data = prepare(root)

    ids = set(all_rows(data)[:, 0].astype(int).tolist())
    assert len(ids) == sum(sizes(data).values()) == 196
    assert ids == set(range(200)) - blanks


def test_missing_mean_fills_with_the_training_mean(tmp_path: Path) -> None:
    root, column, blanks = missing_project(tmp_path / "mean", "mean")
    column_of_pixel_0_4 = 1 + 4

    data = prepare(root)

    assert sum(sizes(data).values()) == 200
    train_ids = data.x("train")[:, 0].astype(int)
    train_mean = np.mean([column[i] for i in train_ids if i not in blanks])
    filled = 0
    for split in ("train", "val", "test"):
        for row in data.x(split):
            i = int(row[0])
            expected = train_mean if i in blanks else column[i]
            assert row[column_of_pixel_0_4] == pytest.approx(expected, rel=1e-5), (split, i)
            filled += i in blanks
    assert filled == len(blanks)
    assert not np.isnan(all_rows(data)).any()


# ---- splits ----------------------------------------------------------------------------


def test_val_split_as_a_count(tmp_path: Path) -> None:
    root = named_digits_project(tmp_path / "count", **{"val-split": 100})
    assert sizes(prepare(root)) == {"train": 1797 - 100 - 180, "val": 100, "test": 180}


def _write_val_folder(folder: Path) -> np.ndarray:
    """50 images (5 a class) not among the samples; their pixels as rows in [0, 1]."""
    _, x, y = digits(5, skip=30)
    write_images(folder, x, y)
    return (x * 255 / 16).astype(np.uint8) / 255.0


@pytest.mark.parametrize("where", ["val", "samples/val"], ids=["outside-samples", "inside-samples"])
def test_val_split_as_an_image_folder(tmp_path: Path, where: str) -> None:
    root = image_project(tmp_path / "images", per_class=30, **{"val-split": where})
    val_rows = _write_val_folder(root / where)

    data = prepare(root)

    assert data.classes == tuple(str(d) for d in range(10))  # no class "val"
    assert sizes(data) == {"train": 270, "val": 50, "test": 30}
    got = data.x("val").reshape(50, 64)
    assert sorted(map(bytes, (got * 255).round().astype(np.uint8))) == sorted(
        map(bytes, (val_rows * 255).round().astype(np.uint8))
    )
    # No image of the val folder is trained on.
    train_set = set(map(bytes, (data.x("train").reshape(-1, 64) * 255).round().astype(np.uint8)))
    assert not train_set & set(map(bytes, (got * 255).round().astype(np.uint8)))


def test_test_split_as_a_csv_file(tmp_path: Path) -> None:
    header, x, y = digits()
    root = csv_project(tmp_path / "csv", [*header, "label"], digit_rows(x[:1000], y[:1000]))
    write_csv(root / "data" / "test.csv", [*header, "label"], digit_rows(x[1000:1200], y[1000:1200]))
    (root / "vergeml.yaml").write_text((root / "vergeml.yaml").read_text() + "test-split: data/test.csv\n")

    data = prepare(root)

    assert sizes(data) == {"train": 900, "val": 100, "test": 200}
    np.testing.assert_array_equal(data.x("test"), x[1000:1200].astype(np.float32))
    np.testing.assert_array_equal(data.y("test"), y[1000:1200])


def test_splits_keep_each_class_share(tmp_path: Path) -> None:
    """Class k has 10 + 12k rows; val and test hold each class in proportion."""
    header, x, y = digits()
    keep = np.concatenate([np.flatnonzero(y == k)[: 10 + 12 * k] for k in range(10)])
    root = csv_project(
        tmp_path / "skewed",
        [*header, "label"],
        digit_rows(x[keep], y[keep]),
        **{"val-split": "20%", "test-split": "10%"},
    )
    total = len(keep)

    data = prepare(root)

    for split, share in (("val", 0.2), ("test", 0.1)):
        n = len(data.y(split))
        assert n == round(total * share)
        counts = np.bincount(data.y(split), minlength=10)
        for k in range(10):
            assert abs(counts[k] - n * (10 + 12 * k) / total) <= 1, (split, k, counts)


# ---- bad input -------------------------------------------------------------------------


def _digits_csv(tmp: Path, rows_edit: Callable[[list[list]], None] | None = None, **top) -> Path:
    header, x, y = digits(10)
    rows = digit_rows(x, y)
    if rows_edit:
        rows_edit(rows)
    return csv_project(tmp / "p", [*header, "label"], rows, **top)


def _empty_csv(tmp: Path):
    root = _digits_csv(tmp)
    (root / "samples" / "digits.csv").write_text("")
    return root, ["samples/digits.csv", "empty"]


def _header_only_csv(tmp: Path):
    root = _digits_csv(tmp, lambda rows: rows.clear())
    return root, ["samples/digits.csv", "no data rows"]


def _short_row(tmp: Path):
    root = _digits_csv(tmp, lambda rows: rows[3].pop(10))  # line 5: one value short
    return root, ["samples/digits.csv line 5", "64 values", "65"]


def _long_row(tmp: Path):
    root = _digits_csv(tmp, lambda rows: rows[3].append(7))  # line 5: one value too many
    return root, ["samples/digits.csv line 5", "66 values", "65"]


def _missing_value(tmp: Path):
    def blank(rows: list[list]) -> None:
        rows[6][2] = ""

    root = _digits_csv(tmp, blank)
    return root, ["samples/digits.csv line 8", "'pixel_0_2'", "missing: drop or mean"]


def _one_class(tmp: Path):
    def same(rows: list[list]) -> None:
        for row in rows:
            row[-1] = "seven"

    root = _digits_csv(tmp, same)
    return root, ["samples/digits.csv", "one class", "'seven'"]


def _no_images(tmp: Path):
    root = image_project(tmp / "p", per_class=1)
    shutil.rmtree(root / "samples")
    (root / "samples" / "cat").mkdir(parents=True)
    (root / "samples" / "cat" / "notes.txt").write_text("no pictures here")
    return root, ["no images found in samples"]


def _garbage_png(tmp: Path):
    root = image_project(tmp / "p", per_class=3)
    (root / "samples" / "3" / "broken.png").write_bytes(b"\x89PNG but not really an image")
    return root, ["samples/3/broken.png", "unreadable image"]


def _mixed_sizes(tmp: Path):
    root = image_project(tmp / "p", per_class=3)
    Image.new("L", (12, 9), color=128).save(root / "samples" / "4" / "large.png")
    return root, ["samples/4/large.png", "12x9", "resize"]


def _splits_over_100_percent(tmp: Path):
    return image_project(tmp / "p", per_class=3, **{"val-split": "60%", "test-split": "50%"}), [
        "vergeml.yaml:",
        "leave no training data",
    ]


def _split_count_too_big(tmp: Path):
    return image_project(tmp / "p", per_class=3, **{"val-split": 5000}), ["val-split (5000)", "30 samples"]


def _unknown_op(tmp: Path):
    root = image_project(tmp / "p", per_class=3, preprocess=[{"op": "resise", "width": 8, "height": 8}])
    return root, ["vergeml.yaml:", "'resise'", "did you mean resize"]


def _unknown_op_option(tmp: Path):
    root = image_project(tmp / "p", per_class=3, preprocess=[{"op": "resize", "widht": 8, "height": 8}])
    return root, ["vergeml.yaml:", "'widht'", "did you mean width"]


def _image_op_on_csv(tmp: Path):
    root = _digits_csv(tmp, preprocess=[{"op": "flip-horizontal"}])
    return root, ["vergeml.yaml:", "flip-horizontal", "table"]


def _image_op_after_standardize(tmp: Path):
    ops = [{"op": "standardize"}, {"op": "crop", "width": 4, "height": 4}]
    return image_project(tmp / "p", per_class=3, preprocess=ops), [
        "vergeml.yaml:",
        "crop",
        "before standardize",
    ]


@pytest.mark.parametrize(
    "case",
    [
        _empty_csv,
        _header_only_csv,
        _short_row,
        _long_row,
        _missing_value,
        _one_class,
        _no_images,
        _garbage_png,
        _mixed_sizes,
        _splits_over_100_percent,
        _split_count_too_big,
        _unknown_op,
        _unknown_op_option,
        _image_op_on_csv,
        _image_op_after_standardize,
    ],
    ids=lambda f: f.__name__[1:],
)
def test_bad_data_is_one_error_line_and_nothing_recorded(tmp_path: Path, ml, case) -> None:
    root, needles = case(tmp_path)
    result = ml("train", "--epochs=1", cwd=root)
    assert_usage_error(result, *needles)
    assert sum(line.startswith("ml: error:") for line in result.stderr.splitlines()) == 1
    assert_nothing_recorded(root)
