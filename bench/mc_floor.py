"""What a render denoiser takes away from an image that needs nothing: each scene's converged
reference given as the noisy input (with its buffers), tone-mapped PSNR of the output against that
same reference. A denoiser that hands a clean image back scores high; this number is a ceiling on
what it can return at high spp, where the input is nearly clean.

    python bench/mc_floor.py --renders .data/mc-dev .data/mc-dev-hi --models FILE

Written to bench/results/mc-floor.md (or --out). Each scene counts once, however many spp its folder
rendered it at: the reference is the same. The score is only as clean as the reference: mc-dev-hi's
have 4,096 spp, mc-dev's 1,024 (a denoiser that removes what noise they keep loses there), and
caustics-dev's 1,024 spp references are still so noisy that the column would measure them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_benchmark import (  # noqa: E402
    CBOX,
    Case,
    Denoiser,
    bundled_render_models,
    bundled_rows,
    cbox_cases,
    image_tensor,
    oidn,
    ours,
    render_cases,
)
from report import command_line, machine  # noqa: E402

from restore.api import load  # noqa: E402  (mc_benchmark put the repository on the path)
from restore.hdr import psnr_tone_mapped  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "mc-floor.md"


def reference_cases(cases: list[Case]) -> list[Case]:
    """One case per scene whose noisy input is its reference: the first of each scene's spp."""
    seen: dict[tuple[str, str], Case] = {}
    for case in cases:
        scene = case.name.removesuffix(f"_{case.spp}spp")  # render_cases names a scene's spp NAME_{spp}spp
        seen.setdefault((case.group, scene), replace(case, noisy=case.reference, second=case.reference))
    return list(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cbox", type=Path, default=CBOX)
    parser.add_argument("--renders", type=Path, nargs="*", default=[], help="tools/render_pairs.py folders with references")
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="more model files to score, each a row")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    cases = reference_cases(cbox_cases(args.cbox) + [case for folder in args.renders for case in render_cases(folder)])
    methods: dict[str, Denoiser] = {"OIDN (colour + albedo + normal)": oidn(True)}
    for name, model in bundled_render_models().items():
        methods.update(bundled_rows(name, model))
    for path in args.models:
        methods[str(path)] = ours(load(path))

    groups = list(dict.fromkeys(case.group for case in cases))
    scores: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        reference = image_tensor(case.reference)
        for label, denoise in methods.items():
            scores.setdefault((label, case.group), []).append(psnr_tone_mapped(image_tensor(denoise(case)), reference))
    counts = {group: sum(1 for case in cases if case.group == group) for group in groups}
    lines = [
        "# Render denoisers on the converged reference itself",
        "",
        f"Command: {command_line(__file__)}",
        "",
        "Each scene's reference given as the input, with its buffers; PSNR (dB) after the tone map",
        "T(v) = (v / (1 + v))^(1/2.2) of the output against that reference, mean over scenes (count in brackets).",
        f"CPU: {machine()}.",
        "",
        "| method | " + " | ".join(f"{group} ({counts[group]})" for group in groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for label in methods:
        lines.append(f"| {label} | " + " | ".join(f"{np.mean(scores[(label, group)]):.2f}" for group in groups) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
