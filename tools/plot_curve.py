"""Draw a model's validation curve, over every run in its lineage, as a PNG beside its card.

    python tools/plot_curve.py models/n2n-gaussian.safetensors models/curves/n2n-gaussian.png

The x axis is the cumulative training step (each run continues where the previous one's steps
end); each run is drawn in its own colour and named in the legend. Runs validate on their own
held-out sets: a run that changes the noise or the data starts a curve that is not comparable
with the one before it, which the legend's run names make visible. Pillow only, no plotting
library.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.modelfile import read_info  # noqa: E402

WIDTH = 720
LEFT, RIGHT, TOP, PLOT_BOTTOM = 70, 20, 30, 330  # the plot's edges; tick labels and the legend go below
COLOURS = tuple("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf #000000 #bcbd22 #7f7f7f".split())
LEGEND_TOP, LEGEND_LINE = PLOT_BOTTOM + 22, 14  # one line per run: the picture grows with the chain


def runs_of(model: Path) -> list[tuple[str, list[tuple[int, float]]]]:
    """(run label, [(cumulative step, validation PSNR)]) for every run behind the model."""
    training = read_info(model).training
    lineage = training.get("lineage") or [{"name": model.stem, "steps": training["steps"], "val_curve": training["val_curve"]}]
    runs, offset = [], 0
    for index, run in enumerate(lineage):
        # Files from before runs carried their curves hold the last run's in `val_curve` only.
        curve = run.get("val_curve") or (training["val_curve"] if index == len(lineage) - 1 else [])
        points = [(offset + int(step), float(score)) for step, score, *_ in curve]
        runs.append((f"run {index + 1}: {run['name']}, {run['steps']:,} steps", points))
        offset += int(run["steps"])
    return runs


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) inside (low, high]."""
    raw = max(high - low, 1e-9) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def plot(model: Path, out: Path) -> None:
    runs = runs_of(model)
    points = [p for _, curve in runs for p in curve]
    if not points:
        raise SystemExit(f"{model}: no validation curve recorded")
    x_max = max(max(p[0] for p in points), 1)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    pad = max((y_high - y_low) * 0.08, 0.05)
    y_low, y_high = y_low - pad, y_high + pad
    height = LEGEND_TOP + LEGEND_LINE * len(runs) + 8

    def xy(step: float, score: float) -> tuple[float, float]:
        x = LEFT + (WIDTH - LEFT - RIGHT) * step / x_max
        y = PLOT_BOTTOM - (PLOT_BOTTOM - TOP) * (score - y_low) / (y_high - y_low)
        return x, y

    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([LEFT, TOP, WIDTH - RIGHT, PLOT_BOTTOM], outline="black")
    for tick in nice_ticks(y_low, y_high):
        _, y = xy(0, tick)
        draw.line([LEFT - 4, y, LEFT, y], fill="black")
        draw.text((6, y - 6), f"{tick:.2f}", fill="black")
    for tick in nice_ticks(0, x_max):
        x, _ = xy(tick, y_low)
        draw.line([x, PLOT_BOTTOM, x, PLOT_BOTTOM + 4], fill="black")
        draw.text((x - 14, PLOT_BOTTOM + 6), f"{int(tick):,}", fill="black")
    draw.text((LEFT, 8), f"{read_info(model).name}: validation PSNR (dB) by training step", fill="black")
    for index, (label, curve) in enumerate(runs):
        colour = COLOURS[index % len(COLOURS)]
        line = [xy(*p) for p in curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((LEFT + 8, LEGEND_TOP + LEGEND_LINE * index), label, fill=colour)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/plot_curve.py MODEL.safetensors OUT.png")
    plot(Path(sys.argv[1]), Path(sys.argv[2]))
