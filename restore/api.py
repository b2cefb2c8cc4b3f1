"""The library API: `load`, `denoise` and `upscale` on tensors and arrays.

The CLI is a thin layer over these functions. Images are float values in the model's range
([0, 1] for photos): a torch tensor C x H x W or N x C x H x W, or a numpy array H x W or
H x W x C. The result has the input's type and layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from restore.archs import Restorer
from restore.device import resolve_device, resolve_precision
from restore.modelfile import ModelFileError, ModelInfo, load_model_file
from restore.tiling import TileCallback, run_tiled
from restore.zoo import bundled_models, bundled_path

DEFAULT_DENOISER = "n2n-gaussian"
DEFAULT_UPSCALERS = {2: "edsr-x2", 3: "edsr-x3", 4: "edsr-x4"}

ImageLike = TypeVar("ImageLike", torch.Tensor, np.ndarray)


@dataclass
class Model:
    """A loaded model: the network, what its file says about it, and where it came from."""

    network: Restorer
    info: ModelInfo
    source: str

    @property
    def name(self) -> str:
        return self.info.name


def load(name_or_path: str | os.PathLike[str]) -> Model:
    """Load a bundled model by name (sha256-checked) or a `.safetensors` model file by path."""
    text = str(name_or_path)
    looks_like_path = os.sep in text or Path(text).suffix != "" or Path(text).exists()
    path = Path(text) if looks_like_path else bundled_path(text)
    network, info = load_model_file(path)
    return Model(network, info, str(path))


def _as_model(model: Model | str | os.PathLike[str]) -> Model:
    return model if isinstance(model, Model) else load(model)


def _to_batch(image: ImageLike) -> tuple[torch.Tensor, str]:
    """Any supported layout -> (N x C x H x W float32 CPU tensor, layout tag)."""
    if isinstance(image, np.ndarray):
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            return torch.from_numpy(array.copy())[None, None], "np-hw"
        if array.ndim == 3:
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None], "np-hwc"
        raise ValueError(f"numpy images are H x W or H x W x C, got shape {array.shape}")
    if isinstance(image, torch.Tensor):
        tensor = image.detach().to("cpu", torch.float32)
        if tensor.dim() == 3:
            return tensor[None], "chw"
        if tensor.dim() == 4:
            return tensor, "nchw"
        raise ValueError(f"tensors are C x H x W or N x C x H x W, got shape {tuple(tensor.shape)}")
    raise TypeError(f"expected a torch.Tensor or numpy.ndarray, got {type(image).__name__}")


def _from_batch(batch: torch.Tensor, layout: str) -> torch.Tensor | np.ndarray:
    if layout == "np-hw":
        return batch[0, 0].numpy()
    if layout == "np-hwc":
        return batch[0].permute(1, 2, 0).contiguous().numpy()
    return batch[0] if layout == "chw" else batch


def run_model(
    model: Model,
    image: ImageLike,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
) -> ImageLike:
    """Run a loaded model over an image (each image of a batch in turn), through the tiler.

    A gray image given to a colour model is run as three equal channels and averaged back.
    """
    batch, layout = _to_batch(image)
    network = model.network
    channels = batch.shape[1]
    if channels not in (network.in_channels, 1):
        raise ValueError(f"model '{model.name}' takes {network.in_channels}-channel images, got {channels} channels")
    gray_on_colour = channels == 1 and network.in_channels == 3
    dev = resolve_device(device)
    key = f"{model.info.architecture}:{model.info.config}"
    dtype = resolve_precision(dev, precision, network, key)
    outputs = []
    for single in batch.split(1):
        x = single.expand(-1, 3, -1, -1) if gray_on_colour else single
        y = run_tiled(network, x, tile=tile, device=dev, dtype=dtype, max_memory=max_memory, on_tile=on_tile)
        outputs.append(y.mean(dim=1, keepdim=True) if gray_on_colour else y)
    return _from_batch(torch.cat(outputs), layout)


def denoise(
    image: ImageLike,
    model: Model | str | os.PathLike[str] = DEFAULT_DENOISER,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
) -> ImageLike:
    """Denoise an image (values in [0, 1] for photos) with a bundled model name, a path or a Model."""
    return run_model(
        denoiser(model), image, device=device, precision=precision, tile=tile, max_memory=max_memory, on_tile=on_tile
    )


def denoiser(model: Model | str | os.PathLike[str] = DEFAULT_DENOISER) -> Model:
    """The given model (name, path or Model), checked to be a denoiser."""
    loaded = _as_model(model)
    if loaded.info.task != "denoise":
        raise ModelFileError(f"model '{loaded.name}' is a {loaded.info.task} model, not a denoiser")
    return loaded


def upscaler_for(scale: int, model: Model | str | os.PathLike[str] | None = None) -> Model:
    """The model to upscale by `scale`: the given one (switched to that scale) or the bundled default."""
    if model is None:
        bundled = bundled_models()
        available = sorted(s for s, name in DEFAULT_UPSCALERS.items() if name in bundled)
        if DEFAULT_UPSCALERS.get(scale) not in bundled:
            offered = ", ".join(f"x{s}" for s in available) or "none"
            raise ModelFileError(f"no bundled x{scale} upscaler (bundled: {offered}); give one with --model")
        model = DEFAULT_UPSCALERS[scale]
    loaded = _as_model(model)
    if loaded.info.task != "upscale":
        raise ModelFileError(f"model '{loaded.name}' is a {loaded.info.task} model, not an upscaler")
    if scale not in loaded.network.scales:
        raise ValueError(f"model '{loaded.name}' upscales x{'/x'.join(map(str, loaded.network.scales))}, not x{scale}")
    loaded.network.select_scale(scale)
    return loaded


def upscale(
    image: ImageLike,
    scale: int = 2,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
) -> ImageLike:
    """Upscale an image by 2, 3 or 4 with the bundled EDSR for that scale, or `model`."""
    loaded = upscaler_for(scale, model)
    return run_model(loaded, image, device=device, precision=precision, tile=tile, max_memory=max_memory, on_tile=on_tile)
