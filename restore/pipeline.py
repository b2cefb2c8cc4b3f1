"""Files in, files out: read an image, run a model on it, write the result without losing
bit depth, alpha, colour profile or HDR range. Used by the CLI; the library API works on arrays.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from restore.api import (
    RENDER_DENOISER,
    InferenceOptions,
    Model,
    buffer_prefilter,
    default_denoiser,
    denoiser,
    estimate_noise_level,
    run_model,
    upscaler_for,
)
from restore.hdr import buffer_convention_note
from restore.io.datasets import AUX_BUFFERS, aux_path, load_aux
from restore.io.images import (
    MAX_PIXELS,
    Image,
    ImageError,
    read_image,
    scaled_exr_attributes,
    srgb_decode,
    srgb_encode,
    write_image,
)
from restore.io.nonfinite import count_nonfinite, repair_nonfinite
from restore.resize import imresize
from restore.tiling import TileCallback


@dataclass(frozen=True)
class RunOptions(InferenceOptions):
    """How a file is restored: how the model is run (InferenceOptions) and how files are read and written."""

    bit_depth: str | None = None  # the output's ("u8", "u16", "f16", "f32"); None: the input's
    overwrite: bool = False  # replace an existing output file instead of refusing
    repair_nonfinite: bool = False  # replace NaN / Inf input values instead of refusing the image
    aux_files: dict[str, Path] = field(default_factory=dict)  # e.g. {"albedo": path}; default: beside the image
    max_pixels: int = MAX_PIXELS  # decoded-size limit: a header claiming more is refused before decoding


@dataclass(frozen=True)
class Restored:
    """A restored image, the model that made it, and the noise level (sigma, 0-255) that model
    read off the input, for models conditioned on one (else None)."""

    image: Image
    model: Model
    noise_level: float | None = None
    notes: tuple[str, ...] = ()  # warnings about the input the result was made from, one line each
    aux_prefilter: str = ""  # the network that cleaned the buffers first (restore.api.buffer_prefilter), if one did


def precision_for(bit_depth: str, precision: str) -> str:
    """The precision to run an image of `bit_depth` in: "auto" keeps fp32 for 16-bit and float
    images, since bf16's 8 significant bits would throw away what those files promise (a clean
    16-bit ramp came back with 915 levels in bf16, 64,437 in fp32)."""
    return "fp32" if precision == "auto" and bit_depth != "u8" else precision


def restore_image(
    image: Image, model: Model, options: RunOptions, on_tile: TileCallback | None = None, aux: np.ndarray | None = None
) -> Restored:
    """Run `model` on a decoded image and return the result as an Image in the input's format.

    Pixels are converted to the transfer the model was trained on and back; alpha is passed
    through a denoiser and resized (bicubic) to the output size by an upscaler. NaN / Inf input
    raises ImageError unless `options.repair_nonfinite`; the output is always finite. `aux`
    holds the buffers a model with auxiliary inputs needs (H x W x 3 per buffer, stacked).
    A level-conditioned model reads the noise level off the pixels it is given (reported in the
    result) and is told it times `options.strength`.
    """
    pixels = image.pixels
    bad = count_nonfinite(pixels)
    if bad and not options.repair_nonfinite:
        raise ImageError(f"{bad} pixels are NaN or infinite; pass --repair-nonfinite to replace them by their neighbours")
    if bad:
        pixels = repair_nonfinite(pixels)
    if model.info.transfer == "srgb" and image.transfer == "linear":
        pixels = srgb_encode(np.clip(pixels, 0.0, 1.0))
    elif model.info.transfer == "linear" and image.transfer == "srgb":
        pixels = srgb_decode(pixels)
    level = estimate_noise_level(model, pixels)
    notes = _buffer_notes(pixels, model, aux)
    inference = replace(options, precision=precision_for(image.bit_depth, options.precision))
    result = run_model(model, pixels, inference, on_tile=on_tile, aux=aux, noise_level=level)
    if model.info.transfer == "srgb":
        result = np.clip(result, 0.0, 1.0)
        if image.transfer == "linear":
            result = srgb_decode(result)
    else:
        # Linear HDR output: non-negative and finite (half-precision overflow would give inf).
        result = np.nan_to_num(np.maximum(result, 0.0), nan=0.0, posinf=np.finfo(np.float32).max)
    alpha = image.alpha
    if alpha is not None and alpha.shape[:2] != result.shape[:2]:
        resized = imresize(torch.from_numpy(alpha).permute(2, 0, 1)[None], size=result.shape[:2])
        alpha = resized[0].permute(1, 2, 0).clamp(0, 1).numpy()
    # Everything else the file held goes through; the print resolution scales with the pixels,
    # so an upscaled photo prints at the size the original did, only sharper.
    scale = result.shape[1] / image.width
    dpi = (image.dpi[0] * scale, image.dpi[1] * scale) if image.dpi else None
    restored = replace(
        image,
        pixels=np.ascontiguousarray(result, dtype=np.float32),
        alpha=alpha,
        dpi=dpi,
        buffers={},
        exr_attributes=scaled_exr_attributes(image.exr_attributes, scale),
    )
    prefilter = buffer_prefilter(model, inference)
    return Restored(restored, model, level, notes, prefilter.name if prefilter is not None else "")


NOTE_SAMPLE_PIXELS = 2**20
"""The buffer check looks at about this many pixels on a regular grid: a share is as well estimated
from a megapixel, and a 50-megapixel render's buffers are not copied whole beside its tiles."""


def _buffer_notes(pixels: np.ndarray, model: Model, aux: np.ndarray | None) -> tuple[str, ...]:
    """A warning when the albedo and normal buffers given a render model follow another convention than its training's."""
    if aux is None or not {"albedo", "normal"} <= set(model.info.aux):
        return ()
    stride = max(1, round((pixels.shape[0] * pixels.shape[1] / NOTE_SAMPLE_PIXELS) ** 0.5))

    def planes(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array[::stride, ::stride], dtype=np.float32)).permute(2, 0, 1)

    buffers = {name: planes(aux[..., 3 * i : 3 * i + 3]) for i, name in enumerate(model.info.aux)}
    note = buffer_convention_note(planes(pixels[..., :3]), buffers["albedo"], buffers["normal"], RENDER_DENOISER)
    return (note,) if note else ()


ModelChoice = Model | Callable[[Image, bool], Model]
"""A model, or a function of the image read and whether its albedo and normal buffers exist."""


@dataclass(frozen=True)
class DenoiserFor:
    """The denoiser for each image: `model`, or else the bundled one for its kind (see
    restore.api.default_denoiser). A plain value, so that cluster workers can be sent it."""

    model: str | None = None

    def __call__(self, image: Image, has_aux: bool) -> Model:
        return _loaded_denoiser(self.model or default_denoiser(image.pixels, linear=image.transfer == "linear", aux=has_aux))


@dataclass(frozen=True)
class UpscalerFor:
    """The upscaler by `scale` for every image: `model`, or the bundled one."""

    scale: int
    model: str | None = None

    def __call__(self, image: Image, has_aux: bool) -> Model:
        return _loaded_upscaler(self.scale, self.model)


# Each model is loaded once per process, however many images it restores.
_loaded_denoiser = functools.cache(denoiser)
_loaded_upscaler = functools.cache(upscaler_for)


def restore_file(
    source: Path, target: Path, model: ModelChoice, options: RunOptions, on_tile: TileCallback | None = None
) -> Restored:
    """Read `source`, restore it, write `target` atomically; return the written image, the model used and its level.

    `model` is a Model, or a function of the image and of whether its albedo and normal buffers
    exist to one (gray images, HDR renders and renders with buffers may take other models).
    """
    image = read_image(source, options.max_pixels)
    found = [name in options.aux_files or aux_path(source, name).is_file() or name in image.buffers for name in AUX_BUFFERS]
    has_aux = all(found)
    if options.aux_files and not has_aux:
        # A buffer given on its own would be silently ignored: the models take both or none.
        missing = [name for name, there in zip(AUX_BUFFERS, found, strict=True) if not there]
        given = ", ".join(f"--{name}" for name in options.aux_files)
        raise ImageError(f"'{source}': {given} needs the {' and '.join(missing)} buffer too (--{missing[0]} FILE)")
    chosen = model if isinstance(model, Model) else model(image, has_aux)
    try:
        aux = None
        if chosen.info.aux:
            aux = load_aux(source, chosen.info.aux, options.aux_files, image.buffers).permute(1, 2, 0).numpy()
        result = restore_image(image, chosen, options, on_tile, aux)
    except (ImageError, ValueError) as err:
        raise type(err)(f"'{source}': {err}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, result.image, bit_depth=options.bit_depth, overwrite=options.overwrite)
    return result


def writable_folder(folder: Path) -> bool:
    """True when files can be created in `folder` (or it can be created)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK)
