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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kodak_probes import denoised_8bit, gain, kodak24_files, noisy_8bit, probe_arguments  # noqa: E402

from restore.api import estimate_noise_level, load  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.metrics import psnr  # noqa: E402


def main() -> None:
    models_help = "bundled names or model files (level models)"
    parser = probe_arguments(__doc__.splitlines()[0], images=[24, 13, 8], models_help=models_help)
    parser.add_argument("--levels", type=float, nargs="+", default=[0, 1, 2, 3], help="levels to tell (sigma, 0-255)")
    args = parser.parse_args()
    files = kodak24_files()
    for name in args.models:
        model = load(name)
        for number in args.images:
            clean = read_batch(files[number - 1])
            noisy = noisy_8bit(clean, args.sigma, number)
            reading = estimate_noise_level(model, noisy)
            if reading is None:
                raise SystemExit(f"{name} is not a level model: it reads no noise level")
            cells = []
            for told in (None, *args.levels):
                out = denoised_8bit(model, noisy, noise_level=told)
                shown = f"{gain(out, noisy, clean):+.2f}" if args.sigma else f"{psnr(out * 255, clean * 255):.2f}"
                cells.append(f"{'read' if told is None else f'{told:g}'} {shown}")
            what = "gain told" if args.sigma else "PSNR against the input told"
            print(f"{name}  {files[number - 1].name} at sigma {args.sigma:g}: reads {reading:.2f}; {what} {', '.join(cells)} dB")


if __name__ == "__main__":
    main()
