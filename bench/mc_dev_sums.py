"""The render models' bundling rule reads: per method of a bench/mc_benchmark.py table, the Cornell
box (4 / 16 spp) and the sum of the caustics-dev and mc-dev columns (4 + 16 spp) for each kind of
buffer: clean, the shots' own (-own folders), Mitsuba's aov (-aov folders).

    python bench/mc_benchmark.py --renders .data/mc-dev .data/caustics-dev .data/mc-dev-own \\
        .data/caustics-dev-own .data/mc-dev-aov .data/caustics-dev-aov --models FILE --out /tmp/dev.md
    python bench/mc_dev_sums.py /tmp/dev.md

The development renders (seeds no training set uses), rendered again wherever .data/ was lost:

    python tools/render_pairs.py .data/mc-dev --scenes 8 --seed 500000 --spp 4 16 --reference-spp 1024 --size 128
    python tools/render_pairs.py .data/caustics-dev --family caustics --scenes 8 --seed 400000 --spp 4 16 \\
        --reference-spp 1024 --size 128
    python tools/shot_buffers.py .data/mc-dev .data/mc-dev-own   # and --convention aov for -aov;
                                                                 # the same for caustics-dev
    python tools/render_pairs.py .data/mc-dev-hi --scenes 8 --seed 500000 --spp 64 256 --reference-spp 4096 --size 128

mc-dev-hi, scored by the same bench, is the high-spp column watched beside the rule. A run is
bundled when the clean sum stays within 0.1 dB, the own and aov sums rise and the Cornell box
stays within 0.2 dB (models/README.md, n2n-mc-aux).
"""

from __future__ import annotations

import argparse
from pathlib import Path

BUFFER_KINDS = {"clean": "", "own": "-own", "aov": "-aov"}
SUMMED = ("caustics-dev", "mc-dev")


def table_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows (cells by column name) of the first table whose first column is "method"."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("| method"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)))
    return header, rows


def dev_sums(header: list[str], row: dict[str, str]) -> dict[str, float | None]:
    """Per buffer kind, the sum of the caustics-dev and mc-dev columns (None where a cell is empty)."""
    sums: dict[str, float | None] = {}
    for kind, suffix in BUFFER_KINDS.items():
        columns = [name for name in header if name.split(" ")[0] in {f"{group}{suffix}" for group in SUMMED}]
        try:
            sums[kind] = sum(float(row[name]) for name in columns) if columns else None
        except ValueError:
            sums[kind] = None
    return sums


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a bench/mc_benchmark.py result table")
    args = parser.parse_args()
    header, rows = table_rows(args.table.read_text())
    for row in rows:
        box = "/".join(row[name] for name in header if name.startswith("cbox"))
        sums = "  ".join(f"{kind} {'-' if value is None else f'{value:.2f}'}" for kind, value in dev_sums(header, row).items())
        print(f"{row['method'][:60]:60s} box {box}  {sums}")


if __name__ == "__main__":
    main()
