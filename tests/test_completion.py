"""Shell completion through the completion environment variables of the real ``ml``
(``_ML_COMPLETE`` with bash's ``COMP_WORDS``/``COMP_CWORD`` or zsh's and fish's
``_TYPER_COMPLETE_ARGS``): commands, options, the project's hyperparameters and their
choices, run names and stored models; the scripts ``--show-completion`` prints and
``--install-completion`` installs, run by a real bash. Runs are store rows and stored
models are version folders, made directly: nothing is trained."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vml import api
from vml.cli import fastcomplete
from vml.store import RunStore
from vml.store.lookup import run_names

NAMES = ("brave-otter", "brave-owl", "calm-fox")  # calm-fox is recorded last: @last
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo project with three finished runs and a stored model ``digits`` (v1, v2)."""
    root = api.create_project(tmp_path_factory.mktemp("complete") / "demo")
    with RunStore(api.Project(root).db_path) as store:
        for name in NAMES:
            store.create_run(name, "mlp", {"epochs": 1}, status="finished")
    for version in ("v1", "v2"):
        (root / "models" / "digits" / version).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def complete(line: str, cwd: Path, shell: str = "bash", **extra: str) -> subprocess.CompletedProcess:
    """``ml``'s answer to the shell completing ``line`` (what follows its last space is
    the word being completed), as Typer's completion script for ``shell`` asks it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_ML", "_TYPER", "COMP_", "VML_"))}
    env |= {"_ML_COMPLETE": f"complete_{shell}", **extra}
    if shell == "bash":
        words = line.split()
        cword = len(words) if line.endswith(" ") else len(words) - 1
        env |= {"COMP_WORDS": line, "COMP_CWORD": str(cword)}
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        env.setdefault("_TYPER_COMPLETE_FISH_ACTION", "get-args")
    return subprocess.run(
        [sys.executable, "-m", "vml"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def words(line: str, cwd: Path, shell: str = "bash") -> list[str]:
    result = complete(line, cwd, shell)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.split()


def test_commands_and_options(root: Path) -> None:
    assert words("ml sh", root) == ["show"]
    assert {"store", "serve"} <= set(words("ml s", root))
    assert "delete" in words("ml models ", root)
    assert {"--install-completion", "--show-completion", "--version"} <= set(words("ml --", root))
    assert words("ml show --f", root) == ["--format"]


def test_hyperparameter_names(root: Path) -> None:
    assert words("ml train --lea", root) == ["--learning-rate"]
    assert words("ml train --learning_r", root) == ["--learning_rate"]  # the spelling typed
    assert words("ml tune --lea", root) == ["--learning-rate"]
    found = words("ml train --", root)
    assert {"--optimizer", "--epochs", "--detach", "--name"} <= set(found)  # its options too


def test_choices(root: Path) -> None:
    assert words("ml train --optimizer ", root) == ["sgd", "momentum", "adam", "adamw", "rmsprop"]
    assert words("ml train --optimizer = ada", root) == ["adam", "adamw"]  # bash splits at =
    assert words("ml train --optimizer=ada", root, "fish") == ["--optimizer=adam", "--optimizer=adamw"]
    # a sweep's list of values: the last one, without those already given
    assert words("ml queue --optimizer=adam,s", root, "fish") == ["--optimizer=adam,sgd"]
    assert words("ml train --epochs ", root) == []  # a number: nothing to offer
    assert words("ml show --format ", root) == ["table", "json"]
    assert words("ml test --format = j", root) == ["json"]


def test_run_names(root: Path) -> None:
    assert words("ml show br", root) == ["brave-otter", "brave-owl"]
    assert words("ml show @", root) == [*(f"@{name}" for name in NAMES), "@last"]
    assert words("ml logs @la", root) == ["@last"]
    assert words("ml compare brave-otter c", root) == ["calm-fox"]
    assert words("ml diff brave-owl c", root) == ["calm-fox"]
    assert words("ml plot roc brave-ot", root) == ["brave-otter"]
    assert words("ml @ca", root) == ["@calm-fox"]  # VergeML's ml @NAME COMMAND
    assert words("ml show brave-owl ", root) == []  # ml show takes one run
    # after an option the full CLI answers, with the same names
    assert words("ml compare --format table br", root) == ["brave-otter", "brave-owl"]
    # VergeML's global options are read as ml reads them: here the project is elsewhere
    assert words("ml --project-dir = demo show br", root.parent) == ["brave-otter", "brave-owl"]
    assert words("ml show br", root, "fish") == ["brave-otter", "brave-owl"]
    zsh = complete("ml show br", root, "zsh").stdout
    assert zsh.strip() == '_arguments \'*: :(("brave-otter"\n"brave-owl"))\''
    fish = complete("ml show zz", root, "fish", _TYPER_COMPLETE_FISH_ACTION="is-args")
    assert fish.returncode == 1  # no run starts with zz: fish offers files instead


def test_stored_models_for_serve(root: Path) -> None:
    assert words("ml serve ", root) == ["digits", *NAMES, "@last"]
    assert words("ml serve digits:", root, "zsh") == [
        "_arguments",
        "'*:",
        ':(("digits\\\\:v1"',
        '"digits\\\\:v2"',
        '"digits\\\\:latest"))\'',
    ]
    assert words("ml models delete d", root) == ["digits:v1", "digits:v2", "digits:latest"]


def test_outside_a_project(tmp_path: Path) -> None:
    assert words("ml show ", tmp_path) == []
    assert "--learning-rate" in words("ml train --lea", tmp_path)  # the training loop's own


def test_the_fast_path_imports_neither_typer_nor_torch(root: Path) -> None:
    """Run names are answered before the CLI (Typer) is imported; nothing imports torch."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('typer' in sys.modules, 'torch' in sys.modules, file=sys.stderr))\n"
        "from vml.cli import main\n"
        "main()\n"
    )
    for line, typer_loaded in (("ml show br", False), ("ml train --lea", True), ("ml sh", True)):
        env = {**os.environ, "_ML_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": "2"}
        if line == "ml sh":
            env["COMP_CWORD"] = "1"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip(), line
        assert result.stderr.split() == [str(typer_loaded), "False"], line


def test_the_run_table_matches_the_commands() -> None:
    """fastcomplete.RUN_ARGUMENTS names real positional parameters, in order, with their
    nargs; and every argument that takes a run is in it."""
    import typer

    from vml.cli import app

    group = typer.main.get_command(app)
    commands = {name: cmd for name, cmd in group.commands.items() if not hasattr(cmd, "commands")}
    commands |= {f"models {name}": cmd for name, cmd in group.commands["models"].commands.items()}
    for key, positionals in fastcomplete.RUN_ARGUMENTS.items():
        arguments = [p for p in commands[key].params if p.param_type_name == "argument"]
        assert [(p.name, p.nargs) for p in arguments[: len(positionals)]] == [
            (name, nargs) for name, nargs, _ in positionals
        ], key
    for key, command in commands.items():
        for param in command.params:
            if param.param_type_name == "argument" and "run" in (param.help or "").lower().split()[:3]:
                assert key in fastcomplete.RUN_ARGUMENTS, f"ml {key} {param.name}"


def test_many_runs_branch_instead_of_listing(root: Path) -> None:
    db = api.Project(root).db_path
    assert run_names(db, "b", 5) == (["brave-otter", "brave-owl"], True)
    assert run_names(db, "", 2) == (["b", "c"], False)  # where the names part
    assert run_names(db, "brave-o", 1) == (["brave-ot", "brave-ow"], False)
    assert run_names(db.with_name("missing.db"), "", 5) == ([], True)
    assert not db.with_name("missing.db").exists()  # looking never creates a store


def test_show_completion_scripts_name_ml(tmp_path: Path, home: Path) -> None:
    """``ml --show-completion`` prints the script of the shell it runs in (a bash, or a
    program named zsh or fish: Typer tells them by name)."""
    for shell, marker in (
        ("bash", "complete -o default -F _ml_completion ml"),
        ("zsh", "compdef _ml_completion ml"),
        ("fish", "complete --command ml"),
    ):
        named = tmp_path / shell
        named.symlink_to(shutil.which("bash"))
        result = subprocess.run(
            [str(named), "-c", f"{BIN / 'ml'} --show-completion; true"],
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert marker in result.stdout, shell
        assert "_ML_COMPLETE=complete_" in result.stdout


def test_installed_bash_completion_completes_runs(root: Path, tmp_path: Path) -> None:
    """``ml --install-completion`` in bash, then that bash script asked for ``ml show b``."""
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{BIN}:{os.environ['PATH']}"}
    installed = subprocess.run(
        ["bash", "-c", "ml --install-completion; true"], env=env, capture_output=True, text=True, timeout=60
    )
    assert installed.returncode == 0, installed.stderr
    assert "bash completion installed in" in installed.stdout
    script = tmp_path / ".bash_completions" / "ml.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    asked = (
        f"source '{script}'; COMP_WORDS=(ml show b); COMP_CWORD=2; _ml_completion ml; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", asked], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["brave-otter", "brave-owl"], result.stderr
