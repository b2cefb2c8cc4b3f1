"""Training data: where (input, target) batches come from.

Every source draws a batch from a torch.Generator seeded by the step number, so a run that
resumes from a checkpoint sees exactly the batches it would have seen without the kill.

- `NoisySource`: clean photos from a folder; input and target are two independent noise draws
  (Noise2Noise), or the target is the clean crop (`clean_targets`); crops optionally magnified
  or shrunk (`zoom`, a range of factors: `parse_zoom`), as a high-resolution photo holds its detail;
  the photos themselves optionally shrunk first (`shrink`).
- `PairSource`: two folders of noisy shots of the same scenes, matched by file name.
- `DownscaleSource`: HR crops and their bicubic (MATLAB imresize) LR versions, rounded to 8 bits;
  `MultiScaleSource` mixes scales batch by batch (one network for x2, x3 and x4).
- `DigitSource`, `PooledDigitSource`: MNIST digits (IDX files) with noise, or shrunk by 2 x 2
  average pooling for the 14 -> 28 upscaler.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from restore.archs.unet import append_level_map
from restore.ensemble import TRANSFORMS, dihedral
from restore.noise import NoiseModel, noisy_pair, noisy_pair_with_reference, noisy_with_reference
from restore.resize import downscale

Batch = tuple[torch.Tensor, torch.Tensor]


def augment(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random flip / 90-degree rotation of a stack of square crops (the same for the whole stack)."""
    return dihedral(crops, int(torch.randint(0, TRANSFORMS, (1,), generator=generator).item()))


def random_crops(
    images: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator, partners: int = 1
) -> torch.Tensor:
    """`count` augmented size x size crops: count x partners x C x size x size.

    `images` holds tuples-as-stacks: images[i] is partners x C x H x W (aligned shots of one
    scene), cropped at the same place so pairs stay aligned.
    """
    out = []
    for _ in range(count):
        stack = images[torch.randint(0, len(images), (1,), generator=generator).item()]
        h, w = stack.shape[-2:]
        if h < size or w < size:
            raise ValueError(f"an image of {w} x {h} is smaller than the {size} x {size} training patch")
        y = torch.randint(0, h - size + 1, (1,), generator=generator).item()
        x = torch.randint(0, w - size + 1, (1,), generator=generator).item()
        out.append(augment(stack[..., y : y + size, x : x + size], generator))
    return torch.stack(out).reshape(count, partners, *out[0].shape[-3:])


def random_rotations(count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rotation matrices (count x 3 x 3) drawn uniformly: from unit quaternions, whose
    directions a 4-D Gaussian draws uniformly."""
    w, x, y, z = F.normalize(torch.randn(count, 4, generator=generator), dim=1).unbind(1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)


def turn_normals(crops: torch.Tensor, channels: slice, generator: torch.Generator) -> torch.Tensor:
    """Crops (count x partners x C x H x W) with the normal vectors in `channels` turned by one
    random rotation per crop, the same for its partners (the shots of one scene share a frame)."""
    rotations = random_rotations(crops.shape[0], generator)
    normals = crops[:, :, channels].float()
    turned = crops.clone()
    turned[:, :, channels] = torch.einsum("kij,kpjhw->kpihw", rotations, normals).to(crops.dtype)
    return turned


def shrink(image: torch.Tensor, factor: float) -> torch.Tensor:
    """A C x H x W photo resized by `factor` (below 1) with antialiased bicubic, as shrunk crops are:
    `TrainConfig.source_scales`, which gives a 4:2:0 JPEG colour as sharp as its brightness."""
    size = (max(1, round(image.shape[-2] * factor)), max(1, round(image.shape[-1] * factor)))
    return F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)


def crop_levels(noisy: torch.Tensor, target: torch.Tensor, clean_targets: bool) -> torch.Tensor:
    """Each crop's noise level (sigma on the [0, 1] scale) read off a batch: RMS(noisy - target),
    divided by sqrt 2 for a Noise2Noise target, whose own independent noise doubles the variance."""
    rms = (noisy[:, : target.shape[1]] - target).float().square().mean(dim=(1, 2, 3)).sqrt()
    return rms if clean_targets else rms / 2**0.5


def relative_crop_levels(noisy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each render crop's noise level relative to its brightness, read off a Noise2Noise pair of
    exposed colour crops A and B: the RMS of (A - B) / ((A + B) / 2 + 0.01), the scale on which
    `hdr_loss` measures errors, divided by sqrt 2 for B's own noise. It falls with the samples per
    pixel: 0.3-0.6 at 1-4 spp, about 0.05 at 1024 (a firefly counts at most about 2, however bright)."""
    mean = ((noisy + target) / 2).clamp_min(0)
    relative = (noisy - target) / (mean + 0.01)
    return relative.float().square().mean(dim=(1, 2, 3)).sqrt() / 2**0.5


class NoisySource:
    """Clean images + a noise model -> (noisy input, independently noisy or clean target).

    With `level_channel` the input ends with a map of the level its noise was drawn at (times a
    factor drawn log-uniformly from e^-level_jitter to e^level_jitter, and plus an amount drawn
    uniformly from 0 to level_overstate, when those are above 0): the
    RMS of (noisy - reference) over each crop, the reference being the clean crop as the noise's
    pipeline delivers it without noise (restore.noise.noisy_pair_with_reference: a photo's JPEG
    compression of the clean image is not its noise), which a level-conditioned network
    (restore.archs.unet.LevelUNet) is told and its estimator learns to read. Without
    `draw_targets` (a run that trains the estimator alone, which never looks at a target) the
    second noisy copy is not drawn and the reference takes the target's place in the batch.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        noise: NoiseModel,
        patch: int,
        clean_targets: bool,
        level_channel: bool = False,
        zoom: tuple[float, float] = (1.0, 1.0),
        draw_targets: bool = True,
        aliased: float = 0.0,
        level_jitter: float = 0.0,
        level_overstate: float = 0.0,
    ) -> None:
        if not draw_targets and (clean_targets or not level_channel):
            raise ValueError("only a level channel's source can leave out the targets")
        self.images = [img[None] for img in images]
        self.noise = noise
        self.patch = patch
        self.clean_targets = clean_targets
        self.level_channel = level_channel
        self.zoom = zoom
        self.draw_targets = draw_targets
        self.aliased = aliased
        self.level_jitter = level_jitter
        self.level_overstate = level_overstate

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        clean = self._clean_crops(size, generator)
        reference = clean
        if self.clean_targets:
            noisy, target = self.noise.apply(clean, generator), clean
        elif not self.draw_targets:
            noisy, reference = noisy_with_reference(self.noise, clean, generator)
            target = reference
        elif self.level_channel:
            noisy, target, reference = noisy_pair_with_reference(self.noise, clean, generator)
        else:
            noisy, target = noisy_pair(self.noise, clean, generator)
        if self.level_channel:
            level = (noisy - reference).square().mean(dim=(1, 2, 3)).sqrt()
            if self.level_jitter > 0:  # drawn only with a jitter, so that runs without one draw as before it existed
                level = level * torch.exp(self.level_jitter * (2 * torch.rand(len(level), generator=generator) - 1))
            if self.level_overstate > 0:  # likewise drawn only when asked for
                level = level + self.level_overstate * torch.rand(len(level), generator=generator)
            noisy = append_level_map(noisy, level)
        return noisy, target

    def _clean_crops(self, size: int, generator: torch.Generator) -> torch.Tensor:
        """`size` clean patch x patch crops; with a zoom (low, high), each scaled by a factor drawn
        log-uniformly from low to high: above 1 a smaller crop magnified (bicubic), as a
        high-resolution photo shows it; below 1 a larger crop shrunk (antialiased bicubic), whose
        averaging leaves denser detail and less of the source's own grain and JPEG artefacts. A
        share `aliased` of the shrunk crops is resampled without antialiasing: detail finer than
        the patch can hold folds back as aliasing, as in a photo from a camera without an
        optical low-pass filter or a cheap resizer, and the network learns to keep it."""
        low, high = self.zoom
        if low == high == 1:  # drawn only with a zoom, so that runs without one draw as before it existed
            return random_crops(self.images, size, self.patch, generator)[:, 0]
        crops = []
        for _ in range(size):
            # low * (high / low)^u: with low 1 (a single-number zoom) the draws of runs before ranges existed
            factor = low * (high / low) ** float(torch.rand(1, generator=generator))
            side = max(2, round(self.patch / factor))
            crop = random_crops(self.images, 1, side, generator)[:, 0]
            shrink = side > self.patch  # antialiased only when shrinking, so magnified runs draw as before
            # Drawn only with a share of aliased crops, so that runs without one draw as before it existed.
            aliased = shrink and self.aliased > 0 and float(torch.rand(1, generator=generator)) < self.aliased
            crops.append(
                F.interpolate(
                    crop, size=(self.patch, self.patch), mode="bicubic", align_corners=False, antialias=shrink and not aliased
                )
            )
        return torch.cat(crops).clamp(0, 1)


def parse_zoom(spec: str) -> tuple[float, float]:
    """`--zoom`'s value as the (low, high) range its factors are drawn from: "Z" is the range from
    1 to Z (the first form, kept so that earlier commands mean what they meant), "A-B" from A to B."""
    parts = spec.split("-")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(value > 0 for value in values):
        raise ValueError(f"--zoom takes a positive factor Z or a range A-B, got {spec!r}")
    return (1.0, values[0]) if len(values) == 1 else (values[0], values[1])


class DigitSource:
    """Whole 28 x 28 digits + a noise model (the digits are already the crops)."""

    def __init__(self, digits: torch.Tensor, noise: NoiseModel, clean_targets: bool) -> None:
        self.digits = digits
        self.noise = noise
        self.clean_targets = clean_targets

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        index = torch.randint(0, len(self.digits), (size,), generator=generator)
        clean = self.digits[index]
        noisy = self.noise.apply(clean, generator).clamp(0, 1)
        target = clean if self.clean_targets else self.noise.apply(clean, generator).clamp(0, 1)
        return noisy, target


class PooledDigitSource:
    """The seed's 14 -> 28 task: digits shrunk by 2 x 2 average pooling as input, the digit as target."""

    def __init__(self, digits: torch.Tensor) -> None:
        self.digits = digits

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        index = torch.randint(0, len(self.digits), (size,), generator=generator)
        digits = self.digits[index]
        return F.avg_pool2d(digits, 2), digits


class PairSource:
    """Aligned noisy pairs of the same scenes, each stacked as A over B (2 x C x H x W); either shot
    is the input, the other the target (without `swap`, A is always the input: B shots of more
    samples, lower-variance targets).

    With `level_channel` the input ends with a map of its noise level, read off the pair itself:
    two independent shots differ by noise of twice the variance, so sigma = RMS(A - B) / sqrt 2.
    With `normal_channels` (where a render's normal buffer sits among the channels), each crop's
    normals are turned by a rotation drawn uniformly for it (`turn_normals`), so that the network
    takes normals in any frame: world space as the training renders', camera space as Blender's.
    """

    def __init__(
        self,
        stacks: Sequence[torch.Tensor],
        patch: int,
        level_channel: bool = False,
        swap: bool = True,
        normal_channels: slice | None = None,
    ) -> None:
        # Each scene's shots come stacked (2 x C x H x W) and are kept as given: a copy would
        # double what a run holds (6,320 pairs of 128 x 128 renders with buffers are 7.5 GB).
        self.stacks = stacks
        self.patch = patch
        self.level_channel = level_channel
        self.swap = swap
        self.normal_channels = normal_channels

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        crops = random_crops(self.stacks, size, self.patch, generator, partners=2)
        # Drawn either way, so that a one-way run draws the same crops as a swapping one.
        swap = (torch.rand(size, generator=generator) < 0.5) & self.swap
        if self.normal_channels is not None:  # drawn last and only when asked for: the crops stay as without
            crops = turn_normals(crops, self.normal_channels, generator)
        first = torch.where(swap[:, None, None, None], crops[:, 1], crops[:, 0])
        second = torch.where(swap[:, None, None, None], crops[:, 0], crops[:, 1])
        if self.level_channel:
            first = append_level_map(first, crop_levels(first, second, clean_targets=False))
        return first, second


class DownscaleSource:
    """HR crops (lr_patch * scale) and their bicubic LR versions."""

    def __init__(self, images: Sequence[torch.Tensor], scale: int, lr_patch: int) -> None:
        self.images = [img[None] for img in images]
        self.scale = scale
        self.lr_patch = lr_patch

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        hr = random_crops(self.images, size, self.lr_patch * self.scale, generator)[:, 0]
        return downscale(hr, self.scale), hr


class MultiScaleSource:
    """MDSR's training data: each batch at one of several scales, drawn from the batch's generator."""

    def __init__(self, images: Sequence[torch.Tensor], scales: Sequence[int], lr_patch: int) -> None:
        self.sources = [DownscaleSource(images, scale, lr_patch) for scale in scales]

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        source = self.sources[torch.randint(0, len(self.sources), (1,), generator=generator).item()]
        return source.batch(size, generator)
