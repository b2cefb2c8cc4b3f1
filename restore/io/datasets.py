"""Data on disk as tensors: image folders, MNIST's IDX files, a render's albedo / normal buffers,
Noise2Noise pairs matched by name and real (noisy, clean) camera pairs.

Training (restore.training.sources), evaluation and the command line all read their files here.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from restore.io.images import EXR_BUFFER_LAYERS, READ_FORMATS, exr_buffers, read_image


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
    return [_pixels_tensor(read_image(f).pixels, channels) for f in files]


def _pixels_tensor(pixels: np.ndarray, channels: int | None) -> torch.Tensor:
    """H x W x C pixels as a C x H x W tensor, converted to `channels` if given."""
    image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    return image if channels is None else to_channels(image, channels)


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


# Auxiliary buffers of a render sit beside its colour image as NAME.albedo.EXT and NAME.normal.EXT
# (or in its own file, as multilayer EXR layers: restore.io.images.EXR_BUFFER_LAYERS, the same names).
AUX_BUFFERS = tuple(EXR_BUFFER_LAYERS)


def is_aux_buffer(path: Path) -> bool:
    """True for NAME.albedo.EXT and NAME.normal.EXT: buffers that belong to NAME.EXT, not images of their own."""
    return Path(path.stem).suffix.lstrip(".") in AUX_BUFFERS


def aux_path(image: Path, buffer: str) -> Path:
    """Where the `buffer` ("albedo", "normal") of a render sits: NAME.albedo.EXT beside NAME.EXT."""
    return image.with_name(f"{image.stem}.{buffer}{image.suffix}")


def has_aux_buffers(image: Path) -> bool:
    """Whether a render has every buffer of AUX_BUFFERS: NAME.BUFFER.EXT beside it, or a layer of
    its own file (a multilayer EXR's header says)."""
    missing = [buffer for buffer in AUX_BUFFERS if not aux_path(image, buffer).is_file()]
    return not missing or set(missing) <= set(exr_buffers(image))


def load_aux(
    image: Path,
    buffers: Sequence[str],
    given: Mapping[str, Path] | None = None,
    embedded: Mapping[str, np.ndarray] | None = None,
) -> torch.Tensor:
    """The auxiliary buffers of a render stacked as channels (3 per buffer), C x H x W float32:
    each the file named in `given`, else NAME.BUFFER.EXT beside the image, else the layer of the
    image's own file (a multilayer EXR; `embedded`, its `Image.buffers`, where it was read already)."""
    planes = []
    for buffer in buffers:
        path = (given or {}).get(buffer) or aux_path(image, buffer)
        if buffer not in (given or {}) and not path.is_file():
            if embedded is None:
                embedded = read_image(image).buffers if buffer in exr_buffers(image) else {}
            if buffer in embedded:
                planes.append(torch.from_numpy(np.ascontiguousarray(embedded[buffer].transpose(2, 0, 1))))
                continue
        if not path.is_file():
            raise ValueError(f"'{image.name}' needs its {buffer} buffer: '{path}' does not exist")
        planes.append(to_channels(load_images([path])[0], 3))
    return torch.cat(planes)


def load_render(image: Path, buffers: Sequence[str], channels: int | None = None) -> torch.Tensor:
    """A render's colour (converted to `channels` if given) with its `buffers` stacked after it
    (`load_aux`), C x H x W float32, its file read once: a multilayer EXR's colour and its buffer
    layers come from one decode."""
    read = read_image(image)
    colour = _pixels_tensor(read.pixels, channels)
    return torch.cat([colour, load_aux(image, buffers, embedded=read.buffers)]) if buffers else colour


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
