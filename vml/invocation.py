"""The command line of this process as a user would type it again."""

from __future__ import annotations

import os
import shlex
import sys


def command_line() -> str:
    """``ml train --epochs=5`` for the ``ml`` command; otherwise the program and its
    arguments (``train_many.py --quick`` for a script using the Python API)."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return shlex.join([program, *sys.argv[1:]])
