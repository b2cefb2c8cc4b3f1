"""Before / after pictures for the README: one strip per task, written to examples/pictures/.

    python examples/make_pictures.py

Each strip is input | restore | reference, 256 x 256 crops, PSNR over the crop in the labels:
- photo.png: Kodak24 kodim19 with Gaussian noise sigma 25 as an 8-bit file, the default denoiser.
- upscale.png: Kodak24 kodim08 downscaled x2 (MATLAB bicubic), bicubic back up vs edsr-x2.
- render.png: the Mitsuba Cornell box at 4 spp, n2n-mc-aux (with albedo and normal), against
  the 13,312 spp reference, tone mapped as the data README's protocol does.
- camera.png: a real camera pair of ../shared/data/realnoise/val (PolyU, non-commercial terms:
  made here, not committed), the default denoiser.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import restore  # noqa: E402
from restore.evaluation import read_batch  # noqa: E402
from restore.hdr import tone_map  # noqa: E402
from restore.io.datasets import real_pairs  # noqa: E402
from restore.io.images import Image, write_image  # noqa: E402
from restore.metrics import psnr  # noqa: E402
from restore.noise import GaussianNoise  # noqa: E402
from restore.pictures import comparison_strip  # noqa: E402
from restore.resize import (  # noqa: E402
    center_crop,
    downscale,
    imresize,  # noqa: E402
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "pictures"
CROP = 256


def to_8_bits(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def save(name: str, labels: tuple[str, str], shown: torch.Tensor, restored: torch.Tensor, reference: torch.Tensor) -> None:
    """Write the strip, the crops' PSNR against the reference in the labels."""
    scores = [psnr(x * 255, reference * 255) for x in (shown, restored)]
    panels = [
        (f"{labels[0]} {scores[0]:.2f} dB", shown),
        (f"{labels[1]} {scores[1]:.2f} dB", restored),
        ("reference", reference),
    ]
    strip = comparison_strip(panels, CROP)
    write_image(OUT / name, Image(strip.astype(np.float32) / 255, None, "u8", "srgb"), overwrite=True)
    print(f"{OUT / name}: {panels[0][0]}, {panels[1][0]}")


def crop(image: torch.Tensor) -> torch.Tensor:
    return center_crop(image, CROP)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    run = restore.InferenceOptions(device="cpu", precision="fp32")

    clean = crop(read_batch(DATA / "test" / "Kodak24" / "kodim19.png"))
    noisy = to_8_bits(GaussianNoise(25).apply(clean, torch.Generator().manual_seed(0)))
    photo_model = restore.load(restore.api.colour_denoiser())
    save(
        "photo.png",
        ("noisy, sigma 25", photo_model.name),
        noisy,
        to_8_bits(restore.api.run_model(photo_model, noisy, run)),
        clean,
    )

    hr = crop(read_batch(DATA / "test" / "Kodak24" / "kodim08.png"))
    lr = downscale(hr, 2)
    bicubic = to_8_bits(imresize(lr, scale=2))
    upscaler = restore.api.upscaler_for(2)
    save("upscale.png", ("bicubic x2", upscaler.name), bicubic, to_8_bits(restore.api.run_model(upscaler, lr, run)), hr)

    box = DATA / "mc" / "cbox"
    noisy_render = read_batch(box / "noisy_4spp_a.exr")
    aux = torch.cat([read_batch(box / "albedo.exr"), read_batch(box / "normal.exr")], dim=1)
    render_model = restore.load("n2n-mc-aux")
    denoised = restore.api.run_model(render_model, noisy_render, run, aux=aux)
    reference = read_batch(box / "reference.exr")
    save("render.png", ("4 spp", render_model.name), *(to_8_bits(tone_map(x)) for x in (noisy_render, denoised, reference)))

    noisy_path, clean_path = real_pairs(str(DATA / "realnoise" / "val"))[0]
    camera_noisy, camera_clean = crop(read_batch(noisy_path)), crop(read_batch(clean_path))
    restored = to_8_bits(restore.api.run_model(photo_model, camera_noisy, run))
    save("camera.png", ("camera JPEG", photo_model.name), camera_noisy, restored, camera_clean)


if __name__ == "__main__":
    main()
