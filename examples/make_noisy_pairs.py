"""Make Noise2Noise training pairs from clean photos: two independent noise draws of each.

    python examples/make_noisy_pairs.py ../shared/data/test/Kodak24 examples/out/pairs \
        --noise poisson-gaussian:20,10 --count 6 --crop 256

writes OUT/a/NAME.png and OUT/b/NAME.png (the pair, 8-bit as a camera would store them) and
OUT/clean/NAME.png (kept only to score the result; `restore finetune` never reads it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from restore.io.datasets import image_files
from restore.io.images import Image, read_image, write_image
from restore.noise import parse_noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="folder of clean images")
    parser.add_argument("out", help="output folder (gets a/, b/ and clean/)")
    parser.add_argument("--noise", default="poisson-gaussian:20,10", help="noise model spec")
    parser.add_argument("--count", type=int, default=6, help="number of images")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side (0: whole image)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    noise = parse_noise(args.noise)
    out = Path(args.out)
    for index, path in enumerate(image_files(args.source)[: args.count]):
        pixels = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]
        if args.crop:
            h, w = pixels.shape[-2:]
            y, x = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
            pixels = pixels[..., y : y + args.crop, x : x + args.crop]
        generator = torch.Generator().manual_seed(args.seed * 10_000 + index)
        shots = {"clean": pixels, "a": noise.apply(pixels, generator), "b": noise.apply(pixels, generator)}
        for folder, shot in shots.items():
            target = out / folder / f"{path.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            array = shot[0].permute(1, 2, 0).clamp(0, 1).numpy()
            write_image(target, Image(array, None, "u8", "srgb"), overwrite=True)
    print(f"wrote {min(args.count, len(image_files(args.source)))} pairs to {out}/a and {out}/b (noise {noise})")


if __name__ == "__main__":
    main()
