"""Corruptions beyond additive noise, for the MNIST denoising autoencoders (lecture 7.3).

They follow the contract of :mod:`restore.noise.models`: a frozen dataclass whose
``apply(clean, generator)`` returns a corrupted copy of an N x C x H x W image batch on [0, 1],
drawing only from ``generator``, and whose ``str()`` is the spec that
:func:`restore.noise.parse_noise` reads back:

- ``erase:0.5``: pixel erasure, each pixel set to 0 (black, the MNIST background) with
  probability P; ``erase:0.5-0.9`` draws P uniformly per image.
- ``blur:2``: Gaussian blur of standard deviation SIGMA pixels (kornia's ``gaussian_blur2d``,
  kernel side 2 * ceil(3 * SIGMA) + 1, zero border since digits lie on black); ``blur:1-4``
  draws SIGMA uniformly per image.
- ``block:10``: a SIZE x SIZE square set to 0 at a uniformly random position inside the image;
  ``block:8-16`` draws an integer SIZE uniformly per image, ends included.
- ``mix:gaussian:0-100|erase:0.5-0.9|blur:1-4|block:8-16``: each image gets one of the
  listed models, chosen uniformly; any spec that ``parse_noise`` reads may be listed, except
  another ``mix``. Quote it in a shell, where ``|`` is a pipe.

Additive Gaussian noise is :class:`restore.noise.models.GaussianNoise` (``gaussian:SIGMA``).
Erasure and masking touch every channel of a pixel alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from restore.noise.params import (
    NoiseModel,
    Param,
    check_image,
    check_param,
    draw,
    format_param,
    gaussian_blur,
    noisy_pair,
    noisy_pair_with_reference,
    noisy_with_reference,
)

__all__ = ["BlockMask", "GaussianBlur", "MixedCorruption", "PixelErasure"]


def _check_at_most(name: str, value: Param, maximum: float) -> None:
    """Raise ValueError if ``value`` (or the top of its range) exceeds ``maximum``."""
    top = value[1] if isinstance(value, tuple) else value
    if top > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value}")


@dataclass(frozen=True)
class PixelErasure:
    """Set each pixel to 0 with probability ``p``.

    Attributes:
        p: the erasure probability in [0, 1], or a (low, high) range drawn uniformly per image.
    """

    p: Param

    def __post_init__(self) -> None:
        check_param("erasure probability", self.p, 0.0, strict=False)
        _check_at_most("erasure probability", self.p, 1.0)

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` with a random fraction ``p`` of its pixels set to 0."""
        check_image(clean)
        p = draw(self.p, clean, generator)
        n, _, h, w = clean.shape
        u = torch.rand((n, 1, h, w), dtype=clean.dtype, generator=generator, device=generator.device)
        return clean * (u.to(clean.device) >= p)

    def __str__(self) -> str:
        return f"erase:{format_param(self.p)}"


@dataclass(frozen=True)
class GaussianBlur:
    """Blur with a normalised, sampled Gaussian kernel.

    Attributes:
        sigma: standard deviation in pixels (> 0), or a (low, high) range drawn uniformly per
            image.
    """

    sigma: Param

    def __post_init__(self) -> None:
        check_param("blur sigma", self.sigma, 0.0, strict=True)

    def kernel_size(self) -> int:
        """Odd kernel side covering +-3 sigma of the largest sigma (beyond that the weights are < 1.2 %)."""
        top = self.sigma[1] if isinstance(self.sigma, tuple) else self.sigma
        return 2 * math.ceil(3 * top) + 1

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` blurred; the area outside the image counts as black."""
        check_image(clean)
        sigma = draw(self.sigma, clean, generator)
        # One (sigma_y, sigma_x) row per image, or a pair shared by the batch.
        sigmas = sigma.view(-1, 1).expand(-1, 2) if isinstance(sigma, torch.Tensor) else (sigma, sigma)
        return gaussian_blur(clean, self.kernel_size(), sigmas, "constant")

    def __str__(self) -> str:
        return f"blur:{format_param(self.sigma)}"


@dataclass(frozen=True)
class BlockMask:
    """Set a square block, placed uniformly at random inside the image, to 0.

    Attributes:
        size: the block side in pixels (a whole number >= 1), or a (low, high) range from which
            a whole side is drawn uniformly per image, both ends included.
    """

    size: Param

    def __post_init__(self) -> None:
        check_param("block size", self.size, 1.0, strict=False)
        ends = self.size if isinstance(self.size, tuple) else (self.size,)
        if any(not float(end).is_integer() for end in ends):
            raise ValueError(f"block size must be a whole number of pixels, got {self.size}")

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` with one block per image set to 0."""
        check_image(clean)
        n, _, h, w = clean.shape
        top = int(self.size[1] if isinstance(self.size, tuple) else self.size)
        if top > min(h, w):
            raise ValueError(f"a {top} x {top} block does not fit in a {h} x {w} image")
        on = generator.device
        if isinstance(self.size, tuple):
            sizes = torch.randint(int(self.size[0]), top + 1, (n,), generator=generator, device=on)
        else:
            sizes = torch.full((n,), top, device=on)
        # Top-left corners uniform over the positions where the whole block fits.
        y = (torch.rand(n, generator=generator, device=on, dtype=torch.float64) * (h - sizes + 1)).long()
        x = (torch.rand(n, generator=generator, device=on, dtype=torch.float64) * (w - sizes + 1)).long()
        rows = torch.arange(h, device=on)
        cols = torch.arange(w, device=on)
        in_rows = (rows >= y[:, None]) & (rows < (y + sizes)[:, None])
        in_cols = (cols >= x[:, None]) & (cols < (x + sizes)[:, None])
        block = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
        return clean * ~block.to(clean.device)

    def __str__(self) -> str:
        return f"block:{format_param(self.size)}"


@dataclass(frozen=True)
class MixedCorruption:
    """Corrupt each image with one of several models, chosen uniformly per image.

    Attributes:
        choices: the models to choose from (no nested mixes).
    """

    choices: tuple[NoiseModel, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("a mix needs at least one corruption")
        if any(isinstance(choice, MixedCorruption) for choice in self.choices):
            raise ValueError("a mix cannot contain another mix")

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``clean`` with each image corrupted by its drawn model."""
        return self._by_choice(clean, generator, lambda choice, images: (choice.apply(images, generator),))[0]

    def pair(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two copies of ``clean`` corrupted independently by the same drawn model per image."""
        first, second = self._by_choice(clean, generator, lambda choice, images: noisy_pair(choice, images, generator))
        return first, second

    def pair_with_reference(
        self, clean: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`pair`, and each image's noise-free reference from its drawn model (restore.noise.params.noisy_pair_with_reference)."""
        first, second, reference = self._by_choice(
            clean, generator, lambda choice, images: noisy_pair_with_reference(choice, images, generator)
        )
        return first, second, reference

    def with_reference(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One corrupted copy and its reference per image (restore.noise.params.noisy_with_reference)."""
        noisy, reference = self._by_choice(
            clean, generator, lambda choice, images: noisy_with_reference(choice, images, generator)
        )
        return noisy, reference

    def _by_choice(
        self,
        clean: torch.Tensor,
        generator: torch.Generator,
        corrupt: Callable[[NoiseModel, torch.Tensor], tuple[torch.Tensor, ...]],
    ) -> list[torch.Tensor]:
        """Draw a model per image and return what ``corrupt(model, its images)`` gives, put back in order."""
        check_image(clean)
        picks = torch.randint(0, len(self.choices), (clean.shape[0],), generator=generator, device=generator.device)
        picks = picks.to(clean.device)
        # Every choice gets its images as one batch, in the order of `choices`, so the draws
        # from `generator` do not depend on how many images each choice received.
        outs: list[torch.Tensor] = []
        for index, choice in enumerate(self.choices):
            chosen = (picks == index).nonzero().squeeze(1)
            if len(chosen):
                for slot, result in enumerate(corrupt(choice, clean[chosen])):
                    if slot == len(outs):
                        outs.append(torch.empty_like(clean))
                    outs[slot][chosen] = result
        return outs

    def __str__(self) -> str:
        return "mix:" + "|".join(str(choice) for choice in self.choices)
