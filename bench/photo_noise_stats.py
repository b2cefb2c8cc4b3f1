"""How real camera noise and `--noise photo:...` compare: level, neighbour and channel correlation.

For every 6th real pair of ../shared/data/realnoise/val, the residual noisy - clean is measured
(standard deviation on 0-255, correlation with the pixel 1 and 2 to the right, correlation
between R and G and between G and B), then the same for photo noise drawn on that pair's
clean image at two shot-noise levels. Last, over all 62 pairs, how `restore.noise.estimate_sigma`
(from the noisy image alone) compares with the true std(noisy - clean).

    python bench/photo_noise_stats.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.io.datasets import load_images, real_pairs  # noqa: E402
from restore.noise import estimate_sigma, parse_noise  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realnoise" / "val"
SPECS = ("photo:0.001,90", "photo:0.004,90")


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def noise_stats(residual: torch.Tensor) -> str:
    """One line of statistics of a 1 x 3 x H x W residual (each channel's mean removed)."""
    r = residual - residual.mean(dim=(-1, -2), keepdim=True)
    return (
        f"{r.std().item() * 255:5.2f}  {_correlation(r[..., 1:], r[..., :-1]):5.2f}  "
        f"{_correlation(r[..., 2:], r[..., :-2]):5.2f}  {_correlation(r[:, 0], r[:, 1]):5.2f}  "
        f"{_correlation(r[:, 1], r[:, 2]):5.2f}"
    )


def main() -> None:
    print(f"{'image / noise':46}  std    lag1   lag2   R-G    G-B")
    for noisy_path, clean_path in real_pairs(str(DATA))[::6]:
        noisy, clean = (image[None] for image in load_images([noisy_path, clean_path]))
        print(f"{noisy_path.name[:46]:46}  {noise_stats(noisy - clean)}")
        for spec in SPECS:
            synthetic = parse_noise(spec).apply(clean, torch.Generator().manual_seed(0))
            print(f"{'  ' + spec:46}  {noise_stats(synthetic - clean)}")
    ratios = []
    for noisy_path, clean_path in real_pairs(str(DATA)):
        noisy, clean = load_images([noisy_path, clean_path])
        ratios.append(estimate_sigma(noisy) / float((noisy - clean).std()))
    print(
        f"estimate_sigma / std(noisy - clean) over {len(ratios)} pairs: mean {sum(ratios) / len(ratios):.2f}, "
        f"min {min(ratios):.2f}, max {max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
