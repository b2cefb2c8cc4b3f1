"""Time `restore denoise` per megapixel on this CPU for each model in each precision it offers,
and measure the peak memory of denoising a large synthetic image; write the table to bench/results/.

    python bench/denoise_speed.py                 # 2 MP timing image, 24 MP memory image
    python bench/denoise_speed.py --models n2n-photo-level
    python bench/denoise_speed.py --quick         # small sizes, for a smoke run (prints, writes nothing)

Each measurement runs the real CLI in a fresh process (`python -m restore denoise`), so the
timing includes reading and writing the PNG; the per-megapixel figure is the median of the
runs after a warm-up run (excluded). Peak memory is the child's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.device import cpu_name, cpu_precisions  # noqa: E402
from restore.io.images import Image, write_image  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "denoise-speed.md"
# The benchmark denoiser the table first timed, the default for colour photos, and the level model
# (its estimator and the level channel cost a little more).
MODELS = ("n2n-gaussian", "n2n-photo", "n2n-photo-level")


def synthetic(height: int, width: int) -> Image:
    """A noisy gradient image (content does not change the U-Net's speed)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 * np.ones_like(x)], axis=-1)
    return Image(np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1).astype(np.float32), None, "u8", "srgb")


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one `restore` run in a child process."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "restore", *args], stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        seconds = time.perf_counter() - start
        if status != 0:
            errors.seek(0)
            raise SystemExit(f"restore failed: {errors.read().decode().strip()}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing-size", default="1632x1224", help="W x H of the timing image (about 2 MP)")
    parser.add_argument("--memory-size", default="6000x4000", help="W x H of the memory image (24 MP)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="bundled denoisers to time (the first also for memory)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat; prints the table, writes nothing")
    args = parser.parse_args()
    if args.quick:
        args.timing_size, args.memory_size, args.repeats = "256x192", "512x512", 1
    tw, th = map(int, args.timing_size.split("x"))
    mw, mh = map(int, args.memory_size.split("x"))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        timing_png = Path(tmp) / "timing.png"
        write_image(timing_png, synthetic(th, tw))
        for model in args.models:
            for precision in cpu_precisions():
                times = []
                for i in range(args.repeats + 1):
                    out = Path(tmp) / f"out-{model}-{precision}-{i}.png"
                    command = ["denoise", str(timing_png), "-o", str(out), "--model", model, "--precision", precision]
                    seconds, _ = run_cli([*command, "--quiet"])
                    if i > 0:  # the first run warms caches and is excluded
                        times.append(seconds)
                per_mp = statistics.median(times) / (tw * th / 1e6)
                rows.append((model, precision, f"{tw}x{th}", f"{per_mp:.2f} s/MP"))
        memory_png = Path(tmp) / "large.png"
        write_image(memory_png, synthetic(mh, mw))
        large_out = str(Path(tmp) / "large-out.png")
        seconds, peak = run_cli(
            ["denoise", str(memory_png), "-o", large_out, "--model", args.models[0], "--precision", "fp32", "--quiet"]
        )

    cpu = cpu_name() or platform.machine()
    lines = [
        "# `restore denoise` speed and memory on CPU",
        "",
        f"Command: `{' '.join(['python bench/denoise_speed.py', *sys.argv[1:]])}`  ",
        f"Machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__};",
        f"median of {args.repeats} runs after one warm-up run (excluded), whole CLI process (PNG read and write included).",
        "",
        "| model | precision | image | time per megapixel |",
        "|---|---|---|---|",
        *[f"| {m} | {p} | {size} | {t} |" for m, p, size, t in rows],
        "",
        f"Peak memory (max RSS of the process), {args.models[0]}, {mw}x{mh} = {mw * mh / 1e6:.0f} MP, fp32, default tile budget: "
        f"**{peak / 2**30:.2f} GiB** in {seconds:.0f} s. The image alone is {mw * mh * 3 * 4 / 2**30:.2f} GiB as float32.",
        "",
    ]
    if not args.quick:  # a smoke run must not replace the published table
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
