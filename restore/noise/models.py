"""Pixel noise: Gaussian, Poisson (shot), Poisson-Gaussian, spatially correlated, and a photo's
noise as a camera delivers it (restore.noise.camera); and a noise level estimate.

Each model is a frozen dataclass whose ``apply(clean, generator)`` returns a noisy copy of an
N x C x H x W batch on [0, 1], drawing only from ``generator``, and whose ``str()`` is its spec
(restore.noise.parse_noise reads it back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from restore.noise.camera import DEFAULT_LUMA_BLUR, GAMMA, CameraSettings, draw_settings, photo_noise, photo_reference
from restore.noise.params import Param, as_range, check_image, check_param, draw, format_number, format_param, to_8_bits


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
        check_param("sigma", self.sigma, 0.0, strict=False)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean + sigma / 255 * N(0, 1)`` for ``clean`` N x C x H x W on [0, 1]."""
        check_image(clean)
        sigma = draw(self.sigma, clean, generator)
        return clean + _gaussian(clean, sigma / 255.0, generator)

    def __str__(self) -> str:
        return f"gaussian:{format_param(self.sigma)}"


@dataclass(frozen=True)
class EightBitGaussianNoise(GaussianNoise):
    """Additive Gaussian noise as an 8-bit file holds it: clipped to [0, 1], rounded to 1/255.

    What a user's noisy PNG or the benchmarks' "as 8-bit files" rows contain. Near black and white
    the clipping makes the noise one-sided; a network trained only on unclipped noise has not seen
    that. With an L1 loss the Noise2Noise target stays unbiased there (clipping keeps the median).
    """

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean + sigma / 255 * N(0, 1)`` clipped to [0, 1] and rounded to multiples of 1/255."""
        return to_8_bits(super().apply(clean, generator))

    def __str__(self) -> str:
        return f"gaussian8:{format_param(self.sigma)}"


@dataclass(frozen=True)
class PoissonNoise:
    """Shot noise: noisy = Poisson(photons * clean) / photons.

    Attributes:
        photons: lambda, the expected photon count of a white pixel, or a (low, high) range
            drawn per image uniformly in log space.
    """

    photons: Param

    def __post_init__(self) -> None:
        check_param("lambda", self.photons, 0.0, strict=True)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the shot-noisy ``clean`` (N x C x H x W on [0, 1]); the mean is preserved."""
        check_image(clean)
        photons = draw(self.photons, clean, generator, log=True)
        return _shot(clean, photons, generator)

    def __str__(self) -> str:
        return f"poisson:{format_param(self.photons)}"


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
        check_param("lambda", self.photons, 0.0, strict=True)
        check_param("read-noise sigma", self.read, 0.0, strict=False)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return shot noise plus read noise on ``clean`` (N x C x H x W on [0, 1])."""
        check_image(clean)
        photons = draw(self.photons, clean, generator, log=True)
        read = draw(self.read, clean, generator)
        return _shot(clean, photons, generator) + _gaussian(clean, read / 255.0, generator)

    def __str__(self) -> str:
        return f"poisson-gaussian:{format_param(self.photons)},{format_param(self.read)}"


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
        check_param("sigma", self.sigma, 0.0, strict=False)
        if isinstance(self.blur, tuple):
            raise ValueError(f"the blur of correlated noise is one number, not a range, got {self.blur}")
        check_param("blur", self.blur, 0.0, strict=True)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` plus correlated noise (N x C x H x W on [0, 1]), not clipped."""
        check_image(clean)
        sigma = draw(self.sigma, clean, generator)
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
        return f"correlated:{format_param(self.sigma)},{format_number(self.blur)}"


@dataclass(frozen=True)
class PhotoNoise:
    """Camera noise as it reaches a user's photo: unprocessed, sensor noise, processed, 8 bits, JPEG.

    Attributes:
        shot: shot-noise level (variance per unit of linear raw signal; Brooks et al. measure
            about 0.0001 at ISO 100 to 0.012 at ISO 12800), or a range drawn log-uniformly.
        quality: JPEG quality 1-100 (100: saved without compression), or a range drawn as
            integers uniformly, ends included.
        coarse: the share (0-1) of the luma noise's variance in a coarse grain, as real JPEGs'
            noise reduction leaves it (restore.noise.camera.noise_reduction), or a range drawn
            uniformly; 0, the default, draws as the family did before it had the parameter.
        blur: the standard deviation, in pixels, of the camera's smoothing of luma noise, or a
            range drawn uniformly. The default 0.4-1.6 puts the noise's energy at 4 pixels; the
            PolyU cameras' peaks at 2 pixels, as 0.3-0.8 does (bench/photo_noise_stats.py).
        gamma: the exponent between linear light and the tone curve, or a range drawn uniformly.
            A larger one lifts the shadows more, and their noise with them: the PolyU JPEGs' noise
            is heavier in the shadows and lighter in the highlights than 2.2 gives
            (bench/photo_noise_stats.py, noise by brightness).
        lossless_targets: a pair's second shot (the Noise2Noise target) saved without JPEG
            compression, 8 bits only; the first keeps the drawn quality. JPEG is not zero-mean
            noise: it drops fine detail and halves the colour resolution of both shots alike, so
            a compressed target teaches the network JPEG's smoothing, which it then applies to
            every photo. Off by default, so that earlier runs' commands draw what they drew.
    """

    shot: Param
    quality: Param
    coarse: Param = 0.0
    blur: Param = DEFAULT_LUMA_BLUR
    gamma: Param = GAMMA
    lossless_targets: bool = False

    def __post_init__(self) -> None:
        check_param("shot noise", self.shot, 0.0, strict=True)
        check_param("JPEG quality", self.quality, 1.0, strict=False)
        if max(as_range(self.quality)) > 100:
            raise ValueError(f"JPEG quality must be at most 100, got {self.quality}")
        check_param("coarse grain share", self.coarse, 0.0, strict=False)
        if max(as_range(self.coarse)) > 1:
            raise ValueError(f"the coarse grain share must be at most 1, got {self.coarse}")
        check_param("luma blur", self.blur, 0.0, strict=False)
        check_param("gamma", self.gamma, 0.0, strict=True)

    def _settings(self, clean: torch.Tensor, generator: torch.Generator) -> CameraSettings:
        if clean.shape[1] != 3:
            raise ValueError(f"photo noise needs colour images, got {clean.shape[1]} channels")
        return draw_settings(
            clean.shape[0],
            as_range(self.shot),
            as_range(self.quality),
            generator,
            blur=as_range(self.blur),
            coarse=as_range(self.coarse),
            gamma=as_range(self.gamma),
        )

    def _target_settings(self, settings: CameraSettings) -> CameraSettings:
        """The settings a pair's second shot is taken with: the first's, saved losslessly with `lossless_targets`."""
        return replace(settings, quality=torch.full_like(settings.quality, 100)) if self.lossless_targets else settings

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` (N x 3 x H x W on [0, 1]) as a camera of drawn settings photographs it."""
        check_image(clean)
        return photo_noise(clean, self._settings(clean, generator), generator)

    def pair(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two shots of ``clean`` by the same camera at the same settings, with independent noise."""
        check_image(clean)
        settings = self._settings(clean, generator)
        return photo_noise(clean, settings, generator), photo_noise(clean, self._target_settings(settings), generator)

    def pair_with_reference(
        self, clean: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`pair`, and ``clean`` through the same camera without noise (8 bits, JPEG): what the
        pair's noise level is measured against (restore.noise.params.noisy_pair_with_reference)."""
        check_image(clean)
        settings = self._settings(clean, generator)
        first, second = photo_noise(clean, settings, generator), photo_noise(clean, self._target_settings(settings), generator)
        return first, second, photo_reference(clean, settings)

    def with_reference(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`pair_with_reference` without the second shot: the first shot is the same one for the
        same generator (restore.noise.params.noisy_with_reference)."""
        check_image(clean)
        settings = self._settings(clean, generator)
        return photo_noise(clean, settings, generator), photo_reference(clean, settings)

    def __str__(self) -> str:
        gamma = f",{format_param(self.gamma)}" if self.gamma != GAMMA else ""
        blur = f",{format_param(self.blur)}" if self.blur != DEFAULT_LUMA_BLUR or gamma else ""
        coarse = f",{format_param(self.coarse)}" if self.coarse != 0 or blur else ""
        return f"photo:{format_param(self.shot)},{format_param(self.quality)}{coarse}{blur}{gamma}"


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
