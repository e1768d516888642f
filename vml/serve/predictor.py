"""The served model, loaded once: what it takes, and its predictions for rows, CSV
bytes or image bytes through the same preparation as ``ml predict``
(``vml.train.inference``). No HTTP here: the app calls it in its thread pool, the
benchmark calls it in-process."""

from __future__ import annotations

from typing import Any

import torch

from vml.serve.source import Served
from vml.train import inference


class Predictor:
    """A model ready to predict: its network on the CPU in eval mode, its checkpoint,
    and what ``GET /info`` says about it."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.model, self.checkpoint = inference.load_best(served.folder, served.root)
        self.images = inference.takes_images(self.checkpoint)
        self.labels: list[str] = list(self.checkpoint["classes"])
        self.features: list[str] = list(self.checkpoint.get("features") or [])

    def info(self) -> dict[str, Any]:
        """The run, the stored model (NAME:vN or None), the network, its task and labels,
        what it takes, its test metrics and the reproducibility record's commit."""
        checkpoint = self.checkpoint
        if self.images:
            channels, height, width = checkpoint["input_shape"]
            takes: dict[str, Any] = {
                "type": "image",
                "width": width,
                "height": height,
                "channels": channels,
            }
        else:
            takes = {"type": "table", "columns": self.features}
        return {
            "run": self.served.run,
            "model": self.served.model,
            "network": checkpoint["model_name"],
            "task": "classification" if self.labels else "regression",
            "labels": self.labels,
            "input": takes,
            "test_metrics": self.served.test_metrics,
            "commit": self.served.commit,
        }

    def example_row(self) -> dict[str, float]:
        """A row of zeros keyed by the training columns (the docs' example)."""
        return dict.fromkeys(self.features, 0)

    def rows(self, rows: list[Any], top: int) -> list[dict[str, Any]]:
        """Predictions for rows of column: number (JSON ``{"rows": [...]}``)."""
        return self._predict(*inference.row_inputs(rows, self.checkpoint), top)

    def csv(self, files: list[tuple[str, bytes]], top: int) -> list[dict[str, Any]]:
        """Predictions for the rows of CSV files given as (name, bytes)."""
        return self._predict(*inference.csv_inputs(files, self.checkpoint), top)

    def image_files(self, files: list[tuple[str, bytes]], top: int) -> list[dict[str, Any]]:
        """Predictions for images given as (name, bytes)."""
        return self._predict(*inference.image_bytes_inputs(files, self.checkpoint), top)

    def _predict(self, x: Any, names: list[str], top: int) -> list[dict[str, Any]]:
        with torch.inference_mode():
            return inference.predict(self.model, self.checkpoint, x, names, top)
