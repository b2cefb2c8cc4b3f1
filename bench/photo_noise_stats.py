"""How real camera noise and `--noise photo:...` compare: level, neighbour and channel correlation.

For every 6th real pair of ../shared/data/realnoise/val, the residual noisy - clean is measured
(standard deviation on 0-255, correlation with the pixel 1 and 2 to the right, correlation
between R and G and between G and B), then the same for photo noise drawn on that pair's
clean image at two shot-noise levels, with two shares of coarse grain (the third
parameter) and with a finer luma blur (the fourth). Last, over all 62 pairs, how the level read off the noisy image alone compares
with the true std(noisy - clean): by `restore.noise.estimate_sigma` and by the learned
estimator of the bundled level model (`restore.api.estimate_noise_level`). And, on 40 crops of
the training photos, how much a photo's noise level grows when it is measured against the clean
image instead of the clean image through the same camera without noise (JPEG and 8 bits):
the label a level model was told before it was measured against the reference. Then what the
estimator reads on training crops, noise by noise, where the noise's energy lies, scale by scale,
in the real pairs and in photo noise, and last how strong the noise is by the clean image's brightness.

    python bench/photo_noise_stats.py
    python bench/photo_noise_stats.py --level-model runs/X.safetensors   # another level model's estimator
    python bench/photo_noise_stats.py --left n2n-photo   # only: what a denoiser leaves of the noise, by scale
    python bench/photo_noise_stats.py --left cbm3d       # the same for CBM3D given each pair's true sigma
    python bench/photo_noise_stats.py --detail   # only: how much fine detail the clean images hold
    python bench/photo_noise_stats.py --reads --level-model runs/X.safetensors
        # only: what the estimator reads on the real pairs (full and half size), on Kodak24
        # with white noise of sigma 0-12 saved as 8-bit files, and on training crops by noise
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from level_reads import white_noise_reads  # noqa: E402
from photo_benchmark import aligned_reference, cbm3d  # noqa: E402

from restore.api import Model, denoise, estimate_noise_level, load  # noqa: E402
from restore.io.datasets import GRAY_WEIGHTS, image_files, load_images, real_pairs  # noqa: E402
from restore.noise import PhotoNoise, estimate_sigma, noisy_pair_with_reference, parse_noise  # noqa: E402
from restore.noise.camera import TO_YCBCR  # noqa: E402
from restore.noise.params import to_8_bits  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realnoise" / "val"
TRAIN = DATA.parents[1] / "train" / "CBSD400"
KODAK = DATA.parents[1] / "test" / "Kodak24"
SPECS = ("photo:0.001,90", "photo:0.004,90", "photo:0.004,90,0.1", "photo:0.004,90,0.2", "photo:0.004,90,0,0.3-0.8")
LEVEL_MODEL = "n2n-photo-level"


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def noise_stats(residual: torch.Tensor) -> str:
    """One line of statistics of a 1 x 3 x H x W residual (each channel's mean removed)."""
    r = residual - residual.mean(dim=(-1, -2), keepdim=True)
    return (
        f"{r.std().item() * 255:5.2f}  {_correlation(r[..., 1:], r[..., :-1]):5.2f}  "
        f"{_correlation(r[..., 2:], r[..., :-2]):5.2f}  {_correlation(r[:, 0], r[:, 1]):5.2f}  "
        f"{_correlation(r[:, 1], r[:, 2]):5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level-model", default=LEVEL_MODEL, help="bundled name or file of a level model")
    parser.add_argument("--left", metavar="MODEL", help="print only what this denoiser (or cbm3d) leaves of the noise, by scale")
    parser.add_argument("--detail", action="store_true", help="print only the clean images' detail, by scale")
    parser.add_argument("--reads", action="store_true", help="print only what the level model's estimator reads")
    args = parser.parse_args()
    if args.detail:
        detail_by_scale()
        return
    if args.reads:
        level_model = load(args.level_model)
        estimator_reads(level_model)
        estimator_by_family(level_model)
        return
    if args.left:
        left_by_scale(*denoiser_named(args.left))
        return
    print(f"{'image / noise':46}  std    lag1   lag2   R-G    G-B")
    for noisy_path, clean_path in real_pairs(str(DATA))[::6]:
        noisy, clean = (image[None] for image in load_images([noisy_path, clean_path]))
        print(f"{noisy_path.name[:46]:46}  {noise_stats(noisy - clean)}")
        for spec in SPECS:
            synthetic = parse_noise(spec).apply(clean, torch.Generator().manual_seed(0))
            print(f"{'  ' + spec:46}  {noise_stats(synthetic - clean)}")
    level_model = load(args.level_model)
    estimator = f"{level_model.name} estimator"
    ratios: dict[str, list[float]] = {"estimate_sigma": [], estimator: []}
    for noisy_path, clean_path in real_pairs(str(DATA)):
        noisy, clean = load_images([noisy_path, clean_path])
        true_sigma = float((noisy - clean).std())
        ratios["estimate_sigma"].append(estimate_sigma(noisy) / true_sigma)
        ratios[estimator].append(estimate_noise_level(level_model, noisy) / 255 / true_sigma)
    for name, values in ratios.items():
        print(
            f"{name} / std(noisy - clean) over {len(values)} pairs: mean {sum(values) / len(values):.2f}, "
            f"min {min(values):.2f}, max {max(values):.2f}"
        )
    label_inflation()
    estimator_by_family(level_model)
    noise_by_scale()
    noise_by_brightness()


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def estimator_reads(level_model: Model) -> None:
    """What the level model's estimator reads: over std(noisy - clean) on every real pair, as it
    is and shrunk to half size (2 x 2 means, where coarse camera noise looks finer), and on the
    first 8 Kodak24 images with white noise of each sigma, saved as 8-bit files: where it stops
    telling noise from the image's own texture and grain."""
    full, half = [], []
    for noisy_path, clean_path in real_pairs(str(DATA)):
        noisy, clean = (image[None] for image in load_images([noisy_path, clean_path]))
        full.append(estimate_noise_level(level_model, noisy) / 255 / float((noisy - clean).std()))
        small_noisy, small_clean = F.avg_pool2d(noisy, 2), F.avg_pool2d(clean, 2)
        half.append(estimate_noise_level(level_model, small_noisy) / 255 / float((small_noisy - small_clean).std()))
    print(f"{level_model.name} estimator / std(noisy - clean) over {len(full)} real pairs (geometric mean, min, max)")
    for size, ratios in (("full size", full), ("half size", half)):
        print(f"  {size}: {_geometric_mean(ratios):.2f}  ({min(ratios):.2f}-{max(ratios):.2f})")
    kodak = load_images(image_files(KODAK)[:8])
    print("its reading (0-255) on the first 8 Kodak24 images with white noise of sigma, as 8-bit files")
    for sigma in (0, 1, 2, 3, 5, 8, 12):
        reads = white_noise_reads(level_model, kodak, sigma, as_file=to_8_bits)
        print(f"  sigma {sigma:2d}: " + " ".join(f"{r:5.2f}" for r in reads))


def training_crops(count: int) -> torch.Tensor:
    """A 64 x 64 crop of each of the first `count` training photos: count x 3 x 64 x 64."""
    return torch.stack([image[:, 100:164, 100:164] for image in load_images(image_files(TRAIN)[:count])])


def label_inflation() -> None:
    """RMS(noisy - clean) / RMS(noisy - reference) of photo noise on 40 training crops, by ISO and quality."""
    crops = training_crops(40)
    print("photo noise on 40 64 x 64 CBSD400 crops: level against the clean crop / against the reference")
    for shot in (1e-4, 1e-3, 4e-3):
        cells = []
        for quality in (60, 80, 95, 100):
            noisy, _, reference = noisy_pair_with_reference(PhotoNoise(shot, quality), crops, torch.Generator().manual_seed(0))
            against_clean = (noisy - crops).square().mean(dim=(1, 2, 3)).sqrt()
            against_reference = (noisy - reference).square().mean(dim=(1, 2, 3)).sqrt()
            cells.append(f"q{quality} {float((against_clean / against_reference).mean()):.2f}")
        print(f"  shot {shot:g}: " + "  ".join(cells))


FAMILY_SPECS = (
    "gaussian:3",
    "gaussian:6",
    "gaussian:12",
    "photo:0.0005,100",
    "photo:0.002,100",
    "photo:0.008,100",
    "photo:0.002,95",
    "photo:0.002,80",
    "photo:0.002,60",
    "photo:0.008,60",
    "photo:0.002,95,0,0.3-0.8",
    "photo:0.008,60,0,0.3-0.8",
)


def estimator_by_family(level_model: Model) -> None:
    """What the level model's estimator reads / the level it is trained to read (RMS(noisy -
    reference)), on 64 64 x 64 crops of the training photos per noise: whether it reads every
    family of its training mixture, or only the white noise whose pixel-to-pixel differences show it."""
    crops = training_crops(64)
    print(f"{level_model.name} estimator / RMS(noisy - reference) on 64 64 x 64 CBSD400 crops (median, 10th and 90th percentile)")
    for spec in FAMILY_SPECS:
        noisy, _, reference = noisy_pair_with_reference(parse_noise(spec), crops, torch.Generator().manual_seed(0))
        level = (noisy - reference).square().mean(dim=(1, 2, 3)).sqrt()
        with torch.no_grad():
            read = torch.stack([torch.tensor(estimate_noise_level(level_model, image) / 255) for image in noisy])
        ratio = read / level.clamp_min(1e-6)
        print(
            f"  {spec:24} level {float(level.median()) * 255:5.2f}: read {float(ratio.median()):.2f} "
            f"({float(ratio.quantile(0.1)):.2f}-{float(ratio.quantile(0.9)):.2f})"
        )


def _haar_quadrants(image: torch.Tensor, levels: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """The four pixels of each 2 x 2 block (top-left, top-right, bottom-left, bottom-right) at
    scales 1, 2, 4, ... pixels: each level works on the previous one's block means."""
    y = image
    for _ in range(levels):
        y = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
        a, b, c, d = y[..., 0::2, 0::2], y[..., 0::2, 1::2], y[..., 1::2, 0::2], y[..., 1::2, 1::2]
        yield a, b, c, d
        y = (a + b + c + d) / 4


def _scale_energy(residual: torch.Tensor) -> list[float]:
    """The std of a 1 x 3 x H x W residual's diagonal Haar detail at scales 1, 2, 4, 8 and 16
    pixels, then the std of what a Gaussian blur of 4 pixels keeps (the blotches no 11-pixel
    window sees); each channel's mean removed first."""
    r = residual - residual.mean(dim=(-1, -2), keepdim=True)
    profile = [float(((a - b - c + d) / 2).std()) for a, b, c, d in _haar_quadrants(r, 5)]
    low = gaussian_blur2d(r, (25, 25), (4.0, 4.0), border_type="reflect")
    return profile + [float(low.std())]


def _scale_profile(residual: torch.Tensor) -> list[float]:
    """:func:`_scale_energy` over the residual's std (white noise: 1, 1/2, 1/4, ...)."""
    total = float((residual - residual.mean(dim=(-1, -2), keepdim=True)).std())
    return [energy / total for energy in _scale_energy(residual)]


def _profiles_beside_real(
    profile: Callable[[torch.Tensor, torch.Tensor], list[float]], specs: Sequence[str], every: int, aligned: bool
) -> dict[str, torch.Tensor]:
    """A profile of the noise (a function of the 1 x 3 x H x W residual and the clean image) in
    every `every`-th real pair (against the reference aligned to the shot if `aligned`) and in
    each noise of `specs` drawn on the same clean images; the mean over the pairs of each, a
    nan of a pair left out."""
    rows: dict[str, list[list[float]]] = {"real": []} | {spec: [] for spec in specs}
    for index, (noisy_path, clean_path) in enumerate(real_pairs(str(DATA))[::every]):
        noisy, clean = (image[None] for image in load_images([noisy_path, clean_path]))
        reference = aligned_reference(noisy, clean) if aligned else clean
        rows["real"].append(profile(noisy - reference, clean))
        for spec in specs:
            synthetic, _, reference = noisy_pair_with_reference(parse_noise(spec), clean, torch.Generator().manual_seed(index))
            rows[spec].append(profile(synthetic - reference, clean))
    return {name: torch.nanmean(torch.tensor(profiles), dim=0) for name, profiles in rows.items()}


def noise_by_scale() -> None:
    """Where the noise's energy lies, scale by scale, in the real pairs and in photo noise on
    the same clean images (every 3rd pair, mean of the profiles)."""
    print("noise energy by scale, over its std (every 3rd real pair; photo noise on the same clean images)")
    print(f"  {'noise':26}  1 px   2 px   4 px   8 px  16 px  blur 4")
    specs = ("photo:0.003,95", "photo:0.003,95,0.2", "photo:0.003,95,0,0.3-0.8", "gaussian:5")
    for name, mean in _profiles_beside_real(lambda residual, _: _scale_profile(residual), specs, 3, aligned=False).items():
        print(f"  {name:26}" + "".join(f" {float(v):5.3f} " for v in mean))


def _detail_profile(image: torch.Tensor) -> list[float]:
    """Mean |horizontal Haar detail| of a C x H x W image at scales 1, 2, 4 and 8 pixels, on 0-255."""
    return [float(((a - b + c - d) / 2).abs().mean()) * 255 for a, b, c, d in _haar_quadrants(image, 4)]


def detail_by_scale() -> None:
    """How much detail the clean images hold, scale by scale: the real pairs' clean crops (from
    cameras' large photos) against the training photos, as they are and magnified by 2 and 4
    (bicubic, what `restore train --zoom` does to a crop), and Kodak24."""
    print("mean |horizontal Haar detail| of the clean images (0-255)")
    print(f"  {'images':26}  1 px   2 px   4 px   8 px")
    train = load_images(image_files(TRAIN)[:60])
    sets = {
        "real pairs, clean": load_images([clean for _, clean in real_pairs(str(DATA))]),
        "CBSD400 (first 60)": train,
        "CBSD400 magnified x2": [F.interpolate(x[None], scale_factor=2, mode="bicubic")[0].clamp(0, 1) for x in train],
        "CBSD400 magnified x4": [F.interpolate(x[None], scale_factor=4, mode="bicubic")[0].clamp(0, 1) for x in train],
        "Kodak24": load_images(image_files(KODAK)),
    }
    for name, images in sets.items():
        mean = torch.tensor([_detail_profile(image) for image in images]).mean(dim=0)
        print(f"  {name:26}" + "".join(f" {float(v):5.2f} " for v in mean))


LEFT_SPEC = "photo:0.0007,95,0,0.3-0.8,2.6"  # about the real pairs' level (2 px: 1.5 against 1.85)


def _scale_energy_ycbcr(residual: torch.Tensor) -> list[list[float]]:
    """:func:`_scale_energy` of a 1 x 3 x H x W residual's Y, Cb and Cr (the camera model's
    `TO_YCBCR`: cameras treat luma and colour noise apart, and so may a denoiser), each on its own."""
    ycbcr = torch.einsum("ij,njhw->nihw", TO_YCBCR, residual)
    return [_scale_energy(ycbcr[:, c : c + 1]) for c in range(3)]


Denoise = Callable[[torch.Tensor, float], torch.Tensor]
"""(1 x 3 x H x W noisy image, std(noisy - clean)) -> the denoised image."""


def denoiser_named(name: str) -> tuple[str, Denoise]:
    """A model's denoising run, or with "cbm3d" CBM3D given the true std (bm3d, the bench extra)."""
    if name == "cbm3d":
        return "CBM3D (true sigma)", cbm3d(estimated=False)
    model = load(name)
    return model.name, lambda noisy, sigma: denoise(noisy[0], model, precision="fp32")[None]


def left_by_scale(name: str, run: Denoise) -> None:
    """How much of the noise's energy a denoiser leaves, scale by scale and in luma and colour
    apart (std of the output's residual over the input's, after _scale_energy), on every 4th
    real pair against the reference aligned to the shot, and on photo noise of about the same
    level drawn on the same clean images. The residual counts what the denoiser blurs of the
    image as well."""
    rows: dict[str, list[list[list[float]]]] = {key: [] for key in ("real in", "real left", "photo in", "photo left")}
    for index, (noisy_path, clean_path) in enumerate(real_pairs(str(DATA))[::4]):
        noisy, clean = (image[None] for image in load_images([noisy_path, clean_path]))
        synthetic, _, synthetic_reference = noisy_pair_with_reference(
            parse_noise(LEFT_SPEC), clean, torch.Generator().manual_seed(index)
        )
        shots = (("real", noisy, aligned_reference(noisy, clean)), ("photo", synthetic, synthetic_reference))
        for kind, shot, reference in shots:
            output = run(shot, float((shot - clean).std()))
            rows[f"{kind} in"].append(_scale_energy_ycbcr(shot - reference))
            rows[f"{kind} left"].append(_scale_energy_ycbcr(output - reference))
    means = {key: torch.tensor(values).mean(dim=0) for key, values in rows.items()}  # key -> 3 channels x 6 scales
    print(f"what {name} leaves of the noise, by scale, in luma (Y) and colour (Cb, Cr); every 4th real pair,")
    print(f"aligned reference; {LEFT_SPEC} on the same clean images")
    print(f"  {'std on 0-255 / share left':26}  1 px   2 px   4 px   8 px  16 px  blur 4")
    for key, mean in means.items():
        for channel, label in enumerate(("Y", "Cb", "Cr")):
            print(f"  {key + ' ' + label:26}" + "".join(f" {float(v) * 255:5.3f} " for v in mean[channel]))
    for kind in ("real", "photo"):
        share = means[f"{kind} left"] / means[f"{kind} in"]
        for channel, label in enumerate(("Y", "Cb", "Cr")):
            print(f"  {kind + ' left / in ' + label:26}" + "".join(f" {float(v):5.3f} " for v in share[channel]))


BRIGHTNESS_BINS = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.01)


def _brightness_profile(residual: torch.Tensor, clean: torch.Tensor) -> list[float]:
    """The std of a 1 x 3 x H x W residual over the pixels whose clean luma falls in each of
    BRIGHTNESS_BINS, over its std over the whole image (nan for a bin of under 500 pixels)."""
    luma = (clean[0] * torch.tensor(GRAY_WEIGHTS).view(3, 1, 1)).sum(dim=0)
    total, profile = float(residual.std()), []
    for low, high in zip(BRIGHTNESS_BINS[:-1], BRIGHTNESS_BINS[1:], strict=True):
        inside = (luma >= low) & (luma < high)
        profile.append(float(residual[0][:, inside].std()) / total if int(inside.sum()) >= 500 else float("nan"))
    return profile


def noise_by_brightness() -> None:
    """Where the noise is strongest, by the clean image's brightness, in the real pairs (against
    the reference aligned to the shot, so that edges do not count as noise) and in photo noise on
    the same clean images (every 2nd pair, mean of the profiles over the pairs that have the bin)."""
    print("noise std by clean luma, over its std (every 2nd real pair, aligned reference; photo noise on the same clean images)")
    print(f"  {'noise':26}" + "".join(f" {low:5.2f}" for low in BRIGHTNESS_BINS[:-1]))
    specs = ("photo:0.003,95", "photo:0.003,95,0,0.3-0.8", "photo:0.003,95,0,0.3-0.8,2.6", "photo:0.003,95,0,0.3-0.8,3")
    specs += ("gaussian:5",)
    for name, mean in _profiles_beside_real(_brightness_profile, specs, 2, aligned=True).items():
        print(f"  {name:26}" + "".join(f" {float(v):5.2f}" for v in mean))


if __name__ == "__main__":
    main()
