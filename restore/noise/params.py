"""What every noise model shares: the parameter type (a number or a range drawn per image),
the protocol, the checks, draws and spec text of parameters, and Noise2Noise pairs."""

from __future__ import annotations

import math
import re
from typing import Protocol

import torch

Param = float | tuple[float, float]
"""A noise parameter: a fixed value, or an inclusive (low, high) range drawn per image."""


class NoiseModel(Protocol):
    """What every noise model offers; ``str(model)`` is its spec string."""

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a noisy copy of ``clean`` (N x C x H x W, [0, 1] scale)."""
        ...


def check_param(name: str, value: Param, minimum: float, strict: bool) -> None:
    """Raise ValueError unless ``value`` (or both ends of its range) is finite and >= minimum.

    ``strict`` makes the minimum exclusive (a photon count of 0 would divide by zero).
    """
    ends = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
        raise ValueError(f"{name} range must be (low, high) with low <= high, got {value}")
    for end in ends:
        too_small = end <= minimum if strict else end < minimum
        if not math.isfinite(end) or too_small:
            bound = ">" if strict else ">="
            raise ValueError(f"{name} must be finite and {bound} {minimum:g}, got {value}")


def as_range(value: Param) -> tuple[float, float]:
    """A parameter as its (low, high) range: a fixed value is the range from itself to itself."""
    return value if isinstance(value, tuple) else (value, value)


def format_number(v: float) -> str:
    """Shortest text that reads back as ``v``: '25' rather than '25.0'."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def format_param(value: Param) -> str:
    """The spec text of a parameter: '25' or '0-50'."""
    if isinstance(value, tuple):
        return f"{format_number(value[0])}-{format_number(value[1])}"
    return format_number(value)


def draw(value: Param, clean: torch.Tensor, generator: torch.Generator, log: bool = False) -> torch.Tensor | float:
    """The parameter for each image of ``clean``: the value itself, or an N x 1 x 1 x 1 draw.

    Ranges are drawn uniformly, or uniformly in log space with ``log`` (for photon counts,
    which span orders of magnitude: 5-100 should not put 95 % of the draws above 10).
    """
    if not isinstance(value, tuple):
        return float(value)
    low, high = value
    u = torch.rand(clean.shape[0], dtype=torch.float64, generator=generator, device=generator.device)
    if log:
        drawn = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        drawn = low + u * (high - low)
    return drawn.to(device=clean.device, dtype=clean.dtype).view(-1, 1, 1, 1)


def gaussian_blur(x: torch.Tensor, size: int, sigmas: torch.Tensor | tuple[float, float], border: str) -> torch.Tensor:
    """kornia's Gaussian blur of an N x C x H x W batch with a size x size kernel; `sigmas` is one
    (sigma_y, sigma_x) row per image, or a pair shared by the batch."""
    # Imported here: importing kornia costs every `restore` start a quarter second, and only
    # training noise and the blur corruption blur.
    from kornia.filters import gaussian_blur2d

    return gaussian_blur2d(x, (size, size), sigmas, border_type=border)


def to_8_bits(x: torch.Tensor) -> torch.Tensor:
    """``x`` (on [0, 1]) as an 8-bit file holds it: clipped, rounded to multiples of 1/255."""
    return (x * 255).clamp(0, 255).round() / 255


def check_image(clean: torch.Tensor) -> None:
    """Raise ValueError unless ``clean`` is a float N x C x H x W tensor."""
    if clean.ndim != 4 or not clean.is_floating_point():
        raise ValueError(f"noise needs a float N x C x H x W tensor, got {clean.dtype} {tuple(clean.shape)}")


# A non-negative number, exponent allowed; the exponent's sign is why a range cannot simply
# be split at '-'.
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_PARAM = re.compile(rf"({_NUMBER})(?:-({_NUMBER}))?")


def parse_param(text: str, spec: str) -> Param:
    """Read '25' as 25.0 and '0-50' as (0.0, 50.0)."""
    match = _PARAM.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad value {text!r} in noise spec {spec!r} (expected a number or a range LOW-HIGH)")
    low, high = match.groups()
    return float(low) if high is None else (float(low), float(high))


def noisy_pair(noise: NoiseModel, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A Noise2Noise pair: two independently noisy copies of ``clean``.

    A model that draws settings beside its noise (a photo's camera, a mix's choice) offers
    ``pair`` and keeps them for both copies, since two shots of a scene come from one camera;
    for the others the copies are two ``apply`` calls, each drawing its own parameters.
    """
    pair = getattr(noise, "pair", None)
    if pair is not None:
        return pair(clean, generator)
    return noise.apply(clean, generator), noise.apply(clean, generator)


def noisy_pair_with_reference(
    noise: NoiseModel, clean: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Noise2Noise pair and the image its noise is measured against: ``clean`` as the noise's
    pipeline delivers it without noise.

    For most models that is ``clean`` itself. A photo's pipeline also rounds to 8 bits and
    JPEG-compresses, which changes a textured clean image by as much as light sensor noise does:
    measured against ``clean`` a quality-60 photo's noise level would count that compression too
    (2.3 times the noise's own at the lowest ISO). Models with such a pipeline offer
    ``pair_with_reference``; a level-conditioned network is told RMS(first - reference).
    """
    with_reference = getattr(noise, "pair_with_reference", None)
    if with_reference is not None:
        return with_reference(clean, generator)
    first, second = noisy_pair(noise, clean, generator)
    return first, second, clean


def noisy_with_reference(noise: NoiseModel, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One noisy copy of ``clean`` and the image its noise is measured against
    (`noisy_pair_with_reference` without the pair's second copy), for training that never looks
    at a target: a level estimator's alone, which would otherwise draw a photo's second copy, a
    whole camera pipeline with its JPEG, only to drop it.
    """
    with_reference = getattr(noise, "with_reference", None)
    if with_reference is not None:
        return with_reference(clean, generator)
    return noise.apply(clean, generator), clean
