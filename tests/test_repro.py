"""The reproducibility record of every run (in a real git repository with a clean and
a dirty tree, and outside git), ``--require-clean``, ``ml rerun`` reproducing a CPU
run's test metrics exactly, and ``ml diff``."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from vml import api

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def committed(project: Path) -> Path:
    """The project as a git repository with everything committed (runs and cache ignored)."""
    (project / ".gitignore").write_text("trainings/\n.cache/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the project")
    return project


def train(root: Path, name: str, *overrides: str) -> dict:
    out = io.StringIO()
    result = api.Project(root).train_in_process(["--epochs=1", *overrides], name=name, stderr=out)
    assert result.status == "finished", out.getvalue()
    return json.loads((root / "trainings" / name / "repro.json").read_text())


def test_a_clean_tree_is_recorded_with_its_commit_and_no_patch(project: Path) -> None:
    committed(project)
    record = train(project, "clean-run")
    assert record["git"]["commit"] == git(project, "rev-parse", "HEAD")
    assert (record["git"]["branch"], record["git"]["dirty"], record["git"]["patch_file"]) == (
        "main",
        False,
        None,
    )
    assert record["git"]["untracked"] == []
    assert not (project / "trainings" / "clean-run" / "repro.patch").exists()
    assert record["seeds"] == {"random_seed": 42} and record["device"] == "cpu"
    assert record["data_fingerprint"] == api.Project(project).list_runs()[0]["fingerprint"]
    assert any(entry.startswith("torch==") for entry in record["packages"])
    assert record["torch"].startswith("2.") and record["python"].count(".") == 2


def test_a_dirty_tree_keeps_its_patch_and_untracked_files(project: Path, ml) -> None:
    committed(project)
    with (project / "vergeml.yaml").open("a") as spec:
        spec.write("# try a smaller batch next\n")
    (project / "net.py").write_text("import torch\n")
    (project / "data" / "more.csv").write_text("not code\n")  # data is the fingerprint's business
    record = train(project, "dirty-run")
    code = record["git"]
    assert code["dirty"] is True and code["changed"] == ["vergeml.yaml"]
    assert [entry["path"] for entry in code["untracked"]] == ["net.py"]
    patch = (project / "trainings" / "dirty-run" / "repro.patch").read_text()
    assert "+# try a smaller batch next" in patch and code["patch_lines"] == patch.count("\n")
    shown = ml("show", "dirty-run", cwd=project)
    lines = {line.split(None, 1)[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert "dirty: 1 changed file (repro.patch" in lines["code"]
    assert lines["untracked"].split()[-1] == "net.py"
    assert json.loads(ml("show", "dirty-run", "-f", "json", cwd=project).stdout)["reproducibility"] == record


def test_outside_git_the_record_says_so_and_training_goes_on(project: Path) -> None:
    record = train(project, "no-git")
    assert record["git"] == {"repository": None, "note": "not in a git repository"}
    assert record["command"]  # this process's command line


def test_require_clean_refuses_a_dirty_tree_and_records_nothing(project: Path, ml) -> None:
    committed(project)
    (project / "net.py").write_text("print('new')\n")
    for args in (("train", "--require-clean"), ("train", "--require-clean", "--learning-rate=0.01,0.1")):
        refused = ml(*args, cwd=project)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.splitlines() == [
            "ml: error: --require-clean: the code is not committed: 1 untracked source file (net.py) "
            "(commit or stash the changes, or train with --require-clean=false)"
        ]
    spec = yaml.safe_load((project / "vergeml.yaml").read_text())
    spec["train"]["require-clean"] = True
    (project / "vergeml.yaml").write_text(yaml.safe_dump(spec))
    git(project, "add", "vergeml.yaml")
    git(project, "commit", "-q", "-m", "require a clean tree")
    refused = ml("train", cwd=project)
    assert refused.returncode == 2 and "1 untracked source file (net.py)" in refused.stderr
    assert api.Project(project).list_runs() == []
    git(project, "add", "net.py")
    git(project, "commit", "-q", "-m", "the net")
    assert train(project, "clean-now")["git"]["dirty"] is False


def test_require_clean_outside_git_says_why(project: Path, ml) -> None:
    refused = ml("train", "--require-clean", "--epochs=1", cwd=project)
    assert refused.returncode == 2
    assert "is not in a git repository" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_a_rerun_reproduces_a_cpu_run_and_says_what_changed(project: Path, ml) -> None:
    committed(project)
    first = ml("train", "--epochs=2", "--dropout=0.3", "--device=cpu", "--name=original", cwd=project)
    assert first.returncode == 0, first.stderr
    (project / "notes.md").write_text("try more epochs\n")
    spec = (project / "vergeml.yaml").read_text()
    (project / "vergeml.yaml").write_text(spec.replace("test-split: 10%", "test-split: 25%"))
    again = ml("rerun", "original", "--name", "again", cwd=project)
    assert again.returncode == 0, again.stderr
    said = again.stderr.splitlines()
    assert said[0] == "rerun of original: what differs now"
    assert "  untracked source files: 0 -> 1 (1 new)" in said
    assert "  uncommitted changes: none -> 13 lines of patch" in said
    assert not any("data fingerprint" in line for line in said)  # it trains on the split it recorded
    runs = {run["instance"]: run for run in api.Project(project).list_runs()}
    for key in ("test_acc", "test_loss", "test_f1", "test_auc", "test_ap", "best_metric"):
        assert runs["again"][key] == runs["original"][key], key
    assert runs["again"]["hyperparameters"] == runs["original"]["hyperparameters"]
    assert runs["again"]["rerun_of"] == runs["original"]["instance"]
    assert "rerun_of" in ml("show", "again", cwd=project).stdout
    tested = ml("test", "again", cwd=project)  # with the settings the rerun kept, not today's
    assert tested.returncode == 0 and f"test_acc {runs['original']['test_acc']:.4f}" in tested.stdout
    taken = ml("rerun", "original", "--name", "again", cwd=project)
    assert taken.returncode == 2 and taken.stderr == (
        "ml: error: a run named 'again' already exists (pick another --name)\n"
    )


def test_rerun_names_a_data_change(project: Path) -> None:
    train(project, "before")
    with (project / "data" / "digits.csv").open("a") as data:
        data.write(",".join(["0"] * 64) + ",0\n")
    source, changes = api.Project(project).rerun_plan("before")
    assert [what for what, _, _ in changes] == ["data fingerprint"]
    assert changes[0][1] == source["fingerprint"]


def test_diff_shows_hyperparameters_metrics_and_the_code_between_commits(project: Path, ml) -> None:
    committed(project)
    train(project, "first")
    spec = (project / "vergeml.yaml").read_text()
    (project / "vergeml.yaml").write_text(spec.replace("learning-rate: 0.001", "learning-rate: 0.003"))
    git(project, "commit", "-q", "-am", "a faster rate")
    (project / "vergeml.yaml").write_text(spec.replace("learning-rate: 0.001", "learning-rate: 0.005"))
    train(project, "second")
    result = ml("diff", "first", "second", cwd=project)
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("\n\n")[0].splitlines()
    assert ["*", "hyperparameter", "learning_rate", "0.001", "0.005"] in [line.split() for line in table]
    assert any("metric" in line.split()[:2] and "test_acc" in line for line in table)
    assert "-  learning-rate: 0.001\n+  learning-rate: 0.003" in result.stdout  # git diff of the commits
    assert "uncommitted changes of second (repro.patch):" in result.stdout
    found = json.loads(ml("diff", "first", "second", "-f", "json", cwd=project).stdout)
    assert found["code"]["commits"][0] != found["code"]["commits"][1]
    assert found["patches"][0] == "" and "+  learning-rate: 0.005" in found["patches"][1]
    same = ml("diff", "first", "@first", cwd=project)
    assert same.returncode == 2 and "the same run" in same.stderr


@pytest.mark.parametrize("kind", ["sweep", "tune"])
def test_require_clean_refuses_sweeps_and_studies_before_recording(project: Path, ml, kind: str) -> None:
    committed(project)
    (project / "vergeml.yaml").write_text((project / "vergeml.yaml").read_text() + "# dirty\n")
    args = (
        ("train", "--require-clean", "--learning-rate=0.01,0.1", "--epochs=1")
        if kind == "sweep"
        else ("tune", "--require-clean", "--learning-rate=1e-4:1e-1:log", "--trials=2", "--epochs=1")
    )
    refused = ml(*args, cwd=project)
    assert refused.returncode == 2, refused.stderr
    assert "1 changed file (vergeml.yaml)" in refused.stderr
    assert api.Project(project).list_runs() == [] and api.Project(project).sweep_ids() == []
