"""Train the buffer prefilter of render denoisers from each shot's own buffers and the clean ones
(restore.training.aux_prefilter), and write its model file:

    python tools/train_aux_prefilter.py --own .data/mc-train-own .data/mc-train-mixed-own \
        --clean .data/mc-train .data/mc-train-mixed -o runs/mc-aux-prefilter.safetensors --steps 4000

The i-th --own folder (tools/shot_buffers.py DST) pairs with the i-th --clean folder (its SRC).
A render model uses the prefilter when its metadata names it: `python tools/set_config.py MODEL
--aux-prefilter mc-aux-prefilter -o OUT`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.modelfile import ModelFileError  # noqa: E402
from restore.training.aux_prefilter import PrefilterConfig, train_prefilter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own", nargs="+", required=True, help="tools/shot_buffers.py folders (each shot's own buffers)")
    parser.add_argument("--clean", nargs="+", required=True, help="the render folders they came from (clean buffers)")
    parser.add_argument("-o", "--output", required=True, help="the model file to write")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-count", type=int, default=32, help="scenes held out (the last by name)")
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--features", type=int, nargs=3, default=[8, 16, 32], help="widths at full, half, quarter resolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = PrefilterConfig(
        own=args.own, clean=args.clean, out=args.output, steps=args.steps, batch=args.batch, patch=args.patch,
        lr=args.lr, val_count=args.val_count, val_every=args.val_every, seed=args.seed, features=tuple(args.features),
        command=shlex.join(["python", "tools/train_aux_prefilter.py", *sys.argv[1:]]),
    )  # fmt: skip
    train_prefilter(config, report=lambda line: print(line, flush=True))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    try:
        main()
    except (ModelFileError, ValueError) as err:
        sys.exit(f"error: {err}")
