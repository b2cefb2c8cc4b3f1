"""HDR renders through a network trained on bounded values: exposure, then a tone map.

Noise2Noise (section 3.3) feeds its Monte Carlo denoiser tone-mapped input,
T(v) = (v / (1 + v))^(1/2.2), and lets it output linear radiance scored by the relative
L_HDR loss. T squeezes [0, inf) into [0, 1) so that a firefly of 1000 does not swamp a
pixel of 0.5. Auto-exposure comes first (as Intel Open Image Denoise does), so that a dark
interior and a sunlit sky land in the same part of T's range: the image is scaled so that its
geometric-mean luminance is 0.18 (middle gray), and the network's output is scaled back.

A model with an albedo buffer may also take its colour demodulated (input transform
"hdr-demodulated"), as production render denoisers do: radiance / (albedo + eps) is the light
arriving at each surface, free of the surfaces' textures, so the network smooths lighting
without blurring texture, and the output is multiplied back by the albedo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MIDDLE_GRAY = 0.18
LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 luminance of linear RGB


def tone_map(v: torch.Tensor) -> torch.Tensor:
    """T(v) = (max(v, 0) / (1 + max(v, 0)))^(1/2.2), the Noise2Noise input and evaluation tone map."""
    v = v.clamp_min(0)
    return (v / (1 + v)).pow(1 / 2.2)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W luminance of N x C x H x W linear images (the channel itself for gray)."""
    if image.shape[1] == 3:
        return (image * torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return image.mean(1, keepdim=True)


def exposure(image: torch.Tensor, block: int = 16) -> torch.Tensor:
    """Per image (N x 1 x 1 x 1), the scale that brings the geometric mean luminance to 0.18.

    The mean is over block x block averages (robust to single-pixel fireflies and to black
    pixels, which are left out); an image with no light at all gets a scale of 1.
    """
    lum = luminance(image.float()).clamp_min(0)
    blocks = F.avg_pool2d(lum, min(block, lum.shape[-2], lum.shape[-1]), ceil_mode=True).flatten(1)
    lit = blocks > 1e-8
    logs = torch.where(lit, blocks.clamp_min(1e-8).log(), torch.zeros(()))
    count = lit.sum(1)
    mean_log = logs.sum(1) / count.clamp_min(1)
    scale = torch.where(count > 0, MIDDLE_GRAY / mean_log.exp(), torch.ones(()))
    return scale.clamp(1 / 2**20, 2**20).view(-1, 1, 1, 1).to(image.dtype)


DEMODULATED = "hdr-demodulated"
INPUT_TRANSFORMS = ("none", "hdr", DEMODULATED)
"""A model file's `input_transform`: sRGB values as they are, or linear HDR through `network_input`."""

ALBEDO_EPS = 0.01
"""Added to the albedo before dividing by it: black surfaces and the sky (albedo 0) keep finite
values, and a noisy albedo near 0 does not turn into fireflies."""


def is_hdr(input_transform: str) -> bool:
    """Whether a model with this input transform takes linear HDR input through `network_input`."""
    return input_transform.startswith("hdr")


@dataclass(frozen=True)
class HdrFrame:
    """How one batch entered an HDR network, to take its output back to linear radiance."""

    exposure: torch.Tensor  # N x 1 x 1 x 1, the scale `exposure` chose
    albedo: torch.Tensor | None  # N x 3 x H x W, albedo + ALBEDO_EPS when demodulated

    def exposed(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output as exposed radiance (remodulated): what the training loss compares
        with the exposed target, so that the loss scores the image the user gets."""
        return output if self.albedo is None else output * self.albedo.to(output)

    def radiance(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output as linear radiance in the input's units."""
        return self.exposed(output) / self.exposure.to(output)


def network_input(
    image: torch.Tensor, colour_channels: int | None = None, input_transform: str = "hdr"
) -> tuple[torch.Tensor, HdrFrame]:
    """(what an HDR network sees, how to take its output back): the colour channels, divided by
    the albedo (the first buffer) for the DEMODULATED transform, exposed and tone-mapped; any
    auxiliary buffers after them (albedo, normal) unchanged."""
    colour_channels = colour_channels or image.shape[1]
    colour, aux = image[:, :colour_channels], image[:, colour_channels:]
    albedo = None
    if input_transform == DEMODULATED:
        if aux.shape[1] < colour_channels:
            raise ValueError("demodulation needs an albedo buffer after the colour channels")
        albedo = aux[:, :colour_channels].clamp_min(0) + ALBEDO_EPS
        colour = colour / albedo
    scale = exposure(colour)
    return torch.cat([tone_map(colour * scale), aux], dim=1), HdrFrame(scale, albedo)


def psnr_tone_mapped(output: torch.Tensor, reference: torch.Tensor) -> float:
    """The Monte Carlo protocol's PSNR: both images tone-mapped by T, peak 1, over RGB."""
    mse = F.mse_loss(tone_map(output.float()), tone_map(reference.float())).item()
    return 10 * math.log10(1 / max(mse, 1e-12))
