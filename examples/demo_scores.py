"""The README's demo table: PSNR of the demo images against the clean drawing, after `make demo`.

    .venv/bin/python examples/demo_scores.py

RGB PSNR over all pixels of the 8-bit images (peak 255). The bicubic row upscales
demo-small.png x2 with MATLAB-style bicubic (restore.resize.imresize), rounded to 8 bits.
"""

from __future__ import annotations

from pathlib import Path

import torch

from restore.api import colour_denoiser
from restore.io.images import read_image
from restore.metrics import psnr
from restore.resize import imresize

HERE = Path(__file__).resolve().parent


def pixels(path: Path) -> torch.Tensor:
    """1 x 3 x H x W in [0, 255]."""
    return torch.from_numpy(read_image(path).pixels * 255).round().permute(2, 0, 1)[None]


def main() -> None:
    clean = pixels(HERE / "demo-clean.png")
    bicubic = imresize(pixels(HERE / "demo-small.png"), scale=2).round().clamp(0, 255)
    rows = {
        "`demo-noisy.png`": pixels(HERE / "demo-noisy.png"),
        # `make demo` denoises with the default for colour images.
        f"`demo-noisy.denoised.png` ({colour_denoiser()})": pixels(HERE / "out" / "demo-noisy.denoised.png"),
        "`demo-small.png` upscaled by bicubic": bicubic,
        "`demo-small.x2.png` (edsr-x2)": pixels(HERE / "out" / "demo-small.x2.png"),
    }
    print("| image | PSNR vs the clean drawing |\n|---|---|")
    for label, image in rows.items():
        print(f"| {label} | {psnr(image, clean):.2f} dB |")


if __name__ == "__main__":
    main()
