"""The templates: the default one ships the UCI digits (the shared copy, unchanged) with
its attribution; the images one writes them as PNG class folders and trains a CNN."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from vml import api

DIGITS = Path(__file__).resolve().parents[1] / "templates" / "default" / "data" / "digits.csv"

# Beside CI's checkout only: a plain clone has no ../shared, and the test must pass there.
SHARED_DIGITS = next(
    (p for p in [Path(__file__).resolve().parents[2] / "shared/data/digits.csv.gz"] if p.is_file()), None
)


def test_demo_csv_is_the_shared_digits_with_a_header(project: Path) -> None:
    with (project / "data" / "digits.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[-1] == "label" and len(header) == 65
    assert len(set(header)) == 65
    # The UCI set: 1,797 8x8 images, pixels 0-16, about 180 of each digit.
    assert len(body) == 1797 and all(len(row) == 65 for row in body)
    assert {int(v) for row in body for v in row[:-1]} <= set(range(17))
    counts = Counter(row[-1] for row in body)
    assert sorted(counts) == [str(d) for d in range(10)] and min(counts.values()) >= 170
    if SHARED_DIGITS is not None:
        with gzip.open(SHARED_DIGITS, "rt", newline="") as handle:
            assert body == [row for row in csv.reader(handle) if row]
    attribution = (project / "data" / "README.md").read_text()
    assert "CC BY 4.0" in attribution and "Alpaydin" in attribution


def test_images_template_writes_the_digits_as_png_folders_and_trains(tmp_path: Path, ml) -> None:
    listed = ml("new", "--list-templates", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"(?m)^images\s+Hand-written digits as PNG class folders", listed.stdout), listed.stdout

    created = ml("new", "imgs", "--template", "images", cwd=tmp_path)

    assert created.returncode == 0, created.stderr
    root = tmp_path / "imgs"
    spec = yaml.safe_load((root / "vergeml.yaml").read_text())
    assert (spec["model"], spec["data"]["input"]["type"]) == ("cnn", "labeled-image")
    with DIGITS.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    pngs = sorted((root / "data").glob("*/*.png"))
    assert len(pngs) == 1797
    assert sorted(p.parent.name for p in pngs) == sorted(row[-1] for row in rows)  # a folder per digit
    # data/<label>/<row>.png holds that row of digits.csv, 0..16 scaled to 0..255.
    for row_number in (0, 1000, 1796):
        row = rows[row_number]
        with Image.open(root / "data" / row[-1] / f"{row_number:04d}.png") as image:
            assert (image.mode, image.size) == ("L", (8, 8))
            expected = np.array(row[:-1], dtype=np.int64).reshape(8, 8) * 255 // 16
            np.testing.assert_array_equal(np.asarray(image), expected)
    assert "CC BY 4.0" in (root / "data" / "README.md").read_text()
    # The same bytes every time.
    again = api.create_project(tmp_path / "again", "images")
    assert all(p.read_bytes() == (again / p.relative_to(root)).read_bytes() for p in pngs[::50])

    out = io.StringIO()
    result = api.Project(root).train_in_process(["--epochs=2"], name="short", stderr=out)

    assert result.status == "finished", out.getvalue()
    assert result.test_acc > 0.6, out.getvalue()
