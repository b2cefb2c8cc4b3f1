"""What level models' estimators read on a test set with white Gaussian noise of each sigma.

    python bench/level_reads.py n2n-gray-level runs/X.safetensors --set Set12 --sigmas 0 5 15 25 50

For each model and sigma (0-255; noise drawn with seed = image index, unclipped, as the
benchmark rows draw it) the mean reading over the set's images, the lowest and the highest:
whether a denoiser told "what its estimator reads" is told the level the row was made with.
A reading above the true sigma smooths the image's own detail away with the noise; below it
leaves noise in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import Model, estimate_noise_level, load  # noqa: E402
from restore.io.datasets import image_files, load_images  # noqa: E402
from restore.noise import GaussianNoise  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "test"


def white_noise_reads(
    model: Model, images: Sequence[torch.Tensor], sigma: float, as_file: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
) -> list[float]:
    """What `model`'s estimator reads (0-255) on each image with white noise of `sigma` (seed =
    image index; none at sigma 0), after `as_file` (e.g. rounding to 8 bits)."""
    reads = []
    for index, clean in enumerate(images):
        noisy = GaussianNoise(sigma).apply(clean[None], torch.Generator().manual_seed(index)) if sigma else clean[None]
        reads.append(estimate_noise_level(model, as_file(noisy)))
    return reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or files of level models")
    parser.add_argument("--set", default="Set12", help="a folder of ../shared/data/test")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0, 5, 15, 25, 50])
    args = parser.parse_args()
    images = load_images(image_files(DATA / args.set))
    print(f"estimator reading on {args.set} ({len(images)} images) with white noise of sigma: mean (lowest-highest)")
    for name in args.models:
        model = load(name)
        cells = []
        for sigma in args.sigmas:
            reads = white_noise_reads(model, images, sigma)
            cells.append(f"{sigma:g}: {sum(reads) / len(reads):.1f} ({min(reads):.1f}-{max(reads):.1f})")
        print(f"  {model.name} ({name}): " + "  ".join(cells))


if __name__ == "__main__":
    main()
