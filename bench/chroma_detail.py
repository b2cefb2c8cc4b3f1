"""Whether a photo denoiser keeps fine colour detail or takes it for noise.

    python bench/chroma_detail.py n2n-photo-level runs/X.safetensors --images 24 13 1 8 19

Every CBSD400 training photo is a 4:2:0 JPEG, its colour stored at half its brightness's
resolution; Kodak24's PNGs hold colour as fine as their brightness. Each Kodak24 image (numbered
1-24) two ways: as it is, and with its colour subsampled as a 4:2:0 JPEG does (Cb and Cr averaged
over 2 x 2 pixels and interpolated back, brightness untouched). Each gets Gaussian noise of
`--sigma` (seed = image index), clipped and rounded to 8 bits; the line gives the output's gain
over the noisy input per way, and for the image as it is the output's mean squared error in Y,
Cb and Cr (0-255 scale) against the noisy input's. A denoiser that learned colour detail only at
half resolution gains on the subsampled image and loses Cb / Cr on the one as it is. fp32 on the
CPU, outputs rounded to 8 bits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kodak_probes import denoised_8bit, gain, kodak24_files, noisy_8bit, probe_arguments  # noqa: E402

from restore.api import load  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402


def subsampled_colour(image: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W RGB (8-bit values) with Cb and Cr at half resolution, as in a 4:2:0 JPEG."""
    ycbcr = kornia.color.rgb_to_ycbcr(image)
    colour = F.interpolate(F.avg_pool2d(ycbcr[:, 1:], 2, ceil_mode=True), scale_factor=2, mode="bilinear", align_corners=False)
    ycbcr = torch.cat([ycbcr[:, :1], colour[..., : image.shape[-2], : image.shape[-1]]], dim=1)
    return to_8_bits(kornia.color.ycbcr_to_rgb(ycbcr).clamp(0, 1))


def channel_errors(image: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean squared error in Y, Cb and Cr on the 0-255 scale: 3 values."""
    difference = (kornia.color.rgb_to_ycbcr(image) - kornia.color.rgb_to_ycbcr(clean)) * 255
    return difference.square().mean(dim=(0, 2, 3))


def main() -> None:
    args = probe_arguments(__doc__.splitlines()[0], images=[24, 13, 1, 8, 19]).parse_args()
    files = kodak24_files()
    for name in args.models:
        model = load(name)
        totals = {"as is": 0.0, "4:2:0 colour": 0.0}
        for number in args.images:
            image = read_batch(files[number - 1])
            cells = []
            for way, clean in (("as is", image), ("4:2:0 colour", subsampled_colour(image))):
                noisy = noisy_8bit(clean, args.sigma, number)
                out = denoised_8bit(model, noisy)
                way_gain = gain(out, noisy, clean)
                totals[way] += way_gain
                cells.append(f"{way} {way_gain:+.2f}")
                if way == "as is":
                    pairs = zip(channel_errors(out, clean), channel_errors(noisy, clean), strict=True)
                    errors = " / ".join(f"{o:.2f} vs {n:.2f}" for o, n in pairs)
            print(f"{name}  {files[number - 1].name}: " + ", ".join(cells) + f" dB; Y / Cb / Cr MSE {errors}", flush=True)
        means = ", ".join(f"{way} {total / len(args.images):+.2f}" for way, total in totals.items())
        print(f"{name}  mean gain at sigma {args.sigma:g}: {means} dB")


if __name__ == "__main__":
    main()
