"""The library API: `load`, `denoise` and `upscale` on tensors and arrays.

The CLI is a thin layer over these functions. Images are float values in the model's range
([0, 1] for photos): a torch tensor C x H x W or N x C x H x W, or a numpy array H x W or
H x W x C. The result has the input's type and layout.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from restore.archs import Restorer
from restore.archs.unet import with_level_map
from restore.device import on_device, resolve_device, resolve_memory_format, resolve_precision
from restore.ensemble import TRANSFORMS, self_ensemble
from restore.hdr import HDR_LOSSES, is_hdr, keep_converged, network_input
from restore.io.datasets import has_aux_buffers, image_files, is_aux_buffer
from restore.modelfile import ModelFileError, ModelInfo, load_model_file
from restore.resize import center_crop, imresize
from restore.tiling import TileCallback, run_tiled
from restore.zoo import bundled_models, bundled_path

DEFAULT_DENOISER = "n2n-gaussian"  # colour images when no photo model is bundled
PHOTO_DENOISER = "n2n-photo-level"  # colour photos: camera noise, 8 bits, JPEG; told the level it reads
GRAY_DENOISER = "n2n-gray-level"  # gray images: told the level its estimator reads (n2n-gray is the blind one)
RENDER_DENOISER = "n2n-mc"  # linear HDR input (EXR, PFM, float TIFF)
RENDER_AUX_DENOISER = "n2n-mc-aux"  # ... with albedo and normal buffers
DEFAULT_UPSCALERS = {2: "edsr-x2", 3: "edsr-x3", 4: "edsr-x4"}

ImageLike = TypeVar("ImageLike", torch.Tensor, np.ndarray)


@dataclass
class Model:
    """A loaded model: the network, what its file says about it, and where it came from."""

    network: Restorer
    info: ModelInfo
    source: str
    aux_prefilter: Model | None = None  # what cleans the buffers first (`info.aux_prefilter`, loaded with it)

    @property
    def name(self) -> str:
        return self.info.name


@dataclass(frozen=True)
class InferenceOptions:
    """How a model is run over an image: the one options object of inference, taken by
    `run_model`, built by `denoise` and `upscale` from their keywords, and extended by the file
    pipeline (`restore.pipeline.RunOptions`) with what files need. Invalid values raise ValueError."""

    device: str = "auto"  # "auto" (a GPU when there is one), "cpu", "cuda", "cuda:1", "mps"
    precision: str = "auto"  # "auto" (on a CPU: the fastest measured for the network), "fp32", "bf16", "fp16"
    tile: int | None = None  # tile core side in input pixels; None: the largest that fits max_memory
    max_memory: int | None = None  # bytes one tile may use; None: a share of the device's memory
    ensemble: bool = False  # average the 8 flips and rotations (8x the time)
    outscale: float | None = None  # resize the output (MATLAB bicubic) to this factor of the input size
    strength: float = 1.0  # level-conditioned models: told the level times this (0 returns the input)
    prefilter_aux: bool = True  # models with a buffer prefilter: clean the buffers with it first
    # Render models (HDR input): hand through the pixels whose neighbours agree with them, converged
    # estimates such as emitters and skies in view (restore.hdr.keep_converged).
    keep_converged: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"strength must be a number >= 0, got {self.strength}")
        if self.outscale is not None and not (math.isfinite(self.outscale) and self.outscale > 0):
            raise ValueError(f"outscale must be a positive number, got {self.outscale}")


def model_path(name_or_path: str | os.PathLike[str], beside: Path | None = None) -> Path:
    """The file of a bundled model name (sha256-checked) or of a path; a relative path named by
    another model file (`beside`) is taken from that file's folder."""
    text = str(name_or_path)
    if not (os.sep in text or Path(text).suffix != "" or Path(text).exists()):
        return bundled_path(text)
    return beside.parent / text if beside is not None and not Path(text).is_absolute() else Path(text)


def load(name_or_path: str | os.PathLike[str]) -> Model:
    """Load a bundled model by name (sha256-checked) or a `.safetensors` model file by path,
    with the buffer prefilter its file names."""
    path = model_path(name_or_path)
    network, info = load_model_file(path)
    return Model(network, info, str(path), _load_prefilter(info, path) if info.aux_prefilter else None)


def _load_prefilter(info: ModelInfo, path: Path) -> Model:
    """The buffer prefilter `info` names: a network from the model's buffers to the same buffers,
    which takes no buffers of its own and names no prefilter (so loading ends)."""
    try:
        prefilter_path = model_path(info.aux_prefilter, beside=path)
        network, prefilter_info = load_model_file(prefilter_path)
    except ModelFileError as err:
        raise ModelFileError(f"'{path}' names the buffer prefilter '{info.aux_prefilter}': {err}") from None
    channels = 3 * len(info.aux)
    maps_buffers = (network.in_channels, network.out_channels, network.scale) == (channels, channels, 1)
    if prefilter_info.aux or prefilter_info.aux_prefilter or not maps_buffers:
        raise ModelFileError(
            f"'{path}' names '{info.aux_prefilter}' as its buffer prefilter, which is no map from its "
            f"{channels} buffer channels to the same"
        )
    return Model(network, prefilter_info, str(prefilter_path))


def _as_model(model: Model | str | os.PathLike[str]) -> Model:
    return model if isinstance(model, Model) else load(model)


TASK_NOUNS = {"denoise": "a denoiser", "upscale": "an upscaler"}


def check_image_like(image: object) -> None:
    """Raise TypeError / ValueError for what no image layout reads, before any model is chosen or loaded:
    numpy H x W or H x W x C, torch H x W, C x H x W or N x C x H x W, with pixels."""
    if isinstance(image, np.ndarray):
        layouts = "numpy images are H x W or H x W x C"
        if image.ndim not in (2, 3):
            raise ValueError(f"{layouts}, got shape {image.shape}")
    elif isinstance(image, torch.Tensor):
        layouts = "tensors are H x W, C x H x W or N x C x H x W"
        if image.dim() not in (2, 3, 4):
            raise ValueError(f"{layouts}, got shape {tuple(image.shape)}")
    else:
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray image, got {type(image).__name__}")
    if 0 in image.shape:
        raise ValueError(f"the image has no pixels ({layouts}, got shape {tuple(image.shape)})")


def _to_batch(image: ImageLike) -> tuple[torch.Tensor, str]:
    """Any supported layout -> (N x C x H x W float32 CPU tensor, layout tag)."""
    check_image_like(image)
    if isinstance(image, np.ndarray):
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            return torch.from_numpy(array.copy())[None, None], "np-hw"
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None], "np-hwc"
    tensor = image.detach().to("cpu", torch.float32)
    if tensor.dim() == 2:
        return tensor[None, None], "hw"
    return (tensor[None], "chw") if tensor.dim() == 3 else (tensor, "nchw")


def _from_batch(batch: torch.Tensor, layout: str) -> torch.Tensor | np.ndarray:
    if layout == "np-hw":
        return batch[0, 0].numpy()
    if layout == "hw":
        return batch[0, 0]
    if layout == "np-hwc":
        return batch[0].permute(1, 2, 0).contiguous().numpy()
    return batch[0] if layout == "chw" else batch


def _timing_key(model: Model) -> str:
    """The key under which a network's measured CPU precision and layout are cached."""
    return f"{model.info.architecture}:{model.info.config}"


def resolved_precision(model: Model, device: str = "auto", precision: str = "auto") -> torch.dtype:
    """The precision `run_model` runs `model` in on `device`: "auto" is measured once per network on a CPU."""
    return resolve_precision(resolve_device(device), precision, model.network, _timing_key(model))


def run_model(
    model: Model,
    image: ImageLike,
    options: InferenceOptions = InferenceOptions(),
    *,
    on_tile: TileCallback | None = None,
    aux: ImageLike | None = None,
    noise_level: float | None = None,
) -> ImageLike:
    """Run a loaded model over an image (each image of a batch in turn), through the tiler, as
    `options` say (device, precision, tiles, self-ensemble, output scale, strength).

    A gray image given to a colour model is run as three equal channels and averaged back; a
    colour image given to a gray model is run channel by channel.
    `options.outscale` resizes the output to that factor of the input size, e.g. 1.5 after a
    x2 network. `on_tile` is called with (tiles done, tiles in all) as the run goes. HDR models
    (input transform "hdr") get the auto-exposed, tone-mapped image and return linear values;
    with "hdr-demodulated", the colour divided by the albedo buffer, and the output multiplied back;
    with "hdr-log" (and "hdr-log-demodulated"), log radiance in and out (restore.hdr).
    Models with auxiliary inputs (`model.info.aux`, e.g. albedo and normal of a render) need
    `aux`: those buffers stacked as channels, in the layout of `image`.
    A level-conditioned model (`model.network.takes_noise_level`) is told `noise_level` (sigma in
    0-255 units) or, without it, the level its estimator reads off each image
    (`estimate_noise_level`), times `options.strength`: below 1 keeps grain, above 1 removes
    more, and 0 returns the input. Other models have no such control and refuse a strength other than 1.
    """
    conditioned = model.network.takes_noise_level
    strength, outscale = options.strength, options.outscale
    if strength != 1 and not conditioned:
        raise ValueError(f"model '{model.name}' has no strength control (it is not conditioned on a noise level)")
    batch, layout = _to_batch(image)
    bad = int((~torch.isfinite(batch)).any(dim=1).sum())
    if bad:
        # One NaN would spread over its whole tile through the convolutions: say so instead.
        verb = "pixels are" if bad != 1 else "pixel is"
        fix = "restore.io.nonfinite.repair_nonfinite replaces them by their neighbours"
        raise ValueError(f"{bad} {verb} NaN or infinite ({fix})")
    if strength == 0:
        return _from_batch(batch, layout)  # told "no noise": the input, exactly
    network = model.network
    channels = batch.shape[1]
    colour_channels = _colour_channels(model)
    if channels not in (colour_channels, 1) and colour_channels != 1:
        raise ValueError(f"model '{model.name}' takes {colour_channels}-channel images, got {channels} channels")
    if model.info.aux:
        aux_batch = _to_batch(aux)[0] if aux is not None else None
        wanted = (batch.shape[0], 3 * len(model.info.aux), *batch.shape[-2:])
        if aux_batch is None or tuple(aux_batch.shape) != wanted or channels != colour_channels:
            needs = f"model '{model.name}' needs {' and '.join(model.info.aux)} buffers of the image's size"
            if channels != colour_channels:
                needs = f"model '{model.name}' takes an RGB render with its buffers, not a {channels}-channel image"
            elif aux_batch is not None and aux_batch.shape[-2:] != batch.shape[-2:]:
                (ah, aw), (h, w) = aux_batch.shape[-2:], batch.shape[-2:]
                needs += f": the buffers are {aw} x {ah}, the image {w} x {h}"
            raise ValueError(needs)
        prefilter = buffer_prefilter(model, options)
        if prefilter is not None:
            # Buffers traced along the colour's own few samples are noisy at edges and through
            # glass; the denoiser multiplies its output back by the albedo, so their noise would
            # land in the image. bench/results/mc-buffers.md measures what this gains.
            aux_batch = run_model(prefilter, aux_batch, replace(options, ensemble=False, outscale=None))
        batch = torch.cat([batch, aux_batch], dim=1)
    gray_on_colour = channels == 1 and colour_channels == 3
    dev = resolve_device(options.device)
    dtype = resolved_precision(model, options.device, options.precision)
    memory_format = resolve_memory_format(dev, dtype, network, _timing_key(model))
    network = on_device(network, dev, dtype, memory_format)  # once: the passes, channels and images below share it
    passes = TRANSFORMS if options.ensemble else 1

    def run_pass(x: torch.Tensor, index: int) -> torch.Tensor:
        def progress(done: int, total: int) -> None:
            if on_tile is not None:
                on_tile(index * total + done, passes * total)

        return run_tiled(
            network,
            x,
            tile=options.tile,
            device=dev,
            dtype=dtype,
            memory_format=memory_format,
            max_memory=options.max_memory,
            on_tile=progress,
        )

    def run_view(x: torch.Tensor) -> torch.Tensor:
        if conditioned:
            # One level for the whole image (per tile it would differ and leave seams).
            level = noise_level / 255 if noise_level is not None else _estimated_level(model.network, x)
            x = with_level_map(model.network, x, torch.tensor([level * strength]))
        return self_ensemble(run_pass, x) if options.ensemble else run_pass(x, 0)

    def run_image(x: torch.Tensor) -> torch.Tensor:
        if colour_channels == 1 and x.shape[1] > 1 and _same_channels(x, dim=1):
            # A gray network on a colour image whose channels are equal: one channel, run once.
            return run_view(x[:, :1]).expand(-1, x.shape[1], -1, -1).contiguous()
        y = torch.cat([run_view(view) for view in _network_views(x, colour_channels)], dim=1)
        return y.mean(dim=1, keepdim=True) if gray_on_colour else y

    outputs = []
    for single in batch.split(1):
        if is_hdr(model.info.input_transform):
            # Exposure from the whole image (per tile it would differ and leave seams).
            exposed, frame = network_input(single, network.out_channels, model.info.input_transform)
            y = frame.radiance(run_image(exposed))
            if options.keep_converged and y.shape[-2:] == single.shape[-2:]:  # a denoiser's output: pixel for pixel
                y = keep_converged(single[:, : y.shape[1]], y)
        else:
            y = run_image(single)
        if outscale is not None:
            h, w = single.shape[-2:]
            size = (max(1, round(h * outscale)), max(1, round(w * outscale)))
            y = y if size == tuple(y.shape[-2:]) else imresize(y, size=size)
        outputs.append(y)
    return _from_batch(torch.cat(outputs), layout)


def buffer_prefilter(model: Model, options: InferenceOptions) -> Model | None:
    """The network `run_model` cleans `model`'s buffers with first under `options`, if any."""
    return model.aux_prefilter if model.info.aux and options.prefilter_aux else None


LEVEL_CROP = 512  # the level is read off the central crop of at most this side: bounded memory, same estimate


def _estimated_level(network: Restorer, batch: torch.Tensor) -> float:
    """What a level-conditioned network's estimator reads off the central crop of a 1 x C x H x W image."""
    with torch.inference_mode():
        return float(network.estimate_level(center_crop(batch.float(), LEVEL_CROP))[0])  # type: ignore[operator]


def estimate_noise_level(model: Model, image: ImageLike) -> float | None:
    """The noise level (sigma in 0-255 units) a level-conditioned model reads off `image` (the
    first image of a batch), or None for models without a level estimator."""
    if not model.network.takes_noise_level:
        return None
    batch, _ = _to_batch(image)
    views = _network_views(batch[:1], _colour_channels(model))  # the images the network denoises
    return 255 * sum(_estimated_level(model.network, view) for view in views) / len(views)


def _colour_channels(model: Model) -> int:
    """How many image channels a model's network takes (its input less aux buffers and level map)."""
    return model.network.in_channels - 3 * len(model.info.aux) - int(model.network.takes_noise_level)


def _network_views(x: torch.Tensor, colour_channels: int) -> list[torch.Tensor]:
    """The images a network taking `colour_channels` channels is run on for the N x C x H x W `x`:
    a gray network sees a colour image channel by channel, a colour network sees a gray image
    as three equal channels; otherwise `x` itself. The one home of that decision, for the
    denoising and the level estimate alike."""
    if colour_channels == 1 and x.shape[1] > 1:
        return [x[:, c : c + 1] for c in range(x.shape[1])]
    if colour_channels == 3 and x.shape[1] == 1:
        return [x.expand(-1, 3, -1, -1)]
    return [x]


def _same_channels(x: torch.Tensor, dim: int) -> bool:
    """True when every channel along `dim` equals the first (a single channel counts)."""
    first = x.select(dim, 0)
    return all(torch.equal(first, x.select(dim, c)) for c in range(1, x.shape[dim]))


def is_gray(image: ImageLike) -> bool:
    """True for one-channel images and for colour images whose channels are all equal."""
    if isinstance(image, np.ndarray):  # compared in place: no float copy of a large image
        return image.ndim == 2 or _same_channels(torch.from_numpy(np.ascontiguousarray(image)), dim=-1)
    return image.dim() == 2 or _same_channels(image, dim=-3)


def default_denoiser(image: ImageLike, *, linear: bool = False, aux: bool = False) -> str:
    """The bundled denoiser picked for an image: for `linear` (HDR) pixels n2n-mc, or n2n-mc-aux
    when albedo and normal buffers come with them (`aux`); else n2n-gray-level for gray images and
    n2n-photo-level for colour ones (n2n-gaussian where it is not bundled). A model that is
    not bundled is skipped."""
    bundled = bundled_models()
    if linear and aux and RENDER_AUX_DENOISER in bundled:
        return RENDER_AUX_DENOISER
    if linear and RENDER_DENOISER in bundled:
        return RENDER_DENOISER
    if GRAY_DENOISER in bundled and is_gray(image):
        return GRAY_DENOISER
    return colour_denoiser()


def colour_denoiser() -> str:
    """The bundled model for colour photos: n2n-photo-level, or n2n-gaussian where it is not bundled."""
    return PHOTO_DENOISER if PHOTO_DENOISER in bundled_models() else DEFAULT_DENOISER


def finetune_base(loss: str, folders: Sequence[str | os.PathLike[str]] = ()) -> str:
    """The bundled denoiser a finetune starts from when none is given: for a loss of renders
    (`restore.hdr.HDR_LOSSES`) the render denoiser, the one with buffers when every shot in
    `folders` has its albedo and normal, beside it or as layers of its EXR (the model `restore
    denoise` would then pick for them); else the colour photo model (pairs of camera shots)."""
    if loss not in HDR_LOSSES:
        return colour_denoiser()
    bundled = bundled_models()
    if RENDER_AUX_DENOISER in bundled and folders and all(map(_renders_with_buffers, folders)):
        return RENDER_AUX_DENOISER
    return RENDER_DENOISER if RENDER_DENOISER in bundled else colour_denoiser()


def _renders_with_buffers(folder: str | os.PathLike[str]) -> bool:
    """Whether a folder holds renders and each has every auxiliary buffer (beside it or in its file)."""
    shots = [path for path in image_files(folder) if not is_aux_buffer(path)]
    return bool(shots) and all(map(has_aux_buffers, shots))


def denoise(
    image: ImageLike,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
    ensemble: bool = False,
    strength: float = 1.0,
    noise_level: float | None = None,
    albedo: ImageLike | None = None,
    normal: ImageLike | None = None,
) -> ImageLike:
    """Denoise an image (values in [0, 1] for photos) with a bundled model name, a path or a Model.

    Without a model, gray images (one channel, or equal channels) get `n2n-gray-level` and colour
    images `n2n-photo-level`. `ensemble` averages the 8 flips and rotations (8x the time).
    A level-conditioned model takes `strength` (below 1 keeps grain, above removes more, 0
    returns the input) and `noise_level` (sigma in 0-255 units; read off the image when None).
    A render's `albedo` and `normal` buffers (both, in the image's layout and size) make the image
    linear HDR radiance and go to a model that takes them: `n2n-mc-aux` when none is given, its
    buffer prefilter and the hand-through of converged pixels included, as `restore denoise` runs it.
    """
    check_image_like(image)
    if (albedo is None) != (normal is None):
        raise ValueError("a render's buffers come as a pair: give both albedo and normal, or neither")
    options = InferenceOptions(
        device=device, precision=precision, tile=tile, max_memory=max_memory, ensemble=ensemble, strength=strength
    )
    has_aux = albedo is not None and normal is not None
    chosen = denoiser(model if model is not None else default_denoiser(image, linear=has_aux, aux=has_aux))
    aux = None
    if has_aux:
        buffers = {"albedo": albedo, "normal": normal}
        if set(chosen.info.aux) != set(buffers):
            raise ValueError(f"model '{chosen.name}' takes no albedo and normal buffers (n2n-mc-aux does)")
        aux = torch.cat([_to_batch(buffers[name])[0] for name in chosen.info.aux], dim=1)  # in the model's order
    return run_model(chosen, image, options, on_tile=on_tile, aux=aux, noise_level=noise_level)


def denoiser(model: Model | str | os.PathLike[str] = DEFAULT_DENOISER) -> Model:
    """The given model (name, path or Model), checked to be a denoiser."""
    loaded = _as_model(model)
    if loaded.info.task != "denoise":
        raise ModelFileError(f"model '{loaded.name}' is {TASK_NOUNS.get(loaded.info.task, 'no denoiser')}, not a denoiser")
    return loaded


def upscaler_for(scale: int, model: Model | str | os.PathLike[str] | None = None) -> Model:
    """The model to upscale by `scale`: the given one (switched to that scale) or the bundled default."""
    if model is None:
        bundled = bundled_models()
        available = sorted(s for s, name in DEFAULT_UPSCALERS.items() if name in bundled)
        if DEFAULT_UPSCALERS.get(scale) not in bundled:
            offered = ", ".join(f"x{s}" for s in available) or "none"
            raise ModelFileError(
                f"no bundled x{scale} upscaler (bundled: {offered}); give one (--model, or model= in the library)"
            )
        model = DEFAULT_UPSCALERS[scale]
    loaded = _as_model(model)
    if loaded.info.task != "upscale":
        raise ModelFileError(f"model '{loaded.name}' is {TASK_NOUNS.get(loaded.info.task, 'no upscaler')}, not an upscaler")
    if scale not in loaded.network.scales:
        raise ValueError(f"model '{loaded.name}' upscales x{'/x'.join(map(str, loaded.network.scales))}, not x{scale}")
    loaded.network.select_scale(scale)
    return loaded


def network_scale_for(outscale: float | None) -> int:
    """The network scale for an output factor: the smallest of 2, 3, 4 that reaches it (4 beyond),
    so the resize after the network only ever shrinks or stretches a little; 2 without one."""
    if outscale is None:
        return 2
    return next((s for s in (2, 3, 4) if s >= outscale), 4)


def upscale(
    image: ImageLike,
    scale: int | None = None,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
    ensemble: bool = False,
    outscale: float | None = None,
) -> ImageLike:
    """Upscale an image by 2, 3 or 4 with the bundled EDSR for that scale, or `model`.

    `ensemble` averages the 8 flips and rotations (EDSR's "+"); `outscale` resizes the result
    to any factor of the input size. Without `scale`, the network scale is the one `outscale`
    needs (`network_scale_for`: x4 for 3.5), else 2.
    """
    check_image_like(image)
    scale = scale if scale is not None else network_scale_for(outscale)
    options = InferenceOptions(
        device=device, precision=precision, tile=tile, max_memory=max_memory, ensemble=ensemble, outscale=outscale
    )
    return run_model(upscaler_for(scale, model), image, options, on_tile=on_tile)
