"""The Noise2Noise U-Net (Lehtinen et al. 2018, appendix table; the lecture seed reprints it).

Five 2x2 max-pools down to 1/32 resolution, nearest-neighbour upsampling back, skip
concatenations at every level, leaky ReLU 0.1 everywhere but the last, linear convolution.
For n = m = 3 it has 991,203 parameters.

`LevelUNet` is the same U-Net told the noise level, as FFDNet is: one more input channel holding
the level (sigma on the [0, 1] scale) everywhere, and a small estimator that reads the level off
a noisy image when the caller gives none. Telling it a lower level keeps more grain; a higher
one removes more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.registry import Restorer, register_architecture, register_variant
from restore.resize import center_crop


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    encoder_features: int = 48
    decoder_features: int = 96
    # A per-pixel gate m in (0, 1) from the last features: output = U-Net + m * (input - U-Net),
    # so that the network can hand a pixel's input through where its own estimate is worse than
    # the noise there (texture at low levels: kodim24 came back at 42.8 dB even told level 0).
    # Trained on noisy targets, the best m is about E[(clean - U-Net)^2] / (that + sigma^2): 1 on
    # clean input, near 0 on heavy noise; the target's noise, independent of the input's, does not bias it.
    input_gate: bool = False


# The gate's bias at the start: sigmoid(-6) = 0.0025, so a network warm-started from a file
# without the gate computes what the file computes to within a quarter of a percent of its residual.
GATE_START_BIAS = -6.0
# The gate trains at this multiple of the run's learning rate: at a finetune's 1e-4, Adam moves
# its bias about 1e-4 a step, and a gate that starts shut would take tens of thousands of steps to open.
GATE_LR_SCALE = 10.0


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
        if config.input_gate:
            self.gate_conv = _conv(32, 1)
            nn.init.zeros_(self.gate_conv.weight)
            nn.init.constant_(self.gate_conv.bias, GATE_START_BIAS)
            self.floats_per_pixel += 1

    def parameter_groups(self) -> list[dict[str, Any]]:
        """One group, or with the input gate two: the gate at GATE_LR_SCALE times the run's rate."""
        if not self.config.input_gate:
            return super().parameter_groups()
        gate = list(self.gate_conv.parameters())
        rest = [p for name, p in self.named_parameters() if not name.startswith("gate_conv.")]
        return [{"params": rest, "lr_scale": 1.0}, {"params": gate, "lr_scale": GATE_LR_SCALE}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad to a multiple of 32 on the bottom/right only, so that a tile whose origin lies on
        # the 32-pixel grid sees exactly the padded pixels the whole image sees. Mirrored pixels
        # keep the noise's statistics; replicated ones (flat streaks) cost about 1 dB on a
        # 481 x 321 image, since the network never saw such borders.
        x = reflect_pad_to_multiple(x, 32)
        # In place: every activation takes a fresh convolution output, and not allocating a second
        # tensor per layer made n2n-mc-aux 8% faster on a CPU (bf16, the Cornell box, one thread).
        act = lambda t: F.leaky_relu(t, 0.1, inplace=True)  # noqa: E731
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
        out = self.dec_conv1c(t)
        if self.config.input_gate:
            gate = torch.sigmoid(self.gate_conv(t))
            image = x[:, : self.out_channels]
            out = out + gate * (image - out)
        return out[..., :h, :w]


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


@register_variant
def n2n_unet_aux_gated() -> UNet:
    """n2n_unet_aux with the input gate (UNetConfig.input_gate): at 64-256 spp a render is nearly
    clean, and the U-Net, which has no path from its input to its output but three convolutions,
    added 1 dB to it where Open Image Denoise adds 5 (models/README.md, n2n-mc-aux); the gate lets
    it hand a converging pixel through. Warm-started from n2n_unet_aux's file it computes what the
    file computes to within a quarter of a percent of its residual. Trained under the HDR loss on
    noisy pairs (run r11), the gate stayed shut."""
    return UNet(UNetConfig(in_channels=9, out_channels=3, input_gate=True))


@dataclass
class BufferUNetConfig:
    channels: int = 6  # the buffers in and out: albedo and normal, 3 each
    # Per level: full, half and quarter resolution. (16, 32, 48) cleaned the buffers 2% better
    # (held-out L1 0.00807 against 0.00829) but cost the denoiser 18% of its bf16 time, not 11%.
    features: tuple[int, int, int] = (8, 16, 32)


@register_architecture
class BufferUNet(Restorer):
    """A small three-level U-Net that cleans a render's albedo and normal buffers before the
    denoiser sees them (Open Image Denoise prefilters noisy buffers the same way): a residual on
    its input, the last convolution zero at the start, so an untrained one hands the buffers
    through unchanged. About a twentieth of the denoiser's work per pixel."""

    architecture = "buffer_unet"
    config_class = BufferUNetConfig

    def __init__(self, config: BufferUNetConfig) -> None:
        super().__init__(config)
        c, (f0, f1, f2) = config.channels, config.features
        self.in_channels = self.out_channels = c
        self.size_multiple = 4  # two 2x2 pools
        self.receptive_margin = 32  # an output pixel depends on inputs up to 22 px away (input gradients)
        self.floats_per_pixel = 2 * (f0 + f1) + c + 16
        self.enc0 = nn.ModuleList([_conv(c, f0), _conv(f0, f0)])
        self.enc1 = nn.ModuleList([_conv(f0, f1), _conv(f1, f1)])
        self.enc2 = nn.ModuleList([_conv(f1, f2), _conv(f2, f2)])
        self.dec1 = nn.ModuleList([_conv(f2 + f1, f1), _conv(f1, f1)])
        self.dec0 = nn.ModuleList([_conv(f1 + f0, f0), _conv(f0, c)])
        nn.init.zeros_(self.dec0[1].weight)
        nn.init.zeros_(self.dec0[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = reflect_pad_to_multiple(x, 4)
        act = lambda t: F.leaky_relu(t, 0.1, inplace=True)  # noqa: E731 - on fresh convolution outputs, as the U-Net's
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        full = act(self.enc0[1](act(self.enc0[0](x))))
        half = act(self.enc1[1](act(self.enc1[0](F.max_pool2d(full, 2)))))
        quarter = act(self.enc2[1](act(self.enc2[0](F.max_pool2d(half, 2)))))
        t = act(self.dec1[1](act(self.dec1[0](torch.cat([up(quarter), half], dim=1)))))
        t = self.dec0[1](act(self.dec0[0](torch.cat([up(t), full], dim=1))))
        return (x + t)[..., :h, :w]


@register_variant
def aux_prefilter() -> BufferUNet:
    """The buffer cleaner of render denoisers: albedo and normal in, the same cleaned out."""
    return BufferUNet(BufferUNetConfig())


@dataclass
class LevelUNetConfig:
    channels: int = 3
    encoder_features: int = 48
    decoder_features: int = 96
    estimator_features: int = 32
    # The estimator's hidden convolutions, one dilation each: four plain 3x3 ones (an 11-pixel
    # window) in the first level models' files.
    estimator_dilations: tuple[int, ...] = (1, 1, 1, 1)
    # How per-pixel levels become the image's: "mean", or "weighted" by a second output, so that
    # the estimator reads the level where the noise shows and discounts texture it cannot tell from it;
    # or "global": the features averaged over the image first, then read by a small perceptron, so
    # that the level can depend on the whole picture (compression everywhere, noise shown only in
    # texture), not only on what each pixel's window shows.
    estimator_pooling: str = "mean"
    # Indices of hidden convolutions after which the features are 2 x 2 averaged: the later ones
    # see coarser scales, where a camera's grain, spread over several pixels, looks like white noise.
    estimator_pool_after: tuple[int, ...] = ()
    # 0: the estimator reads the whole image at once. Else the side of the tiles it reads an image
    # larger than that in, averaging their readings: a "global" estimator trained on crops of this
    # side reads larger images high (its zero-padded borders weigh less there; sigma 25 read as 29.0
    # at 512 px, 25.7 in 96-px tiles, bench/results/level-reads-colour.txt): it reads the size it knows.
    estimator_window: int = 0
    # The denoiser's input gate (UNetConfig.input_gate).
    input_gate: bool = False


ESTIMATOR_POOLINGS = ("mean", "weighted", "global")
# Levels below half a grey level are all "clean" to the level loss: 8-bit rounding hides the exact
# level of a nearly clean crop, and a lower floor (1e-4) spent the estimator on telling 0.01 from 0.3.
LEVEL_LOSS_FLOOR = 0.5 / 255
# From the runs of models/README.md (n2n-photo-level: "held to reading ... low"): unweighted, the
# squared excess let the estimator drift high (crops drawn below 1.5 read 2.07 after 500 steps,
# clean kodim13 3.07; bench/training_reads.py, bench/told_levels.py); on the level loss's log
# scale, whose gradient does not fade near the cap, it outweighed the denoising loss, and the
# estimator read every crop low (real pairs 37.23 -> 36.22 dB) without coming back, Adam's second
# moments remembering the large gradients. Ten times held clean Kodak24 photos above 42 dB, and
# real pairs at 37.25-37.28 (models/README.md, n2n-photo-level: "held to reading ... low").
OVER_READ_WEIGHT = 10.0
# The estimator trains at this multiple of the run's learning rate: at a finetune's rate (1e-4)
# it barely moved in 7,000 steps, and a new estimator starts from nothing.
ESTIMATOR_LR_SCALE = 3.0


def _window_tiles(x: torch.Tensor, window: int) -> tuple[torch.Tensor, int]:
    """N x C x H x W -> the central whole `window`-sided tiles of each image, stacked image by
    image, and how many each image has; the images themselves when `window` is 0 or either side
    is not larger than it."""
    n, c, h, w = x.shape
    if not window or h <= window or w <= window:
        return x, 1
    rows, cols = h // window, w // window
    x = center_crop(x, max(h, w), multiple=window)
    tiles = x.reshape(n, c, rows, window, cols, window).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(n * rows * cols, c, window, window), rows * cols


@register_architecture
class LevelUNet(Restorer):
    architecture = "unet-level"
    config_class = LevelUNetConfig
    takes_noise_level = True

    def __init__(self, config: LevelUNetConfig) -> None:
        super().__init__(config)
        c, f = config.channels, config.estimator_features
        if config.estimator_pooling not in ESTIMATOR_POOLINGS:
            raise ValueError(
                f"estimator_pooling must be one of {', '.join(ESTIMATOR_POOLINGS)}, not {config.estimator_pooling!r}"
            )
        self.denoiser = UNet(UNetConfig(c + 1, c, config.encoder_features, config.decoder_features, config.input_gate))
        # 3x3 convolutions, a level per pixel (and, weighted, a weight logit), pooled over the
        # image: the same estimate from a 64-pixel training crop and a 512-pixel crop of a photo.
        layers: list[nn.Module] = []
        for index, dilation in enumerate(config.estimator_dilations):
            conv = nn.Conv2d(c if index == 0 else f, f, kernel_size=3, padding=dilation, dilation=dilation)
            layers += [conv, nn.LeakyReLU(0.1)]
            if index in config.estimator_pool_after:  # ceil: an odd edge or a 1-pixel image keeps a pixel
                layers.append(nn.AvgPool2d(2, ceil_mode=True))
        weighted = config.estimator_pooling == "weighted"
        if config.estimator_pooling == "global":  # 1 x 1 convolutions on the averaged features
            layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(f, f, kernel_size=1), nn.LeakyReLU(0.1)]
            last = nn.Conv2d(f, 1, kernel_size=1)
        else:
            last = _conv(f, 2 if weighted else 1)
        nn.init.constant_(last.bias[:1], -4.0)  # softplus(-4) = 0.018: a start near a photo's level (sigma 4.6)
        if weighted:  # equal weights at the start: the plain mean
            nn.init.zeros_(last.weight[1:])
            nn.init.zeros_(last.bias[1:])
        self.estimator = nn.Sequential(*layers, last)
        self.in_channels, self.out_channels = c + 1, c
        self.size_multiple = self.denoiser.size_multiple
        self.receptive_margin = self.denoiser.receptive_margin
        self.floats_per_pixel = self.denoiser.floats_per_pixel
        self.last_level_loss: torch.Tensor | None = None

    @property
    def learns_level(self) -> bool:
        """Whether training steps compute the level loss: not when the estimator is frozen (a run
        of the denoiser alone, restore.training.loop `denoiser_only`)."""
        return any(p.requires_grad for p in self.estimator.parameters())

    def estimate_level(self, noisy: torch.Tensor) -> torch.Tensor:
        """The noise level (sigma on the [0, 1] scale) of each image of an N x C x H x W batch: N values."""
        tiles, per_image = _window_tiles(noisy, self.config.estimator_window)
        out = self.estimator(tiles).float().flatten(2)  # tiles x (1 or 2) x pixels
        level = F.softplus(out[:, 0])
        if out.shape[1] == 1:
            level = level.mean(dim=1)
        else:
            level = (level * torch.softmax(out[:, 1], dim=1)).sum(dim=1)
        return level.view(-1, per_image).mean(dim=1)

    def level_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The estimator's error on a training input N x (C + 1) x H x W, whose level channel holds
        the level its noise was made with: L1 on a log scale, as levels span two orders of magnitude."""
        told = x[:, -1].float().mean(dim=(1, 2))
        guessed = self.estimate_level(x[:, :-1])
        return F.l1_loss(torch.log(guessed + LEVEL_LOSS_FLOOR), torch.log(told + LEVEL_LOSS_FLOOR))

    @staticmethod
    def over_read_loss(read: torch.Tensor, drawn: torch.Tensor, cap: float) -> torch.Tensor:
        """What reading a nearly clean crop high costs: for each of N crops whose noise was drawn
        below `cap`, OVER_READ_WEIGHT times the square of how far its reading exceeds `cap` (0 at
        or below it), averaged over all N. Squared levels are variances, the units of an L2 image
        loss, and the square's gradient fades to 0 at the cap, so that Adam's step sizes stay set
        by the denoising loss. One-sided: the denoising loss alone decides every reading below the
        cap and every noisier crop's."""
        excess = F.relu(read.float() - cap)
        return OVER_READ_WEIGHT * (excess.square() * (drawn < cap)).mean()

    def denoise_as_read(self, noisy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoise N x C x H x W told the level the estimator reads off each image, as inference
        does: differentiable in the estimator, so that it can learn the level the denoiser works best
        with. Returns the output and the N levels read."""
        level = self.estimate_level(noisy)
        return self.denoiser(append_level_map(noisy, level)), level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise N x (C + 1) x H x W: the colour channels, then the level map."""
        if self.training and self.learns_level:
            self.last_level_loss = self.level_loss(x)  # the estimator learns beside the denoiser
        return self.denoiser(x)

    def extra_loss(self) -> torch.Tensor | None:
        return self.last_level_loss

    def parameter_groups(self) -> list[dict[str, Any]]:
        estimator = {"params": list(self.estimator.parameters()), "lr_scale": ESTIMATOR_LR_SCALE}
        return [*self.denoiser_parameter_groups(), estimator]

    def denoiser_parameter_groups(self) -> list[dict[str, Any]]:
        """The denoiser's parameters alone (its gate at its own rate), for a run that keeps the
        estimator (`denoiser_only`)."""
        return self.denoiser.parameter_groups()

    def estimator_parameter_groups(self) -> list[dict[str, Any]]:
        """The estimator's parameters alone, at the run's own rate: for a run that trains only the
        estimator (restore.training.loop, `estimator_only`), whose steps never run the denoiser."""
        return [{"params": list(self.estimator.parameters()), "lr_scale": 1.0}]


@register_variant
def n2n_unet_level(channels: int = 3) -> LevelUNet:
    """The U-Net conditioned on a noise level, with its level estimator (about 30,000 more parameters)."""
    return LevelUNet(LevelUNetConfig(channels=channels))


@register_variant
def n2n_unet_level_gray() -> LevelUNet:
    """The level U-Net for one-channel (gray) images: FFDNet's noise map for the gray rows, where
    the blind n2n_unet_gray leaves half of faint white noise (bench/noise_left.py)."""
    return LevelUNet(LevelUNetConfig(channels=1))


@register_variant
def n2n_unet_level_wide(channels: int = 3) -> LevelUNet:
    """The level U-Net with a wider estimator (about 190,000 parameters): 64 features, dilated
    convolutions that see 37 pixels across, and a weighted mean. The 11-pixel estimator reads
    camera noise, which demosaicking and noise reduction spread over several pixels, at about
    half its level (bench/results/photo-noise-stats.txt)."""
    wide = LevelUNetConfig(channels, estimator_features=64, estimator_dilations=(1, 1, 2, 4, 8, 1))
    wide.estimator_pooling = "weighted"
    return LevelUNet(wide)


def _pyramid_config(channels: int) -> LevelUNetConfig:
    config = LevelUNetConfig(channels, estimator_dilations=(1,) * 8, estimator_pool_after=(1, 3, 5))
    config.estimator_pooling, config.estimator_window = "global", 96
    return config


@register_variant
def n2n_unet_level_pyramid(channels: int = 3) -> LevelUNet:
    """The level U-Net with a multi-scale estimator (about 70,000 parameters): pairs of 3x3
    convolutions at full, half, quarter and eighth size, their features averaged over the image
    and read by a small perceptron, images larger than 96 pixels in 96-pixel tiles. The 11-pixel
    estimator reads camera noise, which demosaicking, noise reduction and JPEG spread over 2-16
    pixels, at about half its level, its own training photo noise too
    (bench/results/photo-noise-stats-295b644ed74e.txt)."""
    return LevelUNet(_pyramid_config(channels))


@register_variant
def n2n_unet_level_gated(channels: int = 3) -> LevelUNet:
    """The pyramid-estimator level U-Net with an input gate (UNetConfig.input_gate): the U-Net,
    which has no skip from its input to its output, does not hand fine texture through even on a
    clean photo told level 0 (kodim24: 42.8 dB against itself); the gate lets it pass the input
    where its own estimate is the worse one."""
    gated = _pyramid_config(channels)
    gated.input_gate = True
    return LevelUNet(gated)


@register_variant
def n2n_unet_level_pyramid_gray() -> LevelUNet:
    """The pyramid-estimator level U-Net for one-channel (gray) images: n2n_unet_level_gray's
    five-layer estimator reads white noise high (sigma 15 as 16.1 on Set12,
    bench/results/level-reads-gray.txt), and a denoiser
    told too high a level smooths the image's own detail away with the noise."""
    return n2n_unet_level_pyramid(channels=1)


def with_level_map(network: Restorer, x: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
    """`x` (N x C x H x W) with the level map appended for a network that takes one: `level` per
    image (N values, sigma on the [0, 1] scale), estimated from `x` when None. Others get `x`."""
    if not network.takes_noise_level:
        return x
    return append_level_map(x, network.estimate_level(x) if level is None else level)  # type: ignore[operator]


def append_level_map(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x (C + 1) x H x W: each image's `level` (one value, or one per image) as a last channel."""
    plane = level.to(x.dtype).view(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[-2:])
    return torch.cat([x, plane], dim=1)
