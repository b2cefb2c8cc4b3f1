"""The MNIST networks of the seed documents.

- `MLPAutoencoder`: the denoising autoencoder of the second seed: a fully connected encoder to a
  small code and a decoder back to 784 pixels, optionally with tied weights (each decoder layer
  uses the transposed weight of its encoder twin, so only the biases are its own).
- `MNISTUpscaler`: the lecture seed's 14 -> 28 convolutional encoder/decoder, layer by layer.

Both work on 28 x 28 (resp. 14 x 14) digit cells; a larger image whose sides are multiples of
the cell is treated as a grid of digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.registry import Restorer, register_architecture, register_variant


def to_cells(x: torch.Tensor, cell: int) -> torch.Tensor:
    """N x C x H x W, H and W multiples of `cell` -> (N * H/cell * W/cell) x C x cell x cell."""
    n, c, h, w = x.shape
    if h % cell or w % cell:
        raise ValueError(f"image sides must be multiples of {cell}, got {h} x {w}")
    x = x.reshape(n, c, h // cell, cell, w // cell, cell)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, cell, cell)


def from_cells(cells: torch.Tensor, n: int, rows: int, cols: int) -> torch.Tensor:
    """Inverse of `to_cells`: put the cells back into a grid of `rows` x `cols`."""
    c, ch, cw = cells.shape[1:]
    x = cells.reshape(n, rows, cols, c, ch, cw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, c, rows * ch, cols * cw)


@dataclass
class MLPAutoencoderConfig:
    # Encoder layer widths after the 784 input pixels; the last one is the code.
    hidden: list[int] = field(default_factory=lambda: [512, 256, 64])
    tied: bool = True


@register_architecture
class MLPAutoencoder(Restorer):
    architecture = "mlp-autoencoder"
    config_class = MLPAutoencoderConfig
    cell = 28

    def __init__(self, config: MLPAutoencoderConfig) -> None:
        super().__init__(config)
        self.in_channels = self.out_channels = 1
        self.size_multiple = self.cell
        self.pads_input = False
        self.floats_per_pixel = 8
        widths = [self.cell * self.cell, *config.hidden]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        if config.tied:
            # Only the decoder biases are separate parameters; weights are the encoder's, transposed.
            self.decoder_biases = nn.ParameterList(nn.Parameter(torch.zeros(a)) for a in widths[:-1])
        else:
            self.decoder = nn.ModuleList(nn.Linear(b, a) for a, b in zip(widths[:-1], widths[1:], strict=True))

    @property
    def depth(self) -> int:
        """Number of encoder layers (the decoder has as many)."""
        return len(self.encoder)

    def encode_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Encoder layer i; the code layer (the last) stays linear so the code can spread out."""
        h = self.encoder[i](h)
        return h if i == self.depth - 1 else F.relu(h)

    def decode_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Decoder twin of encoder layer i; the pixel layer (i = 0) ends in a sigmoid."""
        if self.config.tied:
            h = F.linear(h, self.encoder[i].weight.t(), self.decoder_biases[i])
        else:
            h = self.decoder[i](h)
        return torch.sigmoid(h) if i == 0 else F.relu(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened digits (N x 784) -> codes."""
        for i in range(self.depth):
            x = self.encode_layer(i, x)
        return x

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes -> flattened digits (N x 784) in [0, 1]."""
        for i in reversed(range(self.depth)):
            code = self.decode_layer(i, code)
        return code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cells = to_cells(x, self.cell)
        out = self.decode(self.encode(cells.flatten(1)))
        return from_cells(out.view(-1, 1, self.cell, self.cell), n, h // self.cell, w // self.cell)


@dataclass
class MNISTUpscalerConfig:
    features: int = 32


@register_architecture
class MNISTUpscaler(Restorer):
    architecture = "mnist-upscaler"
    config_class = MNISTUpscalerConfig
    cell = 14

    def __init__(self, config: MNISTUpscalerConfig) -> None:
        super().__init__(config)
        f = config.features
        self.in_channels = self.out_channels = 1
        self.scale = 2
        self.scales = (2,)
        self.size_multiple = self.cell
        self.pads_input = False
        self.floats_per_pixel = 4 * f
        # 14 -> 10 -> 6 -> 3 -> 1, as printed in the seed.
        self.encoder = nn.Sequential(
            nn.Conv2d(1, f, 5), nn.ReLU(inplace=True),
            nn.Conv2d(f, f, 5), nn.ReLU(inplace=True),
            nn.Conv2d(f, f, 4), nn.ReLU(inplace=True),
            nn.Conv2d(f, f, 3),
        )  # fmt: skip
        # 1 -> 4 -> 9 -> 20 -> 24 -> 28.
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(f, f, 4), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, f, 3, stride=2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, f, 4, stride=2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, f, 5), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, 1, 5),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = self.decoder(self.encoder(to_cells(x, self.cell)))
        return from_cells(out, n, h // self.cell, w // self.cell)


@register_variant
def mnist_dae(hidden: list[int] | None = None, tied: bool = True) -> MLPAutoencoder:
    """A tied-weight denoising autoencoder; default 784-512-256-64."""
    return MLPAutoencoder(MLPAutoencoderConfig(hidden=hidden or [512, 256, 64], tied=tied))


@register_variant
def mnist_upscaler() -> MNISTUpscaler:
    """The lecture's 14 -> 28 upscaler."""
    return MNISTUpscaler(MNISTUpscalerConfig())


SDAE_HIDDEN = [512, 256, 128, 64, 32, 16, 8, 2]
"""The seed's "8 + 8 layers": eight encoder layers halving down to a 2-D code."""


@register_variant
def mnist_sdae(hidden: list[int] | None = None, tied: bool = True) -> MLPAutoencoder:
    """The stacked denoising autoencoder of the second seed: 8 + 8 tied layers, 2-D code."""
    return MLPAutoencoder(MLPAutoencoderConfig(hidden=hidden or list(SDAE_HIDDEN), tied=tied))
