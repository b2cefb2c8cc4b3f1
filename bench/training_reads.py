"""What a level model's estimator reads on the nearly clean crops of a photo training mix.

    python bench/training_reads.py runs/n2n-photo-level-fcobd.safetensors n2n-photo-level

Draws training crops as `restore train` does for the photo runs (the noise mix of
runs/n2n-photo-level-fcobd.cmd; its --source-scale, --zoom, --zoom-aliased and --patch, here
the defaults), from the first 40 photos of CBSD400, 192 crops with fixed seeds, and prints, for
each `--below` sigma: the share of crops whose noise was drawn below it, their mean reading, and
the share of them read above it. An estimator learned from its denoiser's loss alone can read
nearly clean crops far above their level (`restore train --clean-read-cap` makes that cost).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from restore.api import load
from restore.io.datasets import image_files, load_images
from restore.noise import parse_noise, with_lossless_targets
from restore.training.sources import NoisySource, shrink

PHOTO_MIX = (
    "mix:photo:0.00001-0.012,60-99,0,0.3-0.8,2.2-3|photo:0.00001-0.012,100,0,0.3-0.8,2.2-3|"
    "photo:0.00001-0.012,60-99,0,0.4-1.6,2.2-3|gaussian8:0-50|gaussian8:0-50|gaussian8:0-50"
)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "CBSD400"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files (level models)")
    parser.add_argument("--noise", default=PHOTO_MIX, help="the training noise (default: the photo runs' mix)")
    parser.add_argument("--source-scale", type=float, default=0.5)
    parser.add_argument("--zoom", type=float, nargs=2, default=[0.67, 2.0], metavar=("LOW", "HIGH"))
    parser.add_argument("--zoom-aliased", type=float, default=0.5)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--below", type=float, nargs="+", default=[1, 1.5, 2, 3], help="levels (sigma, 0-255)")
    args = parser.parse_args()
    photos = [shrink(image, args.source_scale) for image in load_images(image_files(DATA)[:40], 3)]
    noise = with_lossless_targets(parse_noise(args.noise))
    source = NoisySource(photos, noise, args.patch, False, True, tuple(args.zoom), aliased=args.zoom_aliased)
    batches = [source.batch(16, torch.Generator().manual_seed(seed))[0] for seed in range(12)]
    drawn = torch.cat([batch[:, -1].mean(dim=(1, 2)) for batch in batches]) * 255
    for name in args.models:
        estimator = load(name).network.eval()
        with torch.no_grad():
            read = torch.cat([estimator.estimate_level(batch[:, :-1]) for batch in batches]) * 255
        for level in args.below:
            below = drawn < level
            if not below.any():
                print(f"{name}: no crop drawn below {level:g}")
                continue
            print(
                f"{name}: drawn below {level:g}: {below.float().mean():.1%} of crops, "
                f"read {read[below].mean():.2f} on average, {(read[below] > level).float().mean():.0%} above {level:g}"
            )


if __name__ == "__main__":
    main()
