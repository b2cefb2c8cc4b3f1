"""The memory `restore train --pairs` takes to read its renders: the peak resident size of this
process after the training source and validation set of a pair folder are built, as a run builds
them for n2n-mc-aux (albedo and normal beside the colour, 16 pairs held out).

    python bench/pairs_memory.py .data/mc-mix11

To measure another version of the library on the same folder, put its checkout first on the path:
`git archive COMMIT restore | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python bench/pairs_memory.py ...`.
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from report import command_line

import restore
from restore.training.loop import TrainConfig, prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a pair folder: FOLDER/a and FOLDER/b, renders with their buffers")
    args = parser.parse_args()
    config = TrainConfig(out="unused.safetensors", pairs=[str(args.folder / "a"), str(args.folder / "b")], val_count=16)
    data = prepare_data(config, 3, aux=("albedo", "normal"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(command_line(__file__))
    print(f"restore from {Path(restore.__file__).parent}: {data.description}")
    print(f"peak resident memory {peak / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
