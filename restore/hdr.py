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

A model may also see and return log radiance (input transforms "hdr-log" and
"hdr-log-demodulated"), as Open Image Denoise's HDR transfer function does: T above squeezes an
emitter of 20 and one of 200 to 0.97 and 0.996, and a network whose output is linear must
reach 200 from inputs below 1, so emitters and highlights came back about half as bright
(bench/results/mc-cbox.md). In log space an emitter is a value like any other: the network sees
log(1 + v) / log(1 + LOG_WHITE) and its output y means v = exp(y log(1 + LOG_WHITE)) - 1. The
loss still compares linear radiance, so Noise2Noise's mean-seeking training is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from restore.metrics import ESTIMATE_TILE, estimated_psnr

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


HDR_LOSSES = ("hdr", "tonemapped")
"""The training losses for linear renders (restore.training.loop.LOSSES): a run with one feeds its network through
`network_input`, and a finetune with one starts from a render model."""

DEMODULATED = "hdr-demodulated"
LOG = "hdr-log"
LOG_DEMODULATED = "hdr-log-demodulated"
INPUT_TRANSFORMS = ("none", "hdr", DEMODULATED, LOG, LOG_DEMODULATED)
"""A model file's `input_transform`: sRGB values as they are, or linear HDR through `network_input`
(tone-mapped or in log space, each optionally demodulated by the albedo)."""

LOG_WHITE = 4096.0
"""Exposed radiance that the log transform maps to 1: middle gray (0.18) lands at 0.02, an
emitter 1000 times brighter at 0.83, and a firefly of 10^6 at 1.7, still finite and ordered."""
_LOG_RANGE = math.log1p(LOG_WHITE)
_LOG_OUTPUT_MAX = 3.0  # exp(3 log(1 + LOG_WHITE)) ~ 7e10: an untrained network's output stays finite in fp32

ALBEDO_EPS = 0.01
"""Added to the albedo before dividing by it: black surfaces and the sky (albedo 0) keep finite
values, and a noisy albedo near 0 does not turn into fireflies."""


BLACK_ALBEDO_SHARE = 0.05
"""Share of a render's lit surface pixels with a black albedo above which `buffer_convention_note`
speaks. With the albedo traced through glass and a metal's reflectance taken (Open Image Denoise's
convention, the training renders'), at most 2.5% of any development or test scene's are black; with
Mitsuba's aov integrator, which stops at the first surface, most scenes pass 5%
(bench/results/mc-buffers.md, its last table)."""


def black_albedo_share(colour: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor) -> float:
    """Of the pixels that show a surface (a normal) and some light, the share whose albedo is black
    (C x H x W each, linear colour)."""
    surface = normal.abs().amax(0) > 0.1  # no surface: 0, where rays left the scene
    seen = surface & (colour.clamp_min(0).sum(0) > 0)
    count = seen.sum().item()
    return (seen & (albedo.amax(0) < 1e-3)).sum().item() / count if count else 0.0


def buffer_convention_note(colour: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor, colour_model: str) -> str | None:
    """A one-line warning when the albedo buffer looks written by a renderer that stops at glass and
    metal (black there), which a model trained on Open Image Denoise's convention misreads, pointing
    to `colour_model` (one without buffers); else None."""
    share = black_albedo_share(colour, albedo, normal)
    if share <= BLACK_ALBEDO_SHARE:
        return None
    return (
        f"the albedo buffer is black on {share:.0%} of the lit surfaces, as renderers that stop at glass and metal write it; "
        "the render models expect the albedo seen through glass and a metal's reflectance (README, Renders), "
        f"and may do better without these buffers (--model {colour_model})"
    )


def is_hdr(input_transform: str) -> bool:
    """Whether a model with this input transform takes linear HDR input through `network_input`."""
    return input_transform.startswith("hdr")


# Each HDR transform as (log radiance, demodulated): the one table the three functions below read.
_HDR_PARTS = {"hdr": (False, False), DEMODULATED: (False, True), LOG: (True, False), LOG_DEMODULATED: (True, True)}


def is_demodulated(input_transform: str) -> bool:
    """Whether the transform divides the colour by the albedo buffer first."""
    return _HDR_PARTS.get(input_transform, (False, False))[1]


def is_log(input_transform: str) -> bool:
    """Whether the network sees and returns log radiance."""
    return _HDR_PARTS.get(input_transform, (False, False))[0]


def input_transform_named(log: bool, demodulated: bool) -> str:
    """The HDR input transform with log radiance and / or demodulation."""
    return next(name for name, parts in _HDR_PARTS.items() if parts == (log, demodulated))


def log_encode(v: torch.Tensor) -> torch.Tensor:
    """Exposed radiance to what a log-space network sees: log(1 + max(v, 0)) / log(1 + LOG_WHITE)."""
    return torch.log1p(v.clamp_min(0)) / _LOG_RANGE


def log_decode(y: torch.Tensor) -> torch.Tensor:
    """A log-space network's output back to exposed radiance (`log_encode`'s inverse)."""
    return torch.expm1(y.clamp(max=_LOG_OUTPUT_MAX) * _LOG_RANGE)


@dataclass(frozen=True)
class HdrFrame:
    """How one batch entered an HDR network, to take its output back to linear radiance."""

    exposure: torch.Tensor  # N x 1 x 1 x 1, the scale `exposure` chose
    albedo: torch.Tensor | None  # N x 3 x H x W, albedo + ALBEDO_EPS when demodulated
    log: bool = False  # the network's output is log radiance (`log_decode`)

    def exposed(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output as exposed radiance (remodulated): what the training loss compares
        with the exposed target, so that the loss scores the image the user gets."""
        linear = log_decode(output) if self.log else output
        return linear if self.albedo is None else linear * self.albedo.to(linear)

    def radiance(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output as linear radiance in the input's units."""
        return self.exposed(output) / self.exposure.to(output)


def network_input(
    image: torch.Tensor, colour_channels: int | None = None, input_transform: str = "hdr"
) -> tuple[torch.Tensor, HdrFrame]:
    """(what an HDR network sees, how to take its output back): the colour channels, divided by
    the albedo (the first buffer) for the demodulated transforms, exposed, then tone-mapped or
    log-encoded (the log transforms); any auxiliary buffers after them (albedo, normal) unchanged."""
    colour_channels = colour_channels or image.shape[1]
    colour, aux = image[:, :colour_channels], image[:, colour_channels:]
    albedo = None
    if is_demodulated(input_transform):
        if aux.shape[1] < colour_channels:
            raise ValueError("demodulation needs an albedo buffer after the colour channels")
        albedo = aux[:, :colour_channels].clamp_min(0) + ALBEDO_EPS
        colour = colour / albedo
    scale = exposure(colour)
    log = is_log(input_transform)
    seen = log_encode(colour * scale) if log else tone_map(colour * scale)
    return torch.cat([seen, aux], dim=1), HdrFrame(scale, albedo, log)


CONVERGED_SPREAD = 0.05
"""A render's pixel whose 3 x 3 neighbours (those inside the image) all lie within a ratio of
1 + half of this of it, in every channel, is converged, with a weight falling to 0 where they
reach a ratio of 1 + this; it and its neighbours are handed through with that weight
(`keep_converged`). A Monte Carlo pixel whose neighbours agree that closely is exact, or nearly,
as an emitter or a sky in view is in every render, and the network in log space can only move
it: n2n-mc-aux returned the Cornell box's light 3% too bright, its colour shifted, and the
constant skies of the development scenes off by enough to cost 0.02 dB. Chosen on the
development renders (models/README.md, n2n-mc-aux): at 0.05 no column fell, and noise that
spreads neighbours 5% apart is never taken for convergence."""


def keep_converged(colour: torch.Tensor, output: torch.Tensor, spread: float = CONVERGED_SPREAD) -> torch.Tensor:
    """`output` (N x C x H x W linear radiance) with the converged pixels of the render `colour`
    handed through (see CONVERGED_SPREAD): each pixel's weight is the highest of its own and its
    neighbours', where a pixel's own is 1 when every 3 x 3 neighbour is within a ratio of
    1 + spread / 2 of it, falling linearly to 0 at 1 + spread. So a 3 x 3 block that agrees with
    its centre comes back whole: a pixel just inside an emitter's edge, three of whose neighbours
    the pixel filter mixes with what lies beyond, is handed through with the emitter (the
    Cornell box's light kept a ring the network returned 3.6% too bright, its brightest 1% 1.8%
    off at 4 spp where Open Image Denoise is 0.3% off: models/README.md, n2n-mc-aux, "converged
    blocks"). A neighbourhood with a value at 0 or below is never converged: a dark patch of a
    low-spp render is all zeros until a path finds light, and a negative lobe of a wide pixel
    filter is no agreement. Training's validation scores the network without this step: it is
    the same for every set of weights."""
    x = colour.float()
    lowest = neighbourhood_extreme(x, torch.minimum)
    above = neighbourhood_extreme(x, torch.maximum).div_(x)
    below = x / lowest
    reach = torch.maximum(above, below).amax(dim=1, keepdim=True).sub_(1)  # NaN where x is 0: never converged
    positive = lowest.amin(dim=1, keepdim=True) > 0
    centre = ((spread - reach) / (spread / 2)).clamp_(0, 1).nan_to_num_(0) * positive
    weight = neighbourhood_extreme(centre, torch.maximum)  # the blocks each pixel lies in
    return torch.lerp(output, colour.to(output.dtype), weight.to(output.dtype))


def neighbourhood_extreme(x: torch.Tensor, extreme: Callable[..., torch.Tensor]) -> torch.Tensor:
    """The 3 x 3 maximum or minimum (`extreme`: torch.maximum or torch.minimum) of each pixel of
    `x` (... x H x W), the image's edge replicated: rows, then columns, on shifted views (a third of
    max_pool2d's time). `keep_converged` reads it, and so does bench/mc_error_bands.py's buffer edges."""
    rows = x.clone()
    extreme(rows[..., 1:, :], x[..., :-1, :], out=rows[..., 1:, :])
    extreme(rows[..., :-1, :], x[..., 1:, :], out=rows[..., :-1, :])
    both = rows.clone()
    extreme(both[..., 1:], rows[..., :-1], out=both[..., 1:])
    extreme(both[..., :-1], rows[..., 1:], out=both[..., :-1])
    return both


def psnr_tone_mapped(output: torch.Tensor, reference: torch.Tensor) -> float:
    """The Monte Carlo protocol's PSNR: both images tone-mapped by T, peak 1, over RGB."""
    mse = F.mse_loss(tone_map(output.float()), tone_map(reference.float())).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


ESTIMATE_TRIM = 0.1
"""`estimated_psnr_tone_mapped` averages its per-pixel estimates over 8 x 8 tiles (`ESTIMATE_TILE`) and drops the
highest and lowest 10% of the tiles: on the Cornell box and the Monte Carlo bench's test scenes it
ranks the methods' means as their references do wherever they stand more than 0.3 dB apart
(bench/results/mc.md), and it reads denoised renders high, so it is a score to compare runs by,
not a PSNR to report."""


def tone_map_slope(v: torch.Tensor) -> torch.Tensor:
    """dT/dv, with v floored at 1e-3 (T's slope is infinite at 0)."""
    v = v.clamp_min(1e-3)
    return (v / (1 + v)).pow(1 / 2.2 - 1) / (2.2 * (1 + v).square())


def _firefly_free(image: torch.Tensor) -> torch.Tensor:
    """A 3 x 3 median, then a 5 x 5 box average (N x C x H x W): a smooth copy in which one bright sample does not spread."""
    from kornia.filters import box_blur, median_blur  # here, not at import: it costs every CLI start 0.1-0.2 s

    median = median_blur(F.pad(image, (1, 1, 1, 1), mode="replicate"), (3, 3))[..., 1:-1, 1:-1]  # kornia pads with zeros
    return box_blur(median, (5, 5), border_type="replicate")


def estimated_psnr_tone_mapped(output: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> float:
    """`psnr_tone_mapped` of ``output`` = f(first) against the converged render nobody has,
    estimated from ``second``, an independent render of the same spp (N x C x H x W, linear).

    Comparing tone-mapped values, MSE(T f(A), T B) - MSE(T A, T B) / 2, scores the distance to
    E[T(B)], which a concave T pulls below T(reference) wherever the noise is strong: it ranked
    outputs dimmed by 10% above the outputs themselves. Linear renders are unbiased (E[B] = the
    reference), so the error is estimated on linear values weighted by T's squared slope (the
    tone-mapped error to first order), the slope taken on a smoothed A so that the weight w does
    not depend on B: E[w (f(A) - B)^2] = w (f(A) - reference)^2 + w var(B), and
    var(B) ~ (A - B)^2 / 2. A firefly in B adds about w B^2 / 2 to its pixel and one in A
    subtracts about w A^2 / 2: the tails are symmetric, so the per-pixel estimates are averaged
    over tiles and the extreme tiles at both ends dropped (`ESTIMATE_TILE`, `ESTIMATE_TRIM`). An
    estimate below its standard error over the kept tiles reads as that standard error.
    """
    output, first, second = (x.double() for x in (output, first, second))
    weight = tone_map_slope(_firefly_free(first)).square()
    excess = (weight * ((output - second).square() - (first - second).square() / 2)).mean(1, keepdim=True)
    tile = min(ESTIMATE_TILE, excess.shape[-2], excess.shape[-1])
    tiles = F.avg_pool2d(excess, tile).flatten().sort().values
    cut = int(ESTIMATE_TRIM * tiles.numel())
    kept = tiles[cut : tiles.numel() - cut]
    return estimated_psnr(kept.mean().item(), kept)
