"""Score a denoising model file on each MNIST corruption of examples/mnist_table.py, by the
digits' MSE against the clean test digits (pixels in [0, 1], mean over pixels and digits).

    .venv/bin/python examples/mnist_score.py                # the bundled mnist-dae
    .venv/bin/python examples/mnist_score.py --model my.safetensors --count 1000
"""

from __future__ import annotations

import argparse

# Run as a script, this folder is on sys.path: the same corruptions and scoring as the table.
from mnist_table import CORRUPTIONS, DEFAULT_DATA, corruption_rows, mnist_folder

import restore
from restore.io.datasets import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist-dae", help="bundled name or .safetensors path")
    parser.add_argument("--data", default=DEFAULT_DATA, help="shared data folder, or the MNIST folder itself")
    parser.add_argument("--count", type=int, default=10_000, help="test digits to score (the first N)")
    args = parser.parse_args()
    model = restore.load(args.model)
    digits, _ = load_mnist(mnist_folder(args.data), "test")
    rows = corruption_rows(model.network, digits[: args.count].flatten(1))
    print(f"{model.name} on the first {args.count} MNIST test digits ({len(CORRUPTIONS)} corruptions)\n")
    print("| corruption | MSE of the corrupted digit | MSE of the denoised digit |\n|---|---|---|")
    for spec, corrupted, denoised in rows:
        print(f"| `{spec}` | {corrupted:.4f} | {denoised:.4f} |")


if __name__ == "__main__":
    main()
