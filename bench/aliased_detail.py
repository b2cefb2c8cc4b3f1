"""Whether a photo denoiser keeps detail at the finest scale, aliased detail included.

    python bench/aliased_detail.py n2n-photo-level runs/X.safetensors --images 24 13 1 8 19

Each Kodak24 image (numbered 1-24) three ways: as it is, halved with antialiasing (bicubic: the
same scene with denser detail), and halved by decimation (every other pixel: detail beyond the
new resolution folds back as aliasing, as in a photo from a camera without an optical low-pass
filter or from a cheap resizer). Each gets Gaussian noise of `--sigma` (seed = image index),
clipped and rounded to 8 bits; the line gives the output's gain over the noisy input per way. A
denoiser that takes fine or aliased detail for noise loses on the halved images where it gains on
the originals. fp32 on the CPU, outputs rounded to 8 bits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, load, run_model  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.io.datasets import image_files  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import EightBitGaussianNoise  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def ways(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The image as it is, halved with antialiasing, and halved by decimation (8-bit values all)."""
    halved = F.interpolate(image, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    return {"as is": image, "halved": to_8_bits(halved.clamp(0, 1)), "decimated": image[:, :, ::2, ::2].contiguous()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files")
    parser.add_argument("--images", type=int, nargs="+", default=[24, 13, 1, 8, 19], help="Kodak24 image numbers, 1-24")
    parser.add_argument("--sigma", type=float, default=2.0)
    args = parser.parse_args()
    files = image_files(DATA / "test" / "Kodak24")
    for name in args.models:
        model = load(name)
        totals: dict[str, float] = {}
        for number in args.images:
            index = number - 1
            cells = []
            for way, clean in ways(read_batch(files[index])).items():
                noisy = EightBitGaussianNoise(args.sigma).apply(clean, torch.Generator().manual_seed(index))
                out = to_8_bits(run_model(model, noisy, InferenceOptions(device="cpu", precision="fp32")))
                gain = psnr(out * 255, clean * 255) - psnr(noisy * 255, clean * 255)
                totals[way] = totals.get(way, 0.0) + gain
                cells.append(f"{way} {gain:+.2f}")
            print(f"{name}  {files[index].name}: " + ", ".join(cells) + " dB", flush=True)
        means = ", ".join(f"{way} {total / len(args.images):+.2f}" for way, total in totals.items())
        print(f"{name}  mean gain at sigma {args.sigma:g}: {means} dB")


if __name__ == "__main__":
    main()
