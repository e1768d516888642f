"""``ml queue runs.yaml``: templates, overrides, ``<name>``, ``only``, files whose
every problem is reported before anything is queued, and flexNN's multi-model files."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from vml.config import load_project
from vml.errors import UsageError
from vml.launch.runsfile import read_runs_file


def runs_by_name(project: Path) -> dict[str, dict]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        return {r["name"]: dict(r) for r in db.execute("select * from runs")}


def write_template(project: Path, name: str, **train: object) -> None:
    """The project's vergeml.yaml with ``train`` changed, as another project file."""
    base = yaml.safe_load((project / "vergeml.yaml").read_text())
    base["train"] = {**base["train"], **{k.replace("_", "-"): v for k, v in train.items()}}
    (project / name).write_text(yaml.safe_dump(base))


def test_a_runs_file_with_a_template_overrides_name_and_only(project: Path, ml) -> None:
    write_template(project, "narrow.yaml", epochs=1, hidden_size=32)
    (project / "runs.yaml").write_text(
        "config:\n"
        "  parallel: 2\n"
        "  only: [narrow, plain, linear]\n"
        "runs:\n"
        "  narrow:\n"
        "    template: <name>.yaml\n"
        "    learning-rate: 0.02\n"
        "  plain:\n"
        "    epochs: 1\n"
        "  linear:\n"
        "    model: linear\n"
        "    epochs: 1\n"
        "  left-out:\n"
        "    epochs: 1\n"
    )
    result = ml("queue", "runs.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "3 run(s) queued, 2 at a time" in result.stderr
    runs = runs_by_name(project)
    assert set(runs) == {"narrow", "plain", "linear"}
    assert {r["status"] for r in runs.values()} == {"finished"}
    assert len({r["sweep"] for r in runs.values()}) == 1
    narrow = yaml.safe_load(runs["narrow"]["hyperparameters"])
    assert (narrow["hidden_size"], narrow["learning_rate"], narrow["epochs"]) == (
        32,
        0.02,
        1,
    )  # template + override
    plain = yaml.safe_load(runs["plain"]["hyperparameters"])
    assert (plain["hidden_size"], plain["learning_rate"]) == (128, 0.001)  # the project's vergeml.yaml
    assert runs["linear"]["model"] == "linear"
    assert (project / "trainings" / "narrow" / "vergeml.yaml").is_file()
    assert not (project / "trainings" / "plain" / "vergeml.yaml").exists()

    again = ml("queue", "runs.yaml", "--needed", cwd=project)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(--needed)") == 3 and "nothing to run" in again.stderr


def test_every_problem_of_a_runs_file_is_reported_and_nothing_is_queued(project: Path, ml) -> None:
    (project / "bad.yaml").write_text(
        "config:\n"
        "  parallel: zero\n"
        "  backend: slurm\n"
        "  only: [small, missing]\n"
        "runs:\n"
        "  small:\n"
        "    learning-rate: fast\n"
        "    epochs: 0\n"
        "  wide:\n"
        "    hidden-sise: 256\n"
        "  other:\n"
        "    template: nowhere.yaml\n"
        "  escape:\n"
        "    template: ../../etc/passwd\n"
        "  net:\n"
        "    model: nosuch\n"
    )
    result = ml("queue", "bad.yaml", cwd=project)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.yaml has 9 problem(s); nothing was queued" in result.stderr
    for expected in (
        "config.parallel: 'zero' is not an integer",
        "config.backend: 'slurm' is not one of local, ray",
        "run 'small': invalid value --learning-rate=fast",
        "run 'small': invalid value --epochs=0",
        "run 'wide': unknown hyperparameter --hidden-sise, did you mean hidden-size?",
        "run 'other': template nowhere.yaml: no such file",
        "run 'escape': template ../../etc/passwd is outside the project",
        "run 'net': unknown model 'nosuch'",
        "config.only names no such run: missing",
    ):
        assert expected in result.stderr, expected
    assert not (project / "trainings" / "vml.db").exists()


def test_a_missing_or_malformed_runs_file_is_one_line(project: Path, ml) -> None:
    missing = ml("queue", "nothere.yaml", cwd=project)
    assert missing.returncode == 2 and "no runs file nothere.yaml" in missing.stderr
    (project / "empty.yaml").write_text("config: {parallel: 2}\n")
    empty = ml("queue", "empty.yaml", cwd=project)
    assert empty.returncode == 2 and "needs a 'runs:' mapping" in empty.stderr
    (project / "broken.yaml").write_text("runs:\n  a: [\n")
    broken = ml("queue", "broken.yaml", cwd=project)
    assert broken.returncode == 2 and "YAML syntax error" in broken.stderr


def test_a_run_with_its_own_project_file_resumes_with_it(project: Path, ml) -> None:
    import time

    (project / "runs.yaml").write_text("runs:\n  lin:\n    model: linear\n    epochs: 600\n")
    started = ml("queue", "runs.yaml", "--detach", cwd=project)
    assert started.returncode == 0, started.stderr
    end = time.monotonic() + 120
    while not (
        runs_by_name(project).get("lin", {}).get("status") == "running"
        and runs_by_name(project)["lin"]["epoch"] >= 1
    ):
        assert time.monotonic() < end, "timed out waiting for the run to train"
        time.sleep(0.1)
    assert ml("cancel", "lin", cwd=project).returncode == 0
    # One epoch more than it did, not the 600 asked for: what resumes is the run's own
    # file either way (vergeml.yaml names mlp; the run's own file names linear).
    total = runs_by_name(project)["lin"]["epoch"] + 1
    resumed = ml("resume", "lin", "--epochs", str(total), cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    run = runs_by_name(project)["lin"]
    assert (run["status"], run["model"], run["epoch"]) == ("finished", "linear", total)


def listed(project: Path, ml) -> list[dict]:
    result = ml("list", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_flexnn_multi_model_file_runs_the_chosen_models_two_at_a_time(project: Path, ml) -> None:
    # Enough epochs (a few tenths of a second each) that two runs started together overlap.
    write_template(project, "single_model.yaml", epochs=8, hidden_size=32)
    (project / "multi.yaml").write_text(
        "Nbr_processes: 2\n"
        "Model_run: [Model002, Model001]\n"
        "Model001:\n"
        "  Template: single_model.yaml\n"
        "  learning-rate: 0.01\n"
        "Model002:\n"
        "  template: single_model.yaml\n"
        "  train: {dropout: 0.2}\n"
        "Model003:\n"
        "  Template: single_model.yaml\n"
    )
    result = ml("queue", "multi.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "2 run(s) queued, 2 at a time" in result.stderr
    runs = {run["instance"]: run for run in listed(project, ml)}
    assert set(runs) == {"Model001", "Model002"}  # Model_run's choice, the names as written
    assert {run["status"] for run in runs.values()} == {"finished"}
    one, two = runs["Model001"]["hyperparameters"], runs["Model002"]["hyperparameters"]
    assert (one["hidden_size"], one["epochs"], one["learning_rate"]) == (32, 8, 0.01)  # template + override
    assert (two["hidden_size"], two["dropout"], two["learning_rate"]) == (32, 0.2, 0.001)
    spans = [
        (datetime.fromisoformat(run["training_start"]), datetime.fromisoformat(run["training_end"]))
        for run in runs.values()
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans  # both trained at once


def test_later_flexnn_flags_in_config_and_model_name(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)  # messages name files as ml shows them, from the project
    (project / "multi.yaml").write_text(
        "config:\n"
        "  nbr_processes: 3\n"
        "  CPU_per_model: 2\n"
        "  model_run: Model002\n"  # a lone name, as flexNN takes it
        "Model001:\n"
        "  Template: vergeml.yaml\n"
        "Model002:\n"
        "  TEMPLATE: vergeml.yaml\n"
        "  data: {cache: <model_name>}\n"
    )
    with pytest.raises(UsageError) as refused:
        read_runs_file(load_project(project), project / "multi.yaml")
    assert (
        "run 'Model002': unknown cache mode 'model002'" in refused.value.message
    )  # <model_name> -> its name
    text = (project / "multi.yaml").read_text().replace("  data: {cache: <model_name>}\n", "")
    (project / "multi.yaml").write_text(text)
    read = read_runs_file(load_project(project), project / "multi.yaml")
    assert [entry.name for entry in read.entries] == ["Model002"]
    (project / "multi.yaml").write_text(text.replace("Model002\n", "[Model002, Model001]\n", 1))
    read = read_runs_file(load_project(project), project / "multi.yaml")
    assert [entry.name for entry in read.entries] == ["Model002", "Model001"]  # Model_run's order
    assert read.settings == {"parallel": 3, "cpus_per_run": 2}


def test_flexnn_mixes_and_unknown_flags_are_one_line_and_queue_nothing(project: Path, ml) -> None:
    cases = {
        "runs:\n  small: {epochs: 1}\nModel001:\n  Template: vergeml.yaml\n": (
            "mixes vml's runs: with flexNN's top-level Model001: put every entry under runs:"
        ),
        "config: {parallel: 2}\nNbr_processes: 2\nModel001: {epochs: 1}\n": (
            "mixes config: with flexNN's top-level Nbr_processes: move them into config:"
        ),
        "Nbr_process: 2\nModel001: {epochs: 1}\n": (
            "Nbr_process: 2: unknown flag (did you mean Nbr_processes?",
        ),
        "Nbr_processes: 0\nGPU_per_model: one\nModel_run: [Model009]\nModel001: {epochs: 1}\n": (
            "Nbr_processes: 0 is too small (at least 1)",
            "GPU_per_model: 'one' is not an integer",
            "Model_run names no such run: Model009 (runs: Model001)",
        ),
        "config:\n  Nbr_processes: 2\n  parallel: 2\n  workers: 4\nModel001: {epochs: 1}\n": (
            "config.parallel: sets what config.Nbr_processes sets; keep one",
            "config.workers: unknown setting",
        ),
        "Model001:\n  Template: vergeml.yaml\n  Trainer: {params: {max_epochs: 3}}\n": (
            "run 'Model001': Trainer: ThunderTorch's single-model keys, which vml does not read",
        ),
    }
    for text, expected in cases.items():
        (project / "multi.yaml").write_text(text)
        result = ml("queue", "multi.yaml", cwd=project)
        assert result.returncode == 2, text
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        if isinstance(expected, str):  # a mix: one line
            assert len(lines) == 1 and lines[0].startswith(f"ml: error: multi.yaml {expected}"), lines
        else:  # each problem on a line of its own
            assert lines[0] == f"ml: error: multi.yaml has {len(expected)} problem(s); nothing was queued:"
            assert [line.strip()[: len(e)] for line, e in zip(lines[1:], expected, strict=True)] == list(
                expected
            )
    assert listed(project, ml) == []
