"""A continuous target: regression with an mse/l1 loss, and a clear error without one."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import yaml

from vml import api


def make_regression_project(root: Path, loss: str | None) -> Path:
    """Prices that are a noisy linear function of four features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    price = x @ np.array([3.0, -2.0, 0.5, 1.0]) + 10 + rng.normal(scale=0.1, size=400)
    (root / "data").mkdir(parents=True)
    rows = ["a,b,c,d,price"] + [
        ",".join(f"{v:.5f}" for v in (*features, p)) for features, p in zip(x, price, strict=True)
    ]
    (root / "data" / "houses.csv").write_text("\n".join(rows) + "\n")
    train = {"epochs": 40, "learning-rate": 0.01}
    if loss:
        train["loss"] = loss
    spec = {
        "model": "mlp",
        "data": {
            "input": {"type": "csv", "file": "houses.csv", "target": "price"},
            "preprocess": [{"op": "standardize"}],
        },
        "train": train,
    }
    (root / "vergeml.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_mse_regression_learns_and_records_loss_only(tmp_path: Path) -> None:
    root = make_regression_project(tmp_path / "houses", "mse")
    out = io.StringIO()
    result = api.Project(root).train_in_process(name="reg", stderr=out)
    assert result.status == "finished", out.getvalue()
    assert result.test_acc is None
    # The targets have variance ~15; a fitted model is far below that.
    assert result.test_loss < 1.0
    assert "acc" not in out.getvalue().splitlines()[-1]
    with sqlite3.connect(root / "trainings" / "vml.db") as db:
        monitor, test_acc = db.execute("select monitor, test_acc from runs").fetchone()
        keys = {k for (k,) in db.execute("select distinct key from metrics")}
    assert (monitor, test_acc) == ("val_loss", None)
    assert keys == {"loss", "val_loss", "step_loss", "lr"}
    config = yaml.safe_load((root / "trainings" / "reg" / "config.yaml").read_text())
    assert config["classes"] == []


def test_predict_prints_one_value_per_row_for_a_regression(tmp_path: Path, ml) -> None:
    root = make_regression_project(tmp_path / "houses", "mse")
    assert api.Project(root).train_in_process(name="reg", stderr=io.StringIO()).status == "finished"
    rows = (root / "data" / "houses.csv").read_text().splitlines()
    (tmp_path / "new.csv").write_text("\n".join(rows[:4]) + "\n")
    result = ml("predict", "reg", str(tmp_path / "new.csv"), cwd=root)
    assert result.returncode == 0, result.stderr
    header, *lines = [line.split() for line in result.stdout.splitlines() if line.strip() and "─" not in line]
    assert header == ["input", "value"]
    assert [line[0] for line in lines] == [f"{tmp_path / 'new.csv'}:{n}" for n in (2, 3, 4)]
    truth = [float(row.rsplit(",", 1)[1]) for row in rows[1:4]]
    assert all(abs(float(line[1]) - t) < 3 for line, t in zip(lines, truth, strict=True))


def test_continuous_target_without_a_regression_loss_is_refused(tmp_path: Path, ml) -> None:
    root = make_regression_project(tmp_path / "houses", None)
    result = ml("train", cwd=root)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("ml: error:") and "continuous" in first and "loss: mse" in first
    assert json.loads(ml("list", "--format", "json", cwd=root).stdout) == []


def test_val_acc_monitor_with_a_regression_loss_is_refused(tmp_path: Path, ml) -> None:
    root = make_regression_project(tmp_path / "houses", "l1")
    result = ml("train", "--monitor=val_acc", cwd=root)
    assert result.returncode == 2
    assert "--monitor=val_loss" in result.stderr.splitlines()[0]
