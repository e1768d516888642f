"""Sweep expansion: grids, random draws from lists and ranges, and refused sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from vml import api
from vml.config import parse_cli_overrides
from vml.errors import UsageError
from vml.launch.sweep import expand


def runs(project: Path, *args: str, draws: int | None = None, seed: int | None = 1) -> list[dict[str, str]]:
    config = api.Project(project).config
    return [
        {key: value for key, (_, value) in run.items()}
        for run in expand(config, parse_cli_overrides(args), draws, seed)
    ]


def test_a_grid_is_every_combination_in_the_order_given(project: Path) -> None:
    assert runs(project, "--learning_rate=0.001,0.01,0.1", "--batch-size=32,64", "--epochs=2") == [
        {"epochs": "2", "learning_rate": "0.001", "batch_size": "32"},
        {"epochs": "2", "learning_rate": "0.001", "batch_size": "64"},
        {"epochs": "2", "learning_rate": "0.01", "batch_size": "32"},
        {"epochs": "2", "learning_rate": "0.01", "batch_size": "64"},
        {"epochs": "2", "learning_rate": "0.1", "batch_size": "32"},
        {"epochs": "2", "learning_rate": "0.1", "batch_size": "64"},
    ]


def test_no_swept_value_is_one_run(project: Path) -> None:
    assert runs(project, "--epochs=3") == [{"epochs": "3"}]


def test_random_draws_from_log_ranges_integer_ranges_and_lists(project: Path) -> None:
    drawn = runs(
        project, "--learning-rate=1e-4:1e-1:log", "--hidden-size=16:256", "--optimizer=adam,sgd", draws=200
    )
    assert len(drawn) == 200
    rates = [float(r["learning_rate"]) for r in drawn]
    assert all(1e-4 <= r <= 1e-1 for r in rates)
    # Log-uniform: about a third of the draws in each decade.
    for low in (1e-4, 1e-3, 1e-2):
        share = sum(low <= r < low * 10 for r in rates) / len(rates)
        assert 0.2 < share < 0.47, (low, share)
    sizes = [r["hidden_size"] for r in drawn]
    assert all(s.isdigit() and 16 <= int(s) <= 256 for s in sizes)
    assert {r["optimizer"] for r in drawn} == {"adam", "sgd"}


def test_the_same_seed_draws_the_same_runs(project: Path) -> None:
    args = ("--learning-rate=1e-4:1e-1:log", "--dropout=0:0.5")
    assert runs(project, *args, draws=5, seed=7) == runs(project, *args, draws=5, seed=7)
    assert runs(project, *args, draws=5, seed=7) != runs(project, *args, draws=5, seed=8)


@pytest.mark.parametrize(
    ("args", "draws", "message"),
    [
        (
            ("--learning-rate=1e-4:1e-1:log",),
            None,
            "--learning-rate=1e-4:1e-1:log is a range: add --random N",
        ),
        (("--learning-rate=0.01,abc",), None, "invalid value --learning-rate=abc"),
        (("--epochs=1,0",), None, "invalid value --epochs=0"),
        (("--learning-rate=0.1:0.01",), 3, "the range is empty"),
        (("--learning-rate=0:0.1:log",), 3, "a log range needs LOW > 0"),
        (("--learning-rate=a:b",), 3, "the ends of a range are numbers"),
        (("--learning-rate=1:2:cubic",), 3, "is not a range"),
        (("--batch-size=32,,64",), None, "has an empty value"),
        (("--batch-size=32,32",), None, "lists a value twice"),
        (("--epochs=3",), 4, "--random needs a swept value"),
        (("--learning-rate=0.1,0.2",), 0, "draw at least 1 run"),
        (("--learnin-rate=0.1,0.2",), None, "unknown hyperparameter --learnin-rate"),
    ],
)
def test_bad_sweeps_are_refused_with_the_value_and_the_fix(project: Path, args, draws, message) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        runs(project, *args, draws=draws)
