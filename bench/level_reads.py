"""What level models' estimators read on a test set with white Gaussian noise of each sigma.

    python bench/level_reads.py n2n-gray-level runs/X.safetensors --set Set12 --sigmas 0 5 15 25 50
    python bench/level_reads.py n2n-gray-level --set Set12 --sigmas 15 --psnr

For each model and sigma (0-255; noise drawn with seed = image index, unclipped, as the
benchmark rows draw it) the mean reading over the set's images, the lowest and the highest:
whether a denoiser told "what its estimator reads" is told the level the row was made with.
A reading above the true sigma smooths the image's own detail away with the noise; below it
leaves noise in. With `--psnr`, what that costs: per image, the PSNR of the denoiser told its
reading and told the true sigma (fp32, outputs clipped and rounded as the benchmark's), and the means.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, Model, estimate_noise_level, load, run_model  # noqa: E402
from restore.io.datasets import image_files, load_images  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import GaussianNoise  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "test"


def white_noise_reads(
    model: Model, images: Sequence[torch.Tensor], sigma: float, as_file: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
) -> list[float]:
    """What `model`'s estimator reads (0-255) on each image with white noise of `sigma` (seed =
    image index; none at sigma 0), after `as_file` (e.g. rounding to 8 bits)."""
    return [estimate_noise_level(model, as_file(with_white_noise(clean, sigma, index))) for index, clean in enumerate(images)]


def with_white_noise(clean: torch.Tensor, sigma: float, index: int) -> torch.Tensor:
    """`clean` (C x H x W) as a batch of one with white noise of `sigma` drawn with seed `index` (none at sigma 0)."""
    return GaussianNoise(sigma).apply(clean[None], torch.Generator().manual_seed(index)) if sigma else clean[None]


def reading_cost(
    model: Model, images: Sequence[torch.Tensor], sigma: float, reads: Sequence[float], names: Sequence[str]
) -> list[str]:
    """Lines of the PSNR (dB) `model` scores on each image with white noise of `sigma` (seed =
    image index), told the level its estimator read (`reads`, from white_noise_reads) and told
    `sigma`, then both means."""
    options = InferenceOptions(device="cpu", precision="fp32")
    lines, told_read, told_true = [], [], []
    for index, (clean, read, name) in enumerate(zip(images, reads, names, strict=True)):
        noisy = with_white_noise(clean, sigma, index)
        scores = []
        for level in (read, sigma):
            restored = (run_model(model, noisy, options, noise_level=level) * 255).clamp(0, 255).round()
            scores.append(psnr(restored, clean[None] * 255))
        told_read.append(scores[0])
        told_true.append(scores[1])
        lines.append(f"    {name}: read {read:.1f}, told it {scores[0]:.2f} dB, told {sigma:g} {scores[1]:.2f} dB")
    count = len(images)
    lines.append(f"    mean: told its reads {sum(told_read) / count:.2f} dB, told {sigma:g} {sum(told_true) / count:.2f} dB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or files of level models")
    parser.add_argument("--set", default="Set12", help="a folder of ../shared/data/test")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0, 5, 15, 25, 50])
    parser.add_argument("--psnr", action="store_true", help="also score the denoiser told its reading and the true sigma")
    args = parser.parse_args()
    files = image_files(DATA / args.set)
    images = load_images(files)
    print(f"estimator reading on {args.set} ({len(images)} images) with white noise of sigma: mean (lowest-highest)")
    for name in args.models:
        model = load(name)
        reads = {sigma: white_noise_reads(model, images, sigma) for sigma in args.sigmas}
        cells = [f"{sigma:g}: {sum(r) / len(r):.1f} ({min(r):.1f}-{max(r):.1f})" for sigma, r in reads.items()]
        print(f"  {model.name} ({name}): " + "  ".join(cells))
        for sigma in args.sigmas if args.psnr else ():
            lines = reading_cost(model, images, sigma, reads[sigma], [f.name for f in files])
            print(f"  PSNR at sigma {sigma:g}:", *lines, sep="\n")


if __name__ == "__main__":
    main()
