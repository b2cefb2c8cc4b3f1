"""Make the two small images `make demo` restores: a noisy one and a low-resolution one.

The scene is drawn here (gradients, discs, stripes of rising frequency, text), so the project
commits no data-set image. Noise: Gaussian sigma 25/255 with seed 0, clipped and stored as an
8-bit PNG (what a user's file holds). Low resolution: MATLAB-style bicubic x1/2.

    python examples/make_demo_images.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from restore.io.images import Image, write_image
from restore.resize import imresize

HERE = Path(__file__).resolve().parent


def draw_scene(width: int = 384, height: int = 256) -> np.ndarray:
    """An RGB test scene in [0, 1]: smooth areas, hard edges and fine detail."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width]).reshape(2, 1, 1)
    sky = np.stack([0.35 + 0.4 * y, 0.55 + 0.3 * y, 0.85 - 0.2 * y], axis=-1)
    canvas = PILImage.fromarray((sky * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((30, 40, 150, 160), fill=(230, 160, 40))
    draw.ellipse((60, 70, 100, 110), fill=(250, 220, 120))
    draw.rectangle((0, 190, width, height), fill=(70, 120, 60))
    for i in range(24):  # stripes whose spacing shrinks to the pixel level
        x0 = 190 + int(i * (6 - i * 0.2))
        draw.line((x0, 60, x0, 170), fill=(40, 40, 60), width=1 + (i < 8))
    draw.text((200, 200), "restore 0.1", fill=(250, 250, 250))
    draw.text((20, 215), "Noise2Noise + EDSR", fill=(20, 20, 20))
    scene = np.asarray(canvas, dtype=np.float32) / 255
    # Textured ground: smoothed random field (a stand-in for grass or gravel).
    rng = np.random.default_rng(1)
    field = torch.from_numpy(rng.normal(size=(1, 1, height, width)).astype(np.float32))
    field = torch.nn.functional.avg_pool2d(field, 5, stride=1, padding=2)[0, 0].numpy()
    ground = (y >= 190 / height)[..., None] * (0.25 * field[..., None])
    # A zone plate: rings whose frequency rises outwards, the classic resampling test.
    zy, zx = np.mgrid[-40:40, -40:40].astype(np.float32)
    plate = 0.5 + 0.5 * np.cos(0.012 * (zx**2 + zy**2))
    scene = scene + ground
    scene[95:175, 290:370] = plate[..., None]
    return np.clip(scene, 0, 1).astype(np.float32)


def main() -> None:
    clean = draw_scene()
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    write_image(HERE / "demo-noisy.png", Image(noisy, None, "u8", "srgb"), overwrite=True)
    hr = torch.from_numpy(clean * 255).permute(2, 0, 1)[None]
    lr = imresize(hr, scale=0.5).round().clamp(0, 255)[0].permute(1, 2, 0).numpy() / 255
    write_image(HERE / "demo-small.png", Image(lr.astype(np.float32), None, "u8", "srgb"), overwrite=True)
    write_image(HERE / "demo-clean.png", Image(clean, None, "u8", "srgb"), overwrite=True)


if __name__ == "__main__":
    main()
