"""``ml queue runs.yaml``: templates, overrides, ``<name>``, ``only``, and files whose
every problem is reported before anything is queued."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml


def runs_by_name(project: Path) -> dict[str, dict]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        return {r["name"]: dict(r) for r in db.execute("select * from runs")}


def test_a_runs_file_with_a_template_overrides_name_and_only(project: Path, ml) -> None:
    base = yaml.safe_load((project / "vergeml.yaml").read_text())
    base["train"] = {**base["train"], "epochs": 1, "hidden-size": 32}
    (project / "narrow.yaml").write_text(yaml.safe_dump(base))
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
    resumed = ml("resume", "lin", cwd=project)  # vergeml.yaml names mlp; the run's own file names linear
    assert resumed.returncode == 0, resumed.stderr
    run = runs_by_name(project)["lin"]
    assert (run["status"], run["model"], run["epoch"]) == ("finished", "linear", 600)
