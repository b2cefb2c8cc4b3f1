"""Files in, files out: read an image, run a model on it, write the result without losing
bit depth, alpha, colour profile or HDR range. Used by the CLI; the library API works on arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restore.api import Model, run_model
from restore.imageio import Image, read_image, srgb_decode, srgb_encode, write_image
from restore.resize import imresize
from restore.tiling import TileCallback


@dataclass
class RunOptions:
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    max_memory: int | None = None
    bit_depth: str | None = None
    overwrite: bool = False


def restore_image(image: Image, model: Model, options: RunOptions, on_tile: TileCallback | None = None) -> Image:
    """Run `model` on a decoded image and return the result as an Image in the input's format.

    Pixels are converted to the transfer the model was trained on and back; alpha is passed
    through a denoiser and resized (bicubic) by an upscaler.
    """
    pixels = image.pixels
    if model.info.transfer == "srgb" and image.transfer == "linear":
        pixels = srgb_encode(np.clip(pixels, 0.0, 1.0))
    elif model.info.transfer == "linear" and image.transfer == "srgb":
        pixels = srgb_decode(pixels)
    result = run_model(
        model,
        pixels,
        device=options.device,
        precision=options.precision,
        tile=options.tile,
        max_memory=options.max_memory,
        on_tile=on_tile,
    )
    if model.info.transfer == "srgb":
        result = np.clip(result, 0.0, 1.0)
        if image.transfer == "linear":
            result = srgb_decode(result)
    else:
        result = np.maximum(result, 0.0)
    alpha = image.alpha
    scale = model.network.scale
    if alpha is not None and scale != 1:
        resized = imresize(torch.from_numpy(alpha).permute(2, 0, 1)[None], scale=scale)
        alpha = resized[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return Image(
        pixels=np.ascontiguousarray(result, dtype=np.float32),
        alpha=alpha,
        bit_depth=image.bit_depth,
        transfer=image.transfer,
        icc_profile=image.icc_profile,
        format=image.format,
    )


def restore_file(source: Path, target: Path, model: Model, options: RunOptions, on_tile: TileCallback | None = None) -> Image:
    """Read `source`, restore it, write `target` atomically; return the written image."""
    image = read_image(source)
    result = restore_image(image, model, options, on_tile)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, result, bit_depth=options.bit_depth, overwrite=options.overwrite)
    return result


def writable_folder(folder: Path) -> bool:
    """True when files can be created in `folder` (or it can be created)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK)
