"""The Noise2Noise U-Net (Lehtinen et al. 2018, appendix table; the lecture seed reprints it).

Five 2x2 max-pools down to 1/32 resolution, nearest-neighbour upsampling back, skip
concatenations at every level, leaky ReLU 0.1 everywhere but the last, linear convolution.
For n = m = 3 it has 991,203 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.registry import Restorer, register_architecture, register_variant


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    encoder_features: int = 48
    decoder_features: int = 96


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad the bottom and right edges up to a multiple of `multiple` (in steps when the
    image is smaller than the padding, as one reflection cannot reach further than the image)."""
    while True:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % multiple, -w % multiple
        if not (pad_h or pad_w):
            return x
        if min(h, w) == 1:  # a single row or column has nothing to mirror
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, min(pad_w, w - 1), 0, min(pad_h, h - 1)), mode="reflect")


@register_architecture
class UNet(Restorer):
    architecture = "unet"
    config_class = UNetConfig

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(config)
        n, m = config.in_channels, config.out_channels
        e, d = config.encoder_features, config.decoder_features
        self.in_channels, self.out_channels = n, m
        self.size_multiple = 32  # five 2x2 pools
        # Receptive field radius: an output pixel depends on input pixels up to 159 px away
        # (measured with input gradients over all 32 alignments), 160 on the 32-pixel grid.
        self.receptive_margin = 160
        self.floats_per_pixel = 2 * (d + n) + 64 + 32 + 48

        self.enc_conv0 = _conv(n, e)
        self.enc_conv1 = _conv(e, e)
        self.enc_conv2 = _conv(e, e)
        self.enc_conv3 = _conv(e, e)
        self.enc_conv4 = _conv(e, e)
        self.enc_conv5 = _conv(e, e)
        self.enc_conv6 = _conv(e, e)
        self.dec_conv5a = _conv(2 * e, d)
        self.dec_conv5b = _conv(d, d)
        self.dec_conv4a = _conv(d + e, d)
        self.dec_conv4b = _conv(d, d)
        self.dec_conv3a = _conv(d + e, d)
        self.dec_conv3b = _conv(d, d)
        self.dec_conv2a = _conv(d + e, d)
        self.dec_conv2b = _conv(d, d)
        self.dec_conv1a = _conv(d + n, 64)
        self.dec_conv1b = _conv(64, 32)
        self.dec_conv1c = _conv(32, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad to a multiple of 32 on the bottom/right only, so that a tile whose origin lies on
        # the 32-pixel grid sees exactly the padded pixels the whole image sees. Mirrored pixels
        # keep the noise's statistics; replicated ones (flat streaks) cost about 1 dB on a
        # 481 x 321 image, since the network never saw such borders.
        x = reflect_pad_to_multiple(x, 32)
        act = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        pool = lambda t: F.max_pool2d(t, 2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731

        skips = [x]
        t = act(self.enc_conv1(act(self.enc_conv0(x))))
        t = pool(t)
        skips.append(t)  # POOL1
        for conv in (self.enc_conv2, self.enc_conv3, self.enc_conv4):
            t = pool(act(conv(t)))
            skips.append(t)  # POOL2..POOL4
        t = pool(act(self.enc_conv5(t)))  # POOL5
        t = act(self.enc_conv6(t))
        for conv_a, conv_b in (
            (self.dec_conv5a, self.dec_conv5b),
            (self.dec_conv4a, self.dec_conv4b),
            (self.dec_conv3a, self.dec_conv3b),
            (self.dec_conv2a, self.dec_conv2b),
        ):
            t = torch.cat([up(t), skips.pop()], dim=1)
            t = act(conv_b(act(conv_a(t))))
        t = torch.cat([up(t), skips.pop()], dim=1)  # CONCAT1 with the input
        t = act(self.dec_conv1b(act(self.dec_conv1a(t))))
        t = self.dec_conv1c(t)
        return t[..., :h, :w]


@register_variant
def n2n_unet(in_channels: int = 3, out_channels: int = 3) -> UNet:
    """The paper's U-Net: 48 encoder and 96 decoder features."""
    return UNet(UNetConfig(in_channels=in_channels, out_channels=out_channels))


@register_variant
def n2n_unet_gray() -> UNet:
    """The same U-Net for one-channel (gray) images."""
    return UNet(UNetConfig(in_channels=1, out_channels=1))


@register_variant
def n2n_unet_aux() -> UNet:
    """The U-Net for renders with albedo and normal buffers: 9 channels in (the paper's n = 9), 3 out."""
    return UNet(UNetConfig(in_channels=9, out_channels=3))
