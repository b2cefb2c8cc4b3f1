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

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kodak_probes import denoised_8bit, gain, kodak24_files, noisy_8bit, probe_arguments  # noqa: E402

from restore.api import load  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402


def ways(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The image as it is, halved with antialiasing, and halved by decimation (8-bit values all)."""
    halved = F.interpolate(image, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    return {"as is": image, "halved": to_8_bits(halved.clamp(0, 1)), "decimated": image[:, :, ::2, ::2].contiguous()}


def main() -> None:
    args = probe_arguments(__doc__.splitlines()[0], images=[24, 13, 1, 8, 19]).parse_args()
    files = kodak24_files()
    for name in args.models:
        model = load(name)
        totals: dict[str, float] = {}
        for number in args.images:
            cells = []
            for way, clean in ways(read_batch(files[number - 1])).items():
                noisy = noisy_8bit(clean, args.sigma, number)
                way_gain = gain(denoised_8bit(model, noisy), noisy, clean)
                totals[way] = totals.get(way, 0.0) + way_gain
                cells.append(f"{way} {way_gain:+.2f}")
            print(f"{name}  {files[number - 1].name}: " + ", ".join(cells) + " dB", flush=True)
        means = ", ".join(f"{way} {total / len(args.images):+.2f}" for way, total in totals.items())
        print(f"{name}  mean gain at sigma {args.sigma:g}: {means} dB")


if __name__ == "__main__":
    main()
