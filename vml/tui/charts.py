"""Metric curves drawn in the terminal with plotext (through textual-plotext).

A chart shows a metric and its validation twin (``loss`` with ``val_loss``) per epoch,
or a per-step metric over the steps of the latest epoch. In compare, a chart shows one
metric with a line per run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from textual_plotext import PlotextPlot

Series = tuple[list[float], list[float]]


def per_step_keys(points: list[dict[str, Any]]) -> set[str]:
    """Keys logged more than once in an epoch (``step_loss``, ``lr``)."""
    seen: dict[str, set[int]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for point in points:
        seen[point["key"]].add(point["epoch"])
        counts[point["key"]] += 1
    return {key for key, epochs in seen.items() if counts[key] > len(epochs)}


def chart_groups(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Charts for ``keys``: each metric with its ``val_`` twin, in first-seen order."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.removeprefix("val_"), []).append(key)
    return list(groups.items())


def epoch_series(points: list[dict[str, Any]], key: str) -> Series:
    """``key``'s value at each epoch end."""
    chosen = [p for p in points if p["key"] == key]
    return [p["epoch"] for p in chosen], [p["value"] for p in chosen]


def latest_epoch_series(points: list[dict[str, Any]], key: str) -> tuple[int, Series]:
    """A per-step ``key`` over the global steps of the latest epoch that logged it."""
    chosen = [p for p in points if p["key"] == key]
    if not chosen:
        return 0, ([], [])
    epoch = max(p["epoch"] for p in chosen)
    last = [p for p in chosen if p["epoch"] == epoch]
    return epoch, ([p["step"] for p in last], [p["value"] for p in last])


class Plot(PlotextPlot):
    """A plot of lines; ``show`` replaces its title and lines (kept as ``heading`` and
    ``lines``)."""

    heading = ""
    lines: dict[str, Series] = {}

    def show(
        self, title: str, xlabel: str, lines: dict[str, Series], xticks: list[float] | None = None
    ) -> None:
        """Draw ``lines`` under ``title``; ``xticks``: where to label the x axis
        (plotext's choice when None)."""
        self.heading, self.lines = title, lines
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        if xticks:
            plt.xticks(xticks)
        for label, (xs, ys) in lines.items():
            if xs:
                plt.plot(xs, ys, label=label, marker="braille")
        self.refresh()


class Chart(Plot):
    """A metric's chart on the run and compare screens."""

    DEFAULT_CSS = """
    Chart { height: 12; min-height: 8; }
    """
