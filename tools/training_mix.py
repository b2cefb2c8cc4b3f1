"""Render the Monte Carlo training mix of n2n-mc-aux in one resumable command: every render folder
of MIX with its shots' buffers, each kind of buffer through the prefilter, and all of them linked
into one folder of pairs for `restore train --pairs MIX/a MIX/b`.

    python tools/training_mix.py .data/mc-mix18
    python tools/training_mix.py .data/mc-mix18 --sets r18-lo r18-hi   # some folders first

runs/ and .data/ are not kept between sessions; this file is what rebuilds the data a run
trained on. For each row of MIX, beside OUT (in OUT's parent folder):

    NAME                 tools/render_pairs.py (the row's family, scenes, seeds, size and spp);
                         its buffers are clean (32 paths a pixel, one pair for both shots)
    NAME-own, NAME-aov   tools/shot_buffers.py: each shot's own buffers, and Mitsuba aov's
    KIND-pf              each of those three through tools/prefilter_buffers.py, as `restore
                         denoise` cleans the buffers before the network sees them
    OUT/a, OUT/b         links to every KIND-pf pair, named KIND_SCENE.exr (buffers beside)

A scene thus trains with each kind of buffer a user's renderer may hand over. `restore train`
holds out the last --val-count pairs by name: the row whose folder name sorts last.
Every step resumes where a killed run stopped, so the command can simply be run again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from render_pairs import link_once  # puts the repository on the path, as for render_pairs itself

from restore.io.datasets import AUX_BUFFERS, aux_path, match_pairs

TOOLS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RenderSet:
    """One render folder of the mix: `tools/render_pairs.py NAME --family ... --scenes ...`."""

    name: str
    scenes: int
    seed: int  # the first scene's; seeds must never repeat across sets, dev and test renders
    family: str = "mixed"
    spp: str = "1-64"
    size: int = 128
    buffers: tuple[str, ...] = ("clean", "own", "aov")  # kinds of buffer, each one pair a scene

    def folders(self) -> list[str]:
        """The render folder of each kind of buffer, before the prefilter."""
        return [self.name if kind == "clean" else f"{self.name}-{kind}" for kind in self.buffers]


# The eighteenth run's mix (2026-12-08): rendered again from new seeds after .data/ was lost.
# High-spp scenes keep their share (r17: 16% of the pairs at 64-1024 spp) and carry two kinds of
# buffer, since their buffers are nearly as clean as the colour; r18-lo sorts last, held out.
MIX = (
    RenderSet("r18-env", scenes=150, seed=940000, family="showroom"),
    RenderSet("r18-hi", scenes=250, seed=14000, spp="64-1024", buffers=("clean", "own")),
    RenderSet("r18-int", scenes=250, seed=801000, family="interior"),
    RenderSet("r18-int256", scenes=60, seed=802000, family="interior", size=256),
    RenderSet("r18-lo", scenes=500, seed=13000),
)


def run_tool(*args: str | Path) -> None:
    """One of the render tools, in this interpreter; a failure stops the mix."""
    subprocess.run([sys.executable, *map(str, args)], check=True)


def build(render_set: RenderSet, root: Path) -> None:
    """Render one folder of the mix, its other buffers and the prefiltered copy of each kind."""
    run_tool(
        TOOLS / "render_pairs.py", root / render_set.name, "--family", render_set.family, "--scenes", str(render_set.scenes),
        "--seed", str(render_set.seed), "--size", str(render_set.size), "--spp", render_set.spp,
    )  # fmt: skip
    for kind, folder in zip(render_set.buffers, render_set.folders(), strict=True):
        if kind != "clean":
            run_tool(TOOLS / "shot_buffers.py", root / render_set.name, root / folder, "--convention", kind)
    for folder in render_set.folders():
        run_tool(TOOLS / "prefilter_buffers.py", root / folder, root / f"{folder}-pf")


def link_mix(sets: tuple[RenderSet, ...], root: Path, out: Path) -> int:
    """Link every prefiltered pair of `sets` into out/a and out/b; returns the number of pairs."""
    count = 0
    for render_set in sets:
        for folder in render_set.folders():
            source = root / f"{folder}-pf"
            if not source.is_dir():
                continue
            for image_a, image_b in match_pairs(source / "a", source / "b"):
                for shot, image in (("a", image_a), ("b", image_b)):
                    link = out / shot / f"{folder}_{image.name}"
                    link_once(image, link)
                    for buffer in AUX_BUFFERS:
                        link_once(aux_path(image, buffer), aux_path(link, buffer))
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder of linked pairs; the render folders go beside it")
    parser.add_argument("--sets", nargs="+", metavar="NAME", help="build only these rows of MIX (all are linked)")
    args = parser.parse_args()
    names = [render_set.name for render_set in MIX]
    unknown = sorted(set(args.sets or ()) - set(names))
    if unknown:
        parser.error(f"no such set in MIX: {', '.join(unknown)} (MIX has {', '.join(names)})")
    root = args.out.resolve().parent
    for render_set in MIX:
        if args.sets is None or render_set.name in args.sets:
            build(render_set, root)
    print(f"{args.out}: {link_mix(MIX, root, args.out)} pairs")


if __name__ == "__main__":
    main()
