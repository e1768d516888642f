"""VergeML 0.1.4's command forms in ``ml``: ``ml list COLUMN -gt VALUE``, ``--output``
and ``--order``, ``ml @NAME COMMAND``, ``ml --model=cnn new``, the global options
(``--file``/``-f``, ``--project-dir``, ``--samples-dir``, ``--trainings-dir``,
``--cache-dir``, ``--test-split``, ``--random-seed``, ...) before or after the command,
and ``ml help random robot``.

Most checks run ``ml`` in this process on runs recorded straight into the store; one
short detached training shows the options reaching the worker process."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import run_ml, run_ml_in_process_report_torch

from vml import api
from vml.cli import main
from vml.liveness import process_identity
from vml.names import ADJECTIVES, NOUNS
from vml.store import RunStore
from vml.store.runs import utcnow

# Recorded oldest first: OLD (test_acc 0.91), BLOWN (failed), NEW (0.75), LIVE (running).
OLD, BLOWN, NEW, LIVE = "old-robot", "blown-robot", "new-robot", "live-robot"


def record(
    root: Path, trainings: str = "trainings", names: tuple[str, ...] = (OLD, BLOWN, NEW, LIVE)
) -> None:
    """Runs recorded as the trainer records them, with their folders; LIVE is running
    in this process (so readers keep it running)."""
    project = api.Project(root)
    folder = root / trainings
    folder.mkdir(exist_ok=True)
    results = {
        OLD: ("finished", 0.91),
        BLOWN: ("failed", None),
        NEW: ("finished", 0.75),
        LIVE: ("running", None),
    }
    with RunStore(folder / "vml.db") as store:
        for i, name in enumerate(names):
            status, acc = results[name]
            started = f"2025-01-01T00:0{i}:00.000+00:00"
            fields = {"created_at": started, "started_at": started, "epochs": 1, "monitor": "val_acc"}
            if status == "running":
                fields |= {**process_identity(os.getpid()), "heartbeat": utcnow()}
            else:
                fields |= {"ended_at": started, "epoch": 1, "test_acc": acc, "test_loss": acc and 1 - acc}
            hparams = project.resolve({"learning_rate": 0.001 * (i + 1), "epochs": 1})
            store.create_run(name, "mlp", hparams, status=status, **fields)
            (folder / name).mkdir()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = api.create_project(tmp_path_factory.mktemp("vergeml") / "demo")
    record(root)
    record(root, "other-runs", (OLD,))  # another store, for --trainings-dir
    alt = yaml.safe_load((root / "vergeml.yaml").read_text()) | {
        "list": {"columns": ["instance", "learning-rate"]}
    }
    (root / "alt.yaml").write_text(yaml.safe_dump(alt))
    return root


@pytest.fixture
def ml_here(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``ml ARGS`` run by ``main`` in this process, in ``cwd``: ``(exit code, stdout, stderr)``."""

    def run(*args: str, cwd: Path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        before = {k: v for k, v in os.environ.items() if k.startswith("VML_")}
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        assert {k: v for k, v in os.environ.items() if k.startswith("VML_")} == before  # restored
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def listed(result: tuple[int, str, str]) -> list[str]:
    """The run names of a plain ``ml list`` table, in order."""
    code, out, err = result
    assert code == 0, err
    return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]


def one_line_error(result: tuple[int, str, str], *needles: str) -> str:
    code, out, err = result
    assert code == 2, (out, err)
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ml: error: "), err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


# ml list: VergeML's positional filters, --output, --order


def test_positional_filters_keep_the_matching_runs(recorded: Path, ml_here) -> None:
    assert listed(ml_here("list", "test-acc", "-gt", "0.8", cwd=recorded)) == [OLD]
    assert listed(ml_here("list", "test_acc", "-lte", "0.8", cwd=recorded)) == [NEW]  # VergeML's -lte
    assert listed(ml_here("list", "status", "-eq", "RUNNING", cwd=recorded)) == [LIVE]  # any case
    assert listed(ml_here("list", "status", "-neq", "finished", cwd=recorded)) == [LIVE, BLOWN]
    both = ml_here("list", "status", "-eq", "finished", "and", "learning-rate", "-gt", "0.002", cwd=recorded)
    assert listed(both) == [NEW]
    # Beside vml's own options, whose values are never read as a filter's column.
    result = ml_here(
        "list", "--sort", "test-acc", "status", "-eq", "Finished", "-c", "instance", cwd=recorded
    )
    assert listed(result) == [NEW, OLD]


def test_vergeml_output_is_format_and_order_applies_to_sort(recorded: Path, ml_here) -> None:
    code, out, _ = ml_here("list", "--output", "json", "test-acc", "-gt", "0.8", cwd=recorded)
    assert code == 0 and [run["instance"] for run in json.loads(out)] == [OLD]
    assert json.loads(ml_here("list", "-f", "json", cwd=recorded)[1])[0]["instance"] == LIVE  # vml's -f

    code, out, err = ml_here("list", "--sort", "test-acc", "--order", "desc", cwd=recorded)
    assert listed((code, out, err))[:2] == [OLD, NEW]
    assert err == (
        "ml: note: --order desc sorts by test-acc descending (VergeML 0.1.4 sorted asc descending "
        "and desc ascending); vml's form: --sort test-acc:desc\n"
    )
    assert listed(ml_here("list", "-s", "test-acc", "-o", "asc", cwd=recorded))[:2] == [NEW, OLD]
    code, out, err = ml_here("list", "-o", "asc", cwd=recorded)  # VergeML's default key: created-at
    assert listed((code, out, err)) == [OLD, BLOWN, NEW, LIVE] and "--sort training_start" in err
    assert listed(ml_here("list", "--sort", "created-at", cwd=recorded)) == [OLD, BLOWN, NEW, LIVE]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("list", "-gt", "0.8"), ("-gt needs a column before it",)),
        (("list", "test-acc", "-gt"), ("-gt needs a column before it and a value after it",)),
        (("list", "test-acc"), ("cannot read 'test-acc' as a filter", "COLUMN -OP VALUE")),
        (("list", "status", "-eq", "runing"), ("unknown status 'runing'", "running")),
        (("list", "--order", "up"), ("unknown --order 'up'", "asc or desc")),
        (("list", "--output", "xml"), ("unknown format 'xml'",)),
    ],
)
def test_a_bad_list_form_is_one_line(recorded: Path, ml_here, args: tuple[str, ...], needles) -> None:
    one_line_error(ml_here(*args, cwd=recorded), *needles)


# ml @NAME COMMAND


def test_a_run_named_before_the_command(recorded: Path, ml_here) -> None:
    code, out, err = ml_here(f"@{OLD}", "show", cwd=recorded)
    assert code == 0, err
    assert out == ml_here("show", OLD, cwd=recorded)[1]
    assert (
        ml_here(f"@{OLD}", f"@{NEW}", "compare", cwd=recorded)[1]
        == ml_here("compare", OLD, NEW, cwd=recorded)[1]
    )
    one_line_error(ml_here(f"@{OLD}", "train", cwd=recorded), "train takes no run")
    one_line_error(ml_here(f"@{OLD}", f"@{NEW}", "test", cwd=recorded), "test takes one run")
    one_line_error(ml_here(f"@{OLD}", cwd=recorded), "a command follows the run")


# ml --model=cnn new NAME


def test_new_from_the_template_of_a_model(tmp_path: Path, ml_here) -> None:
    code, out, _ = ml_here("--model=cnn", "new", "images", cwd=tmp_path)
    assert code == 0 and "from template 'images'" in out
    assert yaml.safe_load((tmp_path / "images" / "vergeml.yaml").read_text())["model"] == "cnn"
    code, out, _ = ml_here("-m", "mlp", "new", "digits", cwd=tmp_path)
    assert code == 0 and "from template 'default'" in out
    one_line_error(
        ml_here("-m", "linear", "new", "lin", cwd=tmp_path),
        "no template trains model 'linear'",
        "images (model cnn)",
    )
    one_line_error(
        ml_here("new", "mixed", "--model", "cnn", "-t", "default", cwd=tmp_path), "give one of them"
    )
    assert not (tmp_path / "lin").exists() and not (tmp_path / "mixed").exists()


# Global options before or after the command


def test_project_dir_and_file_before_or_after_the_command(recorded: Path, ml_here) -> None:
    everyone = [LIVE, NEW, BLOWN, OLD]
    assert listed(ml_here("--project-dir", str(recorded), "list", cwd=recorded.parent)) == everyone
    assert listed(ml_here("list", f"--project-dir={recorded}", cwd=recorded.parent)) == everyone
    # -f before the command is VergeML's --file; its list: columns show.
    code, out, err = ml_here("-f", "alt.yaml", "list", cwd=recorded)
    assert code == 0, err
    assert out.split()[:2] == ["instance", "learning_rate"]
    assert ml_here("list", "--file=alt.yaml", cwd=recorded)[1] == out


def test_the_list_section_gives_ml_list_its_defaults(recorded: Path, ml_here) -> None:
    # VergeML's list: sort and order (and output), then the command line wins.
    settings = yaml.safe_load((recorded / "vergeml.yaml").read_text()) | {
        "list": {"columns": ["instance", "test-acc"], "sort": "test-acc", "order": "desc", "output": "csv"}
    }
    (recorded / "sorted.yaml").write_text(yaml.safe_dump(settings))
    code, out, err = ml_here("-f", "sorted.yaml", "list", "status", "-eq", "finished", cwd=recorded)
    assert code == 0, err
    assert out.splitlines() == ["instance,test_acc", f"{OLD},0.91", f"{NEW},0.75"]
    code, out, err = ml_here(
        "-f", "sorted.yaml", "list", "-s", "test-acc", "-c", "instance", "-f", "table", cwd=recorded
    )
    assert listed((code, out, err))[:2] == [
        NEW,
        OLD,
    ]  # --sort ascending, a table: the file's sort and csv yield


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ("trainings-dir: runs", ("trainings-dir in the project file", "ml --trainings-dir=DIR")),
        ("cache-dir: /tmp/cache", ("cache-dir in the project file", "ml --cache-dir=DIR")),
        ("device: {id: cpu, swap: 2}", ("unknown key 'device.swap'",)),
    ],
)
def test_vergeml_keys_vml_reads_elsewhere_are_one_line(
    recorded: Path, ml_here, line: str, needles: tuple[str, ...]
) -> None:
    text = (recorded / "vergeml.yaml").read_text().replace("device: auto\n", "")
    (recorded / "keys.yaml").write_text(text + line + "\n")
    code, out, err = ml_here("-f", "keys.yaml", "list", cwd=recorded)
    assert code == 2 and out == "" and "Traceback" not in err
    first = err.splitlines()[0]  # then the line of keys.yaml, with a caret
    assert first.startswith("ml: error: keys.yaml:") and all(needle in first for needle in needles), err


def test_a_vergeml_device_section_and_a_column_list_are_read(recorded: Path, ml_here) -> None:
    text = (recorded / "vergeml.yaml").read_text().replace("device: auto\n", "")
    text += "device:\n  id: cpu\n  memory: 20%\n  grow-memory: true\nlist: [instance, test-acc]\n"
    (recorded / "device.yaml").write_text(text)
    code, out, err = ml_here("-f", "device.yaml", "list", cwd=recorded)
    assert code == 0, err
    assert out.split()[:2] == ["instance", "test_acc"]
    assert api.Project(recorded).resolve(None)["device"] == "auto"  # vergeml.yaml itself is unchanged
    code, out, err = ml_here("-f", "device.yaml", "help", "train", cwd=recorded)
    assert "vergeml.yaml: cpu" in out


def test_trainings_dir_before_or_after_the_command(recorded: Path, ml_here) -> None:
    assert listed(ml_here("--trainings-dir=other-runs", "list", cwd=recorded)) == [OLD]
    assert listed(ml_here("list", "--trainings-dir", "other-runs", cwd=recorded)) == [OLD]
    assert listed(ml_here("list", "--trainings-dir", str(recorded / "other-runs"), cwd=recorded)) == [OLD]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ("--trainings-dir=../elsewhere", "list"),
            ("--trainings-dir '../elsewhere' is not a folder inside",),
        ),
        (("list", "--cache-dir", "."), ("--cache-dir '.' is not a folder inside",)),
        (("--file", "nope.yaml", "list"), ("--file 'nope.yaml': no such file",)),
        (("--project-dir=nope", "list"), ("--project-dir 'nope': no such directory",)),
        (("--test-split=200%", "list"), ("--test-split: invalid test-split '200%'",)),
        (("list", "--samples-dir", "../up"), ("--samples-dir: samples-dir '../up' is outside the project",)),
        (("--cache=bogus", "list"), ("unknown --cache 'bogus'",)),
        (("--model", "nosuch", "list"), ("--model: unknown model 'nosuch'",)),
        (("--epochs=3", "train"), ("unknown option '--epochs=3' before the command", "ml train --epochs=3")),
        (("list", "--samples-dir"), ("--samples-dir needs a value",)),
    ],
)
def test_a_bad_global_option_is_one_line(recorded: Path, ml_here, args: tuple[str, ...], needles) -> None:
    one_line_error(ml_here(*args, cwd=recorded), *needles)


def test_training_options_elsewhere_are_noted_and_ignored(recorded: Path, ml_here) -> None:
    code, out, err = ml_here("--random-seed=3", "--device-memory=50%", "list", cwd=recorded)
    assert listed((code, out, err)) == [LIVE, NEW, BLOWN, OLD]
    assert err.splitlines() == [
        "ml: note: --random-seed is a hyperparameter of ml train, queue and tune in vml; ml list ignores it "
        "(vml's form: ml train --random-seed=3)",
        "ml: note: vml has no --device-memory (PyTorch takes GPU memory as it needs it); ignored",
    ]


def test_options_reach_the_worker_and_predict_takes_the_run_first(tmp_path: Path) -> None:
    """A detached run trains in a worker process: it sees the samples, trainings and
    cache folders, the test split and the seed given on ml's command line."""
    root = api.create_project(tmp_path / "demo")
    shutil.move(root / "data", root / "samples")
    home = tmp_path / "home"
    home.mkdir()

    def ml(*args: str):
        result = run_ml(*args, cwd=root, home=home, timeout=120)
        assert result.returncode == 0, result.stderr
        return result

    before = ["--trainings-dir=runs", "--random-seed", "7"]
    after = ["--samples-dir=samples", "--test-split=20%", "--cache-dir=cached"]
    ml(*before, "train", "--epochs=1", "--detach", "--name=away", *after)
    assert "away: finished" in ml("wait", "away", "--poll=0.2", "--trainings-dir=runs").stdout
    config = yaml.safe_load((root / "runs" / "away" / "config.yaml").read_text())
    assert (config["samples-dir"], config["test-split"], config["train"]["random-seed"]) == (
        "samples",
        "20%",
        7,
    )
    assert (root / "cached").is_dir() and not (root / "trainings").exists()
    predicted = ml("@away", "predict", "samples/digits.csv", "--top=1", "-f", "json", "--trainings-dir=runs")
    assert len(json.loads(predicted.stdout)) == 1797
    # vergeml.yaml's predict: section gives ml predict its defaults; the command line wins.
    with (root / "vergeml.yaml").open("a") as file:
        file.write("predict:\n  labels: 2\n  format: json\n  resize: aspect-fit\n")
    predicted = ml("@away", "predict", "samples/digits.csv", "--trainings-dir=runs")
    assert {len(row["predictions"]) for row in json.loads(predicted.stdout)} == {2}
    assert "predict.resize (VergeML's) is ignored" in predicted.stderr
    compact = ml("@away", "predict", "samples/digits.csv", "--compact", "--trainings-dir=runs").stdout
    assert compact.splitlines()[0] == "samples/digits.csv:2\t0"  # the first row is a 0


# ml help random robot


def test_help_random_robot_prints_a_named_robot_without_torch(tmp_path: Path) -> None:
    stdout, imported_torch = run_ml_in_process_report_torch(["help", "random", "robot"], tmp_path)
    assert not imported_torch
    name = re.search(r"@([a-z]+)-([a-z0-9]+)", stdout)
    assert name and name[1] in ADJECTIVES and name[2] in NOUNS, stdout
    assert len(stdout.strip().splitlines()) >= 3  # a head, a body and feet at least


@pytest.mark.parametrize(
    ("topic", "first_line"),
    [
        (["list"], "Usage: ml list [OPTIONS] [COLUMN -OP VALUE]..."),  # a command: its --help
        (["plot:roc"], "Usage: ml plot [OPTIONS] {KIND} {run}"),
        (["options"], "# Global options"),
        (["samples-dir"], "# Global options"),
        (["preprocessing"], "# Preprocessing ops"),
        (["input"], "# vergeml.yaml"),
        (["-a"], "# Help topics"),
    ],
)
def test_vergeml_help_topics_are_found_without_torch(
    tmp_path: Path, topic: list[str], first_line: str
) -> None:
    stdout, imported_torch = run_ml_in_process_report_torch(["help", *topic], tmp_path)
    assert not imported_torch
    assert stdout.strip().splitlines()[0].strip("* ") == first_line.strip("* ")


def test_preprocess_writes_one_split_with_vergeml_split_option(
    recorded: Path, ml_here, tmp_path: Path
) -> None:
    code, out, err = ml_here("preprocess", str(tmp_path / "pre"), "--split", "val", "-n", "5", cwd=recorded)
    assert code == 0, err
    assert out.strip() == f"wrote previews of 5 val to {tmp_path / 'pre'}"
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["val.csv"]
    one_line_error(
        ml_here("preprocess", "--split", "dev", cwd=recorded), "unknown split 'dev'", "val, test, all"
    )
