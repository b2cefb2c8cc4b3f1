"""EDSR and MDSR super-resolution networks (Lim et al. 2017).

EDSR: a head convolution, residual blocks without batch norm (scaled by res_scale), a global
skip, then a pixel-shuffle upsampler and a tail convolution. The RGB mean is subtracted before
and added back after, as in the paper. MDSR shares the body between x2, x3 and x4 and keeps a
per-scale pre-processing head (two 5x5 residual blocks) and a per-scale upsampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from restore.archs.registry import Restorer, register_architecture, register_variant

# Mean RGB of DIV2K in [0, 1], the constant of the reference implementation.
RGB_MEAN = (0.4488, 0.4371, 0.4040)

# MDSR's shared head, body and tail train at this fraction of the run's rate, its per-scale blocks
# and upsamplers at the full rate. Each batch is one scale, and the scale furthest behind has the
# largest gradients: at one rate for all, the shared body follows it and undoes the others (the
# first MDSR run, warm-started from an edsr-x2 scoring 36.6 dB on Set5 x2, fell to 35.49 in 582
# steps). A slower body leaves the per-scale parts, 0.56-0.74 M weights a scale, to do the adapting.
MDSR_SHARED_LR_SCALE = 0.1


class ResBlock(nn.Module):
    """conv - ReLU - conv, scaled and added to the input (no batch norm: it hurts SR)."""

    def __init__(self, features: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=pad)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=pad)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(torch.relu_(self.conv1(x)))  # in place: a fresh output


def upsampler(scale: int, features: int) -> nn.Sequential:
    """Sub-pixel convolutions: one x3 step, or log2(scale) x2 steps."""
    if scale == 3:
        steps = [(3, 9)]
    elif scale in (2, 4, 8):
        steps = [(2, 4)] * int(math.log2(scale))
    else:
        raise ValueError(f"EDSR upsamples by 2, 3, 4 or 8, not {scale}")
    layers: list[nn.Module] = []
    for factor, mult in steps:
        layers += [nn.Conv2d(features, mult * features, 3, padding=1), nn.PixelShuffle(factor)]
    return nn.Sequential(*layers)


class _MeanShifted(Restorer):
    """Shared by EDSR and MDSR: the RGB mean shift around the network."""

    def _init_common(self, colors: int, features: int, blocks: int) -> None:
        self.in_channels = self.out_channels = colors
        mean = torch.tensor(RGB_MEAN if colors == 3 else (sum(RGB_MEAN) / 3,) * colors)
        self.register_buffer("rgb_mean", mean.view(1, colors, 1, 1), persistent=False)
        self.head = nn.Conv2d(colors, features, 3, padding=1)
        self.tail = nn.Conv2d(features, colors, 3, padding=1)
        self._features = features
        # head + 2 convs per block + body conv + upsampler and tail convs (at most 2 LR pixels).
        self._base_margin = 1 + 2 * blocks + 1 + 2

    def _update_memory_estimate(self) -> None:
        # Body: input, residual and temporary features (3F); upsampler: each sub-pixel conv
        # output and its shuffled copy (2F per output pixel). Measured peak for the x2 baseline:
        # about 645 floats per input pixel, this gives 704.
        self.floats_per_pixel = 3 * self._features + 2 * self._features * self.scale**2


@dataclass
class EDSRConfig:
    scale: int = 2
    n_resblocks: int = 16
    n_feats: int = 64
    res_scale: float = 1.0
    n_colors: int = 3


@register_architecture
class EDSR(_MeanShifted):
    architecture = "edsr"
    config_class = EDSRConfig

    def __init__(self, config: EDSRConfig) -> None:
        super().__init__(config)
        self._init_common(config.n_colors, config.n_feats, config.n_resblocks)
        self.scale = config.scale
        self.scales = (config.scale,)
        self.receptive_margin = self._base_margin
        self._update_memory_estimate()
        blocks = [ResBlock(config.n_feats, 3, config.res_scale) for _ in range(config.n_resblocks)]
        self.body = nn.Sequential(*blocks, nn.Conv2d(config.n_feats, config.n_feats, 3, padding=1))
        self.upsample = upsampler(config.scale, config.n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x - self.rgb_mean)
        h = h + self.body(h)
        return self.tail(self.upsample(h)) + self.rgb_mean


@dataclass
class MDSRConfig:
    scales: tuple[int, ...] = (2, 3, 4)
    n_resblocks: int = 16
    n_feats: int = 64
    n_colors: int = 3


@register_architecture
class MDSR(_MeanShifted):
    architecture = "mdsr"
    config_class = MDSRConfig

    def __init__(self, config: MDSRConfig) -> None:
        super().__init__(config)
        self._init_common(config.n_colors, config.n_feats, config.n_resblocks)
        self.scales = tuple(config.scales)
        self.scale = self.scales[0]
        # Two 5x5 residual blocks per scale add 4 convs of radius 2.
        self.receptive_margin = self._base_margin + 8
        self._update_memory_estimate()
        f = config.n_feats
        self.pre_process = nn.ModuleDict({str(s): nn.Sequential(ResBlock(f, 5), ResBlock(f, 5)) for s in self.scales})
        self.body = nn.Sequential(*[ResBlock(f) for _ in range(config.n_resblocks)], nn.Conv2d(f, f, 3, padding=1))
        self.upsample = nn.ModuleDict({str(s): upsampler(s, f) for s in self.scales})

    def select_scale(self, scale: int) -> None:
        super().select_scale(scale)
        self._update_memory_estimate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre_process[str(self.scale)](self.head(x - self.rgb_mean))
        h = h + self.body(h)
        return self.tail(self.upsample[str(self.scale)](h)) + self.rgb_mean

    def config_dict(self) -> dict[str, object]:
        return {**super().config_dict(), "scales": list(self.scales)}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The per-scale blocks and upsamplers at the run's rate, the shared parts at MDSR_SHARED_LR_SCALE of it."""
        per_scale: list[nn.Parameter] = []
        shared: list[nn.Parameter] = []
        for name, parameter in self.named_parameters():
            (per_scale if name.startswith(("pre_process.", "upsample.")) else shared).append(parameter)
        return [{"params": per_scale, "lr_scale": 1.0}, {"params": shared, "lr_scale": MDSR_SHARED_LR_SCALE}]

    def weights_from(self, source: nn.Module) -> dict[str, torch.Tensor]:
        """An EDSR's weights as this MDSR's at the EDSR's scale: its upsampler becomes that
        scale's, and the scale's pre-processing blocks start as the identity (last convolution
        zero), so that the MDSR starts out computing exactly what the EDSR does at its scale."""
        weights = super().weights_from(source)
        if not isinstance(source, EDSR):
            return weights
        renamed = {
            name.replace("upsample.", f"upsample.{source.scale}.", 1) if name.startswith("upsample.") else name: value
            for name, value in weights.items()
        }
        for name, value in self.pre_process[str(source.scale)].state_dict().items():
            if ".conv2." in f".{name}":
                renamed[f"pre_process.{source.scale}.{name}"] = torch.zeros_like(value)
        return renamed


@register_variant
def edsr_baseline_x2() -> EDSR:
    """EDSR baseline (16 blocks x 64 features), x2: about 1.37 M parameters."""
    return EDSR(EDSRConfig(scale=2))


@register_variant
def edsr_baseline_x3() -> EDSR:
    return EDSR(EDSRConfig(scale=3))


@register_variant
def edsr_baseline_x4() -> EDSR:
    return EDSR(EDSRConfig(scale=4))


@register_variant
def edsr_x2() -> EDSR:
    """The paper's large EDSR: 32 blocks x 256 features, residual scaling 0.1."""
    return EDSR(EDSRConfig(scale=2, n_resblocks=32, n_feats=256, res_scale=0.1))


@register_variant
def mdsr_baseline() -> MDSR:
    """MDSR with a 16-block shared body for x2, x3 and x4."""
    return MDSR(MDSRConfig())
