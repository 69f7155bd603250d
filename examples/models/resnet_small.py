"""A small residual network for 28x28 digits: a user's own model, as mnist-tui runs it.

Train it with `mnist-tui run resnet_small --experiments-dir examples`. The builder below is
registered under its function name; its keyword-only parameters, with their type hints
and defaults, are the keys of the experiment's [model] table (`mnist-tui show
resnet_small --experiments-dir examples` lists them; `-S model.width=32` changes one).
"""

from typing import Annotated

import torch
from torch import nn

from mnist_tui import Help, Length, Range, register_model


class Block(nn.Module):
    """Two 3x3 convs with batch norm, added to the input (a 1x1 conv when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


@register_model
def resnet_small(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    width: Annotated[int, Range(ge=4, le=256), Help("channels of the first stage")] = 16,
    stages: Annotated[
        list[int],
        Length(min=1, max=4),
        Range(ge=1, le=8),
        Help("residual blocks per stage; each stage after the first halves the image"),
    ] = [1, 1, 1],  # noqa: B006 - read, never changed
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """Small ResNet: stem conv, residual stages (width doubling), global average pool."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_shape[0], width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
    ]
    channels = width
    for i, blocks in enumerate(stages):
        out = width * 2**i
        for j in range(blocks):
            layers.append(Block(channels, out, stride=2 if i > 0 and j == 0 else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout)]
    layers.append(nn.Linear(channels, num_classes))
    return nn.Sequential(*layers)
