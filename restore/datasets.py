"""Training data: where (input, target) batches come from.

Every source draws a batch from a torch.Generator seeded by the step number, so a run that
resumes from a checkpoint sees exactly the batches it would have seen without the kill.

- `NoisySource`: clean photos from a folder; input and target are two independent noise draws
  (Noise2Noise), or the target is the clean crop (`clean_targets`).
- `PairSource`: two folders of noisy shots of the same scenes, matched by file name.
- `DownscaleSource`: HR crops and their bicubic (MATLAB imresize) LR versions, rounded to 8 bits;
  `MultiScaleSource` mixes scales batch by batch (one network for x2, x3 and x4).
- `DigitSource`, `PooledDigitSource`: MNIST digits (IDX files) with noise, or shrunk by 2 x 2
  average pooling for the 14 -> 28 upscaler.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from restore.ensemble import TRANSFORMS, dihedral
from restore.imageio import READ_FORMATS, read_image
from restore.noise import NoiseModel, noisy_pair
from restore.resize import imresize

Batch = tuple[torch.Tensor, torch.Tensor]


def image_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Readable image files under `folder`, sorted by path (so splits are reproducible)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: '{folder}'")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in READ_FORMATS)


# ITU-R BT.601 luma, the weights of MATLAB's rgb2gray that made the gray benchmark sets.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """C x H x W image with `channels` channels: colour -> gray by BT.601 luma, gray -> colour by copying."""
    have = image.shape[-3]
    if have == channels:
        return image
    if have == 3 and channels == 1:
        weights = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True)
    if have == 1 and channels == 3:
        return image.expand(3, -1, -1).contiguous()
    raise ValueError(f"cannot convert a {have}-channel image to {channels} channels")


def load_images(files: Sequence[Path], channels: int | None = None) -> list[torch.Tensor]:
    """Read files as C x H x W float32 tensors (colour channels only), converted to `channels` if given."""
    images = [torch.from_numpy(read_image(f).pixels).permute(2, 0, 1).contiguous() for f in files]
    return images if channels is None else [to_channels(image, channels) for image in images]


def is_mnist_folder(folder: str | Path) -> bool:
    return (Path(folder) / "train-images-idx3-ubyte.gz").is_file()


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of the original MNIST distribution."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(folder: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits as N x 1 x 28 x 28 floats in [0, 1], and their labels."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(Path(folder) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


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


class NoisySource:
    """Clean images + a noise model -> (noisy input, independently noisy or clean target)."""

    def __init__(self, images: Sequence[torch.Tensor], noise: NoiseModel, patch: int, clean_targets: bool) -> None:
        self.images = [img[None] for img in images]
        self.noise = noise
        self.patch = patch
        self.clean_targets = clean_targets

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        clean = random_crops(self.images, size, self.patch, generator)[:, 0]
        if self.clean_targets:
            return self.noise.apply(clean, generator), clean
        return noisy_pair(self.noise, clean, generator)


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
    """Aligned noisy pairs (A, B) of the same scenes; either shot is the input, the other the target."""

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], patch: int) -> None:
        self.stacks = [torch.stack([a, b]) for a, b in pairs]
        self.patch = patch

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        crops = random_crops(self.stacks, size, self.patch, generator, partners=2)
        swap = torch.rand(size, generator=generator) < 0.5
        first = torch.where(swap[:, None, None, None], crops[:, 1], crops[:, 0])
        second = torch.where(swap[:, None, None, None], crops[:, 0], crops[:, 1])
        return first, second


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The benchmark degradation: MATLAB bicubic with antialiasing from [0, 255], rounded to 8 bits."""
    return (imresize(hr * 255, scale=1 / scale).round().clamp(0, 255)) / 255


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


# Auxiliary buffers of a render sit beside its colour image as NAME.albedo.EXT and NAME.normal.EXT.
AUX_BUFFERS = ("albedo", "normal")


def is_aux_buffer(path: Path) -> bool:
    """True for NAME.albedo.EXT and NAME.normal.EXT: buffers that belong to NAME.EXT, not images of their own."""
    return Path(path.stem).suffix.lstrip(".") in AUX_BUFFERS


def aux_path(image: Path, buffer: str) -> Path:
    """Where the `buffer` ("albedo", "normal") of a render sits: NAME.albedo.EXT beside NAME.EXT."""
    return image.with_name(f"{image.stem}.{buffer}{image.suffix}")


def load_aux(image: Path, buffers: Sequence[str], given: Mapping[str, Path] | None = None) -> torch.Tensor:
    """The auxiliary buffers of a render stacked as channels (3 per buffer), C x H x W float32:
    each the file named in `given`, else NAME.BUFFER.EXT beside the image."""
    planes = []
    for buffer in buffers:
        path = (given or {}).get(buffer) or aux_path(image, buffer)
        if not path.is_file():
            raise ValueError(f"'{image.name}' needs its {buffer} buffer: '{path}' does not exist")
        planes.append(to_channels(load_images([path])[0], 3))
    return torch.cat(planes)


def match_pairs(folder_a: str | Path, folder_b: str | Path) -> list[tuple[Path, Path]]:
    """Files of A and B with the same relative name (auxiliary buffers aside); ValueError listing what does not match."""
    a_files = {p.relative_to(folder_a).as_posix(): p for p in image_files(folder_a) if not is_aux_buffer(p)}
    b_files = {p.relative_to(folder_b).as_posix(): p for p in image_files(folder_b) if not is_aux_buffer(p)}
    only_a = sorted(set(a_files) - set(b_files))
    only_b = sorted(set(b_files) - set(a_files))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in {folder_a}: {', '.join(only_a[:5])}{' ...' if len(only_a) > 5 else ''}")
        if only_b:
            parts.append(f"only in {folder_b}: {', '.join(only_b[:5])}{' ...' if len(only_b) > 5 else ''}")
        raise ValueError("unmatched files; " + "; ".join(parts))
    if not a_files:
        raise ValueError(f"no images in '{folder_a}'")
    return [(a_files[name], b_files[name]) for name in sorted(a_files)]


def center_crop(image: torch.Tensor, size: int, multiple: int = 1) -> torch.Tensor:
    """The central crop of at most size x size pixels of a (... x) H x W image, its sides rounded
    down to `multiple` (an upscaler's HR crop must stay a multiple of the scale)."""
    h, w = image.shape[-2:]
    ch, cw = min(h, size) // multiple * multiple, min(w, size) // multiple * multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[..., y : y + ch, x : x + cw]


def real_pairs(folder: str) -> list[tuple[Path, Path]]:
    """The (noisy, clean) files of a folder of NAME_noisy.EXT / NAME_clean.EXT pairs, sorted by name."""
    noisy_files = [p for p in image_files(folder) if p.stem.endswith("_noisy")]
    pairs = [(p, p.with_name(p.stem[: -len("_noisy")] + "_clean" + p.suffix)) for p in noisy_files]
    missing = [clean.name for _, clean in pairs if not clean.is_file()]
    if missing:
        raise ValueError(f"'{folder}': no clean partner {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if not pairs:
        raise ValueError(f"no NAME_noisy / NAME_clean pairs in '{folder}'")
    return pairs


def split_real_pairs(pairs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Split real pairs into (selection, unseen): every other pair by name, first one included.

    A run may pick its checkpoint by its score on the selection half (`restore train
    --val-pairs`); the unseen half then still gives an unbiased report. Alternating by name
    spreads each camera and scene over both halves (the PolyU names start with the camera).
    """
    return pairs[0::2], pairs[1::2]
