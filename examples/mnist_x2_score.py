"""Score the 14 -> 28 MNIST upscaler against interpolation on the MNIST test digits: inputs are
the digits shrunk by 2 x 2 average pooling (as in the seed), MSE against the original digit
(pixels in [0, 1], mean over pixels and digits).

    .venv/bin/python examples/mnist_x2_score.py                # the bundled mnist-x2
    .venv/bin/python examples/mnist_x2_score.py --model my.safetensors --count 1000
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from mnist_table import DEFAULT_DATA, mnist_folder

import restore
from restore.io.datasets import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist-x2", help="bundled name or .safetensors path")
    parser.add_argument("--data", default=DEFAULT_DATA, help="shared data folder, or the MNIST folder itself")
    parser.add_argument("--count", type=int, default=10_000, help="test digits to score (the first N)")
    args = parser.parse_args()
    model = restore.load(args.model)
    digits, _ = load_mnist(mnist_folder(args.data), "test")
    digits = digits[: args.count]
    small = F.avg_pool2d(digits, 2)
    with torch.inference_mode():
        upscaled = {
            "nearest": F.interpolate(small, scale_factor=2, mode="nearest"),
            "bilinear": F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False),
            "bicubic": F.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False),
            model.name: model.network.eval()(small),
        }
    print(f"x2 upscaling of the first {len(digits)} MNIST test digits (2 x 2 average-pooled to 14 x 14)\n")
    print("| method | MSE against the 28 x 28 digit |\n|---|---|")
    for method, image in upscaled.items():
        print(f"| {method} | {F.mse_loss(image.clamp(0, 1), digits).item():.4f} |")


if __name__ == "__main__":
    main()
