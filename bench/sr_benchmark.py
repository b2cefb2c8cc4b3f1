"""Super-resolution benchmark: Set5, Set14 and B100 at x2 / x3 / x4, PSNR and SSIM on the Y
channel by the data README's protocol, for bicubic, the bundled EDSR / MDSR models with and
without the self-ensemble, beside published figures; and CPU time per output megapixel.
Writes bench/results/sr.md from a score cache, bench/results/sr-scores.json.

    python bench/sr_benchmark.py --ensemble-sets Set5 Set14   # "+" rows (8x the time) on these sets only
    python bench/sr_benchmark.py --models edsr-x2 --ensemble-sets Set5 Set14   # measure one model's rows
    python bench/sr_benchmark.py --quick                # edsr-x2 on 2 Set5 images, no ensemble: a smoke run

Each cell is cached under its set, scale, row, model (name and registered sha256, so a retrained
file gets new cells) and protocol. `--models` measures only those models' missing cells (and
bicubic); the table shows every bundled model's cells, marking with a dagger those measured
under an older protocol. Evaluation runs in fp32 on the CPU, one image at a time, untiled unless
the image exceeds the default memory budget; `restore eval MODEL FOLDER --scale N [--ensemble]`
gives any single cell.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, machine  # noqa: E402

from restore.api import InferenceOptions, Model, load, resolved_precision, run_model  # noqa: E402
from restore.device import PRECISIONS, cpu_precisions  # noqa: E402
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


def seconds_per_output_mp(model: Model, scale: int, side: int = 256, repeats: int = 3, precision: str = "fp32") -> float:
    """Median wall time of upscaling a side x side image, per output megapixel (warm-up excluded)."""
    model.network.select_scale(scale)
    image = torch.rand(3, side, side)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        run_model(model, image, InferenceOptions(device="cpu", precision=precision))
        if i > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times) / ((side * scale) ** 2 / 1e6)


SCORES = RESULTS.with_name("sr-scores.json")
# The protocol a cell was measured under: LR values rounded as MATLAB's uint8() rounds, halves away
# from zero (restore.resize.matlab_uint8). Cells of the older "lr-half-even" protocol (torch.round,
# before 2026-12-03) are shown with a dagger until measured again; the change moved bicubic Set5 x2
# from 33.680 to 33.683 dB.
PROTOCOL = "lr-matlab-round"


def cell_key(row: str, model: str, set_name: str, scale: int, protocol: str = PROTOCOL) -> str:
    """A score cell's key in sr-scores.json: the set, scale, row (model name, "+" for the ensemble), model id and protocol."""
    return f"{set_name}|x{scale}|{row}|{model}|{protocol}"


def model_id(name: str) -> str:
    """A bundled model's cache key (restore.zoo.BundledModel.ident): a retrained file gets new cells."""
    return bundled_models()[name].ident


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--ensemble-sets", nargs="*", default=list(SETS), help="sets that also get the '+' rows")
    parser.add_argument("--models", nargs="*", help="measure only these bundled upscalers [default: all]")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding the test sets")
    parser.add_argument("--quick", action="store_true", help="edsr-x2 on 2 Set5 images, timed at 64 x 64 (not cached)")
    parser.add_argument("--out", type=Path, help=f"table to write [default: {RESULTS.name}; a --quick run writes only this]")
    args = parser.parse_args()
    limit = 0
    if args.quick:
        args.sets, args.ensemble_sets, limit = ["Set5"], [], 2
        args.models = args.models or ["edsr-x2"]

    models = upscalers()
    measured_now = {name for name, _ in models} if args.models is None else set(args.models)
    cache: dict[str, dict[str, float | str]] = {} if args.quick or not SCORES.is_file() else json.loads(SCORES.read_text())

    for set_name in args.sets:
        for name, scale in models:
            if name not in measured_now:
                continue
            runs = [False, True] if set_name in args.ensemble_sets else [False]
            for ensemble in runs:
                row = name + ("+" if ensemble else "")
                if cell_key(row, model_id(name), set_name, scale) in cache:
                    continue
                report = evaluate_folder(
                    name, str(args.data / set_name), scale=scale, limit=limit, device="cpu", ensemble=ensemble
                )
                bicubic, ours = report.rows
                cache[cell_key("bicubic", "bicubic", set_name, scale)] = {"psnr": bicubic.psnr, "ssim": bicubic.ssim}
                cache[cell_key(row, model_id(name), set_name, scale)] = {"psnr": ours.psnr, "ssim": ours.ssim}
                print(f"{set_name} x{scale} {row}: {ours.psnr:.2f} dB / {ours.ssim:.4f} (bicubic {bicubic.psnr:.2f})")
                if not args.quick:
                    SCORES.write_text(json.dumps(cache, indent=1, sort_keys=True))

    def cell(row: str, model: str, set_name: str, scale: int) -> str:
        """The row's cell: this protocol's score, else an older protocol's marked with a dagger, else empty."""
        for protocol, mark in ((PROTOCOL, ""), ("lr-half-even", " †")):
            found = cache.get(cell_key(row, model, set_name, scale, protocol))
            if found is not None:
                return f"{found['psnr']:.2f} / {found['ssim']:.4f}{mark}"
        return ""

    names = sorted({name for name, _ in models})
    rows = [("bicubic", "bicubic")] + [(name + plus, model_id(name)) for name in names for plus in ("", "+")]
    columns = [(s, k) for s in args.sets for k in SCALES]
    table = {row: [cell(row, model, s, k) for s, k in columns] for row, model in rows}
    rows = [(row, model) for row, model in rows if any(table[row])]
    columns = [c for i, c in enumerate(columns) if any(table[row][i] for row, _ in rows)]
    header = "| | " + " | ".join(f"{s} x{k}" for s, k in columns) + " |"
    lines = [
        "# Super-resolution benchmark",
        "",
        f"Command: {command_line(__file__)} (cells cached in",
        "bench/results/sr-scores.json under each model's sha256; see the script's docstring for measuring a subset).",
        "",
        "Protocol (../shared/data/README.md): HR mod-cropped to the scale, LR = MATLAB bicubic with",
        "antialiasing, rounded to 8 bits as MATLAB's uint8() rounds (halves away from zero); output rounded",
        "the same way; PSNR (dB) / SSIM on the BT.601 Y channel with `scale` pixels shaved; mean over images.",
        "`+` is the self-ensemble (`--ensemble`). † : measured before LR values were rounded as MATLAB",
        "does (torch.round, halves to even), which moves bicubic Set5 x2 by 0.003 dB.",
        "Any cell: `restore eval MODEL ../shared/data/test/SET --scale N [--ensemble]`.",
        "",
        "## Measured here",
        "",
        header,
        "|---" * (len(columns) + 1) + "|",
    ]
    for row, _ in rows:
        kept = [table[row][i] for i, c in enumerate((s, k) for s in args.sets for k in SCALES) if c in columns]
        lines.append(f"| {row} | " + " | ".join(kept) + " |")
    lines += ["", "## Published (PSNR, dB)", "", header, "|---" * (len(columns) + 1) + "|"]
    for row, values in PUBLISHED.items():
        lines.append(f"| {row} | " + " | ".join(f"{values[(s, k)]:.2f}" if (s, k) in values else "" for s, k in columns) + " |")

    repeats, side = (1, 64) if args.quick else (3, 256)
    precisions = cpu_precisions()  # bf16 where the CPU has it natively
    lines += [
        "",
        f"## Speed on CPU ({machine()})",
        "",
        f"Seconds per output megapixel: median of {repeats} runs after a warm-up run (excluded), {side} x {side} input,",
        "in-process (`restore.api.run_model`) in each precision; the last column is what `--precision auto` picks",
        "for an 8-bit image on this CPU (it times the network once and keeps the faster). Each row is timed when its",
        "model file is first measured and cached under its sha256, so rows may come from different days, and these",
        "2-core hosts differ by up to 2x from day to day: compare rows timed in one run only.",
        "",
        "| model | scale | " + " | ".join(precisions) + " | auto picks |",
        "|---" * (len(precisions) + 3) + "|",
    ]
    for name, scale in models:
        model = load(name)
        base = f"speed|x{scale}|{model_id(name)}|{torch.get_num_threads()} threads"
        keys = {p: base if p == "fp32" else f"{base}|{p}" for p in precisions}  # fp32 cells keep their older key
        for p, speed_key in keys.items():
            if name in measured_now and speed_key not in cache:
                seconds = seconds_per_output_mp(model, scale, side=side, repeats=repeats, precision=p)
                cache[speed_key] = {"seconds_per_mp": seconds}
        if any(k in cache for k in keys.values()):  # a precision not timed yet is left blank
            dtype = resolved_precision(model, "cpu", "auto")
            picked = next(label for label, d in PRECISIONS.items() if d == dtype)
            cells = [f"{cache[k]['seconds_per_mp']:.2f}" if k in cache else "" for k in keys.values()]
            lines.append(f"| {name} | x{scale} | " + " | ".join(cells) + f" | {picked} |")
    if not args.quick:
        SCORES.write_text(json.dumps(cache, indent=1, sort_keys=True))
    out = args.out or (None if args.quick else RESULTS)  # a smoke run must not replace the published table
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
