"""How much of white Gaussian noise a denoiser leaves, level by level: the slope of a regression
of (output - clean) on the noise that was drawn. 0 removes all of it, 1 passes it through.

    python bench/noise_left.py n2n-gray runs/n2n-gray-r3.safetensors    # Set12, first 4 images
    python bench/noise_left.py n2n-gaussian --set Kodak24 --sigmas 5 15 25

A blind denoiser that scores about the same at sigma 15 and 25 leaves much of the noise at the
lower level: this says how much. Noise drawn with seed = image index, not clipped (the data
README's protocol); PSNR of the clipped, rounded output; fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, load, run_model  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.io.datasets import image_files  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import GaussianNoise  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files")
    parser.add_argument("--set", default="Set12", help="a folder of ../shared/data/test")
    parser.add_argument("--images", type=int, default=4, help="the first N images of the set")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[5, 10, 15, 20, 25, 35, 50])
    args = parser.parse_args()
    files = image_files(DATA / "test" / args.set)[: args.images]
    for name in args.models:
        model = load(name)
        for sigma in args.sigmas:
            left, scores = [], []
            for index, path in enumerate(files):
                clean = read_batch(path)[:, : model.info.channels]
                noise = GaussianNoise(sigma).apply(clean, torch.Generator().manual_seed(index)) - clean
                out = run_model(model, clean + noise, InferenceOptions(device="cpu", precision="fp32")).clamp(0, 1)
                left.append(float(((out - clean) * noise).sum() / noise.square().sum()))
                scores.append(psnr((out * 255).round() / 255, clean, peak=1.0))
            print(
                f"{name}  sigma {sigma:g}: noise left {100 * statistics.mean(left):.0f} %, PSNR {statistics.mean(scores):.2f} dB"
            )


if __name__ == "__main__":
    main()
