"""The names of a project's files and folders, in one place.

::

    PROJECT/
      vergeml.yaml            PROJECT_FILE
      .cache/                 CACHE_DIR
      models/NAME/vN/         MODELS_DIR: the model store (``ml store RUN --as NAME``)
      trainings/              TRAININGS_DIR
        vml.db                DB_FILE
        .sweeps/SWEEP.txt     SWEEP_OUTPUT: a detached scheduler's output
        NAME/                 one folder a run
          config.yaml         CONFIG_FILE
          best.pt last.pt     BEST, LAST
          log.txt             LOG_FILE
          predictions.npz     PREDICTIONS: the test split's targets and scores
          evaluation.json     EVALUATION: the metrics and curves computed from them
          repro.json          REPRO_FILE: how the run came to be (commit, versions, ...)
          repro.patch         REPRO_PATCH: the uncommitted changes to tracked files
          worker.txt          WORKER_OUTPUT: what a worker process printed
          vergeml.yaml        RUN_PROJECT_FILE: a runs-file entry's own settings

VergeML's global options ``ml --file=F --project-dir=D --trainings-dir=T --cache-dir=C``
move these (see ``vml.cli.vergeml_args``). They reach every process of the command
(workers, schedulers) as environment variables, read here on each call: an absolute
``VML_PROJECT_FILE``, ``VML_PROJECT_DIR``, and ``VML_TRAININGS_DIR`` / ``VML_CACHE_DIR``,
relative to the project or absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_FILE = "vergeml.yaml"
CACHE_DIR = ".cache"
TRAININGS_DIR = "trainings"
MODELS_DIR = "models"
DB_FILE = "vml.db"
SWEEP_OUTPUT = ".sweeps"
CONFIG_FILE = "config.yaml"
BEST = "best.pt"
LAST = "last.pt"
LOG_FILE = "log.txt"
PREDICTIONS = "predictions.npz"
EVALUATION = "evaluation.json"
REPRO_FILE = "repro.json"
REPRO_PATCH = "repro.patch"
WORKER_OUTPUT = "worker.txt"
RUN_PROJECT_FILE = PROJECT_FILE

PROJECT_FILE_VARIABLE = "VML_PROJECT_FILE"
PROJECT_DIR_VARIABLE = "VML_PROJECT_DIR"
TRAININGS_DIR_VARIABLE = "VML_TRAININGS_DIR"
CACHE_DIR_VARIABLE = "VML_CACHE_DIR"


def project_file(root: Path) -> Path:
    """The project file: ``root/vergeml.yaml``, or the one ``ml --file`` names."""
    given = os.environ.get(PROJECT_FILE_VARIABLE)
    return Path(given).resolve() if given else Path(root) / PROJECT_FILE


def trainings_dir(root: Path) -> Path:
    """``root/trainings`` (or ``ml --trainings-dir``'s): the runs' folders and the store."""
    return Path(root) / (os.environ.get(TRAININGS_DIR_VARIABLE) or TRAININGS_DIR)


def cache_dir(root: Path) -> Path:
    """``root/.cache`` (or ``ml --cache-dir``'s): the prepared data."""
    return Path(root) / (os.environ.get(CACHE_DIR_VARIABLE) or CACHE_DIR)


def db_path(root: Path) -> Path:
    """The project's store, ``root/trainings/vml.db``."""
    return trainings_dir(root) / DB_FILE


def models_dir(root: Path) -> Path:
    """The model store, ``root/models``: ``NAME/vN/`` folders that outlive their runs."""
    return Path(root) / MODELS_DIR


def run_dir(root: Path, name: str) -> Path:
    """Run ``name``'s folder, ``root/trainings/NAME``."""
    return trainings_dir(root) / name
