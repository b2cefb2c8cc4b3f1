"""`restore eval`: a model's PSNR / SSIM on a folder of clean images, next to the baseline,
under the protocols of the data README.

Denoising: clean in [0, 255] as float; noisy = the noise model applied with seed = image index,
not clipped and not quantised; the output is clipped to [0, 255] and rounded; PSNR over all
pixels and channels, averaged over images. Baseline: the noisy input itself.

Real noise: a folder of pairs NAME_noisy.EXT / NAME_clean.EXT (the PolyU convention; the
clean image is the mean of many shots); the noisy image is the input as stored, the output is
clipped and rounded like the noisy one. Baseline: the noisy input.

Super-resolution: HR mod-cropped to the scale; LR = MATLAB bicubic downscale rounded to 8 bits;
output rounded to 8 bits; PSNR / SSIM on the BT.601 Y channel with `scale` pixels shaved.
Baseline: bicubic upscaling of the LR image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from restore.api import InferenceOptions, Model, denoiser, run_model, upscaler_for
from restore.io.datasets import image_files, real_pairs
from restore.io.images import Image, read_image, write_image
from restore.metrics import psnr, psnr_y, ssim, ssim_y
from restore.noise import parse_noise
from restore.pictures import comparison_strip
from restore.resize import downscale, imresize, matlab_uint8, modcrop


@dataclass
class Row:
    label: str
    psnr: float
    ssim: float


@dataclass
class Report:
    title: str
    protocol: str
    images: int
    rows: list[Row]
    gains: dict[str, float]  # image name -> the model's PSNR minus the baseline's


def _to_255(x: torch.Tensor) -> torch.Tensor:
    """An output on [0, 1] as the 8-bit levels a saved image holds, rounded as MATLAB's uint8()."""
    return matlab_uint8(x * 255)


def evaluate_folder(
    model: Model | str,
    folder: str,
    *,
    noise: str | None = None,
    scale: int | None = None,
    pairs: bool = False,
    limit: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    ensemble: bool = False,
    console: Console | None = None,
    save: str | os.PathLike[str] | None = None,
) -> Report:
    """Score `model` on every image of `folder`: denoising with `noise`, real noisy / clean `pairs`,
    or SR with `scale`.

    `ensemble` scores the self-ensemble (the 8 flips and rotations averaged). `save`: a folder
    for side-by-side crops (baseline, model, reference) of the images with the least and the
    most gain over the baseline.
    """
    if sum((noise is not None, scale is not None, pairs)) != 1:
        raise ValueError("evaluate with exactly one of noise, scale or pairs")
    inputs = real_pairs(folder) if pairs else [(None, path) for path in image_files(folder)]
    if limit:
        inputs = inputs[:limit]
    if not inputs:
        raise ValueError(f"no images in '{folder}'")
    loaded = upscaler_for(scale, model) if scale else denoiser(model)
    noise_model = parse_noise(noise) if noise else None
    options = InferenceOptions(device=device, precision=precision, ensemble=ensemble)
    ours, base = [], []
    model_label = f"{loaded.name}+" if ensemble else loaded.name
    baseline_label = "bicubic" if scale else "noisy input"
    # "least" / "most" gain -> (gain, image name, labelled panels), for `save`
    extremes: dict[str, tuple[float, str, list[tuple[str, torch.Tensor]]]] = {}
    for index, (noisy_path, path) in enumerate(inputs):
        clean = read_batch(path)
        if noisy_path is not None or noise_model is not None:
            if noisy_path is not None:
                noisy = read_batch(noisy_path)
            else:
                noisy = noise_model.apply(clean, torch.Generator().manual_seed(index))
            restored = _to_255(run_model(loaded, noisy, options))
            shown, ref = noisy * 255, clean * 255
            ours.append((psnr(restored, ref), ssim(restored, ref)))
            base.append((psnr(shown, ref), ssim(shown, ref)))
        else:
            assert scale is not None
            hr = modcrop(clean, scale)
            lr = downscale(hr, scale)
            restored = _to_255(run_model(loaded, lr, options))
            shown = matlab_uint8(imresize(lr * 255, scale=scale))
            ref = (hr * 255).round()
            ours.append((psnr_y(restored, ref, scale), ssim_y(restored, ref, scale)))
            base.append((psnr_y(shown, ref, scale), ssim_y(shown, ref, scale)))
        name = (noisy_path or path).name
        if console is not None:
            console.print(f"{name}: {ours[-1][0]:.2f} dB (baseline {base[-1][0]:.2f})")
        if save is not None:
            gain = ours[-1][0] - base[-1][0]
            panels = [
                (f"{baseline_label} {base[-1][0]:.2f} dB", shown / 255),
                (f"{model_label} {ours[-1][0]:.2f} dB", restored / 255),
                ("reference", ref / 255),
            ]
            if "least" not in extremes or gain < extremes["least"][0]:
                extremes["least"] = (gain, name, panels)
            if "most" not in extremes or gain > extremes["most"][0]:
                extremes["most"] = (gain, name, panels)

    def mean(pairs: list[tuple[float, float]], i: int) -> float:
        return sum(p[i] for p in pairs) / len(pairs)

    name = model_label
    if pairs:
        title = f"{name} on {folder}, real noisy / clean pairs"
        protocol = "noisy input as stored, output clipped and rounded, PSNR over all pixels and channels against "
        protocol += "the clean image, mean over pairs"
    elif noise_model is not None:
        title = f"{name} on {folder}, noise {noise_model}"
        protocol = "noisy input not clipped or quantised, output clipped and rounded, PSNR over all pixels and channels, "
        protocol += "mean over images"
    else:
        title = f"{name} on {folder}, x{scale}"
        protocol = f"Y channel (BT.601), {scale} px shaved, MATLAB bicubic LR rounded to 8 bits"
    rows = [Row(baseline_label, mean(base, 0), mean(base, 1)), Row(model_label, mean(ours, 0), mean(ours, 1))]
    if extremes:
        Path(save).mkdir(parents=True, exist_ok=True)
    for kind, (_, image_name, panels) in extremes.items():
        picture = Image(comparison_strip(panels).astype(np.float32) / 255, None, "u8", "srgb")
        write_image(Path(save) / f"{kind}-gain-{Path(image_name).stem}.png", picture, overwrite=True)
    gains = {(n or p).name: o[0] - b[0] for (n, p), o, b in zip(inputs, ours, base, strict=True)}
    return Report(title, protocol, len(inputs), rows, gains)


def read_batch(path: Path) -> torch.Tensor:
    """An image file as 1 x C x H x W on [0, 1]."""
    return torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]
