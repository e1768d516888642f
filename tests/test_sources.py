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
    digit_png,
    digit_rows,
    digits,
    digits_csv_project,
    image_project,
    named_digits_project,
    npz_project,
    prepare,
    set_preprocess,
    update_spec,
    write_csv,
    write_images,
    write_spec,
)
from PIL import Image
from test_bad_input import assert_nothing_recorded, assert_usage_error

from vml import api
from vml.data.cache import CacheStore
from vml.errors import UsageError


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


# ---- labels.txt and classes.json (VergeML's label list) --------------------------------

# labels.txt in an order that is neither numeric nor alphabetical: the outputs follow it.
LIST_ORDER = ("nine", "eight", "seven", "six", "five", "four", "three", "two", "one", "zero")


def label_list_project(
    root: Path, per_class: int = 10, split: Callable[[int, int], str] | None = None
) -> Path:
    """Digits as flat PNGs in ``samples/img/`` (no class folders), labelled by
    ``classes.json``; ``split(i, k)`` gives image ``i`` (the ``k``-th of its class) a
    fixed split or ``""``."""
    _, x, y = digits(per_class)
    files, fixed, seen = {}, {}, {}
    for i, label in enumerate(y):
        k = seen[label] = seen.get(label, -1) + 1
        digit_png(x[i], root / "samples" / "img" / f"{i}.png")
        files[f"img/{i}.png"] = [NAMES[label]]
        if split and split(i, k):
            fixed[f"img/{i}.png"] = split(i, k)
    (root / "samples" / "labels.txt").write_text("\n".join(LIST_ORDER) + "\n")
    write_classes(root, {"files": files, "split": fixed})
    data = {"input": {"type": "labeled-image"}, "cache": "none"}
    return write_spec(root, {"model": "cnn", "samples-dir": "samples", "data": data})


def write_classes(root: Path, spec: dict) -> None:
    (root / "samples" / "classes.json").write_text(json.dumps(spec))


def pixels_of(data, split: str) -> set[bytes]:
    return set(map(bytes, (data.x(split).reshape(len(data.y(split)), -1) * 255).round().astype(np.uint8)))


def test_label_list_gives_the_labels_their_order_and_the_fixed_split(tmp_path: Path) -> None:
    # Per class: the first 2 images are test, the next 3 val, the next 1 train by name.
    fixed = {0: "test", 1: "test", 2: "val", 3: "val", 4: "val", 5: "train"}
    root = label_list_project(tmp_path / "listed", split=lambda i, k: fixed.get(k, ""))
    _, x, y = digits(10)
    rank = np.array([(y[:i] == y[i]).sum() for i in range(len(y))])  # each image's place in its class

    data = prepare(root)

    assert data.classes == LIST_ORDER  # labels.txt's order, not sorted
    # The map fixes val and test for those files; the random split is off for both.
    assert sizes(data) == {"train": 50, "val": 30, "test": 20}
    for split, ranks in (("test", {0, 1}), ("val", {2, 3, 4}), ("train", {5, 6, 7, 8, 9})):
        chosen = np.isin(rank, list(ranks))
        expected = set(map(bytes, (x[chosen] * 255 // 16).astype(np.uint8)))
        assert pixels_of(data, split) == expected, split
        # Each label is the position of its name in labels.txt.
        assert sorted(data.y(split).tolist()) == sorted(LIST_ORDER.index(NAMES[d]) for d in y[chosen])


def test_a_split_the_list_does_not_fix_is_drawn_from_the_other_files(tmp_path: Path) -> None:
    root = label_list_project(tmp_path / "only-test", split=lambda i, k: "test" if k < 2 else "")
    lines: list[str] = []

    data = prepare(root, lines)

    # 20 fixed test images; val takes 10% of the 80 files the map leaves free.
    assert sizes(data) == {"train": 72, "val": 8, "test": 20}
    assert any("classes.json fixes the test split only" in line and "val-split: 0" in line for line in lines)


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (lambda spec: spec["files"].pop("img/0.png"), []),  # a good list, for contrast
        (lambda spec: spec["files"].update({"img/gone.png": ["one"]}), ["'img/gone.png'", "does not exist"]),
        (lambda spec: spec["files"].update({"img/0.png": ["ten"]}), ["'ten'", "not in labels.txt"]),
        (lambda spec: spec["files"].update({"img/0.png": ["one", "two"]}), ["2 labels", "keep one"]),
        (lambda spec: spec["split"].update({"img/0.png": "holdout"}), ["'holdout'", "train, val or test"]),
        (lambda spec: spec["split"].update({"img/999.png": "val"}), ["'img/999.png'", "does not list"]),
        (lambda spec: spec.pop("files"), ['"files" mapping']),
    ],
    ids=["good", "missing-file", "unknown-label", "two-labels", "bad-split", "split-of-unlisted", "no-files"],
)
def test_bad_label_lists_are_named(tmp_path: Path, change, needles: list[str]) -> None:
    root = label_list_project(tmp_path / "p", per_class=2)
    spec = json.loads((root / "samples" / "classes.json").read_text())
    change(spec)
    write_classes(root, spec)
    if not needles:
        assert sum(sizes(prepare(root)).values()) == 19
        return
    with pytest.raises(UsageError) as caught:
        prepare(root)
    assert "samples/classes.json" in caught.value.message
    for needle in needles:
        assert needle in caught.value.message


def test_a_bad_label_list_is_one_error_line_and_nothing_recorded(tmp_path: Path, ml) -> None:
    root = label_list_project(tmp_path / "p", per_class=2)
    spec = json.loads((root / "samples" / "classes.json").read_text())
    spec["files"]["img/gone.png"] = ["one"]
    write_classes(root, spec)

    result = ml("train", "--epochs=1", cwd=root)

    assert_usage_error(result, "samples/classes.json", "'img/gone.png'", "remove it from classes.json")
    assert len(result.stderr.strip().splitlines()) == 1
    assert_nothing_recorded(root)
    (root / "samples" / "labels.txt").unlink()
    assert_usage_error(ml("train", "--epochs=1", cwd=root), "needs samples/labels.txt", "one a line")


# ---- cache modes that keep only the input (VergeML's mem-in and disk-in) ---------------


def test_disk_in_caches_the_decoded_input_and_preprocesses_it_each_time(tmp_path: Path) -> None:
    root = image_project(tmp_path / "p", per_class=10)
    update_spec(root, lambda spec: spec["data"].update(cache="disk-in"))
    lines: list[str] = []

    first = prepare(root, lines)

    (entry,) = cache_entries(root)  # the decoded input, no prepared splits
    assert lines == [
        f"data: decoded samples -> .cache/{entry} (the input only)",
        "data: prepared samples (80 train, 10 val, 10 test); only the decoded input is cached (disk-in)",
    ]
    assert CacheStore(root / ".cache").entries()[0].source == "samples (input)"
    # A new pipeline reuses the decoded input.
    set_preprocess(root, [{"op": "standardize"}])
    lines.clear()
    second = prepare(root, lines)
    assert lines[0] == f"data: reusing decoded input .cache/{entry} (samples unchanged)"
    assert cache_entries(root) == [entry]
    assert second.fingerprint != first.fingerprint and not second.reused
    assert abs(float(second.x("train").mean())) < 1e-4  # standardised this time
    # The same data as reading the images with the cache off.
    update_spec(root, lambda spec: spec["data"].update(cache="none"))
    plain = prepare(root)
    for name in ("x_train", "y_train", "x_test", "y_val"):
        np.testing.assert_array_equal(plain.arrays[name], second.arrays[name])


def test_mem_in_keeps_the_decoded_input_in_memory_and_writes_nothing(tmp_path: Path) -> None:
    root = image_project(tmp_path / "p", per_class=10)
    update_spec(root, lambda spec: spec["data"].update(cache="mem-in"))
    lines: list[str] = []

    first = prepare(root, lines)
    set_preprocess(root, [{"op": "flip-horizontal", "probability": 1.0}])
    second = prepare(root, lines)

    assert lines[1:] == [
        "data: reusing decoded input in memory (samples unchanged)",
        "data: prepared samples (80 train, 10 val, 10 test); only the decoded input is cached (mem-in)",
    ]
    assert not (root / ".cache").exists()
    # The flip changed the prepared copy, not the kept input.
    np.testing.assert_array_equal(second.x("train"), first.x("train")[:, :, :, ::-1])
    set_preprocess(root, [])
    np.testing.assert_array_equal(prepare(root).x("train"), first.x("train"))


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


def _empty_csv(tmp: Path):
    root = digits_csv_project(tmp)
    (root / "samples" / "digits.csv").write_text("")
    return root, ["samples/digits.csv", "empty"]


def _header_only_csv(tmp: Path):
    root = digits_csv_project(tmp, lambda rows: rows.clear())
    return root, ["samples/digits.csv", "no data rows"]


def _short_row(tmp: Path):
    root = digits_csv_project(tmp, lambda rows: rows[3].pop(10))  # line 5: one value short
    return root, ["samples/digits.csv line 5", "64 values", "65"]


def _long_row(tmp: Path):
    root = digits_csv_project(tmp, lambda rows: rows[3].append(7))  # line 5: one value too many
    return root, ["samples/digits.csv line 5", "66 values", "65"]


def _missing_value(tmp: Path):
    def blank(rows: list[list]) -> None:
        rows[6][2] = ""

    root = digits_csv_project(tmp, blank)
    return root, ["samples/digits.csv line 8", "'pixel_0_2'", "missing: drop or mean"]


def _one_class(tmp: Path):
    def same(rows: list[list]) -> None:
        for row in rows:
            row[-1] = "seven"

    root = digits_csv_project(tmp, same)
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
    root = digits_csv_project(tmp, preprocess=[{"op": "flip-horizontal"}])
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
