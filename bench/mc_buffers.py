"""How the render denoisers fare when the albedo and normal buffers are not the clean ones the
training renders have, beside Open Image Denoise. Writes bench/results/mc-buffers.md.

    python bench/mc_buffers.py --renders .data/mc-test .data/caustics-test
    python bench/mc_buffers.py --renders .data/mc-dev --models runs/n2n-mc-aux-r4.safetensors --out /tmp/buffers.md

The training renders' buffers (tools/render_pairs.py `aux_buffers`) follow OIDN's convention
and are nearly clean: 32 paths a pixel, continued through glass and mirrors, with the
reflectance of metals as their albedo. A user's renderer may write them otherwise. Each scene
of a tools/render_pairs.py folder (its manifest names the seed and family, so the scene is
rebuilt; needs the render extra) is denoised with three sets of buffers:

- clean: the folder's own buffers;
- the shot's own: the same tracing along the noisy shot's own camera samples (`shot_buffers`),
  as a renderer writes its buffers beside the colour: noisy at edges and through glass, less so
  the more spp;
- Mitsuba AOV: Mitsuba's own `aov` integrator, 64 paths a pixel (`aov_buffers`): albedo and
  normal of the first surface hit, black on glass and polished metal.

Methods: OIDN with buffers, the bundled n2n-mc-aux (its buffers cleaned by the prefilter its file
names, and again as given) and any --models (with buffers); OIDN and
n2n-mc on colour alone as the floor a buffer model should never fall under. Scores: the
tone-mapped PSNR of bench/mc_benchmark.py, mean over scenes. A second table gives the share of
lit surface pixels whose albedo is black (restore.hdr.black_albedo_share), over which `restore
denoise` warns that the buffers follow another convention (restore.hdr.BLACK_ALBEDO_SHARE).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import mc_benchmark  # noqa: E402
import render_pairs  # noqa: E402
from report import command_line  # noqa: E402

from restore.api import load  # noqa: E402
from restore.hdr import BLACK_ALBEDO_SHARE, black_albedo_share, psnr_tone_mapped  # noqa: E402
from restore.zoo import bundled_models  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mc-buffers.md"
AOV_SAMPLES = 64
BUFFERS = ("clean", "the shot's own", "Mitsuba AOV")


def buffer_sets(case: mc_benchmark.Case, entry: dict, scenes: dict[int, object]) -> dict[str, mc_benchmark.Case]:
    """The case with each set of buffers of BUFFERS; `entry` is its scene's in the folder's manifest (the scene
    is rebuilt from it once per seed, in `scenes`)."""
    size = case.noisy.shape[0]
    if entry["seed"] not in scenes:
        scenes[entry["seed"]], _ = render_pairs.load_scene(entry["seed"], size, entry["family"])
    scene = scenes[entry["seed"]]
    (_, seed, spp), _ = render_pairs.shots(entry["seed"], entry["spp"])  # the noisy input is shot a
    own = render_pairs.shot_buffers(scene, spp, seed)
    aov = render_pairs.aov_buffers(scene, AOV_SAMPLES, seed)  # the shot's first samples among them
    return {
        "clean": case,
        "the shot's own": replace(case, albedo=own[0], normal=own[1]),
        "Mitsuba AOV": replace(case, albedo=aov[0], normal=aov[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, nargs="+", required=True, help="tools/render_pairs.py folders with references")
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="more models with buffers to score, each a row group")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    render_pairs.use_llvm_variant()

    with_buffers: dict[str, mc_benchmark.Denoiser] = {"OIDN (colour + albedo + normal)": mc_benchmark.oidn(True)}
    colour_only: dict[str, mc_benchmark.Denoiser] = {"OIDN (colour)": mc_benchmark.oidn(False)}
    if "n2n-mc-aux" in bundled_models():
        with_buffers.update(mc_benchmark.bundled_rows("n2n-mc-aux", load("n2n-mc-aux")))
    if "n2n-mc" in bundled_models():
        colour_only["n2n-mc"] = mc_benchmark.ours(load("n2n-mc"))
    for path in args.models:
        with_buffers[str(path)] = mc_benchmark.ours(load(path))

    scores: dict[tuple[str, str, str, int], list[float]] = {}
    black: dict[tuple[str, str, int], list[float]] = {}  # black albedo shares by (buffers, group, spp)
    groups: set[tuple[str, int]] = set()
    for folder in args.renders:
        manifest = json.loads((folder / "manifest.json").read_text())["scenes"]
        scenes: dict[int, object] = {}
        for case in mc_benchmark.render_cases(folder):
            groups.add((case.group, case.spp))
            reference = mc_benchmark.image_tensor(case.reference)
            for label, denoise in colour_only.items():
                score = psnr_tone_mapped(mc_benchmark.image_tensor(denoise(case)), reference)
                scores.setdefault((label, "none", case.group, case.spp), []).append(score)
            for buffers, with_set in buffer_sets(case, manifest[case.name], scenes).items():
                planes = (mc_benchmark.image_tensor(a)[0] for a in (with_set.noisy, with_set.albedo, with_set.normal))
                black.setdefault((buffers, case.group, case.spp), []).append(black_albedo_share(*planes))
                for label, denoise in with_buffers.items():
                    score = psnr_tone_mapped(mc_benchmark.image_tensor(denoise(with_set)), reference)
                    scores.setdefault((label, buffers, case.group, case.spp), []).append(score)
            print(f"{case.name} done", flush=True)

    columns = sorted(groups)
    counts = {column: len(scores[("OIDN (colour)", "none", *column)]) for column in columns}
    lines = [
        "# Render denoisers with other buffers than the training renders'",
        "",
        f"Command: {command_line(__file__)}",
        "",
        "Tone-mapped PSNR (dB, bench/mc_benchmark.py's) against the reference, mean over scenes (count in brackets),",
        f"CPU, fp32, {torch.get_num_threads()} threads. Buffers: clean = the folder's own (OIDN's convention, 32 paths a",
        "pixel); the shot's own = the same tracing along the noisy shot's own camera samples, as a renderer writes them;",
        f"Mitsuba AOV = Mitsuba's `aov` integrator ({AOV_SAMPLES} paths a pixel): the first surface hit's albedo, black",
        "on glass and polished metal.",
        "",
        "| method | buffers | " + " | ".join(f"{g} {spp} spp ({counts[(g, spp)]})" for g, spp in columns) + " |",
        "|---|---" + "|---" * len(columns) + "|",
    ]
    rows = [(label, "none") for label in colour_only] + [(label, b) for label in with_buffers for b in BUFFERS]
    for label, buffers in rows:
        cells = [f"{statistics.mean(scores[(label, buffers, g, spp)]):.2f}" for g, spp in columns]
        lines.append(f"| {label} | {buffers} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Black albedo on lit surfaces",
        "",
        "Share of the pixels that show a surface and some light whose albedo is black (`restore.hdr.black_albedo_share`):",
        f"mean / largest over scenes, and the scenes above {BLACK_ALBEDO_SHARE:.0%}, where `restore denoise` warns.",
        "",
        "| buffers | " + " | ".join(f"{g} {spp} spp ({counts[(g, spp)]})" for g, spp in columns) + " |",
        "|---" + "|---" * len(columns) + "|",
    ]
    for buffers in BUFFERS:
        cells = []
        for column in columns:
            shares = black[(buffers, *column)]
            above = sum(share > BLACK_ALBEDO_SHARE for share in shares)
            cells.append(f"{statistics.mean(shares):.1%} / {max(shares):.1%}, {above} above")
        lines.append(f"| {buffers} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
