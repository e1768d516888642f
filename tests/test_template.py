"""The default template ships the shared digits data unchanged, with its attribution."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

SHARED_DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "digits.csv.gz"


def test_demo_csv_is_the_shared_digits_with_a_header(project: Path) -> None:
    with (project / "data" / "digits.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    with gzip.open(SHARED_DIGITS, "rt", newline="") as handle:
        original = [row for row in csv.reader(handle) if row]
    header, body = rows[0], rows[1:]
    assert header[-1] == "label" and len(header) == 65
    assert len(set(header)) == 65
    assert body == original
    attribution = (project / "data" / "README.md").read_text()
    assert "CC BY 4.0" in attribution and "Alpaydin" in attribution
