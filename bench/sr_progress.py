"""How far a bundled upscaler stands from a published score, and how fast its training closes the gap.

    python bench/sr_progress.py edsr-x2 --target 37.99 --fit-last 4
    python bench/sr_progress.py edsr-x4 --target 32.09 --fit-last 3

Every version of models/NAME.safetensors that git history holds is scored on one test set at the
model's scale (Set5 by default, the sr_benchmark protocol; cells are read from and added to
bench/results/sr-scores.json) and placed at its cumulative training steps, which the file's
lineage records (`restore models` counts the same chain). Versions from before files recorded
their chain are listed without a step count and left out of the fit. A straight line in
log(steps) is fitted to the last `--fit-last` versions (those trained with the current recipe:
a recipe change starts a new line) and extended to the target: this is an extrapolation that
assumes the curve keeps its recent shape, and learning curves usually bend down, so the steps it
gives are the least that the recipe needs, not a promise. Hours are counted at the newest run's
seconds per step.

Writes bench/results/sr-progress-NAME.md and models/curves/NAME-SET.png (Pillow only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
from plot_curve import nice_ticks  # noqa: E402
from report import command_line  # noqa: E402
from sr_benchmark import DATA, PUBLISHED, SCORES, cell_key  # noqa: E402

from restore.api import load  # noqa: E402
from restore.evaluation import evaluate_folder  # noqa: E402
from restore.modelfile import read_info  # noqa: E402


@dataclass(frozen=True)
class Version:
    """One bundled state of a model file: where git has it, what it cost, what it scores."""

    commit: str
    sha256: str
    total_steps: int | None  # None: the file predates recorded chains
    wall_seconds: float | None
    seconds_per_step: float | None  # the file's newest run alone
    psnr: float


def bundled_versions(name: str) -> list[tuple[str, bytes]]:
    """(commit, file bytes) for each distinct content models/NAME.safetensors has had, oldest first."""
    path = f"models/{name}.safetensors"
    commits = subprocess.run(
        ["git", "log", "--reverse", "--format=%H", "--", path], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    seen, versions = set(), []
    for commit in commits:
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True)
        if shown.returncode != 0:  # the commit removed or renamed the file
            continue
        digest = hashlib.sha256(shown.stdout).hexdigest()
        if digest not in seen:
            seen.add(digest)
            versions.append((commit, shown.stdout))
    return versions


def score_versions(name: str, set_name: str, scale: int) -> list[Version]:
    """Score every bundled version of `name` on `set_name` at `scale`, through the SR score cache."""
    cache = json.loads(SCORES.read_text()) if SCORES.is_file() else {}
    scored = []
    for commit, blob in bundled_versions(name):
        digest = hashlib.sha256(blob).hexdigest()
        key = cell_key(name, f"{name}@{digest[:12]}", set_name, scale)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{name}.safetensors"
            path.write_bytes(blob)
            training = read_info(path).training
            if key not in cache:
                report = evaluate_folder(load(path), str(DATA / set_name), scale=scale, device="cpu")
                cache[key] = {"psnr": report.rows[1].psnr, "ssim": report.rows[1].ssim}
                SCORES.write_text(json.dumps(cache, indent=1, sort_keys=True))
        lineage = training.get("lineage") or []
        newest = lineage[-1] if lineage else None
        scored.append(
            Version(
                commit=commit[:7],
                sha256=digest[:12],
                total_steps=training.get("total_steps"),
                wall_seconds=training.get("total_wall_seconds"),
                seconds_per_step=newest["wall_seconds"] / newest["steps"] if newest and newest["steps"] else None,
                psnr=float(cache[key]["psnr"]),
            )
        )
    return scored


def fit_log_steps(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (a, b) of psnr = a + b ln(steps) through (steps, psnr) points."""
    xs = [math.log(steps) for steps, _ in points]
    ys = [psnr for _, psnr in points]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / spread
    return y_mean - slope * x_mean, slope


def steps_to_reach(fit: tuple[float, float], target: float) -> float | None:
    """The step count at which the fitted line reaches `target`; None when the line does not rise."""
    intercept, slope = fit
    return math.exp((target - intercept) / slope) if slope > 0 else None


def reach_sentence(target: float, reach: float | None, newest: Version) -> str:
    """Where the fitted line reaches ``target``, from the newest version: steps more and, where its
    run recorded its wall time, hours of this CPU at that run's pace."""
    if reach is None:
        return "The fitted line does not rise: no step count reaches the target at this recipe."
    more = max(reach - newest.total_steps, 0)
    reached = f"The line reaches {target:.2f} dB at about {reach:,.0f} steps: {more:,.0f} more"
    if newest.seconds_per_step is None:  # a file whose newest run recorded no wall time
        return f"{reached}."
    hours = more * newest.seconds_per_step / 3600
    return f"{reached}, about {hours:,.0f} hours of this CPU at {newest.seconds_per_step:.2f} s a step."


def draw(
    out: Path, title: str, points: list[tuple[int, float]], fit: tuple[float, float], fitted: int, lines: dict[str, float]
) -> None:
    """Set scores against cumulative steps (`points`, oldest first) on a log axis, the fitted line, and the published levels."""
    width, left, right, top, bottom = 720, 70, 20, 30, 330
    intercept, slope = fit
    reach = steps_to_reach(fit, max(lines.values())) or points[-1][0] * 10
    x_low, x_high = math.log10(min(p[0] for p in points)) - 0.05, math.log10(max(reach, points[-1][0]) * 1.3)
    y_values = [p[1] for p in points] + list(lines.values())
    y_low, y_high = min(y_values) - 0.1, max(y_values) + 0.1

    def xy(steps: float, psnr: float) -> tuple[float, float]:
        x = left + (width - left - right) * (math.log10(steps) - x_low) / (x_high - x_low)
        return x, bottom - (bottom - top) * (psnr - y_low) / (y_high - y_low)

    image = Image.new("RGB", (width, bottom + 60), "white")
    pen = ImageDraw.Draw(image)
    pen.rectangle([left, top, width - right, bottom], outline="black")
    pen.text((left, 8), title, fill="black")
    for tick in nice_ticks(y_low, y_high):
        _, y = xy(10**x_low, tick)
        pen.line([left - 4, y, left, y], fill="black")
        pen.text((6, y - 6), f"{tick:.2f}", fill="black")
    for exponent in range(math.floor(x_low), math.ceil(x_high) + 1):
        for mantissa in (1, 2, 5):
            steps = mantissa * 10**exponent
            if x_low <= math.log10(steps) <= x_high:
                x, _ = xy(steps, y_low)
                pen.line([x, bottom, x, bottom + 4], fill="black")
                pen.text((x - 14, bottom + 6), f"{steps:,}", fill="black")
    for index, (label, level) in enumerate(lines.items()):
        (x0, y), (x1, _) = xy(10**x_low, level), xy(10**x_high, level)
        pen.line([x0, y, x1, y], fill="#7f7f7f")
        pen.text((x1 - 170, y - 13 if index % 2 else y + 2), f"{label} {level:.2f}", fill="#7f7f7f")
    first_fitted = points[-fitted][0]
    end = max(reach, points[-1][0])
    pen.line([xy(s, intercept + slope * math.log(s)) for s in (first_fitted, end)], fill="#d62728", width=1)
    for steps, psnr in points:
        x, y = xy(steps, psnr)
        pen.ellipse([x - 3, y - 3, x + 3, y + 3], fill="#1f77b4")
    pen.text((left, bottom + 24), "bundled versions (blue); log-steps fit of the last versions, extended (red)", fill="black")
    pen.text((left, bottom + 38), "x: cumulative training steps (log scale)", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a bundled upscaler with one scale (edsr-x2, edsr-x3, edsr-x4)")
    parser.add_argument("--set", default="Set5", dest="set_name")
    parser.add_argument("--target", type=float, required=True, help="the published PSNR to reach (dB)")
    parser.add_argument("--fit-last", type=int, default=3, help="versions (newest) the log-steps line is fitted to")
    args = parser.parse_args()
    scale = load(args.model).network.scales[0]
    versions = score_versions(args.model, args.set_name, scale)
    recorded = [v for v in versions if v.total_steps]  # the versions with a place on the step axis
    points = [(v.total_steps, v.psnr) for v in recorded]
    if len(points) < max(args.fit_last, 2):
        raise SystemExit(f"{args.model}: {len(points)} versions with recorded steps, fewer than --fit-last {args.fit_last}")
    fit = fit_log_steps(points[-args.fit_last :])
    intercept, slope = fit
    newest = recorded[-1]  # the fit's last point
    reach = steps_to_reach(fit, args.target)

    lines = [
        f"# {args.model}: {args.set_name} x{scale} by training step",
        "",
        f"Command: {command_line(__file__)} (the script's docstring says",
        "how each number is found). Y-channel PSNR by the sr_benchmark protocol, each bundled version of the file.",
        "",
        "| commit | sha256 | cumulative steps | wall seconds in all | s / step (its run) | PSNR (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for v in versions:
        steps = f"{v.total_steps:,}" if v.total_steps else "not recorded"
        wall = f"{v.wall_seconds:,.0f}" if v.wall_seconds else ""
        pace = f"{v.seconds_per_step:.2f}" if v.seconds_per_step else ""
        lines.append(f"| {v.commit} | {v.sha256} | {steps} | {wall} | {pace} | {v.psnr:.2f} |")
    per_doubling = slope * math.log(2)
    lines += [
        "",
        f"Fit over the last {args.fit_last} versions: PSNR = {intercept:.3f} + {slope:.4f} ln(steps),"
        f" {per_doubling:+.3f} dB per doubling of the steps.",
        f"Newest: {newest.psnr:.2f} dB at {newest.total_steps:,} steps,"
        f" {args.target - newest.psnr:.2f} dB under the target {args.target:.2f}.",
    ]
    lines.append(reach_sentence(args.target, reach, newest))
    cells = {label: PUBLISHED[label].get((args.set_name, scale)) for label in ("VDSR", "EDSR baseline")}
    published = {label: level for label, level in cells.items() if level is not None}
    if args.target not in published.values():
        published["target"] = args.target
    picture = ROOT / "models" / "curves" / f"{args.model}-{args.set_name.lower()}.png"
    title = f"{args.model}: {args.set_name} x{scale} PSNR (dB) of each bundled version by cumulative step"
    draw(picture, title, points, fit, args.fit_last, published)
    lines += ["", f"Picture: [{picture.relative_to(ROOT)}](../../{picture.relative_to(ROOT)})."]
    out = ROOT / "bench" / "results" / f"sr-progress-{args.model}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
