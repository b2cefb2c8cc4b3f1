"""`restore import`: a community model (ESRGAN, SwinIR, DRUNet, ...) as a restore model file.

The weights are read without running code: `.safetensors` directly, `.pth` / `.pt` / `.ckpt`
/ `.bin` through torch's weights-only unpickler, which refuses any pickle that would build
something other than tensors and plain containers. spandrel recognises the architecture; what
the tiler needs is measured here once and stored in the file: the receptive margin (so that
tiled == whole) or, where spandrel advises against tiling or no margin suffices, "run whole".
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import spandrel  # the optional extra restore-images[spandrel]
import torch
from safetensors.torch import load_file

from restore.archs.spandrel_net import SpandrelConfig, SpandrelNet, describe
from restore.modelfile import ModelFileError, ModelInfo, save_model_file

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
LARGEST_FIELD = 512  # a receptive margin beyond this many pixels: the network runs whole


def read_community_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of a community model file, read without running any code from it."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        state = load_file(str(path))
    elif path.suffix.lower() in PICKLE_SUFFIXES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on pickle protocols
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            # torch's message is a paragraph; one line of it names what was refused.
            found = re.search(r"(?:WeightsUnpickler error:\s*|\n)((?:Unsupported|Trying to load)[^\n]+)", str(err))
            reason = found[1].strip() if found else "not plain tensors"
            raise ModelFileError(f"'{path}': refused, the pickle holds more than weights ({reason})") from None
    else:
        raise ModelFileError(f"'{path}': restore imports .safetensors, {', '.join(PICKLE_SUFFIXES)} files")
    state = spandrel.canonicalize_state_dict(state)  # unwraps "params_ema", "state_dict", ...
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"'{path}': no state dict of tensors in it")
    return state


def measure_receptive_margin(descriptor: Any, grid: int) -> int | None:
    """Input pixels on each side of a grid cell that its outputs depend on, from input gradients
    of a random image; None when the dependence reaches every edge of a large image."""
    model = descriptor.model.float().eval()
    call = getattr(descriptor, "_call_fn", None) or (lambda m, x: m(x))  # before spandrel's clamp
    size = 4 * max(16, grid)
    while size <= 2 * LARGEST_FIELD + 2 * grid:
        image = torch.rand(1, descriptor.input_channels, size, size, requires_grad=True)
        top = size // 2 // grid * grid  # one grid cell in the middle: every alignment at once
        cell = slice(top * descriptor.scale, (top + grid) * descriptor.scale)
        call(model, image)[..., cell, cell].sum().backward()
        reached = image.grad.abs().sum(dim=(0, 1)).nonzero()
        first, last = int(reached.min()), int(reached.max())
        if first > 0 and last < size - 1:
            return max(top - first, last - (top + grid - 1))
        size *= 2
    return None


def import_model(
    source: str | os.PathLike[str], out: str | os.PathLike[str], name: str = "", overwrite: bool = False
) -> ModelInfo:
    """Write the restore model file `out` for a community model file; return its metadata."""
    source, out = Path(source), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"'{out}' exists (--overwrite, or overwrite=True in the library, replaces it)")
    try:
        descriptor = describe(read_community_weights(source))
    except ValueError as err:
        raise ModelFileError(f"'{source}': {err}") from None
    grid = descriptor.size_requirements.multiple_of
    margin = measure_receptive_margin(descriptor, grid) if descriptor.tiling == spandrel.ModelTiling.SUPPORTED else None
    widest = max((m.out_channels for m in descriptor.model.modules() if isinstance(m, torch.nn.Conv2d)), default=64)
    config = SpandrelConfig(
        arch=descriptor.architecture.id,
        scale=descriptor.scale,
        in_channels=descriptor.input_channels,
        out_channels=descriptor.output_channels,
        size_multiple=grid,
        receptive_margin=margin or 0,
        tileable=margin is not None,
        floats_per_pixel=4 * widest * descriptor.scale**2,
    )
    network = SpandrelNet(config)
    network.attach(descriptor)
    task = "upscale" if descriptor.scale > 1 else "denoise"
    info = ModelInfo(
        name=name or source.stem,
        architecture=SpandrelNet.architecture,
        config=network.config_dict(),
        task=task,
        scales=[descriptor.scale],
        noise="unknown (imported)" if task == "denoise" else "none",
        channels=descriptor.output_channels,
        description=f"{descriptor.architecture.id} ({descriptor.purpose}), imported from {source.name} through spandrel",
        training={"imported_from": source.name, "spandrel_architecture": descriptor.architecture.id, "tags": descriptor.tags},
    )
    save_model_file(out, network.float().cpu().eval(), info, overwrite=overwrite)
    return info
