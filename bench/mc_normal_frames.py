"""What a render denoiser loses when the normal buffer comes in another frame than its training's:
the training renders' normals are in world space (Mitsuba's, y up), Blender's Denoising Normal is
in camera space (y the camera's up). Writes bench/results/mc-normal-frames.md.

    python bench/mc_normal_frames.py --renders .data/mc-dev .data/caustics-dev

Each scene's normals are turned by one rotation drawn for it (seeded): a level camera's frame
(turned about the vertical, tilted by up to 20 degrees, as camera space is for a camera looking
about level), and any frame (a uniformly random rotation). Tone-mapped PSNR against the
reference, averaged per folder and spp; the buffer prefilter sees the turned normals too, as it
would at inference. OIDN with the same buffers beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mc_benchmark  # noqa: E402
from report import command_line  # noqa: E402

from restore.api import load  # noqa: E402
from restore.hdr import psnr_tone_mapped  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mc-normal-frames.md"
LEVEL_TILT = np.radians(20)


def level_camera_frame(rng: np.random.Generator) -> np.ndarray:
    """A rotation taking world space (y up) to the frame of a camera looking about level: turned
    about the vertical by any angle, tilted by up to LEVEL_TILT."""
    yaw, tilt = rng.uniform(-np.pi, np.pi), rng.uniform(-LEVEL_TILT, LEVEL_TILT)
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    lean = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    return lean @ turn


def any_frame(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation (QR of a Gaussian matrix, signs fixed, reflections turned back)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.sign(np.linalg.det(q))


FRAMES: dict[str, Callable[[np.random.Generator], np.ndarray] | None] = {
    "world": None,
    "a level camera's": level_camera_frame,
    "any": any_frame,
}


def in_frame(case: mc_benchmark.Case, rotation: np.ndarray | None) -> mc_benchmark.Case:
    """The case with its normals turned by `rotation` (None: as rendered)."""
    return case if rotation is None else replace(case, normal=(case.normal @ rotation.T).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, nargs="+", required=True, help="tools/render_pairs.py folders with references")
    parser.add_argument("--model", default="n2n-mc-aux", help="a bundled name or a model file (with buffers)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    methods = {args.model: mc_benchmark.ours(load(args.model)), "OIDN": mc_benchmark.oidn(with_aux=True)}
    columns = [f"{method}, {frame}" for method in methods for frame in FRAMES]
    rows: dict[tuple[str, int], dict[str, list[float]]] = {}
    for folder in args.renders:
        rng = np.random.default_rng(0)  # the same rotations whichever model is scored
        for case in mc_benchmark.render_cases(folder):
            scores = rows.setdefault((folder.name, case.spp), {column: [] for column in columns})
            reference = mc_benchmark.image_tensor(case.reference)
            for frame, draw in FRAMES.items():
                turned = in_frame(case, draw(rng) if draw is not None else None)
                for method, denoise in methods.items():
                    psnr = psnr_tone_mapped(mc_benchmark.image_tensor(denoise(turned)), reference)
                    scores[f"{method}, {frame}"].append(psnr)
    lines = [
        "# Normals in another frame",
        "",
        f"Command: {command_line(__file__)}",
        "",
        f"{args.model} and OIDN (colour + albedo + normal), tone-mapped PSNR (dB), fp32 on the CPU, with each",
        "scene's normal buffer turned into another frame: a level camera's (about the vertical by any angle,",
        "tilted by up to 20 degrees: camera space, as Blender writes its Denoising Normal, for a camera looking",
        "about level) and any (a random rotation). The training renders' normals are in world space, y up.",
        "",
        f"| renders | spp | {' | '.join(columns)} |",
        f"|---|---|{'---|' * len(columns)}",
    ]
    for (name, spp), scores in sorted(rows.items()):
        cells = " | ".join(f"{np.mean(scores[column]):.2f}" for column in columns)
        lines.append(f"| {name} ({len(scores[columns[0]])}) | {spp} | {cells} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
