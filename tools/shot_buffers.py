"""Give every shot of a tools/render_pairs.py folder its own albedo and normal buffers, as a
renderer writes them beside the colour: traced along the shot's own camera samples
(render_pairs.shot_buffers), so noisy at edges and through glass at low spp, where the folder's
buffers are clean (32 paths a pixel of their own, one pair for both shots). With `--convention
aov`, the buffers Mitsuba's own aov integrator writes beside the shot instead
(render_pairs.aov_buffers): black on glass and metals, a convention other renderers share.

    python tools/shot_buffers.py .data/mc-train-mixed .data/mc-train-mixed-own
    python tools/shot_buffers.py .data/mc-train-mixed .data/mc-train-mixed-aov --convention aov

DST/a/NAME.exr and DST/b/NAME.exr link to SRC's renders (and DST/reference/NAME.exr to its
reference, where it has one, so that bench/mc_benchmark.py scores the folder); DST/a/NAME.albedo.exr,
DST/a/NAME.normal.exr (and b's) are the shot's own. DST/manifest.json is SRC's with this
command added. A killed run resumes where it stopped. Needs the render extra (see render_pairs).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import render_pairs  # puts the repository on the path, as for render_pairs itself

from restore.io.images import read_image

CONVENTIONS = {"own": render_pairs.shot_buffers, "aov": render_pairs.aov_buffers}
"""How the shots' buffers are traced: each a function (scene, spp, seed) -> (albedo, normal)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a tools/render_pairs.py folder")
    parser.add_argument("dst", type=Path, help="the folder to write (links to SRC's renders, the shots' own buffers)")
    parser.add_argument("--convention", choices=CONVENTIONS, default="own", help="the shots' own buffers, or Mitsuba aov's")
    args = parser.parse_args()
    render_pairs.use_llvm_variant()
    buffers_of = CONVENTIONS[args.convention]
    manifest = json.loads((args.src / "manifest.json").read_text())
    manifest["commands"] = [*manifest.get("commands", []), shlex.join(["python", "tools/shot_buffers.py", *sys.argv[1:]])]
    args.dst.mkdir(parents=True, exist_ok=True)
    (args.dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for name, entry in sorted(manifest["scenes"].items()):
        image_shots = render_pairs.shots(entry["seed"], entry["spp"], entry.get("target_spp", 0))
        if all((args.dst / shot / f"{name}.normal.exr").is_file() for shot, _, _ in image_shots):
            continue  # done before a restart
        colour = args.src / "a" / f"{name}.exr"
        size = read_image(colour).pixels.shape[0]
        scene, _ = render_pairs.load_scene(entry["seed"], size, entry["family"])
        if (args.src / "reference" / f"{name}.exr").is_file():
            render_pairs.link_once(args.src / "reference" / f"{name}.exr", args.dst / "reference" / f"{name}.exr")
        for shot, seed, spp in image_shots:
            albedo, normal = buffers_of(scene, spp, seed)
            render_pairs.link_once(args.src / shot / f"{name}.exr", args.dst / shot / f"{name}.exr")
            render_pairs.write_exr(args.dst / shot / f"{name}.albedo.exr", albedo)
            render_pairs.write_exr(args.dst / shot / f"{name}.normal.exr", normal)  # last: marks the shot done
        print(f"{name} done", flush=True)


if __name__ == "__main__":
    main()
