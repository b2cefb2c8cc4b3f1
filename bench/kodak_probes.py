"""The convention the Kodak24 probe scripts share (aliased_detail, chroma_detail, jpeg_smoothing,
told_levels), so that their numbers mean the same thing as the photo benchmark's clean rows.

Images are numbered 1-24 on the command line; image number N gets Gaussian noise seeded by its
index N - 1, clipped and rounded to 8 bits (`EightBitGaussianNoise`, what bench/photo_benchmark.py's
clean-2 / clean-5 rows draw); models run in fp32 on the CPU, outputs rounded to 8 bits; a gain is
the output's PSNR minus the noisy input's, both against the clean image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, Model, run_model  # noqa: E402
from restore.io.datasets import image_files  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import EightBitGaussianNoise  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

KODAK24 = Path(__file__).resolve().parents[2] / "shared" / "data" / "test" / "Kodak24"
FP32_ON_CPU = InferenceOptions(device="cpu", precision="fp32")


def probe_arguments(
    description: str, images: list[int], models_help: str = "bundled names or model files"
) -> argparse.ArgumentParser:
    """The arguments every probe takes: models, --images (Kodak24 numbers) and --sigma."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("models", nargs="+", help=models_help)
    parser.add_argument("--images", type=int, nargs="+", default=images, help="Kodak24 image numbers, 1-24")
    parser.add_argument("--sigma", type=float, default=2.0)
    return parser


def kodak24_files() -> list[Path]:
    """Kodak24's images in order: number N is element N - 1."""
    return image_files(KODAK24)


def noisy_8bit(clean: torch.Tensor, sigma: float, number: int) -> torch.Tensor:
    """Image number `number`'s noisy 8-bit version (noise seeded by its index, number - 1)."""
    return EightBitGaussianNoise(sigma).apply(clean, torch.Generator().manual_seed(number - 1))


def denoised_8bit(model: Model, noisy: torch.Tensor, noise_level: float | None = None) -> torch.Tensor:
    """The model's output in fp32 on the CPU, rounded to 8 bits (told `noise_level`, if given)."""
    return to_8_bits(run_model(model, noisy, FP32_ON_CPU, noise_level=noise_level))


def gain(out: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor) -> float:
    """The output's PSNR over the noisy input's, both against the clean image (dB)."""
    return psnr(out * 255, clean * 255) - psnr(noisy * 255, clean * 255)
