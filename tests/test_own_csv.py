"""A user's own CSV in a hand-written project trains like the demo."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from vml import api

SPEC = """\
model: mlp
samples-dir: samples
val-split: 10%
test-split: 20%
data:
  input:
    type: csv
    file: blobs.csv
    target: species
  preprocess:
    - op: standardize
train:
  epochs: 5
  batch-size: 32
  learning-rate: 0.01
"""


def write_project(root: Path, labels: list[str], target_first: bool = False) -> Path:
    """300 rows: three gaussian blobs in four features, one class per blob."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 4]], dtype=float)
    rows = []
    for i in range(300):
        cls = i % 3
        features = centres[cls] + rng.normal(0, 0.8, size=4)
        values = [f"{v:.4f}" for v in features]
        rows.append([labels[cls], *values] if target_first else [*values, labels[cls]])
    rng.shuffle(rows)
    features = ["f1", "f2", "f3", "f4"]
    header = ["species", *features] if target_first else [*features, "species"]
    (root / "samples").mkdir(parents=True)
    (root / "samples" / "blobs.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    (root / "vergeml.yaml").write_text(SPEC)
    return root


def test_numeric_classes_train_and_list(tmp_path: Path, ml) -> None:
    root = write_project(tmp_path / "blobs", ["0", "1", "2"])
    result = ml("train", "--name", "blobs-run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("blobs-run: finished, test_acc ")
    assert result.stderr.splitlines()[0].startswith(
        "data: prepared samples/blobs.csv (210 train, 30 val, 60 test)"
    )

    listed = ml("list", "--format", "json", cwd=root)
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert run["instance"] == "blobs-run"
    assert run["status"] == "finished"
    assert run["epoch"] == run["epochs"] == 5
    assert run["test_acc"] > 0.8
    assert run["hyperparameters"]["learning_rate"] == 0.01

    config = yaml.safe_load((root / "trainings" / "blobs-run" / "config.yaml").read_text())
    assert config["classes"] == ["0", "1", "2"]
    assert config["samples-dir"] == "samples"
    assert config["data"]["input"] == {
        "type": "csv",
        "file": "blobs.csv",
        "target": "species",
        "missing": "error",
    }


def test_string_labels_train_and_config_records_classes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "iris-like", ["versicolor", "setosa", "virginica"], target_first=True)
    result = api.Project(root).train_in_process(None, name="strings", stderr=io.StringIO())
    assert result.status == "finished"
    assert result.test_acc > 0.8

    folder = root / "trainings" / "strings"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["classes"] == ["setosa", "versicolor", "virginica"]
    best = torch.load(folder / "best.pt", weights_only=True)
    assert best["classes"] == ["setosa", "versicolor", "virginica"]
    assert best["input_shape"] == [4]
    (row,) = api.Project(root).records()
    assert row["status"] == "finished" and row["test_acc"] == result.test_acc
