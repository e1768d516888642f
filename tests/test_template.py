"""The default template ships the UCI digits (the shared copy, unchanged) with its attribution."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

# Beside CI's checkout only: a plain clone has no ../shared, and the test must pass there.
SHARED_DIGITS = next((p for p in [Path(__file__).resolve().parents[2] / "shared/data/digits.csv.gz"] if p.is_file()), None)


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
