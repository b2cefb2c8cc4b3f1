"""Photos as users have them: real camera pairs, 8-bit noisy files, and clean photos that must stay clean.
Writes bench/results/photo.md from a score cache, bench/results/photo-scores.json.

    python bench/photo_benchmark.py --models n2n-gaussian n2n-photo      # models and the noisy input
    python bench/photo_benchmark.py --methods cbm3d cbm3d-est --rows real   # CBM3D cells (slow)
    python bench/photo_benchmark.py --models n2n-photo-level --strength 0.7  # a level model at another strength
    python bench/photo_benchmark.py --models n2n-photo-level --true-level --rows real  # told the true level

Rows:
- real: the 62 PolyU camera pairs of ../shared/data/realnoise/val (JPEG, 5 cameras, ISO
  800-6400; the clean image is the mean of many shots). The input is the noisy file as stored.
  real-select / real-unseen: its two halves (restore.io.datasets.split_real_pairs); a run of
  `restore train --val-pairs` picks its checkpoint on real-select, so real-unseen is its
  unbiased score. real-aligned: the 62 pairs scored against the clean image aligned to each
  shot (`aligned_reference`: the shift and blur between one shot and the mean taken out).
- kodak8-25, kodak8-50: Kodak24 with Gaussian noise of sigma 25 / 50 (seed = image index),
  clipped and rounded to 8 bits, as a user's PNG holds it.
- clean-0, clean-2, clean-5: Kodak24 as 8-bit files with no noise, or sigma 2 / 5: a clean
  photo must come back unchanged (sigma 0: PSNR of the output against the input itself), a
  slightly noisy one better than it went in.

Methods: `noisy` (the input), each model of --models (a bundled name or a file; fp32 on the
CPU), `cbm3d` (bm3d 4.0.3 given the true sigma: std(noisy - clean) for a real pair) and
`cbm3d-est` (given `restore.noise.estimate_sigma` of the noisy image alone). Outputs are
clipped and rounded to 8 bits; PSNR over all pixels and channels, mean over images. Each cell is
cached under its row, method and model file (sha256), so slow cells fill over several runs.
CBM3D needs the bench extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import InferenceOptions, load, run_model  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.io.datasets import image_files, real_pairs, split_real_pairs  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import EightBitGaussianNoise, estimate_sigma  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROWS = ("real", "real-select", "real-unseen", "real-aligned", "kodak8-25", "kodak8-50", "clean-0", "clean-2", "clean-5")
CBM3D = ("cbm3d", "cbm3d-est")

# (noisy, clean or None, true sigma) -> restored; all 1 x 3 x H x W on [0, 1].
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


_SHIFT_AND_BLUR = torch.tensor(
    [
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],  # Laplacian: a sharper or blurrier image
        [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],  # d/dx and d/dy: a sub-pixel shift
        [[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]],
    ]
)


def aligned_reference(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The clean image moved onto the noisy shot: clean + a + b Lap(clean) + c dx(clean) + d dy(clean)
    per channel, fitted by least squares to noisy - clean.

    The PolyU reference is the mean of many shots, which the camera moved between: a pair's
    noisy - clean holds a sub-pixel shift and a blur besides the noise (up to 57% of its variance,
    12.6% on average). Noise is independent of the clean image's derivatives, so the fit takes
    out that difference and leaves the noise; against the raw reference a denoiser gains by
    blurring edges towards the blurrier mean, which a clean photo then pays for.
    """
    padded = torch.nn.functional.pad(clean.permute(1, 0, 2, 3), (1, 1, 1, 1), mode="replicate")
    derivatives = torch.nn.functional.conv2d(padded, _SHIFT_AND_BLUR[:, None])  # C x 3 x H x W
    aligned = clean.clone()
    for channel in range(clean.shape[1]):
        basis = torch.cat([derivatives[channel].flatten(1), torch.ones(1, clean[0, 0].numel())]).T.double()
        target = (noisy - clean)[0, channel].flatten().double()
        fit = torch.linalg.lstsq(basis, target[:, None]).solution
        aligned[0, channel] += (basis @ fit)[:, 0].view(clean.shape[-2:]).to(clean.dtype)
    return aligned


def inputs(row: str, data: Path) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, noisy, reference) for every image of a row."""
    if row.startswith("real"):
        pairs = real_pairs(str(data / "realnoise" / "val"))
        if row in ("real-select", "real-unseen"):
            pairs = split_real_pairs(pairs)[0 if row == "real-select" else 1]
        loaded_pairs = [(n.name, read_batch(n), read_batch(c)) for n, c in pairs]
        if row == "real-aligned":
            return [(name, noisy, aligned_reference(noisy, clean)) for name, noisy, clean in loaded_pairs]
        return loaded_pairs
    sigma = int(row.split("-")[1])
    out = []
    for index, path in enumerate(image_files(data / "test" / "Kodak24")):
        clean = read_batch(path)
        noisy = EightBitGaussianNoise(sigma).apply(clean, torch.Generator().manual_seed(index)) if sigma else to_8_bits(clean)
        out.append((path.name, noisy, clean))
    return out


def cbm3d(estimated: bool) -> Denoiser:
    import bm3d

    def run(noisy: torch.Tensor, true_sigma: float) -> torch.Tensor:
        sigma = estimate_sigma(noisy) if estimated else true_sigma
        z = noisy[0].permute(1, 2, 0).numpy().astype(np.float64)
        out = np.asarray(bm3d.bm3d_rgb(z, max(sigma, 1e-4)), np.float32)
        return torch.from_numpy(out).permute(2, 0, 1)[None]

    return run


loaded = functools.cache(load)  # each model read once, for its hash and its run


def model_denoiser(name: str, strength: float = 1.0, true_level: bool = False) -> Denoiser:
    """A model's run; with `true_level` a level model is told each image's std(noisy - clean), as
    CBM3D is, instead of reading it off the image: what the network does when the level is right."""
    model = loaded(name)

    def run(noisy: torch.Tensor, true_sigma: float) -> torch.Tensor:
        level = 255 * true_sigma if true_level else None
        return run_model(model, noisy, InferenceOptions(device="cpu", precision="fp32", strength=strength), noise_level=level)

    return run


def ident(method: str, strength: float = 1.0, true_level: bool = False) -> str:
    """The cache key of a method: a model by its name and file hash, so a retrained file is scored
    again, the strength it ran at when not 1, and whether it was told the true level."""
    if method in ("noisy", *CBM3D):
        return method
    model = loaded(method)
    digest = hashlib.sha256(Path(model.source).read_bytes()).hexdigest()[:12]
    told = " true level" if true_level else ""
    return f"{model.info.name}@{digest}{told}" + (f" strength {strength:g}" if strength != 1 else "")


def score(row: str, data: Path, denoise: Denoiser | None) -> dict[str, float | str]:
    """Mean PSNR, and the gain over the input image by image (its mean, least, and how many lost)."""
    psnrs, gains, names = [], [], []
    for name, noisy, clean in inputs(row, data):
        reference = noisy if row == "clean-0" else clean  # a clean photo is compared with itself
        true_sigma = float((noisy - clean).std())
        result = noisy if denoise is None else to_8_bits(denoise(noisy, true_sigma))
        psnrs.append(psnr(result * 255, reference * 255))
        gains.append(psnrs[-1] - psnr(noisy * 255, reference * 255) if row != "clean-0" else 0.0)
        names.append(name)
        print(f"  {name}: {psnrs[-1]:.2f} dB", flush=True)
    worst = min(range(len(names)), key=lambda i: gains[i] if row != "clean-0" else psnrs[i])
    return {
        "psnr": statistics.mean(psnrs),
        "min_psnr": min(psnrs),
        "gain": statistics.mean(gains),
        "least_gain": gains[worst],
        "worse": sum(g < 0 for g in gains),
        "worst": names[worst],
        "images": len(names),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], help="bundled names or model files to score")
    parser.add_argument("--methods", nargs="+", default=["noisy"], choices=["noisy", *CBM3D], help="besides the models")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--strength", type=float, default=1.0, help="--strength for level-conditioned models")
    parser.add_argument("--true-level", action="store_true", help="tell level models std(noisy - clean) of each image")
    args = parser.parse_args()
    cache_file = RESULTS / "photo-scores.json"
    results: dict[str, dict[str, float | str]] = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    for row in args.rows:
        for method in [*args.methods, *args.models]:
            if method in CBM3D and row.startswith("clean"):
                continue  # CBM3D needs a noise level; the clean rows are about the networks
            strength = args.strength if method in args.models else 1.0
            true_level = args.true_level and method in args.models
            key = f"{row}|{ident(method, strength, true_level)}"
            if key in results:
                continue
            print(f"{row} {key}", flush=True)
            denoiser = (
                None
                if method == "noisy"
                else cbm3d(method == "cbm3d-est")
                if method in CBM3D
                else model_denoiser(method, strength, true_level)
            )
            results[key] = score(row, args.data, denoiser)
            # Merged with what is on disk now: slow CBM3D cells may be filled by a second run at the same time.
            on_disk = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
            results = {**on_disk, **results}
            cache_file.write_text(json.dumps(results, indent=1, sort_keys=True))
    write_table(results, RESULTS / "photo.md")


def write_table(results: dict[str, dict[str, float | str]], out: Path) -> None:
    methods = sorted({key.split("|")[1] for key in results}, key=lambda m: (m not in ("noisy", *CBM3D), m))
    label = {"noisy": "noisy input", "cbm3d": "CBM3D, true sigma", "cbm3d-est": "CBM3D, estimated sigma"}

    def cell(row: str, method: str) -> dict[str, float | str] | None:
        return results.get(f"{row}|{method}")

    lines = [
        "# Photos as users have them",
        "",
        "Command: `python bench/photo_benchmark.py --models MODEL ...` (cells cached in bench/results/photo-scores.json;",
        "the script's docstring has the rows and methods). Models run in fp32 on the CPU; outputs clipped and rounded",
        "to 8 bits; PSNR over all pixels and channels, mean over images. A model is named with the start of its file's",
        "sha256.",
        "",
        "## Real camera pairs",
        "",
        "The 62 PolyU pairs of `../shared/data/realnoise/val` (5 cameras, ISO 800-6400, JPEG; the clean image is the",
        "mean of many shots). `restore eval MODEL ../shared/data/realnoise/val --pairs` reproduces a model's row.",
        "",
        "The last two columns score the halves of `restore.io.datasets.split_real_pairs`: a run trained with",
        "`--val-pairs` picked its checkpoint on the selection half, so the unseen half is its unbiased score.",
        "",
        "| method | PSNR (dB) | gain over the input | pairs made worse | least gain (pair) | selection half | unseen half |",
        "|---|---|---|---|---|---|---|",
    ]

    def real_cells(row: str, method: str) -> str | None:
        """'| method | PSNR | gain | worse | least gain (pair) |' of a real row, None when not scored."""
        c = cell(row, method)
        if c is None:
            return None
        if method == "noisy":
            return f"| {label[method]} | {c['psnr']:.2f} |  |  |  |"
        least = f"{c['least_gain']:+.2f} ({c['worst']})"
        return f"| {label.get(method, method)} | {c['psnr']:.2f} | {c['gain']:+.2f} | {c['worse']} of {c['images']} | {least} |"

    for method in methods:
        text = real_cells("real", method)
        if text is not None:
            halves = [cell(row, method) for row in ("real-select", "real-unseen")]
            lines.append(text + " " + " | ".join(f"{h['psnr']:.2f}" if h else "" for h in halves) + " |")
    lines += [
        "",
        "### The same pairs, the reference aligned to the shot",
        "",
        "Row `real-aligned`: each clean image moved onto its noisy shot by a per-channel least-squares fit of",
        "noisy - clean on the clean image's Laplacian and derivatives (`aligned_reference` in the script): the",
        "mean of many shots is shifted by up to 0.4 px and blurrier than one shot, which the raw reference",
        "rewards a denoiser for copying. Methods told the true sigma are told std(noisy - aligned reference).",
        "",
        "| method | PSNR (dB) | gain over the input | pairs made worse | least gain (pair) |",
        "|---|---|---|---|---|",
    ]
    lines += [text for text in (real_cells("real-aligned", method) for method in methods) if text is not None]
    lines += [
        "",
        "## Kodak24 as 8-bit files",
        "",
        "Gaussian noise (seed = image index) clipped and rounded to 8 bits, as a user's PNG holds it.",
        "",
        "| method | sigma 25 | sigma 50 |",
        "|---|---|---|",
    ]
    for method in methods:
        cells = [cell(row, method) for row in ("kodak8-25", "kodak8-50")]
        if any(cells):
            text = [f"{c['psnr']:.2f}" if c else "" for c in cells]
            lines.append(f"| {label.get(method, method)} | " + " | ".join(text) + " |")
    lines += [
        "",
        "## Clean and slightly noisy photos",
        "",
        "Kodak24 as 8-bit PNGs. Sigma 0: PSNR of the output against the input itself (mean / lowest image); a",
        "denoiser that leaves a clean photo alone scores high. Sigma 2 and 5: the gain over the noisy input (mean /",
        "least, and how many images lost).",
        "",
        "| method | sigma 0: mean / lowest | sigma 2: gain / least (lost) | sigma 5: gain / least (lost) |",
        "|---|---|---|---|",
    ]
    for method in methods:
        if method in ("noisy", *CBM3D):
            continue
        zero, two, five = (cell(row, method) for row in ("clean-0", "clean-2", "clean-5"))
        if not any((zero, two, five)):
            continue
        text = [f"{zero['psnr']:.2f} / {zero['min_psnr']:.2f}" if zero else ""]
        text += [f"{c['gain']:+.2f} / {c['least_gain']:+.2f} ({c['worse']})" if c else "" for c in (two, five)]
        lines.append(f"| {method} | " + " | ".join(text) + " |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
