"""Where a photo denoiser's error lies on chosen real camera pairs: brightness or colour, fine or coarse.

    python bench/pair_errors.py n2n-photo-level runs/X.safetensors --pairs toy_12 plug_11

Each pair of ../shared/data/realnoise/val whose name contains one of `--pairs` is denoised as
bench/photo_benchmark.py's real row does (fp32 on the CPU, the level read off the image, output
rounded to 8 bits). The line gives the output's gain over the noisy input against the stored
clean image and against the clean image aligned to the shot (photo_benchmark's real-aligned
reference), the level the model read (beside the pair's std(noisy - clean) against both
references, what a training crop's level measures), and the output's and the input's squared
error (0-255 scale) split three ways: into Y, Cb and Cr, and the Y error into coarse (a 5x5 box
blur of it) and fine (the rest). A denoiser that smooths texture loses in fine Y; one that shifts colours or
brightness loses in Cb / Cr or coarse Y.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kodak_probes import FP32_ON_CPU, gain  # noqa: E402
from photo_benchmark import aligned_reference  # noqa: E402

from restore.api import estimate_noise_level, load, run_model  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.io.datasets import real_pairs  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

REAL_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "realnoise" / "val"


def error_parts(image: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Mean squared error (0-255 scale) in Y, Cb and Cr, and Y's split into coarse and fine."""
    difference = (kornia.color.rgb_to_ycbcr(image) - kornia.color.rgb_to_ycbcr(clean)) * 255
    luma = difference[:, :1]
    coarse = F.avg_pool2d(F.pad(luma, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    parts = difference.square().mean(dim=(0, 2, 3))
    return {
        "Y": float(parts[0]),
        "Cb": float(parts[1]),
        "Cr": float(parts[2]),
        "Y coarse": float(coarse.square().mean()),
        "Y fine": float((luma - coarse).square().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or model files")
    parser.add_argument("--pairs", nargs="+", required=True, help="parts of pair names (e.g. toy_12)")
    args = parser.parse_args()
    chosen = [(n, c) for n, c in real_pairs(str(REAL_PAIRS)) if any(part in n.name for part in args.pairs)]
    if not chosen:
        raise SystemExit(f"no pair of {REAL_PAIRS} matches {' '.join(args.pairs)}")
    models = [load(name) for name in args.models]  # each read once, not once per pair
    for noisy_path, clean_path in chosen:
        noisy, clean = read_batch(noisy_path), read_batch(clean_path)
        aligned = aligned_reference(noisy, clean)
        inputs = error_parts(noisy, clean)
        stds = [255 * float((noisy - reference).std()) for reference in (clean, aligned)]
        spread = f"std(noisy - clean) {stds[0]:.2f}, aligned {stds[1]:.2f}"
        print(f"{noisy_path.name}: {spread}; noisy " + ", ".join(f"{k} {v:.2f}" for k, v in inputs.items()), flush=True)
        for name, model in zip(args.models, models, strict=True):
            level = estimate_noise_level(model, noisy)  # told back, so the estimator runs once
            out = to_8_bits(run_model(model, noisy, FP32_ON_CPU, noise_level=level))
            parts = ", ".join(f"{k} {v:.2f}" for k, v in error_parts(out, clean).items())
            print(
                f"  {name}: gain {gain(out, noisy, clean):+.2f} dB (aligned {gain(out, noisy, aligned):+.2f}),"
                f" read {level if level is not None else float('nan'):.2f}; {parts}",
                flush=True,
            )


if __name__ == "__main__":
    main()
