"""The built-in multilayer perceptron."""

from __future__ import annotations

import math

from torch import nn


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden_size: int = 128,
    hidden_layers: int = 1,
    dropout: float = 0.1,
) -> nn.Module:
    """Flatten the input, then ``hidden_layers`` x (Linear, ReLU, Dropout), then Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
