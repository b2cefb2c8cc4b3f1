"""Denoising benchmark: the bundled denoisers beside the noisy input, BM3D / CBM3D run here with
the true sigma, and published figures, by the data README's protocol.
Writes bench/results/denoise.md from a score cache, bench/results/denoise-scores.json.

    python bench/denoise_benchmark.py                          # every row and method (CBM3D takes hours)
    python bench/denoise_benchmark.py --methods noisy restore  # the fast columns only
    python bench/denoise_benchmark.py --sets Set12 --noises gaussian:25 --methods bm3d
    python bench/denoise_benchmark.py --quick                  # 2 Set12 images at sigma 25, cache untouched

Each cell is cached under its set, noise, method and model (registered sha256), so the slow CBM3D
cells can be filled over several runs and a retrained model is scored again; the table is
rebuilt from the cache every run. `restore eval MODEL FOLDER --noise SPEC` reproduces any
`restore` cell (same noise draws: seed = image index).

BM3D needs the bench extra: `pip install -e '.[bench]'` (the `bm3d` package).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import GRAY_DENOISER, InferenceOptions, load, run_model  # noqa: E402
from restore.device import cpu_name, resolve_precision  # noqa: E402
from restore.io.datasets import image_files  # noqa: E402
from restore.io.images import read_image  # noqa: E402
from restore.metrics import psnr, ssim  # noqa: E402
from restore.noise import GaussianNoise, PoissonNoise, parse_noise  # noqa: E402
from restore.zoo import bundled_models  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLOUR_SETS = ("Kodak24", "CBSD68")
GRAY_SETS = ("Set12", "BSD68")
COLOUR_NOISES = ("gaussian:15", "gaussian:25", "gaussian:50", "poisson:30")
GRAY_NOISES = ("gaussian:15", "gaussian:25", "gaussian:50")
METHODS = ("noisy", "restore", "bm3d")
SPEED_KEY = "speed"  # the cache's entry for the last speed measurement (runs with bm3d)

# Published PSNR (dB) by this protocol. DnCNN-S (Zhang et al. 2017, table 2/3), CDnCNN and
# Noise2Noise as quoted in issue #9; BM3D / CBM3D measured by issue #9's author with bm3d 4.0.3.
PUBLISHED: dict[tuple[str, str], str] = {
    ("Kodak24", "gaussian:25"): "CDnCNN 32.14; Noise2Noise (noisy targets, 50k images) 32.48; CBM3D here 31.89",
    ("Kodak24", "poisson:30"): "Noise2Noise 31.50",
    ("CBSD68", "gaussian:25"): "CDnCNN 31.24; CBM3D here 30.80",
    ("Set12", "gaussian:15"): "DnCNN-S 32.86",
    ("Set12", "gaussian:25"): "DnCNN-S 30.44; BM3D here 30.01",
    ("Set12", "gaussian:50"): "DnCNN-S 27.18",
    ("BSD68", "gaussian:15"): "DnCNN-S 31.73",
    ("BSD68", "gaussian:25"): "DnCNN-S 29.23; BM3D here 28.62",
    ("BSD68", "gaussian:50"): "DnCNN-S 26.23",
}

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (noisy, clean) -> restored, 1 x C x H x W in [0, 1]


GAUSSIAN_MODEL = "n2n-gaussian-level"  # colour Gaussian rows: told the level its estimator reads


def model_for(set_name: str, noise: str) -> str:
    """The bundled model for this row: the gray default for gray sets, the low-light model for
    Poisson noise, the level-conditioned Gaussian model for colour Gaussian noise (each falling
    back to the blind n2n-gaussian where it is not bundled)."""
    bundled = bundled_models()
    if set_name in GRAY_SETS:
        chosen = GRAY_DENOISER
    elif noise.startswith("poisson"):
        chosen = "n2n-lowlight"
    else:
        chosen = GAUSSIAN_MODEL
    return chosen if chosen in bundled else "n2n-gaussian"


def model_ident(name: str) -> str:
    """A bundled model's cache key (restore.zoo.BundledModel.ident): a retrained file gets new cells."""
    return bundled_models()[name].ident


def network_denoiser(name_or_path: str, precision: str = "fp32") -> Denoiser:
    model = load(name_or_path)
    return lambda noisy, clean: run_model(model, noisy, InferenceOptions(device="cpu", precision=precision))


def bm3d_sigma(noise: str, clean: torch.Tensor) -> float:
    """The true noise sigma on [0, 1]: Gaussian sigma, or the image's mean Poisson std sqrt(E[clean] / lambda)."""
    model = parse_noise(noise)
    if isinstance(model, GaussianNoise) and isinstance(model.sigma, float | int):
        return model.sigma / 255
    if isinstance(model, PoissonNoise) and isinstance(model.photons, float | int):
        return math.sqrt(clean.mean().item() / model.photons)
    raise ValueError(f"no single true sigma for noise {noise}")


def bm3d_denoiser(noise: str) -> Denoiser:
    import bm3d

    def run(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        sigma = bm3d_sigma(noise, clean)
        z = noisy[0].permute(1, 2, 0).numpy().astype(np.float64)
        out = bm3d.bm3d_rgb(z, sigma) if z.shape[-1] == 3 else bm3d.bm3d(z[..., 0], sigma)[..., None]
        return torch.from_numpy(np.asarray(out, np.float32).reshape(z.shape)).permute(2, 0, 1)[None]

    return run


def score(folder: Path, noise: str, denoise: Denoiser | None, limit: int) -> dict[str, float]:
    """Mean PSNR / SSIM over the folder (noisy = noise with seed = image index; output clipped, rounded)."""
    files = image_files(folder)[: limit or None]
    noise_model = parse_noise(noise)
    psnrs, ssims = [], []
    for index, path in enumerate(files):
        clean = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]
        noisy = noise_model.apply(clean, torch.Generator().manual_seed(index))
        if denoise is None:
            result = noisy * 255  # the noisy input as it is: not clipped or rounded
        else:
            result = (denoise(noisy, clean) * 255).clamp(0, 255).round()
        psnrs.append(psnr(result, clean * 255))
        ssims.append(ssim(result, clean * 255))
        print(f"  {path.name}: {psnrs[-1]:.2f} dB", flush=True)
    return {"psnr": statistics.mean(psnrs), "ssim": statistics.mean(ssims), "images": len(files)}


def real_noise_row(data: Path, methods: list[str]) -> dict[str, dict[str, float]]:
    """The real camera pair: PSNR / SSIM against its clean (mean of many shots) image."""
    folder = data / "realnoise"
    clean = torch.from_numpy(read_image(folder / "clean.jpg").pixels).permute(2, 0, 1)[None]
    noisy = torch.from_numpy(read_image(folder / "noisy.jpg").pixels).permute(2, 0, 1)[None]
    sigma = (noisy - clean).std().item()  # an oracle sigma: BM3D gets the true level it needs
    outputs = {"noisy": noisy}
    if "restore" in methods:
        outputs["restore"] = run_model(load("n2n-gaussian"), noisy, InferenceOptions(device="cpu", precision="fp32"))
    if "bm3d" in methods:
        import bm3d

        z = noisy[0].permute(1, 2, 0).numpy().astype(np.float64)
        outputs["bm3d"] = torch.from_numpy(np.asarray(bm3d.bm3d_rgb(z, sigma), np.float32)).permute(2, 0, 1)[None]
    scores = {}
    for method, image in outputs.items():
        result = (image * 255).clamp(0, 255).round()
        scores[method] = {"psnr": psnr(result, clean * 255), "ssim": ssim(result, clean * 255), "sigma": sigma * 255}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[*COLOUR_SETS, *GRAY_SETS, "realnoise"])
    parser.add_argument("--noises", nargs="+", default=None, help="default: every noise of each set's rows")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--limit", type=int, default=0, help="at most N images per set (not cached)")
    parser.add_argument("--quick", action="store_true", help="Set12, sigma 25, 2 images, no BM3D; cache untouched")
    args = parser.parse_args()
    if args.quick:
        args.sets, args.noises, args.methods, args.limit = ["Set12"], ["gaussian:25"], ["noisy", "restore"], 2
    cache_file = RESULTS / "denoise-scores.json"
    cache: dict[str, dict[str, float | str]] = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    use_cache = args.limit == 0
    results = dict(cache) if use_cache else {}

    def save_cache() -> None:
        """Keep every finished cell: a long run that is stopped loses only the cell in progress."""
        if use_cache:
            cache_file.write_text(json.dumps(results, indent=1, sort_keys=True))

    for set_name in args.sets:
        if set_name == "realnoise":
            for method, values in real_noise_row(args.data, args.methods).items():
                key = f"realnoise|camera|{method}|{model_ident('n2n-gaussian') if method == 'restore' else ''}"
                results[key] = values
            save_cache()
            continue
        noises = GRAY_NOISES if set_name in GRAY_SETS else COLOUR_NOISES
        for noise in [n for n in noises if args.noises is None or n in args.noises]:
            jobs: list[tuple[str, str, Callable[[], Denoiser | None]]] = []
            if "noisy" in args.methods:
                jobs.append(("noisy", "", lambda: None))
            if "restore" in args.methods:
                name = model_for(set_name, noise)
                ident = model_ident(name)
                jobs.append(("restore", ident, lambda name=name: network_denoiser(name)))
            if "bm3d" in args.methods:
                jobs.append(("bm3d", "bm3d 4.0.3", lambda noise=noise: bm3d_denoiser(noise)))
            for method, ident, make in jobs:
                key = f"{set_name}|{noise}|{method}|{ident}"
                if use_cache and key in results:
                    continue
                print(f"{set_name} {noise} {method} {ident}", flush=True)
                results[key] = score(args.data / "test" / set_name, noise, make(), args.limit)
                save_cache()
    if "bm3d" in args.methods and not args.quick:
        results[SPEED_KEY] = measure_speed(args.data)
        save_cache()
    write_table(results, RESULTS / "denoise.md" if use_cache else None, results.get(SPEED_KEY, {}))


def latest(results: dict[str, dict[str, float | str]], set_name: str, noise: str, method: str) -> tuple[str, dict] | None:
    """The cached cell for a row and method (for restore: the current bundled model's file)."""
    for key, values in results.items():
        if key == SPEED_KEY:
            continue
        s, n, m, ident = key.split("|")
        if (s, n, m) != (set_name, noise, method):
            continue
        if m == "restore" and ident != model_ident(model_for(set_name, noise)):
            continue
        return ident, values
    return None


def measure_speed(data: Path) -> dict[str, float | str]:
    """Seconds per megapixel of n2n-gaussian and CBM3D on the first Kodak24 image at sigma 25, same run."""
    path = image_files(data / "test" / "Kodak24")[0]
    clean = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]
    noisy = parse_noise("gaussian:25").apply(clean, torch.Generator().manual_seed(0))
    megapixels = clean.shape[-1] * clean.shape[-2] / 1e6
    threads = torch.get_num_threads()
    speed: dict[str, float | str] = {
        "image": f"Kodak24 {path.name} ({clean.shape[-1]} x {clean.shape[-2]})",
        "setup": f"{cpu_name() or platform.machine()}, torch {torch.__version__} on {threads} thread{'s' * (threads > 1)}",
        "auto_precision": resolve_precision_name(),
    }
    methods = {
        "restore": network_denoiser("n2n-gaussian"),
        "restore_auto": network_denoiser("n2n-gaussian", "auto"),
        "bm3d": bm3d_denoiser("gaussian:25"),
    }
    for method, denoise in methods.items():
        times = []
        for i in range(4):
            start = time.perf_counter()
            denoise(noisy, clean)
            if i > 0:
                times.append(time.perf_counter() - start)
        speed[method] = statistics.median(times) / megapixels
    return speed


def resolve_precision_name() -> str:
    """The precision `--precision auto` picks for n2n-gaussian on this CPU."""
    model = load("n2n-gaussian")
    dtype = resolve_precision(torch.device("cpu"), "auto", model.network, f"{model.info.architecture}:{model.info.config}")
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def write_table(results: dict[str, dict[str, float | str]], out: Path | None, speed: dict[str, float | str]) -> None:
    """Print the table; write it to `out` too (not for partial, uncached runs)."""
    lines = [
        "# Denoising benchmark",
        "",
        "Command: `python bench/denoise_benchmark.py` (cells cached in bench/results/denoise-scores.json; see the script's",
        "docstring for filling a subset). Any `restore` cell: `restore eval MODEL ../shared/data/test/SET --noise SPEC`.",
        "",
        "Protocol (../shared/data/README.md): clean in [0, 255]; noisy = noise drawn with seed = image index, not",
        "clipped, not quantised; outputs clipped to [0, 255] and rounded; PSNR over all pixels and channels (RGB for",
        "colour sets, one channel for gray sets), mean over images; SSIM likewise. `restore` is the bundled model",
        "for the row (n2n-gaussian-level for colour Gaussian, n2n-lowlight for Poisson, n2n-gray-level for gray;",
        "the level models are told what their own estimator reads). BM3D / CBM3D (`bm3d` 4.0.3) gets the true sigma;",
        "for Poisson noise, the image's mean noise std sqrt(mean(clean) / lambda).",
        "",
        "| set | noise | noisy | restore (model) | BM3D / CBM3D | published |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(s, n) for s in COLOUR_SETS for n in COLOUR_NOISES] + [(s, n) for s in GRAY_SETS for n in GRAY_NOISES]
    for set_name, noise in rows:
        cells = []
        for method in ("noisy", "restore", "bm3d"):
            found = latest(results, set_name, noise, method)
            if found is None:
                cells.append("")
                continue
            ident, values = found
            text = f"{values['psnr']:.2f} / {values['ssim']:.4f}"
            if method == "restore":
                text += f" ({ident.split('@')[0]})"
            cells.append(text)
        if any(cells):
            lines.append(f"| {set_name} | {noise} | " + " | ".join(cells) + f" | {PUBLISHED.get((set_name, noise), '')} |")
    real = {m: latest(results, "realnoise", "camera", m) for m in ("noisy", "restore", "bm3d")}
    if any(real.values()):
        lines += [
            "",
            "Real camera noise (`../shared/data/realnoise`, PolyU Canon 5D Mark II ISO 6400 JPEG crop, 512 x 512;",
            "reference = mean of many shots; CBM3D gets the oracle sigma std(noisy - clean)):",
            "",
            "| | PSNR (dB) | SSIM |",
            "|---|---|---|",
        ]
        for method, found in real.items():
            if found is not None:
                label = {"noisy": "noisy input", "restore": "restore (n2n-gaussian)", "bm3d": "CBM3D"}[method]
                lines.append(f"| {label} | {found[1]['psnr']:.2f} | {found[1]['ssim']:.4f} |")
    lines += [
        "",
        "Photos as users have them, with restore's default photo model (n2n-photo-level): the 62 real camera pairs",
        "of `../shared/data/realnoise/val` beside CBM3D given each pair's sigma and a sigma read off the noisy image,",
        "Kodak24 with sigma 25 and 50 saved as 8-bit files beside CBM3D on the same files, and clean and slightly",
        "noisy photos that must come back unchanged: [photo.md](photo.md), from `python bench/photo_benchmark.py`.",
    ]
    if speed:
        lines += [
            "",
            f"Speed, measured in one run (the last with `--methods bm3d`; {speed['setup']}):",
            f"{speed['image']}, Gaussian sigma 25, the denoiser call alone (no file I/O), median of 3 after a warm-up call.",
            "",
            "| method | seconds per megapixel |",
            "|---|---|",
            f"| restore (n2n-gaussian, fp32) | {speed['restore']:.2f} |",
            f"| restore (n2n-gaussian, `--precision auto`: {speed['auto_precision']}) | {speed['restore_auto']:.2f} |",
            f"| CBM3D | {speed['bm3d']:.2f} |",
        ]
    if out is not None:
        out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
