"""What a training process runs on, for its reproducibility record (``vml.repro``)."""

from __future__ import annotations

from typing import Any

import torch


def runtime_facts(device: torch.device) -> dict[str, Any]:
    """torch, CUDA and cuDNN versions, the GPUs this process sees, the device it
    trains on and its CPU threads."""
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
