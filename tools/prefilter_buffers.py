"""Write a copy of a tools/render_pairs.py (or tools/shot_buffers.py) folder whose albedo and
normal buffers went through a buffer prefilter, as `restore denoise` cleans them before a render
model that names one: so that a network can train on the buffers it will see.

    python tools/prefilter_buffers.py .data/mc-train-own .data/mc-train-own-pf
    python tools/prefilter_buffers.py .data/mc-train .data/mc-train-pf --prefilter runs/mc-aux-prefilter.safetensors

DST/SHOT/NAME.exr (and DST/reference/NAME.exr) link to SRC's renders; DST/SHOT/NAME.albedo.exr
and NAME.normal.exr are the prefiltered buffers of SRC/SHOT/NAME; DST/manifest.json is SRC's
with this command added. A killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from render_pairs import link_once, write_exr  # puts the repository on the path, as for render_pairs itself

from restore.api import InferenceOptions, load, run_model
from restore.io.datasets import AUX_BUFFERS, aux_path, load_aux
from restore.modelfile import ModelFileError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a render folder (SHOT/NAME.exr with NAME.albedo.exr, NAME.normal.exr)")
    parser.add_argument("dst", type=Path, help="the folder to write")
    parser.add_argument("--prefilter", default="mc-aux-prefilter", help="the prefilter: a bundled name or a file")
    args = parser.parse_args()
    prefilter = load(args.prefilter)
    options = InferenceOptions(device="cpu", precision="fp32")
    manifest = json.loads((args.src / "manifest.json").read_text())
    manifest["commands"] = [*manifest.get("commands", []), shlex.join(["python", "tools/prefilter_buffers.py", *sys.argv[1:]])]
    args.dst.mkdir(parents=True, exist_ok=True)
    (args.dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for reference in sorted((args.src / "reference").glob("*.exr")):
        link_once(reference, args.dst / "reference" / reference.name)
    for normal in sorted(args.src.glob("*/*.normal.exr")):
        shot = normal.parent.name
        image = normal.with_name(normal.name.removesuffix(".normal.exr") + ".exr")
        out = args.dst / shot / image.name
        if aux_path(out, "normal").is_file():
            continue  # done before a restart
        cleaned = run_model(prefilter, load_aux(image, AUX_BUFFERS), options)  # C x H x W
        link_once(image, out)
        for index, buffer in enumerate(AUX_BUFFERS):  # normal last: it marks the shot done
            write_exr(aux_path(out, buffer), cleaned[3 * index : 3 * index + 3].permute(1, 2, 0).numpy())
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    try:
        main()
    except (ModelFileError, ValueError) as err:
        sys.exit(f"error: {err}")
