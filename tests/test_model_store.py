"""The model store: ``ml store RUN --as NAME`` keeps numbered versions under
``models/NAME/vN/`` that outlive their runs; ``ml models`` lists them and ``ml models
delete NAME:vN`` removes one."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import fill, run_ml

from vml import api
from vml.repro import git_state
from vml.train.inference import load_best, predict, read_inputs

NET = '''
"""The project's own net: stored models keep a copy of this file."""
import math
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes, width: int = 32):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                                    nn.Linear(width, num_classes))

    def forward(self, x):
        return self.layers(x)
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits project on its own ``./net.py`` with one trained run, ``first``."""
    root = api.create_project(tmp_path_factory.mktemp("store") / "demo")
    (root / "net.py").write_text(NET)
    spec = yaml.safe_load((root / "vergeml.yaml").read_text())
    spec["model"] = "./net.py:Net"
    (root / "vergeml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = api.Project(root).train_in_process(["--epochs=1"], name="first", stderr=io.StringIO())
    assert result.status == "finished"
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained project, for a test to change."""
    return Path(shutil.copytree(trained, tmp_path / "demo", symlinks=True))


def ml(*args: str, cwd: Path):
    return run_ml(*args, cwd=cwd, home=cwd, timeout=120)


def test_versions_outlive_their_run_and_load_without_the_project(project: Path, tmp_path: Path) -> None:
    first = ml("store", "first", "--as", "digits", cwd=project)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("stored run first as digits:v1 (")
    api.Project(project).store_model("@first", "digits")  # in process: a CLI store takes ~7 s here
    listed = ml("models", cwd=project)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[2:]]
    assert [row[:3] for row in rows] == [
        ["digits:v1", "first", "./net.py:Net"],
        ["digits:v2", "first", "./net.py:Net"],
    ]
    version = json.loads(ml("models", "--format", "json", cwd=project).stdout)[1]
    assert version["ref"] == "digits:v2" and version["run"] == "first" and version["task"] == "classification"
    assert version["labels"] == [str(d) for d in range(10)] and len(version["features"]) == 64
    assert version["test_metrics"]["test_acc"] > 0.5
    folder = project / "models" / "digits" / "v2"
    assert {"best.pt", "weights.pt", "labels.json", "config.yaml", "repro.json", "model.json", "net.py"} <= {
        p.name for p in folder.iterdir()
    }

    # The run, its folder and the project's net.py go; the stored version still predicts.
    assert ml("delete", "first", "--yes", cwd=project).returncode == 0
    (project / "net.py").write_text("raise SystemExit('the project changed its net')\n")
    assert (project / "models" / "digits" / "v2" / "best.pt").is_file()
    served = api.Project(project).served("digits")
    assert served.model == "digits:v2" and served.run == "first" and served.folder == folder
    model, checkpoint = load_best(served.folder, served.root)
    rows = tmp_path / "rows.csv"
    lines = (project / "data" / "digits.csv").read_text().splitlines()[:3]
    rows.write_text("\n".join(lines) + "\n")
    x, names = read_inputs([rows], checkpoint)
    assert [len(p["predictions"]) for p in predict(model, checkpoint, x, names, 3)] == [3, 3]
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            model.state_dict().values(),
            torch.load(folder / "weights.pt", weights_only=True).values(),
            strict=True,
        )
    )


def test_delete_takes_one_version_and_the_name_with_the_last(project: Path) -> None:
    store = api.Project(project)
    assert [store.store_model("first", "digits")["ref"] for _ in range(2)] == ["digits:v1", "digits:v2"]
    bare = ml("models", "delete", "digits", cwd=project)
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
    assert (
        bare.stderr.strip()
        == "ml: error: name the version to delete, e.g. digits:v2 (stored: digits:v1, digits:v2)"
    )
    missing = ml("models", "delete", "digits:v9", cwd=project)
    assert missing.returncode == 3  # not found
    assert missing.stderr.strip() == "ml: error: model 'digits' has no version v9 (it has v1, v2)"

    assert (
        ml("models", "delete", "digits:v1", cwd=project).stdout
        == "deleted digits:v1 (stored from run first)\n"
    )
    assert [m["ref"] for m in api.Project(project).models()] == ["digits:v2"]
    # Numbers are not reused while the name has versions: the next is v3.
    assert store.store_model("first", "digits")["ref"] == "digits:v3"
    for ref in ("digits:v2", "digits:v3"):
        store.delete_model(ref)
    assert not (project / "models" / "digits").exists()
    assert ml("models", cwd=project).stdout == "no stored models (ml store RUN --as NAME stores one)\n"


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["store", "first", "--as", "../up"], 2, "'../up' is not a model name (use letters, digits"),
        (["store", "first", "--as", "a:b"], 2, "'a:b' is not a model name"),
        (["store", "nosuchrun", "--as", "digits"], 3, "no run named 'nosuchrun'"),
        (
            ["serve", "digits:v1"],
            3,
            "no stored model 'digits' (none is stored yet; ml store RUN --as NAME stores one)",
        ),
        (["serve", "digits:2"], 2, "'digits:2': the version must be like v2, or latest (e.g. digits:v1)"),
    ],
)
def test_bad_names_are_one_line_and_write_nothing(
    project: Path, args: list[str], code: int, error: str
) -> None:
    result = ml(*args, cwd=project)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith(f"ml: error: {error}") and len(result.stderr.splitlines()) == 1
    assert not (project / "models").exists() or not any((project / "models").iterdir())


def test_stored_models_do_not_make_the_code_dirty(project: Path) -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    (project / ".gitignore").write_text("trainings/\n.cache/\n")  # models/ is not ignored
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "the project"]):
        subprocess.run(["git", *args], cwd=project, env={**os.environ, **env}, check=True)
    api.Project(project).store_model("first", "digits")
    state = git_state(project)
    assert state["commit"] and not state["dirty"] and state["untracked"] == []


def test_a_full_disk_leaves_no_half_version(trained: Path, small_disk: Path) -> None:
    project = Path(shutil.copytree(trained, small_disk / "demo", symlinks=True))
    filler = fill(small_disk, leave=64 * 1024)  # a version takes about 145 KiB
    full = ml("store", "first", "--as", "digits", cwd=project)
    assert full.returncode == 1, full.stderr
    assert full.stderr.startswith("ml: error: disk full while writing ") and "Traceback" not in full.stderr
    assert [p.name for p in (project / "models" / "digits").iterdir()] == []  # no vN, no hidden staging
    filler.unlink()
    assert api.Project(project).store_model("first", "digits")["ref"] == "digits:v1"
