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
from restore.noise.camera import jpeg_round_trip  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """The uncentred correlation of two error images (both are differences from the same clean image)."""
    return float((a * b).sum() / (a.norm() * b.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files")
    parser.add_argument("--images", type=int, nargs="+", default=[24, 13, 1], help="Kodak24 image numbers, 1-24")
    parser.add_argument("--sigma", type=float, default=2.0)
    args = parser.parse_args()
    files = image_files(DATA / "test" / "Kodak24")
    for name in args.models:
        model = load(name)
        gains = []
        for number in args.images:
            index = number - 1
            clean = read_batch(files[index])
            noisy = EightBitGaussianNoise(args.sigma).apply(clean, torch.Generator().manual_seed(index))
            out = to_8_bits(run_model(model, noisy, InferenceOptions(device="cpu", precision="fp32")))
            gain = psnr(out * 255, clean * 255) - psnr(noisy * 255, clean * 255)
            gains.append(gain)
            error = out - clean
            jpeg = correlation(error, jpeg_round_trip(clean[0], 95)[None] - clean)
            blur = correlation(error, F.avg_pool2d(F.pad(clean, (1, 1, 1, 1), mode="replicate"), 3, 1) - clean)
            print(f"{name}  {files[index].name}: gain {gain:+.2f} dB, error vs JPEG q95 {jpeg:+.2f}, vs 3x3 blur {blur:+.2f}")
        print(f"{name}  mean gain {sum(gains) / len(gains):+.2f} dB over {len(gains)} images at sigma {args.sigma:g}")


if __name__ == "__main__":
    main()
