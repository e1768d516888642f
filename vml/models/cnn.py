"""The built-in small convolutional network."""

from __future__ import annotations

from torch import nn

from vml.errors import UsageError


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: int = 32,
    conv_layers: int = 2,
    kernel_size: int = 3,
    dropout: float = 0.1,
) -> nn.Module:
    """``conv_layers`` x (Conv2d, ReLU, MaxPool 2x2), global average pooling, Linear."""
    if len(input_shape) != 3:
        raise UsageError(
            f"model cnn needs images (channels, height, width) but the data has shape {input_shape} "
            "(use model: mlp for tables)"
        )
    layers: list[nn.Module] = []
    width = input_shape[0]
    for i in range(conv_layers):
        out = channels * 2**i
        # ceil_mode keeps tiny images (8x8 digits) from pooling down to nothing.
        layers += [
            nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        ]
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)
