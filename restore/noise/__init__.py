"""Noise models shared by training, evaluation and tests: one package, one family table.

Layout: ``params`` (what every model shares), ``models`` (pixel noise), ``camera`` (a photo's
pipeline), ``corruptions`` (erasure, blur, blocks, mixes), ``spec`` (the family table and
``parse_noise``). Everything a user needs is importable from ``restore.noise``.

Images are tensors N x C x H x W on the [0, 1] scale. A model is a frozen dataclass whose
``apply(clean, generator)`` returns a noisy copy drawn only from ``generator``, so a seed fixes
the result, and whose ``str()`` is the spec string that :func:`parse_noise` reads back:

- ``gaussian:25``: additive Gaussian noise, sigma in 0..255 units, neither clipped nor
  quantised (the DnCNN / FFDNet / Noise2Noise protocol). ``gaussian:0-50`` draws sigma
  uniformly per image.
- ``gaussian8:25``: the same noise as an 8-bit file holds it, clipped to [0, 1] and rounded to
  multiples of 1/255 (a user's noisy PNG; the benchmarks' "as 8-bit files" rows).
- ``poisson:30``: shot noise with ``lambda`` photons at white, noisy = Poisson(lambda * clean)
  / lambda. ``poisson:5-100`` draws lambda per image, uniformly in log space.
- ``poisson-gaussian:30,5``: shot noise plus Gaussian read noise (sigma in 0..255 units);
  ranges are allowed for both, e.g. ``poisson-gaussian:5-100,0-10``.
- ``correlated:25,1``: Gaussian noise of per-pixel sigma 25 filtered by a Gaussian kernel of
  std 1 pixel (spatially correlated, as in a camera's processed output).
- ``photo:0.0001-0.012,70-99``: a photo as a camera delivers it (:mod:`restore.noise.camera`): the
  image unprocessed to the sensor, shot noise of that level (variance per unit of raw signal,
  drawn log-uniformly) plus read noise tied to it, demosaicked, processed back, rounded to
  8 bits and JPEG-compressed at a quality drawn from the second range (100: not compressed).

The corruptions of :mod:`restore.noise.corruptions` read here too: ``erase:P``, ``blur:SIGMA``,
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

from restore.noise.corruptions import BlockMask, GaussianBlur, MixedCorruption, PixelErasure
from restore.noise.models import (
    CorrelatedGaussianNoise,
    EightBitGaussianNoise,
    GaussianNoise,
    PhotoNoise,
    PoissonGaussianNoise,
    PoissonNoise,
    estimate_sigma,
)
from restore.noise.params import NoiseModel, Param, noisy_pair, noisy_pair_with_reference, noisy_with_reference
from restore.noise.spec import FAMILIES, Family, parse_noise, with_lossless_targets

__all__ = [
    "FAMILIES",
    "BlockMask",
    "CorrelatedGaussianNoise",
    "EightBitGaussianNoise",
    "Family",
    "GaussianBlur",
    "GaussianNoise",
    "MixedCorruption",
    "NoiseModel",
    "Param",
    "PhotoNoise",
    "PixelErasure",
    "PoissonGaussianNoise",
    "PoissonNoise",
    "estimate_sigma",
    "noisy_pair",
    "noisy_pair_with_reference",
    "noisy_with_reference",
    "parse_noise",
    "with_lossless_targets",
]
