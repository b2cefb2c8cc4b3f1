"""MATLAB-compatible bicubic resizing.

Published super-resolution numbers are computed on low-resolution images made by MATLAB's
``imresize(img, scale, 'bicubic')``. Its antialiasing (a kernel stretched by ``1/scale`` when
downscaling) and its edge handling (clamped indices, i.e. replicated edge pixels) differ from
``torch.nn.functional.interpolate``, and the difference is worth tenths of a dB, so this module
reproduces MATLAB's algorithm: per dimension, a weight matrix and an index matrix of the input
pixels that feed each output pixel, applied one dimension at a time.
"""

from __future__ import annotations

import math

import torch

__all__ = ["imresize", "modcrop"]

# Keys' cubic convolution kernel with a = -0.5 is zero beyond |x| = 2.
_KERNEL_WIDTH = 4.0


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (the kernel MATLAB calls 'bicubic')."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _contributions(
    in_len: int, out_len: int, scale: float, antialias: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and 0-based input indices (both out_len x P) of one dimension, as MATLAB builds them.

    Computed in float64 whatever the image's dtype, so that the weights are MATLAB's to the
    last bit that matters before the caller rounds to 8 bits.
    """
    kernel_width = _KERNEL_WIDTH
    stretch = scale < 1 and antialias
    if stretch:
        # Stretching the kernel by 1/scale low-pass filters the input to the output's
        # Nyquist frequency; the factor `scale` keeps the stretched kernel's integral at 1.
        kernel_width = kernel_width / scale

    # Output pixel centres mapped into input coordinates (1-based, as in MATLAB, so that
    # the floor below lands on the same integers).
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2)
    # One tap more than the kernel's support can need; its weight is zero when unused.
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if stretch else _cubic(distance)
    # Normalising each row makes a constant image stay exactly constant, also at the edges.
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Out-of-range taps are clamped to the edge pixel (MATLAB replicates, it does not mirror).
    indices = indices.clamp(1, in_len).to(torch.long) - 1
    return weights, indices


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    """Resize ``x`` (N x C x H x W) along ``dim`` (-2 for H, -1 for W)."""
    weights, indices = _contributions(x.shape[dim], out_len, scale, antialias, x.device)
    weights = weights.to(x.dtype)
    if dim == -1:
        # x[..., indices] is N x C x H x out x P: every output pixel's taps side by side.
        return torch.einsum("nchop,op->ncho", x[..., indices], weights)
    # x[..., indices, :] is N x C x out x P x W.
    return torch.einsum("ncopw,op->ncow", x[..., indices, :], weights)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize like MATLAB's ``imresize(x, scale, 'bicubic')``.

    Args:
        x: float image tensor, N x C x H x W or C x H x W, on any value scale.
        scale: factor applied to both H and W; the output is ceil(H * scale) x
            ceil(W * scale). Give exactly one of ``scale`` and ``size``.
        size: output (height, width); each dimension then uses the factor out / in.
        antialias: stretch the kernel by 1 / scale when downscaling, as MATLAB does
            by default.

    Returns:
        The resized tensor, same dtype, device and number of dimensions as ``x``. Values
        are not rounded or clipped: that is the caller's step (e.g. to 8 bits).

    Raises:
        ValueError: for a bad shape, a non-float dtype, or a bad ``scale`` / ``size``.
    """
    if not x.is_floating_point():
        raise ValueError(f"imresize needs a floating-point tensor, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"imresize needs N x C x H x W or C x H x W, got shape {tuple(x.shape)}")
    in_h, in_w = x.shape[-2:]
    if scale is not None and size is None:
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be positive and finite, got {scale}")
        scales = (float(scale), float(scale))
        # MATLAB's rule for the output size.
        out_size = (math.ceil(in_h * scale), math.ceil(in_w * scale))
    elif size is not None and scale is None:
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be two positive integers (height, width), got {size}")
        out_size = (int(size[0]), int(size[1]))
        scales = (out_size[0] / in_h, out_size[1] / in_w)
    else:
        raise ValueError("give exactly one of scale and size")

    batched = x if x.ndim == 4 else x.unsqueeze(0)
    # MATLAB resizes the dimension with the smallest factor (largest reduction) first; the
    # sort is stable, so on a tie H goes first, as in MATLAB.
    order = sorted((0, 1), key=lambda d: scales[d])
    for d in order:
        if scales[d] == 1.0:
            # The kernel is 1 at 0 and 0 at every other integer: an identity pass.
            continue
        batched = _resize_dim(batched, d - 2, out_size[d], scales[d], antialias)
    return batched if x.ndim == 4 else batched.squeeze(0)


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the last two dimensions (H, W) to multiples of ``scale``, keeping the top-left part.

    The SR protocol does this to the HR image so that HR is exactly ``scale`` times LR.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def center_crop(image: torch.Tensor, size: int, multiple: int = 1) -> torch.Tensor:
    """The central crop of at most size x size pixels of a (... x) H x W image, its sides rounded
    down to `multiple` (an upscaler's HR crop must stay a multiple of the scale)."""
    h, w = image.shape[-2:]
    ch, cw = min(h, size) // multiple * multiple, min(w, size) // multiple * multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[..., y : y + ch, x : x + cw]


def matlab_uint8(values: torch.Tensor) -> torch.Tensor:
    """Values on [0, 255] rounded and saturated as MATLAB's uint8() does: halves away from zero
    (torch.round takes halves to the even neighbour, which moved 63 of Set5 x2's 425,592
    low-resolution values by one level)."""
    return torch.floor(values.clamp(0, 255) + 0.5).clamp(max=255)


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The benchmark degradation: MATLAB bicubic with antialiasing from [0, 255], rounded to 8 bits
    as MATLAB rounds, back on [0, 1]."""
    return matlab_uint8(imresize(hr * 255, scale=1 / scale)) / 255
