"""Models from three places: built-ins (mlp, cnn, linear), the project's own file,
and installed plugins (entry point group ``vml.models``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import image_project, run_ml_in_process_report_torch

from vml import api

NET = '''
"""A two-layer net of the project's own."""
from typing import Literal

import math
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes, width: int = 64, act: Literal["relu", "tanh"] = "relu"):
        super().__init__()
        activation = nn.ReLU() if act == "relu" else nn.Tanh()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), width), activation, nn.Linear(width, num_classes)
        )

    def forward(self, x):
        return self.layers(x)
'''


def set_model(project: Path, model: str) -> None:
    spec = yaml.safe_load((project / "vergeml.yaml").read_text())
    spec["model"] = model
    (project / "vergeml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def train(project: Path, *args: str, name: str):
    out = io.StringIO()
    return api.Project(project).train_in_process(list(args), name=name, stderr=out), out.getvalue()


def test_cnn_trains_on_an_image_folder(tmp_path: Path) -> None:
    project = image_project(tmp_path / "images")
    result, out = train(project, "--learning-rate=0.005", name="conv")
    assert result.status == "finished", out
    assert result.test_acc > 0.7


def test_cnn_on_a_table_is_refused_before_anything_is_recorded(project: Path, ml) -> None:
    set_model(project, "cnn")
    result = ml("train", "--epochs=1", cwd=project)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("ml: error: model cnn needs images")
    assert "Traceback" not in result.stderr
    assert json.loads(ml("list", "--format", "json", cwd=project).stdout) == []


def test_linear_baseline(project: Path) -> None:
    set_model(project, "linear")
    result, out = train(project, "--epochs=5", "--learning-rate=0.01", name="lin")
    assert result.status == "finished", out
    assert result.test_acc > 0.85


def test_project_model_file_declares_hyperparameters(project: Path, ml) -> None:
    (project / "net.py").write_text(NET)
    set_model(project, "./net.py:Net")
    stdout, imported_torch = run_ml_in_process_report_torch(["help", "train"], project)
    assert not imported_torch  # the file is read, not run
    assert "| --width | int | 64 |" in stdout
    assert "| --act | choice | relu | relu, tanh |" in stdout

    result, out = train(project, "--epochs=3", "--width=32", "--act=tanh", name="own")
    assert result.status == "finished", out
    assert result.test_acc > 0.8

    bad = ml("train", "--act=sigmoid", cwd=project)
    assert bad.returncode == 2 and "--act=sigmoid" in bad.stderr and "relu, tanh" in bad.stderr
    typo = ml("train", "--widht=3", cwd=project)
    assert typo.returncode == 2 and "did you mean width?" in typo.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("./nope.py:Net", "model file './nope.py' not found"),
        ("./net.py:Missing", "has no class or function 'Missing'"),
        ("../outside.py:Net", "outside the project"),
    ],
)
def test_bad_model_references(project: Path, ml, model: str, message: str) -> None:
    (project / "net.py").write_text(NET)
    set_model(project, model)
    result = ml("train", cwd=project)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[0]
    assert "vergeml.yaml:" in result.stderr.splitlines()[0]


def test_unknown_model_name_suggests_the_closest(project: Path, ml) -> None:
    set_model(project, "mpl")
    result = ml("train", cwd=project)
    assert result.returncode == 2 and "did you mean mlp?" in result.stderr


def test_plugin_model_from_an_installed_entry_point(project: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "vmlplug-0.1.dist-info").mkdir(parents=True)
    (site / "vmlplug-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: vmlplug\nVersion: 0.1\n"
    )
    (site / "vmlplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[vml.models]\ntiny = vmlplug:build\nTiny-Net = vmlplug:build\nbroken = vmlmissing:build\n"
    )
    (site / "vmlplug.py").write_text(
        textwrap.dedent(
            '''
            """A tiny plugin network."""
            import math
            from typing import Literal


            def build(input_shape, num_classes, hidden: int = 16, act: Literal["ReLU", "GELU"] = "ReLU"):
                """Tiny: one hidden layer from a plugin."""
                from torch import nn

                return nn.Sequential(
                    nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), getattr(nn, act)(), nn.Linear(hidden, num_classes)
                )
            '''
        )
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HOME": str(tmp_path)}

    def ml(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vml", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = ml("help", "models").stdout
    assert "**tiny**: Tiny: one hidden layer from a plugin." in listed
    # Built-ins first; a broken plugin is listed with its error and breaks nothing else.
    assert listed.index("**mlp**") < listed.index("**linear**") < listed.index("**tiny**")
    assert (
        "**broken**: plugin vmlmissing:build is broken: failed to load: No module named 'vmlmissing'"
        in listed
    )
    assert ml("help", "tiny-net").stdout.startswith("# Model Tiny-Net\n")
    set_model(project, "tiny")
    assert "| --hidden | int | 16 |" in ml("help", "train").stdout
    # Literal choices match in any case and keep the declared spelling.
    result = ml("train", "--epochs=2", "--hidden=24", "--act=gelu", "--name=plug")
    assert result.returncode == 0, result.stderr
    assert "plug: finished" in result.stdout
    config = yaml.safe_load((project / "trainings" / "plug" / "config.yaml").read_text())
    assert config["model"] == "tiny" and config["train"]["hidden"] == 24 and config["train"]["act"] == "GELU"
    set_model(project, "broken")
    refused = ml("train", "--epochs=1")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == (
        "ml: error: vergeml.yaml:1:8: model plugin 'broken' (vmlmissing:build) failed to load: "
        "No module named 'vmlmissing' (fix or uninstall the plugin)"
    )
