"""``ml tune``: real Optuna over real runs on the digits. A space with clearly hopeless
points (a learning rate too small to learn in time) must prune; parallel trials share
the store without lock errors; a study outlives a driver killed with SIGKILL and
stops with Ctrl-C; bad input records nothing."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import run_ml, start_ml

from vml.store import RunStore

DEADLINE = 120.0
# lr 1e-5 learns next to nothing in a few epochs: always pruned once a 1e-2 trial finished.
HOPELESS_SPACE = ("--learning-rate=0.00001,0.01", "--hidden-size=16,32")


def db(project: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(project / "trainings" / "vml.db")
    conn.row_factory = sqlite3.Row
    return conn


def study_runs(project: Path, study: str) -> list[dict]:
    """The study's runs by trial number, hyperparameters decoded (the store may still
    be being created by the driver: RunStore waits for its migration)."""
    if not (project / "trainings" / "vml.db").exists():
        return []
    with RunStore(project / "trainings" / "vml.db") as store:
        return sorted(store.sweep_runs(study), key=lambda r: r["trial"])


def study_id(project: Path) -> str:
    with db(project) as conn:
        return conn.execute("select id from sweeps where study is not null order by created_at desc").fetchone()[0]


def wait_until(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_study_prunes_hopeless_trials_and_shows_its_best(project: Path, ml) -> None:
    result = ml(
        "tune", "--sampler", "grid", "--seed", "3", "--parallel", "1", "--epochs=15", "--name", "lr-study",
        *HOPELESS_SPACE, cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "study lr-study: 4 trials, grid sampler, median pruner, maximize val_acc" in result.stderr
    runs = study_runs(project, "lr-study")
    assert [r["trial"] for r in runs] == [0, 1, 2, 3]
    by_state = {r["status"] for r in runs}
    assert by_state <= {"finished", "pruned"} and "pruned" in by_state
    first_good = min(r["trial"] for r in runs if r["status"] == "finished")
    for run in runs:
        hopeless = run["hyperparameters"]["learning_rate"] == 0.00001
        if hopeless and run["trial"] > first_good:
            # Pruned at an epoch boundary, with the reason, and its best checkpoint kept.
            assert run["status"] == "pruned", run
            assert re.fullmatch(
                r"pruned at epoch (\d+): val_acc [\d.]+ below the median [\d.]+ at epoch \1", run["prune_reason"]
            ), run["prune_reason"]
            assert run["epoch"] < 15
            assert (project / "trainings" / run["name"] / "best.pt").is_file()
            assert f"{run['name']}: {run['prune_reason']}" in result.stderr
    pruned = next(r for r in runs if r["status"] == "pruned")

    listed = ml("list", "--status", "pruned", "--format", "json", cwd=project)
    assert {r["instance"] for r in json.loads(listed.stdout)} == {r["name"] for r in runs if r["status"] == "pruned"}
    swept = ml("list", "--sweep", "lr-study", "--format", "json", cwd=project)
    assert {r["instance"] for r in json.loads(swept.stdout)} == {r["name"] for r in runs}
    shown = ml("show", pruned["name"], cwd=project)
    assert "pruned" in shown.stdout and pruned["prune_reason"] in shown.stdout

    info = json.loads(ml("tune", "show", "lr-study", "--format", "json", cwd=project).stdout)
    good = [r for r in runs if r["status"] == "finished"]
    best = max(good, key=lambda r: r["best_metric"])
    assert info["study"] == "lr-study"
    assert info["best"]["instance"] == best["name"] and info["best"]["value"] == best["best_metric"]
    assert info["best"]["hyperparameters"] == {
        "learning_rate": 0.01, "hidden_size": best["hyperparameters"]["hidden_size"]
    }  # fmt: skip
    assert info["best"]["command"].startswith("ml train --epochs=15 --learning-rate=0.01 --hidden-size=")
    assert [(t["instance"], t["state"]) for t in info["trials"]] == [(r["name"], r["status"]) for r in runs]
    assert set(info["importance"]) <= {"learning_rate", "hidden_size"}  # needs two finished trials
    assert info["epochs_trained"] == sum(r["epoch"] for r in runs) < 4 * 15
    text = ml("tune", "show", "lr-study", cwd=project).stdout
    assert f"best: {best['name']} (trial {best['trial']}), val_acc {best['best_metric']:.4f}" in text
    assert "pruned because" in text


def test_parallel_trials_share_the_store_without_lock_errors(project: Path, ml) -> None:
    result = ml(
        "tune", "--trials", "4", "--parallel", "2", "--seed", "1", "--epochs=2", "--pruner", "none",
        "--learning-rate=1e-3:1e-1:log", "--hidden-size=16:64:log", "--batch-size=32,64", cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = study_id(project)
    runs = study_runs(project, study)
    assert sorted(r["trial"] for r in runs) == list(range(4))
    assert all(r["status"] == "finished" for r in runs), [(r["name"], r["status"]) for r in runs]
    # Two trials at once: their spans overlap.
    spans = sorted((r["started_at"], r["ended_at"]) for r in runs)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    for run in runs:
        hparams = run["hyperparameters"]
        assert 1e-3 <= hparams["learning_rate"] <= 1e-1 and 16 <= hparams["hidden_size"] <= 64
        assert hparams["batch_size"] in (32, 64) and hparams["epochs"] == 2
        folder = project / "trainings" / run["name"]
        output = "".join(p.read_text() for p in folder.glob("*.txt"))
        assert "locked" not in output
    assert "locked" not in result.stderr
    info = json.loads(ml("tune", "show", study, "--format", "json", cwd=project).stdout)
    importance = info["importance"]
    assert set(importance) == {"learning_rate", "hidden_size", "batch_size"}
    assert abs(sum(importance.values()) - 1) < 0.01 and list(importance.values()) == sorted(importance.values(), reverse=True)


def test_a_study_outlives_its_driver_killed_with_sigkill(project: Path, tmp_path: Path, ml) -> None:
    driver = start_ml(
        "tune", "--trials", "4", "--parallel", "2", "--sampler", "random", "--seed", "2", "--pruner", "none",
        "--epochs=10", "--learning-rate=1e-3:1e-2:log", "--name", "long", cwd=project, home=tmp_path,
    )  # fmt: skip
    try:
        wait_until(lambda: sum(r["status"] == "running" for r in study_runs(project, "long")) == 2, "2 trials running")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
    # No trial is left running for ever: they finish on their own (or read crashed).
    listed = lambda: json.loads(ml("list", "--sweep", "long", "--format", "json", cwd=project).stdout)  # noqa: E731
    wait_until(lambda: all(r["status"] not in ("queued", "running") for r in listed()), "the orphaned trials to end")
    assert len(study_runs(project, "long")) == 2
    resumed = ml("tune", "--resume", "long", cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    runs = study_runs(project, "long")
    assert len(runs) == 4 and all(r["status"] == "finished" for r in runs)
    assert sorted(r["trial"] for r in runs) == [0, 1, 2, 3]
    assert len({r["hyperparameters"]["learning_rate"] for r in runs}) == 4  # no draw replayed
    info = json.loads(ml("tune", "show", "long", "--format", "json", cwd=project).stdout)
    assert info["state"] == "ended" and len(info["trials"]) == 4 and info["best"] is not None


def test_ctrl_c_stops_a_foreground_study_and_its_trials(project: Path, tmp_path: Path) -> None:
    driver = start_ml(
        "tune", "--trials", "6", "--parallel", "2", "--seed", "2", "--epochs=200",
        "--learning-rate=1e-3:1e-2:log", "--name", "stopped", cwd=project, home=tmp_path,
    )  # fmt: skip
    try:
        wait_until(lambda: any(r["epoch"] >= 1 for r in study_runs(project, "stopped")), "a trial's first epoch")
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=DEADLINE)
    finally:
        driver.kill()
    assert driver.returncode == 130, err
    assert "ml tune --resume stopped" in out
    runs = study_runs(project, "stopped")
    assert runs and all(r["status"] == "cancelled" for r in runs), [(r["name"], r["status"]) for r in runs]
    assert len(runs) <= 3  # no new trial after Ctrl-C


def test_a_runs_file_tune_block_runs_a_study_in_the_background(project: Path, ml) -> None:
    (project / "study.yaml").write_text(
        "tune:\n  name: from-file\n  trials: 3\n  parallel: 1\n  sampler: random\n  seed: 4\n"
        "  search:\n    learning-rate: 1e-3:1e-1:log\n    batch-size: [32, 64]\n    epochs: 2\n"
    )
    started = ml("tune", "study.yaml", "--detach", cwd=project)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "from-file"
    show = lambda: json.loads(ml("tune", "show", "from-file", "--format", "json", cwd=project).stdout)  # noqa: E731
    info = wait_until(lambda: (s := show())["state"] == "ended" and s, "the detached study to end")
    assert [t["state"] for t in info["trials"]] == ["finished"] * 3
    assert all(t["hyperparameters"]["batch_size"] in (32, 64) for t in info["trials"])
    assert info["sampler"] == "random" and info["fixed"] == {"epochs": "2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-rate=1e-1:1e-4"], "--learning-rate=1e-1:1e-4: the range is empty (LOW must be below HIGH)"),
        (["--dropout=0:1:log"], "--dropout=0:1:log: a log range needs LOW > 0"),
        (["--sampler", "cmaes", "--batch-size=32,64"], "--batch-size=32,64: --sampler cmaes samples numeric ranges only"),
        (["--sampler", "grid", "--dropout=0:0.5"], "--sampler grid needs lists of values"),
        (["--epochs=3"], "nothing to search: give a range or a list"),
        (["--trials", "0", "--dropout=0:0.5"], "--trials 0: a study needs at least 1 trial"),
        (["--sampler", "tpee", "--dropout=0:0.5"], "--sampler tpee: unknown (did you mean tpe?)"),
        (["--pruner", "hyperbnd", "--dropout=0:0.5"], "--pruner hyperbnd: unknown (did you mean hyperband?)"),
        (["--monitor=val_f1", "--dropout=0:0.5"], "val_f1"),
        (["--dropout=0:1.5"], "1.5"),
        (["--timeout", "soon", "--dropout=0:0.5"], "--timeout soon: not a duration"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_records_nothing(project: Path, ml, args, message) -> None:
    result = ml("tune", *args, cwd=project)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    store = project / "trainings" / "vml.db"
    if store.exists():
        with db(project) as conn:
            assert conn.execute("select count(*) from sweeps").fetchone()[0] == 0
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_show_names_the_studies_there_are(project: Path, tmp_path: Path) -> None:
    result = run_ml("tune", "show", "st-nope", cwd=project, home=tmp_path)
    assert result.returncode == 3
    assert "no study 'st-nope' (ml tune starts one)" in result.stderr
