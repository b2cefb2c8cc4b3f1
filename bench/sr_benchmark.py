"""Super-resolution benchmark: Set5, Set14 and B100 at x2 / x3 / x4, PSNR and SSIM on the Y
channel by the data README's protocol, for bicubic, the bundled EDSR / MDSR models with and
without the self-ensemble, beside published figures; and CPU time per output megapixel.
Writes bench/results/sr.md.

    python bench/sr_benchmark.py                        # every bundled upscaler, every set and scale
    python bench/sr_benchmark.py --ensemble-sets Set5 Set14   # "+" rows (8x the time) on these sets only
    python bench/sr_benchmark.py --quick                # Set5 only, 2 images, no ensemble: a smoke run

Evaluation runs in fp32 on the CPU, one image at a time, untiled unless the image exceeds the
default memory budget; `restore eval MODEL FOLDER --scale N [--ensemble]` gives any single cell.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import load, run_model  # noqa: E402
from restore.device import cpu_name  # noqa: E402
from restore.evaluation import evaluate_folder  # noqa: E402
from restore.zoo import bundled_models  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sr.md"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "test"
SETS = ("Set5", "Set14", "B100")
SCALES = (2, 3, 4)

# Published Y-channel PSNR (dB). Bicubic, VDSR (Kim et al. 2016) and EDSR (Lim et al. 2017,
# table 6); EDSR baseline only where issue #10 quotes it.
PUBLISHED: dict[str, dict[tuple[str, int], float]] = {
    "bicubic": {
        ("Set5", 2): 33.66, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
        ("Set14", 2): 30.24, ("Set14", 3): 27.55, ("Set14", 4): 26.00,
        ("B100", 2): 29.56, ("B100", 3): 27.21, ("B100", 4): 25.96,
    },
    "VDSR": {
        ("Set5", 2): 37.53, ("Set5", 3): 33.66, ("Set5", 4): 31.35,
        ("Set14", 2): 33.03, ("Set14", 3): 29.77, ("Set14", 4): 28.01,
        ("B100", 2): 31.90, ("B100", 3): 28.82, ("B100", 4): 27.29,
    },
    "EDSR baseline": {("Set5", 2): 37.99, ("Set5", 4): 32.09},
    "EDSR": {
        ("Set5", 2): 38.11, ("Set5", 3): 34.65, ("Set5", 4): 32.46,
        ("Set14", 2): 33.92, ("Set14", 3): 30.52, ("Set14", 4): 28.80,
        ("B100", 2): 32.32, ("B100", 3): 29.25, ("B100", 4): 27.71,
    },
}  # fmt: skip


def upscalers() -> list[tuple[str, int]]:
    """(bundled model, scale) for every bundled photo upscaler (colour, not the MNIST one) and each of its scales."""
    pairs = []
    for name, entry in sorted(bundled_models().items()):
        network = load(name).network if entry.task == "upscale" else None
        if network is not None and network.in_channels == 3:
            pairs += [(name, s) for s in network.scales]
    return pairs


def seconds_per_output_mp(name: str, scale: int, side: int = 256, repeats: int = 3) -> float:
    """Median wall time of upscaling a side x side image, per output megapixel (warm-up excluded)."""
    model = load(name)
    model.network.select_scale(scale)
    image = torch.rand(3, side, side)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        run_model(model, image, device="cpu", precision="fp32")
        if i > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times) / ((side * scale) ** 2 / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--ensemble-sets", nargs="*", default=list(SETS), help="sets that also get the '+' rows")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding the test sets")
    parser.add_argument("--quick", action="store_true", help="Set5, 2 images, no ensemble")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    limit = 0
    if args.quick:
        args.sets, args.ensemble_sets, limit = ["Set5"], [], 2

    models = upscalers()
    scores: dict[tuple[str, str, int], tuple[float, float]] = {}  # (row, set, scale) -> (psnr, ssim)
    for set_name in args.sets:
        for name, scale in models:
            runs = [False, True] if set_name in args.ensemble_sets else [False]
            for ensemble in runs:
                report = evaluate_folder(
                    name, str(args.data / set_name), scale=scale, limit=limit, device="cpu", ensemble=ensemble
                )
                bicubic, ours = report.rows
                scores[("bicubic", set_name, scale)] = (bicubic.psnr, bicubic.ssim)
                scores[(ours.label, set_name, scale)] = (ours.psnr, ours.ssim)
                print(f"{set_name} x{scale} {ours.label}: {ours.psnr:.2f} dB / {ours.ssim:.4f} (bicubic {bicubic.psnr:.2f})")

    rows = ["bicubic"] + sorted({key[0] for key in scores} - {"bicubic"}, key=lambda r: (r.rstrip("+"), r))
    columns = [(s, k) for s in args.sets for k in SCALES if any((r, s, k) in scores for r in rows)]
    header = "| | " + " | ".join(f"{s} x{k}" for s, k in columns) + " |"
    lines = [
        "# Super-resolution benchmark",
        "",
        f"Command: `python bench/sr_benchmark.py{''.join(' ' + a for a in sys.argv[1:])}`",
        "",
        "Protocol (../shared/data/README.md): HR mod-cropped to the scale, LR = MATLAB bicubic with",
        "antialiasing, rounded to 8 bits; output rounded to 8 bits; PSNR (dB) / SSIM on the BT.601 Y",
        "channel with `scale` pixels shaved; mean over images. `+` is the self-ensemble (`--ensemble`).",
        "Any cell: `restore eval MODEL ../shared/data/test/SET --scale N [--ensemble]`.",
        "",
        "## Measured here",
        "",
        header,
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in rows:
        cells = [("{:.2f} / {:.4f}".format(*scores[(row, s, k)]) if (row, s, k) in scores else "") for s, k in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "## Published (PSNR, dB)", "", header, "|---" * (len(columns) + 1) + "|"]
    for row, values in PUBLISHED.items():
        lines.append(f"| {row} | " + " | ".join(f"{values[(s, k)]:.2f}" if (s, k) in values else "" for s, k in columns) + " |")

    cpu = cpu_name() or platform.machine()
    repeats = 1 if args.quick else 3
    lines += [
        "",
        f"## Speed on CPU ({cpu}, {torch.get_num_threads()} threads, fp32, torch {torch.__version__})",
        "",
        f"Median of {repeats} runs after a warm-up run (excluded), 256 x 256 input, in-process (`restore.api.run_model`).",
        "",
        "| model | scale | seconds per output megapixel |",
        "|---|---|---|",
    ]
    for name, scale in models:
        lines.append(f"| {name} | x{scale} | {seconds_per_output_mp(name, scale, repeats=repeats):.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
