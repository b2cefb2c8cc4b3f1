"""Time `restore denoise` per megapixel on this CPU for each model in each precision it offers,
and measure the peak memory of denoising a large synthetic image; write the table to bench/results/.

    python bench/denoise_speed.py                 # 2 MP timing image, 24 MP memory image
    python bench/denoise_speed.py --models n2n-photo-level
    python bench/denoise_speed.py --quick         # small sizes, for a smoke run (prints, writes nothing)
    python bench/denoise_speed.py --against d65be29   # beside an older commit's code, in the same run

Each measurement runs the real CLI in a fresh process (`python -m restore denoise`), so the
timing includes reading and writing the PNG; the per-megapixel figure is the median of the
runs after a warm-up run (excluded). Peak memory is the child's maximum resident set size.

A speed table is only comparable with another from the same machine, and these 2-core hosts
differ by 2x from day to day. `--against REV` extracts the code and models of commit REV
(`git archive`) and times it beside this checkout, alternating the two run by run, so that a
regression shows as a ratio measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package
sys.path.insert(0, str(REPO / "bench"))
from report import command_line, machine  # noqa: E402

from restore.device import cpu_precisions  # noqa: E402
from restore.io.images import Image, write_image  # noqa: E402

RESULTS = REPO / "bench" / "results" / "denoise-speed.md"
# The benchmark denoiser the table first timed, the default for colour photos, and the level model
# (its estimator and the level channel cost a little more).
MODELS = ("n2n-gaussian", "n2n-photo", "n2n-photo-level")


def synthetic(height: int, width: int) -> Image:
    """A noisy gradient image (content does not change the U-Net's speed)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 * np.ones_like(x)], axis=-1)
    return Image(np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1).astype(np.float32), None, "u8", "srgb")


def run_cli(args: list[str], code: Path = REPO) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one `restore` run in a child process, importing the
    package from `code` (`python -m` puts its working directory first on the path)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "restore", *args], cwd=code, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        seconds = time.perf_counter() - start
        if status != 0:
            errors.seek(0)
            raise SystemExit(f"restore failed: {errors.read().decode().strip()}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def extract_commit(revision: str, into: Path) -> Path:
    """The package and bundled models of `revision`, written under `into` (nothing is checked out)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "restore", "models"], cwd=REPO, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"cannot read commit {revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def per_megapixel(times: list[float], pixels: int) -> float:
    """Seconds per megapixel of the median run."""
    return statistics.median(times) / (pixels / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing-size", default="1632x1224", help="W x H of the timing image (about 2 MP)")
    parser.add_argument("--memory-size", default="6000x4000", help="W x H of the memory image (24 MP)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="bundled denoisers to time (the first also for memory)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat; prints the table, writes nothing")
    parser.add_argument("--against", metavar="REV", help="also time the code of git commit REV, run by run beside this one")
    args = parser.parse_args()
    if args.quick:
        args.timing_size, args.memory_size, args.repeats = "256x192", "512x512", 1
    tw, th = map(int, args.timing_size.split("x"))
    mw, mh = map(int, args.memory_size.split("x"))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        codes = {"this checkout": REPO}
        if args.against:
            codes[args.against] = extract_commit(args.against, Path(tmp) / "against")
        timing_png = Path(tmp) / "timing.png"
        write_image(timing_png, synthetic(th, tw))
        for model in args.models:
            # An older commit may not bundle every model of today's: time those it has.
            have = {name: code for name, code in codes.items() if (code / "models" / f"{model}.safetensors").exists()}
            for precision in cpu_precisions():
                times: dict[str, list[float]] = {name: [] for name in have}
                for i in range(args.repeats + 1):
                    # Alternate which code runs first, so neither always meets a warmer machine.
                    for name in list(have)[:: 1 if i % 2 == 0 else -1]:
                        out = Path(tmp) / f"out-{model}-{precision}-{i}.png"
                        command = ["denoise", str(timing_png), "-o", str(out), "--model", model, "--precision", precision]
                        seconds, _ = run_cli([*command, "--quiet"], have[name])
                        if i > 0:  # the first run warms caches and is excluded
                            times[name].append(seconds)
                        out.unlink()
                figures = {name: per_megapixel(times[name], tw * th) for name in have}
                cells = [f"{figures[name]:.2f} s/MP" if name in figures else "-" for name in codes]
                if args.against:
                    both = len(figures) == 2
                    cells.append(f"{figures['this checkout'] / figures[args.against]:.2f}" if both else "-")
                rows.append((model, precision, f"{tw}x{th}", *cells))
        memory_png = Path(tmp) / "large.png"
        write_image(memory_png, synthetic(mh, mw))
        large_out = str(Path(tmp) / "large-out.png")
        seconds, peak = run_cli(
            ["denoise", str(memory_png), "-o", large_out, "--model", args.models[0], "--precision", "fp32", "--quiet"]
        )

    header = "| model | precision | image | time per megapixel |"
    if args.against:
        header = f"| model | precision | image | this checkout | {args.against} | ratio (this / {args.against}) |"
    lines = [
        "# `restore denoise` speed and memory on CPU",
        "",
        f"Command: {command_line(__file__)}  ",
        f"Machine: {machine()};",
        f"median of {args.repeats} runs after one warm-up run (excluded), whole CLI process (PNG read and write included).",
        "",
        header,
        "|---" * header.count(" | ") + "|---|",
        *["| " + " | ".join(row) + " |" for row in rows],
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
