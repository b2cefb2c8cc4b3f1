"""Whether a photo denoiser smooths a nearly clean photo the way JPEG does.

    python bench/jpeg_smoothing.py n2n-photo-level runs/X.safetensors --images 24 13 1

Kodak24 images (numbered 1-24) with Gaussian noise of `--sigma` (seed = image index), clipped and
rounded to 8 bits as the photo benchmark's clean-2 row makes them. Per image: the output's gain
over the noisy input, and the correlation of its error (output - clean) with the error of the
clean image saved as a JPEG of quality 95 (4:2:0, Pillow) and with that of a 3 x 3 box blur.
A network whose Noise2Noise targets were JPEG-compressed learns JPEG's loss of fine detail and
colour resolution as if it were the image: its error then follows JPEG's more than a plain
blur's. fp32 on the CPU, outputs rounded to 8 bits.
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
from restore.noise.camera import jpeg_round_trip  # noqa: E402


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """The uncentred correlation of two error images (both are differences from the same clean image)."""
    return float((a * b).sum() / (a.norm() * b.norm()))


def main() -> None:
    args = probe_arguments(__doc__.splitlines()[0], images=[24, 13, 1]).parse_args()
    files = kodak24_files()
    for name in args.models:
        model = load(name)
        gains = []
        for number in args.images:
            clean = read_batch(files[number - 1])
            noisy = noisy_8bit(clean, args.sigma, number)
            out = denoised_8bit(model, noisy)
            gains.append(gain(out, noisy, clean))
            error = out - clean
            jpeg = correlation(error, jpeg_round_trip(clean[0], 95)[None] - clean)
            blur = correlation(error, F.avg_pool2d(F.pad(clean, (1, 1, 1, 1), mode="replicate"), 3, 1) - clean)
            image = files[number - 1].name
            print(f"{name}  {image}: gain {gains[-1]:+.2f} dB, error vs JPEG q95 {jpeg:+.2f}, vs 3x3 blur {blur:+.2f}")
        print(f"{name}  mean gain {sum(gains) / len(gains):+.2f} dB over {len(gains)} images at sigma {args.sigma:g}")


if __name__ == "__main__":
    main()
