"""``ml preprocess``: previews of what the model will see, images as PNG and tables as
CSV, taken from the same prepared (and cached) data ``ml train`` uses."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from data_factories import image_project, prepare
from PIL import Image
from test_bad_input import assert_usage_error

from vml import api

SPLITS = ("train", "val", "test")


def as_png_pixels(image: np.ndarray) -> np.ndarray:
    """A prepared (C, H, W) image stretched to 0..255 the way a preview shows it."""
    pixels = image.transpose(1, 2, 0)
    low, high = pixels.min(), pixels.max()
    scaled = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return (scaled * 255).round().astype(np.uint8)[:, :, 0]


def test_image_previews_are_pngs_of_the_prepared_images(tmp_path: Path, ml) -> None:
    root = image_project(
        tmp_path / "images",
        per_class=10,
        preprocess=[{"op": "resize", "width": 10, "height": 6}, {"op": "standardize"}],
        **{"val-split": 3},
    )

    result = ml("preprocess", "out", "-n", "5", cwd=root)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wrote previews of 5 train, 3 val, 5 test to out"
    data = prepare(root)
    assert data.reused  # the previews came from the data ml train will use
    out = root / "out"
    assert sorted(p.name for p in out.iterdir()) == list(sorted(SPLITS))
    for split, count in (("train", 5), ("val", 3), ("test", 5)):
        written = sorted((out / split).glob("*/*.png"))
        assert len(written) == count, written
        assert {p.stem for p in written} == {str(n) for n in range(count)}
        assert sorted(p for p in (out / split).rglob("*") if p.is_file()) == written
        for path in written:
            n = int(path.stem)
            assert path.parent.name == data.classes[data.y(split)[n]]
            with Image.open(path) as image:
                assert (image.size, image.mode) == ((10, 6), "L")
                np.testing.assert_array_equal(np.asarray(image), as_png_pixels(data.x(split)[n]))


def test_table_previews_are_csvs_of_the_standardized_rows(project: Path) -> None:
    out = project / "preview"

    counts = api.Project(project).preview(out, 5, stderr=io.StringIO())

    assert counts == {"train": 5, "val": 5, "test": 5}
    assert sorted(p.name for p in out.iterdir()) == ["test.csv", "train.csv", "val.csv"]
    data = prepare(project)
    assert data.reused
    header = (project / "data" / "digits.csv").read_text().splitlines()[0].split(",")
    for split in SPLITS:
        with (out / f"{split}.csv").open(newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == header  # the feature names, then label
        assert rows[0][-1] == "label" and len(rows) == 6
        values = np.array([row[:-1] for row in rows[1:]], dtype=np.float64)
        np.testing.assert_allclose(values, data.x(split)[:5], rtol=1e-5, atol=1e-6)
        assert [row[-1] for row in rows[1:]] == [data.classes[i] for i in data.y(split)[:5]]
        # Standardized, not the raw pixel counts 0..16.
        assert (values < 0).any()


def test_zero_samples_is_refused(project: Path, ml) -> None:
    result = ml("preprocess", "out", "--num-samples", "0", cwd=project)
    assert_usage_error(result, "--num-samples 0", "at least 1")
    assert not (project / "out").exists()
