"""Tests for run-name generation and validation."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from vml import names
from vml.errors import UsageError
from vml.names import ADJECTIVES, NOUNS, generate_name, validate_name

GENERATED_RE = re.compile(r"^[a-z]+-[a-z]+(-[0-9]+)?$")


def test_word_lists_are_distinct_lowercase_and_large() -> None:
    assert len(ADJECTIVES) >= 220
    assert len(NOUNS) >= 130
    assert len(set(ADJECTIVES)) == len(ADJECTIVES)
    assert len(set(NOUNS)) == len(NOUNS)
    for word in ADJECTIVES + NOUNS:
        assert re.fullmatch(r"[a-z]+", word), word
    assert len(ADJECTIVES) * len(NOUNS) > 25_000


def test_ten_thousand_generations_are_unique_and_well_formed() -> None:
    rng = random.Random(1234)
    taken: set[str] = set()
    for _ in range(10_000):
        name = generate_name(taken, rng)
        assert name not in taken
        assert GENERATED_RE.match(name), name
        taken.add(name)
    assert len(taken) == 10_000


def test_default_arguments_give_a_plain_name() -> None:
    assert re.fullmatch(r"[a-z]+-[a-z]+", generate_name())


def test_seeded_rng_is_reproducible() -> None:
    first = [generate_name(rng=random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    rng_a, rng_b = random.Random(42), random.Random(42)
    assert [generate_name(rng=rng_a) for _ in range(50)] == [generate_name(rng=rng_b) for _ in range(50)]


def test_exhausted_word_lists_fall_back_to_numeric_suffix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(names, "ADJECTIVES", ("happy", "sleek"))
    monkeypatch.setattr(names, "NOUNS", ("robot", "tron"))
    taken = {f"{a}-{n}" for a, n in itertools.product(names.ADJECTIVES, names.NOUNS)}
    rng = random.Random(0)
    for _ in range(20):
        name = generate_name(taken, rng)
        assert name not in taken
        assert GENERATED_RE.match(name), name
        base, _, suffix = name.rpartition("-")
        assert base in taken
        assert int(suffix) >= 2
        taken.add(name)
    assert len(taken) == 4 + 20


def test_fallback_skips_taken_suffixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names, "ADJECTIVES", ("happy",))
    monkeypatch.setattr(names, "NOUNS", ("robot",))
    taken = {"happy-robot", "happy-robot-2", "happy-robot-3"}
    assert generate_name(taken) == "happy-robot-4"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("my-run", "my-run"),
        ("@my-run", "my-run"),
        ("Run_2", "Run_2"),
        ("7", "7"),
        ("a" * 64, "a" * 64),
    ],
)
def test_validate_name_accepts(given: str, expected: str) -> None:
    assert validate_name(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "a/b",
        "vml.db",
        ".hidden",
        "",
        "@",
        "@@x",
        "a" * 65,
        "with space",
        "-dash",
        "_under",
        "..",
        "a\\b",
        "ok\n",
        "caf\u00e9",
    ],
)
def test_validate_name_rejects(bad: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        validate_name(bad)
    assert repr(bad) in excinfo.value.message
    assert "1-64 letters, digits" in excinfo.value.message
