"""NaN and infinite pixels: found before they reach a network, where one bad value would
spread over a whole tile (every convolution mixes it into its neighbours).

Renderers and HDR tools sometimes write them (a division by zero in a shader, a firefly that
overflowed half floats). By default restore refuses such an input with one clear line; with
`--repair-nonfinite` each bad value is replaced by the mean of the finite values around it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def count_nonfinite(pixels: np.ndarray) -> int:
    """Number of pixels (H x W positions) with a NaN or infinite value in any channel."""
    bad = ~np.isfinite(pixels)
    return int(bad.any(axis=-1).sum()) if bad.ndim == 3 else int(bad.sum())


def repair_nonfinite(pixels: np.ndarray, radius: int = 1) -> np.ndarray:
    """Replace NaN / Inf values (H x W x C) by the mean of the finite values of the same channel
    within `radius` pixels, widening the window until one is found (0 when a channel has none)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    good = torch.isfinite(x)
    values = torch.where(good, x, torch.zeros(()))
    weights = good.float()
    repaired = values.clone()
    missing = ~good
    r = radius
    while missing.any() and r <= max(x.shape[-2:]):
        size = 2 * r + 1
        total = F.avg_pool2d(F.pad(values, (r, r, r, r)), size, stride=1) * size * size
        count = F.avg_pool2d(F.pad(weights, (r, r, r, r)), size, stride=1) * size * size
        fill = missing & (count > 0.5)
        repaired = torch.where(fill, total / count.clamp_min(1.0), repaired)
        missing = missing & ~fill
        r *= 2
    repaired = torch.where(missing, torch.zeros(()), repaired)
    return repaired[0].permute(1, 2, 0).numpy()
