"""Image-quality metrics under the protocols of ``shared/data/README.md`` ("Conventions").

Every function here scores ONE image and returns a Python float; benchmark tables average the
per-image numbers over a set (the mean of per-image PSNR, not the PSNR of the pooled MSE), so
a batch with more than one image is refused rather than silently pooled.

Computation is in float64 so that scores do not depend on the dtype the caller happens to hold.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["estimated_psnr", "noisy_reference_psnr", "psnr", "psnr_y", "rgb_to_y", "ssim", "ssim_y"]

# ITU-R BT.601 luma for RGB in [0, 255], giving Y in [16, 235] (MATLAB's rgb2ycbcr).
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)

# Wang et al. 2004.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 of RGB in [0, 255].

    Args:
        x: N x 3 x H x W or 3 x H x W in [0, 255]. A one-channel image (N x 1 x H x W,
            1 x H x W or H x W) is already Y under the SR protocol and is returned as is.

    Returns:
        Y with a channel dimension of size 1 (N x 1 x H x W or 1 x H x W), dtype of ``x``
        (float32 for an integer input).
    """
    if x.ndim == 2:
        return x
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"rgb_to_y needs 3 x H x W or N x 3 x H x W, got shape {tuple(x.shape)}")
    if x.shape[-3] == 1:
        return x
    if not x.is_floating_point():
        x = x.float()
    r, g, b = x.unbind(dim=-3)
    y = _Y_OFFSET + (_Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b) / 255.0
    return y.unsqueeze(-3)


def _one_image(a: torch.Tensor, b: torch.Tensor, shave: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a pair of single images and return both as float64 C x H x W, borders shaved."""
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"{name} scores one image, got a batch of {a.shape[0]}; score each image and average the scores")
        a, b = a[0], b[0]
    elif a.ndim == 2:
        a, b = a[None], b[None]
    elif a.ndim != 3:
        raise ValueError(f"{name} needs H x W, C x H x W or 1 x C x H x W, got shape {tuple(a.shape)}")
    h, w = a.shape[-2:]
    if shave < 0 or 2 * shave >= min(h, w):
        raise ValueError(f"{name}: cannot shave {shave} pixels from each border of {h} x {w}")
    window = (slice(None), slice(shave, h - shave), slice(shave, w - shave))
    return a[window].to(torch.float64), b[window].to(torch.float64)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0, shave: int = 0) -> float:
    """PSNR = 10 log10(peak^2 / MSE) over all pixels and channels of one image.

    Args:
        a, b: the same shape, H x W, C x H x W or 1 x C x H x W.
        peak: the largest possible value (255 for 8-bit data, 1 for [0, 1] data).
        shave: pixels removed from each border before scoring.

    Returns:
        PSNR in dB; ``inf`` for identical images.
    """
    a64, b64 = _one_image(a, b, shave, "psnr")
    mse = torch.mean((a64 - b64) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _gaussian_1d(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The normalised 11-tap Gaussian (sigma 1.5) whose outer product is Wang et al.'s window."""
    offsets = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0, shave: int = 0) -> float:
    """SSIM of Wang et al. 2004: mean of the SSIM map, averaged over channels.

    An 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, and 'valid' filtering (no
    padding), as in the authors' ssim_index.m, so the map is 10 pixels smaller than the image
    in each dimension.

    Args:
        a, b: the same shape, H x W, C x H x W or 1 x C x H x W.
        peak: the dynamic range L of the data (255 for 8-bit data).
        shave: pixels removed from each border before scoring.

    Returns:
        SSIM, 1.0 for identical images.
    """
    a64, b64 = _one_image(a, b, shave, "ssim")
    channels, h, w = a64.shape
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(f"ssim needs at least {_SSIM_WINDOW} x {_SSIM_WINDOW} pixels, got {h} x {w}")
    # Filter the five local statistics' inputs in one batched call: channel blocks
    # [a, b, a^2, b^2, ab], each channel on its own (groups).
    stacked = torch.cat([a64, b64, a64 * a64, b64 * b64, a64 * b64])[None]
    g = _gaussian_1d(a64.dtype, a64.device)
    groups = stacked.shape[1]
    # The 2-D Gaussian window is separable: a row pass then a column pass give the same
    # 'valid' result as the 11 x 11 window with 2 x 11 instead of 121 taps per pixel (float64
    # convolution on CPU is slow enough for this to matter).
    filtered = F.conv2d(stacked, g.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    filtered = F.conv2d(filtered, g.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)[0]
    mu_a, mu_b, mean_aa, mean_bb, mean_ab = filtered.split(channels)
    var_a = mean_aa - mu_a * mu_a
    var_b = mean_bb - mu_b * mu_b
    cov = mean_ab - mu_a * mu_b
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    # Every channel's map has the same size, so the mean over all of them is the mean of the
    # per-channel means.
    return ssim_map.mean().item()


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """PSNR of the super-resolution protocol: Y channel, ``scale`` pixels shaved per border.

    Args:
        sr, hr: one image each, RGB (3 x H x W or 1 x 3 x H x W) or one-channel, in
            [0, 255]; the caller rounds ``sr`` to 8 bits first, as the protocol says.
        scale: the SR factor, also the border width left out.
    """
    return psnr(rgb_to_y(sr), rgb_to_y(hr), peak=255.0, shave=scale)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """SSIM of the super-resolution protocol: Y channel, ``scale`` pixels shaved per border.

    Args:
        sr, hr: as for :func:`psnr_y`.
        scale: the SR factor, also the border width left out.
    """
    return ssim(rgb_to_y(sr), rgb_to_y(hr), peak=255.0, shave=scale)


ESTIMATE_TILE = 8
"""The reference-free estimates average their per-pixel error estimates over 8 x 8 tiles: nearby
pixels' errors are correlated (a denoiser's error is smooth), tiles far less, so the spread of
the tiles gives the estimate's standard error."""


def estimated_psnr(mean_error: float, tiles: torch.Tensor) -> float:
    """PSNR (peak 1) of a reference-free estimate of the mean squared error, read as no less than
    the estimate's standard error over ``tiles``, its per-tile values (taken as independent).

    The estimate is the difference of two noisy terms and comes out at or below zero where the
    output is closer to the clean image than the pair can tell: floored at a tiny constant it read
    100-120 dB, and one such pair lifted a validation's mean over four by 20 dB, enough for --keep
    best to pick a dimmed network. The least error a pair can tell apart from none is the
    estimate's own standard error.
    """
    standard_error = tiles.double().std(correction=0).item() / math.sqrt(tiles.numel())
    return 10 * math.log10(1 / max(mean_error, standard_error, 1e-12))


def noisy_reference_psnr(output: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> float:
    """PSNR (peak 1) of ``output`` = f(first) against the clean image no one has, estimated from
    a second, independent noisy shot of it.

    PSNR(f(A), B) hardly moves as f improves: B's own noise dominates it. Since
    E|f(A) - B|^2 = E|f(A) - clean|^2 + var(noise_B) and E|A - B|^2 = 2 var(noise) for two shots
    of the same noise level, the clean error is estimated as MSE(f(A), B) - MSE(A, B) / 2.
    Unbiased for zero-mean noise on the values compared; on tone-mapped renders it is not, since
    T(B) is not centred on T(clean): restore.hdr.estimated_psnr_tone_mapped serves renders. An
    estimate below its standard error (over `ESTIMATE_TILE` tiles) reads as that standard error.
    """
    output, first, second = output.double(), first.double(), second.double()
    excess = ((output - second).square() - (first - second).square() / 2).mean(1, keepdim=True)
    tile = min(ESTIMATE_TILE, excess.shape[-2], excess.shape[-1])
    return estimated_psnr(excess.mean().item(), F.avg_pool2d(excess, tile))
