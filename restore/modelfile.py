"""The model file: one `.safetensors` file carries the weights and everything needed to rebuild
the network (spandrel's rule), as string metadata in the safetensors header:

  format            "restore-model"
  format_version    "1"
  name, description free text
  architecture      a name in restore.archs.ARCHITECTURES
  config            the architecture's config dataclass as JSON
  task              "denoise" or "upscale"
  scales            JSON list of output scales, [1] for denoisers
  noise             the noise the model removes, e.g. "gaussian:0-50" ("none" for upscalers)
  channels          colour channels in and out
  value_range       JSON [low, high] of the pixel values the network expects
  transfer          "srgb" (display-referred 8/16-bit images) or "linear" (HDR renders)
  input_transform   "none", or "hdr": the network sees auto-exposed, tone-mapped input and
                    outputs exposed linear values (restore.hdr), or "hdr-demodulated": the same
                    with the colour divided by the albedo buffer first, or "hdr-log" /
                    "hdr-log-demodulated": log radiance in and out; absent in older files = "none"
  aux               JSON list of auxiliary buffers the network takes after the colour channels,
                    e.g. ["albedo", "normal"] (3 channels each); [] when absent
  aux_prefilter     the model that cleans those buffers before the network sees them: a bundled
                    name or a path (a relative one from this file's folder); restore.api.load
                    loads it beside the network; "" or absent: none
  training          JSON summary: data, command, steps, wall time, device, metrics

Loading never unpickles: pickled checkpoints (.pth, .pt, ...) are refused.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from restore.archs import Restorer, build
from restore.hdr import INPUT_TRANSFORMS, is_demodulated
from restore.io.images import ImageError, atomic_write

FORMAT = "restore-model"
FORMAT_VERSION = "1"
PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".bin"}


class ModelFileError(Exception):
    """A model file cannot be read or written; the message is one line."""


@dataclass
class ModelInfo:
    """What a model file says about its network (all of it lives in the file's metadata)."""

    name: str
    architecture: str
    config: dict[str, Any]
    task: str
    scales: list[int] = field(default_factory=lambda: [1])
    noise: str = "none"
    channels: int = 3
    value_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    transfer: str = "srgb"
    input_transform: str = "none"
    aux: list[str] = field(default_factory=list)
    aux_prefilter: str = ""
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        """The safetensors header metadata: every value a string."""
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for key, value in asdict(self).items():
            meta[key] = value if isinstance(value, str) else json.dumps(value)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> ModelInfo:
        """Parse the header metadata; raise ModelFileError when it is not a restore model file."""
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"'{source}' is a safetensors file but not a restore model (no '{FORMAT}' metadata)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"'{source}' has model format version {meta.get('format_version')}; this restore reads {FORMAT_VERSION}"
            )
        values: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            if name not in meta:
                continue
            values[name] = meta[name] if kind == "str" else json.loads(meta[name])
        try:
            return cls(**values)
        except TypeError as err:
            raise ModelFileError(f"'{source}' has incomplete metadata: {err}") from None


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"refusing to load '{path}': pickled checkpoints can run arbitrary code; restore reads .safetensors model files only"
        )


def read_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model file's metadata without loading its weights."""
    path = Path(path)
    _refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise ModelFileError(f"no such model file: '{path}'") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"'{path}' is not a readable .safetensors model file ({_one_line(err)})") from None
    return ModelInfo.from_metadata(meta, str(path))


def load_model_file(path: str | os.PathLike[str]) -> tuple[Restorer, ModelInfo]:
    """Rebuild the network of a model file from the file alone, in eval mode on the CPU."""
    path = Path(path)
    info = read_info(path)
    _check_shapes_before_building(path, info)
    try:
        network = build(info.architecture, info.config)
    except (ValueError, TypeError) as err:
        raise ModelFileError(f"'{path}': {_one_line(err)}") from None
    problem = _contradiction(info, network)
    if problem:
        raise ModelFileError(f"'{path}': {problem}")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {key: f.get_tensor(key) for key in f.keys()}
        network.load_state_dict(state, strict=True)
    except ValueError as err:
        raise ModelFileError(f"'{path}': {_one_line(err)}") from None
    except (SafetensorError, RuntimeError, OSError) as err:
        raise ModelFileError(f"'{path}': weights do not match the {info.architecture} config ({_one_line(err)})") from None
    # A network with a NaN or infinite weight turns every image into NaN (written as black):
    # refuse it here, once, rather than write wrong images with success.
    broken = sum(int((~torch.isfinite(w)).sum()) for w in state.values() if w.is_floating_point())
    if broken:
        raise ModelFileError(f"'{path}': {broken} weights are NaN or infinite; the file is unusable")
    return network.eval(), info


def _contradiction(info: ModelInfo, network: Restorer) -> str | None:
    """Where the metadata says what the rebuilt network does not do, else None: task, scales,
    colour channels and buffers are what callers go by (a file claiming the wrong task would be
    run as a denoiser and return a bigger image)."""
    upscales = max(network.scales) > 1
    if upscales != (info.task == "upscale"):
        does = f"upscales x{'/x'.join(map(str, network.scales))}" if upscales else "keeps the image size"
        return f"its metadata says {info.task}, but its {info.architecture} network {does}"
    if sorted(info.scales) != sorted(network.scales):
        return f"its metadata says scales {sorted(info.scales)}, but its network has {sorted(network.scales)}"
    if info.channels != network.out_channels:
        return f"its metadata says {info.channels} channels, but its network outputs {network.out_channels}"
    if network.in_channels < info.channels + 3 * len(info.aux):
        buffers = f" and the {' and '.join(info.aux)} buffers" if info.aux else ""
        return f"its network takes {network.in_channels} input channels, fewer than {info.channels} colour channels{buffers}"
    if info.input_transform not in INPUT_TRANSFORMS:
        return f"its input transform '{info.input_transform}' is none of {', '.join(INPUT_TRANSFORMS)}"
    if info.aux_prefilter and not info.aux:
        return f"it names the buffer prefilter '{info.aux_prefilter}' but takes no buffers"
    if is_demodulated(info.input_transform) and info.aux[:1] != ["albedo"]:
        return "its input is demodulated by an albedo buffer, but albedo is not its first buffer"
    return None


MAX_PARAMETERS = 1_000_000_000
"""The most parameters a model file may ask for: 4 GB of fp32 weights, far above any restorer here."""


def _check_shapes_before_building(path: Path, info: ModelInfo) -> None:
    """Compare the network the metadata describes with the tensors the file holds, without
    allocating either: the network is built on the meta device and the file's shapes come from
    its header. Untrusted metadata could otherwise ask for a network of any size."""
    try:
        with torch.device("meta"):
            described = build(info.architecture, info.config)
        with safe_open(str(path), framework="pt") as f:
            stored = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (ValueError, TypeError) as err:
        raise ModelFileError(f"'{path}': {_one_line(err)}") from None
    except (SafetensorError, OSError) as err:
        raise ModelFileError(f"'{path}': unreadable weights ({_one_line(err)})") from None
    if described.built_from_weights:
        # The tensors are the network's definition; their size is all there is to check.
        parameters = sum(math.prod(shape) for shape in stored.values())
        if parameters > MAX_PARAMETERS:
            raise ModelFileError(f"'{path}': it holds {parameters:,} weights (at most {MAX_PARAMETERS:,})")
        return
    parameters = sum(t.numel() for t in described.state_dict().values())
    if parameters > MAX_PARAMETERS:
        raise ModelFileError(f"'{path}': its config asks for {parameters:,} parameters (at most {MAX_PARAMETERS:,})")
    expected = {key: tuple(t.shape) for key, t in described.state_dict().items()}
    if expected != stored:
        differing = sorted(set(expected.items()) ^ set(stored.items()))
        first = differing[0][0] if differing else "?"
        raise ModelFileError(f"'{path}': weights do not match the {info.architecture} config (first difference: {first})")


def save_model_file(path: str | os.PathLike[str], network: Restorer, info: ModelInfo, overwrite: bool = False) -> None:
    """Write network weights and metadata as image outputs are written (restore.io.images.atomic_write):
    a hidden temporary beside `path`, flushed to disk, then moved into place; an existing file is
    replaced only with `overwrite` (and keeps its permissions), else ModelFileError."""
    path = Path(path)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in network.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)

    def encode(tmp: str) -> None:
        mode = os.stat(tmp).st_mode
        save_file(state, tmp, metadata=info.to_metadata())
        os.chmod(tmp, mode)  # safetensors writes a fresh, private file in the temp file's place

    try:
        atomic_write(str(path), overwrite, encode)
    except ImageError as err:
        raise ModelFileError(str(err).replace("cannot write", "cannot write model file", 1)) from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
