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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, load, run_model  # noqa: E402
from restore.io.datasets import AUX_BUFFERS, aux_path  # noqa: E402
from restore.io.images import Image, read_image, write_image  # noqa: E402
from restore.modelfile import ModelFileError  # noqa: E402


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
        _link(reference, args.dst / "reference" / reference.name)
    for normal in sorted(args.src.glob("*/*.normal.exr")):
        shot = normal.parent.name
        image = normal.with_name(normal.name.removesuffix(".normal.exr") + ".exr")
        out = args.dst / shot / image.name
        if aux_path(out, "normal").is_file():
            continue  # done before a restart
        buffers = np.concatenate([read_image(aux_path(image, buffer)).pixels for buffer in AUX_BUFFERS], axis=-1)
        cleaned = run_model(prefilter, buffers, options)
        _link(image, out)
        for index, buffer in enumerate(AUX_BUFFERS):  # normal last: it marks the shot done
            pixels = np.ascontiguousarray(cleaned[..., 3 * index : 3 * index + 3], dtype=np.float32)
            write_image(aux_path(out, buffer), Image(pixels, None, "f32", "linear"), overwrite=True)
    print(f"wrote {args.dst}")


def _link(target: Path, link: Path) -> None:
    """`link` pointing at `target` (resolved), made once."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target.resolve())


if __name__ == "__main__":
    try:
        main()
    except (ModelFileError, ValueError) as err:
        sys.exit(f"error: {err}")
