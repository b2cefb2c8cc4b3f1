"""Where in brightness a render denoiser's tone-mapped error lies, beside OIDN with buffers:
each band of the reference's linear value (mean of RGB) with its share of the pixels, of each
method's squared tone-mapped error, and of the error ours has beyond OIDN's; and the same shares
at the buffers' edges and inside surfaces. Writes bench/results/mc-error-bands.md.

    python bench/mc_error_bands.py --renders .data/mc-dev .data/caustics-dev
    python bench/mc_error_bands.py --renders .data/mc-dev --model runs/n2n-mc-aux-tm.safetensors --out /tmp/bands.md

The tone-mapped PSNR of bench/mc_benchmark.py adds these squared errors up; a training loss
that weighs brightness differently from T spends the network where the score does not look.
Cases: the 4 spp Cornell box and the render folders' scenes at 4 spp (bench/mc_benchmark.py's
cases); fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mc_benchmark  # noqa: E402
from report import command_line  # noqa: E402

from restore.api import load  # noqa: E402
from restore.hdr import neighbourhood_extreme, tone_map  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mc-error-bands.md"
BANDS = (0.0, 0.02, 0.1, 0.5, 2.0, 10.0, float("inf"))  # the reference's linear value, mean of RGB


def squared_tone_mapped_error(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per pixel (H x W), the squared error after T summed over RGB: what the tone-mapped PSNR averages."""
    mapped = [tone_map(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy() for x in (output, reference)]
    return np.square(mapped[0] - mapped[1]).sum(-1)


def band_table(cases: list[mc_benchmark.Case], ours: mc_benchmark.Denoiser, theirs: mc_benchmark.Denoiser) -> list[str]:
    """The table for one group of cases: per band of the reference's value, shares of pixels, of
    our error, of theirs, of our excess."""
    rows = [f"{BANDS[k]:g}-{BANDS[k + 1]:g}" for k in range(len(BANDS) - 1)]
    bands = lambda case: np.digitize(case.reference.mean(-1), BANDS[1:-1])  # noqa: E731
    return share_table(cases, ours, theirs, bands, rows, "reference value")


BUFFER_EDGE = 0.05
"""A pixel is at a buffer edge where some albedo or normal channel changes by more than this within its 3 x 3
neighbourhood: silhouettes, creases and texture, where demodulating by the albedo and multiplying back are
hardest, as against the flat buffers inside surfaces."""


def at_buffer_edge(case: mc_benchmark.Case) -> np.ndarray:
    """Per pixel (H x W), 1 at a buffer edge (BUFFER_EDGE) and 0 elsewhere."""
    buffers = torch.from_numpy(np.concatenate([case.albedo, case.normal], -1)).permute(2, 0, 1)
    spread = neighbourhood_extreme(buffers, torch.maximum) - neighbourhood_extreme(buffers, torch.minimum)
    return (spread.amax(0) > BUFFER_EDGE).numpy().astype(np.int64)


def edge_table(cases: list[mc_benchmark.Case], ours: mc_benchmark.Denoiser, theirs: mc_benchmark.Denoiser) -> list[str]:
    """The table for one group of cases: flat buffers and buffer edges, shares as in `band_table`."""
    return share_table(cases, ours, theirs, at_buffer_edge, ["flat buffers", "buffer edges"], "pixels where")


def share_table(
    cases: list[mc_benchmark.Case],
    ours: mc_benchmark.Denoiser,
    theirs: mc_benchmark.Denoiser,
    classify: Callable[[mc_benchmark.Case], np.ndarray],
    rows: list[str],
    heading: str,
) -> list[str]:
    """Per class of pixel (`classify`: H x W row indices into `rows`), the shares of the pixels, of
    our squared tone-mapped error, of OIDN's, and of the error ours has beyond OIDN's."""
    pixels, our_error, their_error = (np.zeros(len(rows)) for _ in range(3))
    for case in cases:
        classes = classify(case).ravel()
        for errors, denoise in ((our_error, ours), (their_error, theirs)):
            errors += np.bincount(classes, squared_tone_mapped_error(denoise(case), case.reference).ravel(), len(rows))
        pixels += np.bincount(classes, minlength=len(rows))
    excess = our_error - their_error
    lines = [f"| {heading} | pixels | our error | OIDN's error | our excess |", "|---|---|---|---|---|"]
    for k, row in enumerate(rows):
        lines.append(f"| {row} | " + " | ".join(_share(part, k) for part in (pixels, our_error, their_error, excess)) + " |")
    return lines


def _share(parts: np.ndarray, k: int) -> str:
    """Part k of a total as a percentage ("-" where the total is not positive: no error, or no excess)."""
    total = parts.sum()
    return f"{100 * parts[k] / total:.0f} %" if total > 0 else "-"


def remembered(denoise: mc_benchmark.Denoiser) -> mc_benchmark.Denoiser:
    """`denoise`, each case's output kept: both tables of a group read the same outputs."""
    outputs: dict[int, np.ndarray] = {}

    def run(case: mc_benchmark.Case) -> np.ndarray:
        if id(case) not in outputs:
            outputs[id(case)] = denoise(case)
        return outputs[id(case)]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cbox", type=Path, default=mc_benchmark.CBOX)
    parser.add_argument("--renders", type=Path, nargs="*", default=[], help="tools/render_pairs.py folders with references")
    parser.add_argument("--model", default="n2n-mc-aux", help="a bundled name or a model file (with buffers)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ours, theirs = remembered(mc_benchmark.ours(load(args.model))), remembered(mc_benchmark.oidn(with_aux=True))
    groups = {"cbox": [c for c in mc_benchmark.cbox_cases(args.cbox) if c.spp == 4]}
    for folder in args.renders:
        groups[folder.name] = [c for c in mc_benchmark.render_cases(folder) if c.spp == 4]
    lines = [
        "# Where the tone-mapped error lies, by brightness",
        "",
        f"Command: {command_line(__file__)}",
        "",
        f"{args.model} against OIDN (colour + albedo + normal), 4 spp. Each band of the reference's linear value",
        "(mean of RGB): its share of the pixels, of each method's squared tone-mapped error (the sum the",
        "tone-mapped PSNR averages), and of the error ours has beyond OIDN's (negative: ours is lower there).",
        "The second table of each splits the same errors between pixels at a buffer edge (an albedo or normal",
        f"channel changing by more than {BUFFER_EDGE:g} within 3 x 3: silhouettes, creases, texture) and the rest.",
        "",
    ]
    for name, cases in groups.items():
        lines += [f"## {name} ({len(cases)} at 4 spp)", "", *band_table(cases, ours, theirs), ""]
        lines += [*edge_table(cases, ours, theirs), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
