"""The built-in linear baseline."""

from __future__ import annotations

import math

from torch import nn


def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Flatten, then one Linear layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
