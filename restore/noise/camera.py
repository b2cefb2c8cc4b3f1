"""A camera's image pipeline, backwards and forwards, for noise as it reaches a user's photo.

The design is unprocessing (Brooks et al., "Unprocessing Images for Learned Raw Denoising",
CVPR 2019): a clean sRGB image is taken back to the sensor (tone curve, gamma, colour matrix,
white balance inverted), noise is added where a sensor adds it (shot noise proportional to the
signal plus read noise, on one colour per pixel of a Bayer mosaic), and the pipeline is run
forwards again (white balance, colour matrix, gamma, tone curve), with the camera's own noise
reduction (mostly of colour noise), 8 bits and JPEG.

One departure, so that a clean photo round-trips unchanged: only the *noise* goes through the
mosaic and the bilinear demosaicking. Demosaicking is linear, so demosaic(mosaic(raw + n)) =
demosaic(mosaic(raw)) + demosaic(mosaic(n)); a real camera's demosaicking keeps far more of the
signal than bilinear interpolation would, so the first term is replaced by the raw image itself,
while the noise keeps the spatial and cross-channel correlation that demosaicking gives it.

Images are N x 3 x H x W on [0, 1]. :class:`CameraSettings` holds one draw of everything that
is per image (the camera, the light, the noise level, the JPEG quality); two noise draws with
the same settings are a Noise2Noise pair.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage

from restore.noise.params import gaussian_blur, to_8_bits

GAMMA = 2.2
JPEG_BLOCK = 8
DEFAULT_LUMA_BLUR = (0.4, 1.6)  # the camera's smoothing of luma noise, in pixels, unless a spec says otherwise


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, dtype=torch.float64, generator=generator, device=generator.device)


@dataclass(frozen=True)
class CameraSettings:
    """One draw per image of a camera and its exposure (float64 tensors, first dimension N).

    Attributes:
        rgb_to_camera: N x 3 x 3 colour matrices, rows summing to 1 (white stays white).
        gains: N x 3 white-balance gains (red, green, blue), brightness included.
        shot: N shot-noise levels (variance per unit of raw signal).
        read: N read-noise variances.
        blur: N standard deviations, in pixels, of the camera's smoothing of luma noise.
        chroma: N factors (below 1) by which the camera's noise reduction scales colour noise.
        chroma_blur: N standard deviations, in pixels, of its smoothing of colour noise.
        quality: N JPEG qualities (integers 1-100; 100: not compressed).
        offset: N x 2 positions of the JPEG block grid (0-7), as a crop leaves it.
        coarse: N fractions (0-1) of the luma noise's variance moved to a coarse grain.
        coarse_blur: N standard deviations, in pixels, of that coarse grain.
        gamma: N exponents between linear light and the tone curve's input (2.2 in Brooks et al.).
    """

    rgb_to_camera: torch.Tensor
    gains: torch.Tensor
    shot: torch.Tensor
    read: torch.Tensor
    blur: torch.Tensor
    chroma: torch.Tensor
    chroma_blur: torch.Tensor
    quality: torch.Tensor
    offset: torch.Tensor
    coarse: torch.Tensor
    coarse_blur: torch.Tensor
    gamma: torch.Tensor


def draw_settings(
    n: int,
    shot: tuple[float, float],
    quality: tuple[float, float],
    generator: torch.Generator,
    blur: tuple[float, float] = DEFAULT_LUMA_BLUR,
    chroma: tuple[float, float] = (0.25, 1.0),
    chroma_blur: tuple[float, float] = (0.5, 2.5),
    coarse: tuple[float, float] = (0.0, 0.0),
    coarse_blur: tuple[float, float] = (2.0, 4.0),
    gamma: tuple[float, float] = (GAMMA, GAMMA),
) -> CameraSettings:
    """Draw settings for `n` images: shot noise log-uniform in `shot`, JPEG quality uniform in
    `quality`, the coarse grain's share of the luma noise uniform in `coarse`, the gamma uniform
    in `gamma`.

    The ranges of the rest follow Brooks et al.: red gain 1.9-2.4, blue gain 1.5-1.9, a
    brightness gain 1 / N(0.8, 0.1), and read noise tied to the shot noise as measured over
    real sensors (log read = 2.18 log shot + 1.20, with N(0, 0.26) scatter). The colour matrix
    mixes each channel with the others by 10-50 %, as sensors' overlapping filters do.
    """
    log_shot = _uniform(n, math.log(shot[0]), math.log(shot[1]), generator)
    scatter = torch.randn(n, dtype=torch.float64, generator=generator, device=generator.device) * 0.26
    read = torch.exp(2.18 * log_shot + 1.20 + scatter)
    brightness = 1.0 / (0.8 + 0.1 * torch.randn(n, dtype=torch.float64, generator=generator, device=generator.device))
    brightness = brightness.clamp(1.0 / 1.2, 1.0 / 0.4)  # the normal's far tails would flip or explode it
    red, blue = _uniform(n, 1.9, 2.4, generator), _uniform(n, 1.5, 1.9, generator)
    gains = torch.stack([red, torch.ones(n, dtype=torch.float64), blue], dim=1) * brightness[:, None]
    mixing = _uniform(n, 0.1, 0.5, generator)[:, None, None]
    others = torch.rand((n, 3, 3), dtype=torch.float64, generator=generator, device=generator.device) + 0.05
    others = others / others.sum(dim=2, keepdim=True)
    rgb_to_camera = (1 - mixing) * torch.eye(3, dtype=torch.float64) + mixing * others
    low_q, high_q = quality
    q = torch.randint(int(low_q), int(high_q) + 1, (n,), generator=generator, device=generator.device)
    offset = torch.randint(0, JPEG_BLOCK, (n, 2), generator=generator, device=generator.device)
    smoothing = [_uniform(n, *r, generator) for r in (blur, chroma, chroma_blur)]
    if max(coarse) > 0:
        grain = [_uniform(n, *r, generator) for r in (coarse, coarse_blur)]
    else:  # drawn only when asked for, so that settings without it draw the same numbers as before it existed
        grain = [torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)]
    if gamma[1] > gamma[0]:  # likewise drawn only when it varies
        exponent = _uniform(n, *gamma, generator)
    else:
        exponent = torch.full((n,), float(gamma[0]), dtype=torch.float64)
    return CameraSettings(rgb_to_camera, gains, torch.exp(log_shot), read, *smoothing, q, offset, *grain, exponent)


def tone_curve(x: torch.Tensor) -> torch.Tensor:
    """The smoothstep tone curve 3x^2 - 2x^3 that Brooks et al. fit to cameras' output."""
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def inverse_tone_curve(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`tone_curve` on [0, 1]."""
    y = y.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1 - 2 * y) / 3)


def _apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per-image 3 x 3 colour matrix applied to every pixel of N x 3 x H x W."""
    return torch.einsum("nij,njhw->nihw", matrix.to(image.dtype), image)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """N per-image numbers shaped to broadcast over N x C x H x W images like `like`."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def to_raw(srgb: torch.Tensor, settings: CameraSettings) -> torch.Tensor:
    """Unprocess: sRGB-like [0, 1] image -> linear camera RGB before white balance (N x 3 x H x W)."""
    linear = inverse_tone_curve(srgb).clamp_min(1e-8) ** _per_image(settings.gamma, srgb)
    camera = _apply_matrix(linear, settings.rgb_to_camera)
    return camera / settings.gains.to(srgb.dtype)[:, :, None, None]


def from_raw(raw: torch.Tensor, settings: CameraSettings) -> torch.Tensor:
    """Process: linear camera RGB -> sRGB-like [0, 1] (white balance, colour matrix, gamma, tone curve)."""
    balanced = raw * settings.gains.to(raw.dtype)[:, :, None, None]
    linear = _apply_matrix(balanced, torch.linalg.inv(settings.rgb_to_camera)).clamp(0, 1)
    return tone_curve(linear.clamp_min(1e-8) ** (1 / _per_image(settings.gamma, raw)))


def bayer_masks(height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """3 x H x W masks of an RGGB Bayer mosaic: which colour each photosite records."""
    y = torch.arange(height)[:, None] % 2
    x = torch.arange(width)[None, :] % 2
    red = (y == 0) & (x == 0)
    blue = (y == 1) & (x == 1)
    return torch.stack([red, ~(red | blue), blue]).to(dtype)


_BILINEAR = {
    "rb": torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]),
    "g": torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]),
}


def demosaic_bilinear(mosaic: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W RGGB mosaic -> N x 3 x H x W by bilinear interpolation.

    Each colour is the weighted mean of the photosites of that colour under its kernel, so the
    border (where part of the kernel falls outside) needs no padding rule and a site keeps its
    own recorded value.
    """
    h, w = mosaic.shape[-2:]
    masks = bayer_masks(h, w, mosaic.dtype).to(mosaic.device)
    planes = []
    for channel, kernel_name in zip(range(3), ("rb", "g", "rb"), strict=True):
        kernel = _BILINEAR[kernel_name].to(mosaic)[None, None]
        mask = masks[channel][None, None]
        num = F.conv2d(mosaic * mask, kernel, padding=1)
        den = F.conv2d(mask.expand_as(mosaic), kernel, padding=1)
        planes.append(num / den)
    return torch.cat(planes, dim=1)


def raw_noise(raw: torch.Tensor, settings: CameraSettings, generator: torch.Generator) -> torch.Tensor:
    """Sensor noise on the mosaic, demosaicked: N x 3 x H x W, mean zero.

    Each photosite records one colour of `raw`; its noise has variance shot * signal + read.
    """
    n, _, h, w = raw.shape
    masks = bayer_masks(h, w, raw.dtype).to(raw.device)
    site_signal = (raw.clamp_min(0) * masks).sum(dim=1, keepdim=True)
    shot, read = (v.to(raw.dtype).view(n, 1, 1, 1) for v in (settings.shot, settings.read))
    z = torch.randn((n, 1, h, w), dtype=raw.dtype, generator=generator, device=generator.device).to(raw.device)
    return demosaic_bilinear(z * (site_signal * shot + read).sqrt())


# BT.601 luma and colour differences: a camera's noise reduction treats them apart.
TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of N x C x H x W with a standard deviation per image (0: unchanged)."""
    if not bool((sigma > 0).any()):
        return x
    radius = max(1, math.ceil(3 * float(sigma.max())))
    sigmas = sigma.clamp_min(1e-3).to(x.dtype)[:, None].expand(-1, 2)
    return gaussian_blur(x, 2 * radius + 1, sigmas, "reflect")


def noise_reduction(noise: torch.Tensor, settings: CameraSettings) -> torch.Tensor:
    """The camera's own noise reduction on the processed noise (N x 3 x H x W).

    Cameras smooth colour noise far more than luma noise: in the PolyU pairs the noise of the
    three channels correlates by 0.4-0.9, where raw noise through a colour matrix correlates by
    about 0.1. So the colour differences are scaled down and blurred, the luma only blurred.

    Real JPEGs' luma noise also keeps more of its correlation two pixels away than one Gaussian
    blur gives (bench/photo_noise_stats.py: lag-2 correlation up to 0.52 where lag 1 is 0.74, a
    single blur gives 0.30): their noise reduction leaves coarse blotches. A `coarse` share of the
    luma variance is drawn from the same noise blurred far more, scaled to the fine grain's level.
    """
    to_ycbcr = TO_YCBCR.to(noise)
    ycbcr = torch.einsum("ij,njhw->nihw", to_ycbcr, noise)
    luma = _blur(ycbcr[:, :1], settings.blur.to(noise.device))
    if bool((settings.coarse > 0).any()):
        grain = _blur(ycbcr[:, :1], settings.coarse_blur.to(noise.device))
        level = luma.std(dim=(1, 2, 3), keepdim=True) / grain.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        share = settings.coarse.to(noise).view(-1, 1, 1, 1)
        luma = (1 - share).sqrt() * luma + share.sqrt() * grain * level
    chroma = _blur(ycbcr[:, 1:], settings.chroma_blur.to(noise.device))
    chroma = chroma * settings.chroma.to(noise).view(-1, 1, 1, 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_ycbcr), torch.cat([luma, chroma], dim=1))


def jpeg_round_trip(picture: torch.Tensor, quality: int) -> torch.Tensor:
    """A 3 x H x W [0, 1] picture rounded to 8 bits, saved as a JPEG of `quality` (Pillow, 4:2:0)
    and read back as float32 on the CPU."""
    pixels = (picture.permute(1, 2, 0).cpu().double().numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    decoded = np.asarray(PILImage.open(buffer).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(decoded).permute(2, 0, 1)


def jpeg(image: torch.Tensor, settings: CameraSettings) -> torch.Tensor:
    """Round N x 3 x H x W [0, 1] images to 8 bits and JPEG-compress each at its quality (Pillow, 4:2:0).

    Quality 100 stands for a file saved without compression (8 bits only, as a raw converter's
    PNG or TIFF). The block grid starts at each image's `offset`: a user's crop rarely starts on it.
    """
    out = []
    for index, picture in enumerate(image.clamp(0, 1)):
        if int(settings.quality[index]) >= 100:
            out.append(to_8_bits(picture.cpu()))
            continue
        dy, dx = (int(v) for v in settings.offset[index])
        padded = F.pad(picture[None], (dx, 0, dy, 0), mode="replicate")[0]
        out.append(jpeg_round_trip(padded, int(settings.quality[index]))[:, dy:, dx:])
    return torch.stack(out).to(device=image.device, dtype=image.dtype)


def photo_reference(clean: torch.Tensor, settings: CameraSettings) -> torch.Tensor:
    """`clean` through the camera of `settings` without noise: 8 bits and JPEG, what its noise is measured against."""
    return jpeg(from_raw(to_raw(clean, settings), settings), settings)


def photo_noise(clean: torch.Tensor, settings: CameraSettings, generator: torch.Generator) -> torch.Tensor:
    """`clean` as the camera of `settings` would have photographed it: noise, 8 bits, JPEG."""
    raw = to_raw(clean, settings)
    processed = from_raw(raw, settings)  # `clean` itself, up to clipping and rounding
    noise = from_raw(raw + raw_noise(raw, settings, generator), settings) - processed
    return jpeg(processed + noise_reduction(noise, settings), settings)
