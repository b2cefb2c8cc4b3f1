"""Noise models shared by training, evaluation and tests.

Images are tensors N x C x H x W on the [0, 1] scale. A model is a frozen dataclass whose
``apply(clean, generator)`` returns a noisy copy drawn only from ``generator``, so a seed fixes
the result, and whose ``str()`` is the spec string that :func:`parse_noise` reads back:

- ``gaussian:25``: additive Gaussian noise, sigma in 0..255 units, neither clipped nor
  quantised (the DnCNN / FFDNet / Noise2Noise protocol). ``gaussian:0-50`` draws sigma
  uniformly per image.
- ``poisson:30``: shot noise with ``lambda`` photons at white, noisy = Poisson(lambda * clean)
  / lambda. ``poisson:5-100`` draws lambda per image, uniformly in log space.
- ``poisson-gaussian:30,5``: shot noise plus Gaussian read noise (sigma in 0..255 units);
  ranges are allowed for both, e.g. ``poisson-gaussian:5-100,0-10``.
- ``correlated:25,1``: Gaussian noise of per-pixel sigma 25 filtered by a Gaussian kernel of
  std 1 pixel (spatially correlated, as in a camera's processed output).
- ``photo:0.0001-0.012,70-99``: a photo as a camera delivers it (:mod:`restore.camera`): the
  image unprocessed to the sensor, shot noise of that level (variance per unit of raw signal,
  drawn log-uniformly) plus read noise tied to it, demosaicked, processed back, rounded to
  8 bits and JPEG-compressed at a quality drawn from the second range (100: not compressed).

The corruptions of :mod:`restore.corruptions` read here too: ``erase:P``, ``blur:SIGMA``,
``block:SIZE`` and ``mix:SPEC|SPEC|...`` (one listed model per image).

A Noise2Noise pair is two noisy copies of one image: :func:`noisy_pair` draws them, with the
same per-image settings where a model has settings beyond its noise (a photo's camera).

A parameter is either a number or an inclusive (low, high) range. Per-image parameters are
drawn before the noise itself, and a fixed parameter draws nothing, so
``GaussianNoise(25).apply(clean / 255, torch.Generator().manual_seed(seed)) * 255`` equals the
protocol's ``clean + 25 * torch.randn(clean.shape, generator=...)`` with that seed.

Random numbers are drawn on the generator's device and then moved to the image's, so a CPU
generator gives the same noise whether the image is on the CPU or an accelerator.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import torch

from restore.camera import CameraSettings, draw_settings, photo_noise

__all__ = [
    "CorrelatedGaussianNoise",
    "GaussianNoise",
    "NoiseModel",
    "Param",
    "PoissonGaussianNoise",
    "PhotoNoise",
    "PoissonNoise",
    "estimate_sigma",
    "noisy_pair",
    "parse_noise",
]

Param = float | tuple[float, float]
"""A noise parameter: a fixed value, or an inclusive (low, high) range drawn per image."""


class NoiseModel(Protocol):
    """What every noise model offers; ``str(model)`` is its spec string."""

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a noisy copy of ``clean`` (N x C x H x W, [0, 1] scale)."""
        ...


def _check_param(name: str, value: Param, minimum: float, strict: bool) -> None:
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


def _format_number(v: float) -> str:
    """Shortest text that reads back as ``v``: '25' rather than '25.0'."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _format_param(value: Param) -> str:
    """The spec text of a parameter: '25' or '0-50'."""
    if isinstance(value, tuple):
        return f"{_format_number(value[0])}-{_format_number(value[1])}"
    return _format_number(value)


def _draw(value: Param, clean: torch.Tensor, generator: torch.Generator, log: bool = False) -> torch.Tensor | float:
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


def _check_image(clean: torch.Tensor) -> None:
    """Raise ValueError unless ``clean`` is a float N x C x H x W tensor."""
    if clean.ndim != 4 or not clean.is_floating_point():
        raise ValueError(f"noise needs a float N x C x H x W tensor, got {clean.dtype} {tuple(clean.shape)}")


def _gaussian(clean: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``clean`` times ``sigma`` (on the [0, 1] scale)."""
    z = torch.randn(clean.shape, dtype=clean.dtype, generator=generator, device=generator.device)
    return z.to(clean.device) * sigma


def _shot(clean: torch.Tensor, photons: torch.Tensor | float, generator: torch.Generator) -> torch.Tensor:
    """Poisson(photons * clean) / photons: the photon count at each pixel, rescaled to [0, 1]."""
    # A rate must be non-negative; a slightly negative clean value (e.g. after resampling)
    # emits no photons.
    rate = (clean.clamp_min(0) * photons).to(generator.device)
    return torch.poisson(rate, generator=generator).to(clean.device) / photons


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise, not clipped, not quantised.

    Attributes:
        sigma: standard deviation in 0..255 units, or a (low, high) range drawn uniformly
            per image.
    """

    sigma: Param

    def __post_init__(self) -> None:
        _check_param("sigma", self.sigma, 0.0, strict=False)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean + sigma / 255 * N(0, 1)`` for ``clean`` N x C x H x W on [0, 1]."""
        _check_image(clean)
        sigma = _draw(self.sigma, clean, generator)
        return clean + _gaussian(clean, sigma / 255.0, generator)

    def __str__(self) -> str:
        return f"gaussian:{_format_param(self.sigma)}"


@dataclass(frozen=True)
class PoissonNoise:
    """Shot noise: noisy = Poisson(photons * clean) / photons.

    Attributes:
        photons: lambda, the expected photon count of a white pixel, or a (low, high) range
            drawn per image uniformly in log space.
    """

    photons: Param

    def __post_init__(self) -> None:
        _check_param("lambda", self.photons, 0.0, strict=True)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the shot-noisy ``clean`` (N x C x H x W on [0, 1]); the mean is preserved."""
        _check_image(clean)
        photons = _draw(self.photons, clean, generator, log=True)
        return _shot(clean, photons, generator)

    def __str__(self) -> str:
        return f"poisson:{_format_param(self.photons)}"


@dataclass(frozen=True)
class PoissonGaussianNoise:
    """Shot noise plus Gaussian read noise: variance clean / lambda + (read / 255)^2.

    Attributes:
        photons: lambda, as in :class:`PoissonNoise` (a range is drawn in log space).
        read: read-noise sigma in 0..255 units, or a range drawn uniformly per image.
    """

    photons: Param
    read: Param

    def __post_init__(self) -> None:
        _check_param("lambda", self.photons, 0.0, strict=True)
        _check_param("read-noise sigma", self.read, 0.0, strict=False)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return shot noise plus read noise on ``clean`` (N x C x H x W on [0, 1])."""
        _check_image(clean)
        photons = _draw(self.photons, clean, generator, log=True)
        read = _draw(self.read, clean, generator)
        return _shot(clean, photons, generator) + _gaussian(clean, read / 255.0, generator)

    def __str__(self) -> str:
        return f"poisson-gaussian:{_format_param(self.photons)},{_format_param(self.read)}"


@dataclass(frozen=True)
class CorrelatedGaussianNoise:
    """Spatially correlated Gaussian noise, like a camera's after demosaicking and denoising in
    its pipeline: white noise filtered by a Gaussian kernel, rescaled to a per-pixel std of sigma.

    Attributes:
        sigma: per-pixel standard deviation in 0..255 units, or a (low, high) range per image.
        blur: the kernel's standard deviation in pixels (neighbours correlate by exp(-1 / (4 blur^2))).
    """

    sigma: Param
    blur: float

    def __post_init__(self) -> None:
        _check_param("sigma", self.sigma, 0.0, strict=False)
        _check_param("blur", self.blur, 0.0, strict=True)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` plus correlated noise (N x C x H x W on [0, 1]), not clipped."""
        _check_image(clean)
        sigma = _draw(self.sigma, clean, generator)
        radius = math.ceil(3 * self.blur)
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel_1d = torch.exp(-(offsets**2) / (2 * self.blur**2))
        kernel = torch.outer(kernel_1d, kernel_1d)
        kernel = (kernel / kernel.pow(2).sum().sqrt()).to(clean.dtype)  # unit gain on the noise's variance
        n, c, h, w = clean.shape
        # White noise on a border of `radius` pixels more, so that no edge is treated differently.
        shape = (n * c, 1, h + 2 * radius, w + 2 * radius)
        white = torch.randn(shape, dtype=clean.dtype, generator=generator, device=generator.device)
        filtered = torch.nn.functional.conv2d(white, kernel.to(white.device)[None, None]).view(n, c, h, w)
        return clean + filtered.to(clean.device) * (sigma / 255.0)

    def __str__(self) -> str:
        return f"correlated:{_format_param(self.sigma)},{_format_number(self.blur)}"


@dataclass(frozen=True)
class PhotoNoise:
    """Camera noise as it reaches a user's photo: unprocessed, sensor noise, processed, 8 bits, JPEG.

    Attributes:
        shot: shot-noise level (variance per unit of linear raw signal; Brooks et al. measure
            about 0.0001 at ISO 100 to 0.012 at ISO 12800), or a range drawn log-uniformly.
        quality: JPEG quality 1-100 (100: saved without compression), or a range drawn as
            integers uniformly, ends included.
    """

    shot: Param
    quality: Param

    def __post_init__(self) -> None:
        _check_param("shot noise", self.shot, 0.0, strict=True)
        _check_param("JPEG quality", self.quality, 1.0, strict=False)
        if max(self.quality if isinstance(self.quality, tuple) else (self.quality,)) > 100:
            raise ValueError(f"JPEG quality must be at most 100, got {self.quality}")

    def _settings(self, clean: torch.Tensor, generator: torch.Generator) -> CameraSettings:
        if clean.shape[1] != 3:
            raise ValueError(f"photo noise needs colour images, got {clean.shape[1]} channels")
        shot = self.shot if isinstance(self.shot, tuple) else (self.shot, self.shot)
        quality = self.quality if isinstance(self.quality, tuple) else (self.quality, self.quality)
        return draw_settings(clean.shape[0], shot, quality, generator)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` (N x 3 x H x W on [0, 1]) as a camera of drawn settings photographs it."""
        _check_image(clean)
        return photo_noise(clean, self._settings(clean, generator), generator)

    def pair(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two shots of ``clean`` by the same camera at the same settings, with independent noise."""
        _check_image(clean)
        settings = self._settings(clean, generator)
        return photo_noise(clean, settings, generator), photo_noise(clean, settings, generator)

    def __str__(self) -> str:
        return f"photo:{_format_param(self.shot)},{_format_param(self.quality)}"


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


def estimate_sigma(image: torch.Tensor) -> float:
    """The noise level of an image (C x H x W or N x C x H x W, [0, 1] scale) from the image alone.

    The wavelet estimator of Donoho and Johnstone: the finest diagonal Haar detail of a natural
    image holds little but noise, and its median absolute value / 0.6745 is a robust noise
    sigma (edges are outliers the median ignores). Channels are estimated apart and averaged.
    It measures white noise well, but not a camera JPEG's: demosaicking and noise reduction move
    the noise to coarser scales and JPEG drops the finest diagonal detail, so on the 62 PolyU
    pairs it reads 0 to 30 % of std(noisy - clean).
    """
    x = image.reshape(-1, *image.shape[-2:]).double()
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"an image of {image.shape[-1]} x {image.shape[-2]} is too small to estimate its noise")
    x = x[:, :h, :w]
    diagonal = (x[:, 0::2, 0::2] - x[:, 0::2, 1::2] - x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) / 2
    return float((diagonal.abs().flatten(1).median(dim=1).values / 0.6745).mean())


_UNKNOWN = (
    "unknown noise {spec!r} "
    "(expected gaussian:SIGMA, poisson:LAMBDA, poisson-gaussian:LAMBDA,READ, correlated:SIGMA,BLUR "
    "or photo:SHOT,QUALITY), "
    "or a corruption {corruptions}"
)
# A non-negative number, exponent allowed; the exponent's sign is why a range cannot simply
# be split at '-'.
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_PARAM = re.compile(rf"({_NUMBER})(?:-({_NUMBER}))?")


def _parse_param(text: str, spec: str) -> Param:
    """Read '25' as 25.0 and '0-50' as (0.0, 50.0)."""
    match = _PARAM.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad value {text!r} in noise spec {spec!r} (expected a number or a range LOW-HIGH)")
    low, high = match.groups()
    return float(low) if high is None else (float(low), float(high))


def parse_noise(spec: str) -> NoiseModel:
    """Build the noise model a spec string names; ``str()`` of the result gives the spec back.

    Args:
        spec: ``gaussian:SIGMA``, ``poisson:LAMBDA``, ``poisson-gaussian:LAMBDA,READ``,
            ``correlated:SIGMA,BLUR`` or ``photo:SHOT,QUALITY``, or a
            corruption ``erase:P``, ``blur:SIGMA``, ``block:SIZE`` or ``mix:SPEC|SPEC|...``
            (see :mod:`restore.corruptions`); each parameter a number or a range ``LOW-HIGH``
            (e.g. ``gaussian:0-50``).

    Raises:
        ValueError: for an unknown family, a malformed or out-of-range parameter.
    """
    # Imported here: the corruptions build on this module's helpers.
    from restore.corruptions import FAMILIES, parse_corruption

    unknown = _UNKNOWN.format(spec=spec, corruptions=FAMILIES)
    family, sep, args = spec.strip().partition(":")
    family = family.strip().lower()
    if not sep:
        raise ValueError(unknown)
    if family == "gaussian":
        return GaussianNoise(_parse_param(args, spec))
    if family == "poisson":
        return PoissonNoise(_parse_param(args, spec))
    if family in ("poisson-gaussian", "correlated", "photo"):
        parts = args.split(",")
        if len(parts) != 2:
            second = {"poisson-gaussian": "LAMBDA,READ", "correlated": "SIGMA,BLUR", "photo": "SHOT,QUALITY"}[family]
            raise ValueError(f"noise spec {spec!r} needs two parameters: {family}:{second}")
        first, other = _parse_param(parts[0], spec), _parse_param(parts[1], spec)
        if family == "poisson-gaussian":
            return PoissonGaussianNoise(first, other)
        if family == "photo":
            return PhotoNoise(first, other)
        if isinstance(other, tuple):
            raise ValueError(f"noise spec {spec!r}: the blur is one number, not a range")
        return CorrelatedGaussianNoise(first, other)
    corruption = parse_corruption(family, args, spec)
    if corruption is None:
        raise ValueError(unknown)
    return corruption
