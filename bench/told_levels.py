"""How a level model's denoiser fares when told levels other than the noise's own.

    python bench/told_levels.py n2n-photo-level runs/X.safetensors --images 24 13 8 --levels 0 1 2 3

Each Kodak24 image (numbered 1-24) gets Gaussian noise of `--sigma` (seed = image index),
clipped and rounded to 8 bits, as the photo benchmark's sigma 2 and 5 rows draw it. The line gives
what the model's estimator reads, then the output's gain over the noisy input told that reading
and told each of `--levels` (sigma, 0-255); at sigma 0 the PSNR of the output against the clean
input instead, as the photo benchmark's clean row scores it. A denoiser whose gain falls steeply just above the true
sigma pays for every reading its estimator gets a little high. fp32 on the CPU, outputs rounded to
8 bits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, estimate_noise_level, load, run_model  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.io.datasets import image_files  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import EightBitGaussianNoise  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files (level models)")
    parser.add_argument("--images", type=int, nargs="+", default=[24, 13, 8], help="Kodak24 image numbers, 1-24")
    parser.add_argument("--levels", type=float, nargs="+", default=[0, 1, 2, 3], help="levels to tell (sigma, 0-255)")
    parser.add_argument("--sigma", type=float, default=2.0)
    args = parser.parse_args()
    files = image_files(DATA / "test" / "Kodak24")
    options = InferenceOptions(device="cpu", precision="fp32")
    for name in args.models:
        model = load(name)
        for number in args.images:
            index = number - 1
            clean = read_batch(files[index])
            noisy = EightBitGaussianNoise(args.sigma).apply(clean, torch.Generator().manual_seed(index))
            noisy_psnr = psnr(noisy * 255, clean * 255)
            reading = estimate_noise_level(model, noisy)
            if reading is None:
                raise SystemExit(f"{name} is not a level model: it reads no noise level")
            cells = []
            for told in (None, *args.levels):
                out = to_8_bits(run_model(model, noisy, options, noise_level=told))
                score = psnr(out * 255, clean * 255)
                shown = f"{score - noisy_psnr:+.2f}" if args.sigma else f"{score:.2f}"
                cells.append(f"{'read' if told is None else f'{told:g}'} {shown}")
            what = "gain told" if args.sigma else "PSNR against the input told"
            print(f"{name}  {files[index].name} at sigma {args.sigma:g}: reads {reading:.2f}; {what} {', '.join(cells)} dB")


if __name__ == "__main__":
    main()
