"""Before / after pictures: labelled crops side by side, for `restore eval --save` and the README."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from restore.resize import center_crop

GAP = 6  # pixels between panels
LABEL_HEIGHT = 16


def comparison_strip(panels: Sequence[tuple[str, torch.Tensor]], crop: int = 256) -> np.ndarray:
    """Labelled central crops of same-size images (C x H x W or 1 x C x H x W, values in [0, 1])
    side by side on white, as an H x W x 3 uint8 array; each label is drawn above its crop."""
    crops = [center_crop(image.reshape(-1, *image.shape[-2:]), crop).expand(3, -1, -1) for _, image in panels]
    height, width = crops[0].shape[-2:]
    canvas = PILImage.new("RGB", (len(crops) * width + (len(crops) - 1) * GAP, height + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    for index, ((label, _), pixels) in enumerate(zip(panels, crops, strict=True)):
        left = index * (width + GAP)
        samples = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).contiguous().numpy()
        canvas.paste(PILImage.fromarray(samples), (left, LABEL_HEIGHT))
        draw.text((left + 2, 2), label, fill="black")
    return np.asarray(canvas)
