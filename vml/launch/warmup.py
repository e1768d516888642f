"""What the warm process imports when it starts (``vml.launch.warm`` preloads this
module into it): what a run imports before it trains, so that each forked run finds
it loaded. Only imports: no torch operation runs here, so no thread pool and no CUDA
context exist to be forked (checked in tests/test_warm_start.py).

Measured with ``-X importtime`` and the modules a forked run still imported: torch
~1.4 s, ``torch._dynamo`` (the first optimizer imports it) ~1.3 s, vml's training code
~0.2 s; numpy's string helpers (CSV reading), torch's serialization config (the first
checkpoint) and the model registry's plugin and declaration modules 20-30 ms a run.
"""

from __future__ import annotations

import atexit
import contextlib
import encodings.utf_8_sig  # noqa: F401  (CSV files are read as utf-8-sig)
import os

import numpy.char  # noqa: F401
import sklearn.metrics  # noqa: F401  (a run's evaluation: 1.2-1.8 s, see vml.evaluate.service)
import torch  # noqa: F401
import torch._dynamo  # noqa: F401
import torch.nn.parallel  # noqa: F401
import torch.utils.serialization  # noqa: F401
import yaml  # noqa: F401

import vml.data.prepare  # noqa: F401
import vml.launch.worker  # noqa: F401
import vml.models.cnn  # noqa: F401
import vml.models.declare  # noqa: F401
import vml.models.linear  # noqa: F401
import vml.models.mlp  # noqa: F401
import vml.models.plugins  # noqa: F401
import vml.train.runner  # noqa: F401

with contextlib.suppress(ImportError):  # imported by the first optimizer step where present
    import torch.profiler._cupti_monitor  # noqa: F401


def _detach_output() -> None:
    """The warm process prints nothing of its own, and must not hold the output of the
    process that started it: ``ml train ... | tee log`` would wait for it to exit."""
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)
    os.close(quiet)


_detach_output()
# It ends when its queue does. Tearing torch down at exit takes ~1 s (measured) that a
# process which only imported has no need to spend. Forked runs never run atexit hooks.
atexit.register(os._exit, 0)
