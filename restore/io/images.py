"""Image files in and out without losing samples, precision, alpha or ICC profile.

Every image is read into an :class:`Image`: float32 colour channels (gray or RGB), an
optional separate alpha plane, the file's sample type and whether the values are
sRGB-encoded or linear. Integer files (u8, u16) become values in [0, 1]; float files
(EXR, PFM, Radiance HDR, float TIFF) keep their values exactly as stored.

Every format is one row of `FORMATS`. Libraries: Pillow for 8-bit PNG, JPEG, WebP and AVIF
(where Pillow has libavif); kornia_rs for 16-bit PNG; tifffile for
TIFF; OpenEXR for EXR. PFM and Radiance HDR are small enough to do by hand.

Alpha is passed through as stored: nothing is premultiplied or unpremultiplied
(OpenEXR files conventionally hold premultiplied colour, PNG/WebP/TIFF straight).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import kornia_rs.io as kio
import numpy as np
import OpenEXR
import tifffile
from PIL import ExifTags, ImageOps
from PIL import Image as PILImage
from PIL import features as PILFeatures

__all__ = [
    "FORMATS",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "Image",
    "ImageError",
    "ImageFormat",
    "atomic_write",
    "format_of",
    "read_image",
    "srgb_decode",
    "srgb_encode",
    "write_image",
]

_BIT_DEPTHS = ("u8", "u16", "f16", "f32")
_DEPTH_OF_KIND = {"u1": "u8", "u2": "u16", "f2": "f16", "f4": "f32"}
_DTYPES = {"u8": np.uint8, "u16": np.uint16, "f16": np.float16, "f32": np.float32}
HALF_MAX = float(np.finfo(np.float16).max)  # 65504: the largest finite half float
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KORNIA_PNG_MODES = {1: "mono", 3: "rgb", 4: "rgba"}


class ImageError(Exception):
    """An image cannot be read or written; str(err) is one clear line naming the file."""


@dataclass(eq=False)  # field-wise == on arrays would raise; compare .pixels explicitly
class Image:
    """Decoded image: colour channels, optional alpha and what the file held."""

    pixels: np.ndarray  # float32 H x W x C, C = 1 (gray) or 3 (RGB)
    alpha: np.ndarray | None  # float32 H x W x 1, or None when the file has no alpha
    bit_depth: str  # the file's sample type: "u8", "u16", "f16" or "f32"
    transfer: str  # "srgb" (integer formats, values in [0, 1]) or "linear" (float formats, as stored)
    icc_profile: bytes | None = None
    format: str = ""  # a name in FORMATS: "png", "jpeg", "webp", "avif", "tiff", "exr", "pfm" or "hdr"
    exif: bytes | None = None  # the file's EXIF block as read; written back with Orientation 1 (pixels are upright)
    dpi: tuple[float, float] | None = None  # print resolution (x, y) in pixels per inch, where the file gives one
    # A render's auxiliary buffers held in the same file (multilayer EXR), e.g. {"albedo": H x W x 3}:
    # they describe the input, so a restored image carries none.
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    # An EXR's header attributes that describe the image (EXR_ATTRIBUTES: its primaries, where its
    # pixels sit in the frame, the camera, who made it), written back to an EXR output.
    exr_attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pixels = np.asarray(self.pixels, dtype=np.float32)
        if self.alpha is not None:
            self.alpha = np.asarray(self.alpha, dtype=np.float32)
        self.buffers = {name: np.asarray(buffer, dtype=np.float32) for name, buffer in self.buffers.items()}
        problem = _image_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Number of columns."""
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """Colour channels (1 or 3), not counting alpha."""
        return int(self.pixels.shape[2])


def _image_problem(image: Image) -> str | None:
    """Why `image` breaks the Image contract, or None when it is fine."""
    pixels, alpha = image.pixels, image.alpha
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        return f"pixels must be H x W x 1 or H x W x 3, not shape {pixels.shape}"
    if alpha is not None and alpha.shape != (*pixels.shape[:2], 1):
        return f"alpha must be H x W x 1 matching the pixels, not shape {alpha.shape}"
    if image.bit_depth not in _BIT_DEPTHS:
        return f"bit_depth must be one of {', '.join(_BIT_DEPTHS)}, not {image.bit_depth!r}"
    if image.transfer not in ("srgb", "linear"):
        return f"transfer must be 'srgb' or 'linear', not {image.transfer!r}"
    for name, buffer in image.buffers.items():
        if buffer.shape != (*pixels.shape[:2], 3):
            return f"the {name} buffer must be H x W x 3 matching the pixels, not shape {buffer.shape}"
    return None


def format_of(path: str | os.PathLike[str]) -> str:
    """Format name ("png", "jpeg", ...) for `path`'s suffix; ImageError if the suffix is unknown."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in READ_FORMATS:
        raise ImageError(
            f"unsupported image format {suffix or '(no suffix)'!r} for '{os.fspath(path)}' (supported: {', '.join(READ_FORMATS)})"
        )
    return READ_FORMATS[suffix]


def _one_line(err: BaseException) -> str:
    """A library exception as one short line, without the temp-file paths OSError carries."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return " ".join(text.split()) or type(err).__name__


# ---------------------------------------------------------------------------- transfer


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear -> sRGB, mirrored for negative values so nothing turns into NaN."""
    a = np.abs(x)
    y = np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)
    return np.copysign(y, x).astype(np.float32)


def srgb_decode(x: np.ndarray) -> np.ndarray:
    """sRGB -> linear, mirrored for negative values."""
    a = np.abs(x)
    y = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return np.copysign(y, x).astype(np.float32)


def _quantise(values: np.ndarray, depth: str) -> np.ndarray:
    """Float values -> samples of type `depth`; integers clip to [0, 1] (NaN -> 0)."""
    dtype = _DTYPES[depth]
    if depth in ("u8", "u16"):
        maxval = np.iinfo(dtype).max
        return np.round(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * maxval).astype(dtype)
    return values.astype(dtype)


def _from_samples(
    samples: np.ndarray,
    colour: int,
    icc: bytes | None,
    fmt: str,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> Image:
    """Build an Image from H x W x N samples: `colour` channels, then an optional alpha.

    The sample dtype alone decides bit_depth and transfer, never the values.
    """
    depth = _DEPTH_OF_KIND.get(f"{samples.dtype.kind}{samples.dtype.itemsize}")
    if depth is None:
        raise ValueError(f"unsupported sample type {samples.dtype}")
    if samples.shape[2] not in (colour, colour + 1):
        raise ValueError(f"unsupported layout: {samples.shape[2]} samples per pixel")
    values = samples.astype(np.float32)
    if depth in ("u8", "u16"):
        values /= np.float32(np.iinfo(_DTYPES[depth]).max)
    alpha = np.ascontiguousarray(values[..., colour:]) if samples.shape[2] > colour else None
    transfer = "srgb" if depth in ("u8", "u16") else "linear"
    return Image(np.ascontiguousarray(values[..., :colour]), alpha, depth, transfer, icc or None, fmt, exif or None, dpi)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF/TIFF orientation 1-8 to an H x W x C array, as ImageOps.exif_transpose does."""
    turns = {
        2: lambda: a[:, ::-1],
        3: lambda: a[::-1, ::-1],
        4: lambda: a[::-1],
        5: lambda: a.swapaxes(0, 1),
        6: lambda: np.rot90(a, -1),
        7: lambda: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda: np.rot90(a, 1),
    }
    return turns[orientation]() if orientation in turns else a


# ---------------------------------------------------------------------------- PNG chunks


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk up to IEND; ValueError when the file stops before it."""
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            break
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            return chunks
    raise ValueError("file is truncated")


def _png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Serialise chunks; each is length, type, payload and CRC32 of type + payload."""
    parts = [_PNG_SIGNATURE]
    for kind, payload in chunks:
        parts += [struct.pack(">I", len(payload)), kind, payload, struct.pack(">I", zlib.crc32(kind + payload))]
    return b"".join(parts)


def _retag_ihdr(ihdr: bytes, depth: int, colour_type: int) -> bytes:
    """IHDR with another bit depth / colour type (bytes 8 and 9), everything else kept."""
    return ihdr[:8] + bytes([depth, colour_type]) + ihdr[10:]


# ---------------------------------------------------------------------------- readers


def _kornia_decode(decode: Callable[..., np.ndarray], *args: object) -> np.ndarray:
    """A kornia_rs decoder call whose Rust panic (a BaseException, which would end the whole
    batch) becomes a ValueError about this one file."""
    try:
        return decode(*args)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as err:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
        raise ValueError(f"the PNG decoder failed: {_one_line(err)}") from None


def _read_png(data: bytes) -> Image:
    # Pillow would silently cut 16-bit colour to 8 bits, so the header decides the decoder.
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError("PNG has no valid IHDR header")
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[0][1][:10])
    if depth != 16:
        return _read_pillow(data, "png")
    if colour_type == 4:
        # kornia_rs has no 16-bit gray+alpha mode. A GA16 scanline has the same bytes and the
        # same 4-byte filter unit as an 8-bit RGBA one, so decode it as that and reread the bytes.
        idat = [c for c in chunks if c[0] == b"IDAT"]
        png = _png_bytes([(b"IHDR", _retag_ihdr(chunks[0][1], 8, 6)), *idat, (b"IEND", b"")])
        rgba8 = np.ascontiguousarray(_kornia_decode(kio.decode_image_png_u8, png, (height, width), "rgba"))
        samples = rgba8.view(">u2").astype(np.uint16)
    elif colour_type in (0, 2, 6):
        mode = {0: "mono", 2: "rgb", 6: "rgba"}[colour_type]
        samples = _kornia_decode(kio.decode_image_png_u16, data, (height, width), mode).reshape(height, width, -1)
    else:
        raise ValueError(f"invalid PNG colour type {colour_type} for 16-bit samples")
    meta = dict(chunks)
    if b"tRNS" in meta and colour_type in (0, 2):  # colour-key transparency, as Pillow does for 8 bits
        opaque = np.any(samples != np.frombuffer(meta[b"tRNS"], ">u2"), axis=-1, keepdims=True)
        samples = np.concatenate([samples, opaque.astype(np.uint16) * np.uint16(65535)], axis=-1)
    icc = None
    if b"iCCP" in meta:  # profile name, NUL, compression method byte, zlib data
        icc = zlib.decompress(meta[b"iCCP"].split(b"\0", 1)[1][1:])
    if b"eXIf" in meta:
        exif = PILImage.Exif()
        exif.load(meta[b"eXIf"])
        samples = _orient(samples, int(exif.get(ExifTags.Base.Orientation, 1)))
    dpi = None
    if len(meta.get(b"pHYs", b"")) == 9:  # pixels per unit x, y; unit 1 = metre (0: aspect ratio only)
        x, y, unit = struct.unpack(">IIB", meta[b"pHYs"])
        dpi = (x * _INCH, y * _INCH) if unit == 1 and x and y else None
    return _from_samples(samples, 1 if colour_type in (0, 4) else 3, icc, "png", meta.get(b"eXIf"), dpi)


# Pillow's own decompression-bomb check would overrule a raised max_pixels; read_image checks
# every format's header itself, so Pillow's is switched off while restore opens a file, under
# a lock (the limit is Pillow's process-wide setting) and only for that call.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_open(data: bytes, fmt: str) -> Iterator[PILImage.Image]:
    with _PILLOW_LIMIT_LOCK:
        saved, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            opened = PILImage.open(io.BytesIO(data), formats=[fmt.upper()])
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    with opened:
        yield opened


def _pillow_size(data: bytes, fmt: str) -> tuple[int, int]:
    with _pillow_open(data, fmt) as opened:  # reads the header only
        return opened.size


def _read_pillow(data: bytes, fmt: str) -> Image:
    """8-bit PNG, JPEG, WebP and AVIF through Pillow, with EXIF orientation applied."""
    with _pillow_open(data, fmt) as opened:
        frames = getattr(opened, "n_frames", 1)
        if frames > 1:  # animated WebP (or APNG): one frame written back would lose the rest
            raise ValueError(f"holds {frames} frames; restore reads single images (split the animation first)")
        opened.load()
        icc = opened.info.get("icc_profile")
        exif = opened.info.get("exif")
        dpi = _pillow_dpi(opened.info.get("dpi"))
        im = ImageOps.exif_transpose(opened)
    if im.mode == "CMYK":
        icc = None  # that profile describes CMYK values, which the RGB conversion replaces
    elif im.mode not in ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"):
        raise ValueError(f"unsupported pixel mode {im.mode!r}")
    gray = im.mode in ("1", "L", "LA", "La")
    # has_transparency_data also catches tRNS colour keys and palette transparency.
    alpha = "A" in im.getbands() or im.has_transparency_data
    target = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
    samples = np.asarray(im.convert(target) if im.mode != target else im)
    if samples.ndim == 2:
        samples = samples[..., None]
    return _from_samples(samples, 1 if gray else 3, icc, fmt, exif, dpi)


_INCH = 0.0254  # metres


def _pillow_dpi(dpi: object) -> tuple[float, float] | None:
    """Pillow's info["dpi"] as two positive floats, or None (absent, zero or malformed)."""
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return None
    x, y = (float(v) for v in dpi)
    return (x, y) if x > 0 and y > 0 else None


def _read_tiff(data: bytes) -> Image:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise ValueError("TIFF holds no image")
        if len(tif.pages) > 1:  # a stack or multi-page file: writing the first page back would lose the rest
            raise ValueError(f"TIFF holds {len(tif.pages)} pages; restore reads single images (split the file first)")
        page = tif.pages[0]
        samples, axes = page.asarray(), page.axes
        icc_tag, orientation_tag = page.tags.get(34675), page.tags.get(274)
        photometric = int(page.photometric)
        dpi = _tiff_dpi(page.tags)
    if photometric not in (1, 2):  # MINISBLACK, RGB
        raise ValueError(f"unsupported TIFF photometric interpretation {photometric} (only gray and RGB)")
    if axes == "YX":
        samples = samples[..., None]
    elif axes == "SYX":  # planar configuration "separate"
        samples = np.moveaxis(samples, 0, -1)
    elif axes != "YXS":
        raise ValueError(f"unsupported TIFF layout {axes!r}")
    samples = _orient(samples, int(orientation_tag.value) if orientation_tag else 1)
    icc = bytes(icc_tag.value) if icc_tag else None
    return _from_samples(samples, 1 if photometric == 1 else 3, icc, "tiff", dpi=dpi)


def _tiff_dpi(tags: tifffile.TiffTags) -> tuple[float, float] | None:
    """XResolution / YResolution in pixels per inch (unit 2 = inch, 3 = centimetre), or None."""
    x, y, unit = tags.get(282), tags.get(283), tags.get(296)
    per_inch = {2: 1.0, 3: 2.54}.get(int(unit.value) if unit else 2)
    if x is None or y is None or per_inch is None:
        return None
    try:
        values = [num / den * per_inch for num, den in (x.value, y.value)]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return (values[0], values[1]) if values[0] > 0 and values[1] > 0 else None


# Multilayer EXR (Blender's "ViewLayer.Combined.R", Arnold's "albedo.R"): a channel's name is
# LAYER.CHANNEL, a layer's own name is its last dotted part and the rest names its view layer.
# The colour is the bare R,G,B when there is one, else the first of these layers (case aside):
# Blender writes the render as rendered to "Noisy Image" when its own denoiser runs, and the
# denoised one to "Combined". Channel letters are matched as written (upper case), as EXR names them.
EXR_COLOUR_LAYERS = ("noisy image", "combined", "beauty", "rgba", "rgb")
# A render's buffers in the colour's view layer, as renderers name them for a denoiser:
# Blender's Denoising Data pass, and the names Open Image Denoise's users give them elsewhere.
EXR_BUFFER_LAYERS = {"albedo": ("denoising albedo", "albedo"), "normal": ("denoising normal", "normal", "n")}
_EXR_TRIPLES = (("R", "G", "B"), ("X", "Y", "Z"))
# Blender also writes the compositor's result as view layer "Composite": the render's own view
# layer is read before it.
_EXR_COMPOSITE_VIEW = "composite"


def _read_exr(data: bytes) -> Image:
    try:
        parts = OpenEXR.File(io.BytesIO(data), separate_channels=True).parts
    except RuntimeError as err:  # its message names an internal buffer, not the file
        raise ValueError("damaged or truncated OpenEXR data") from err
    if not parts:  # what OpenEXR returns when the pixel data cannot be read
        raise ValueError("damaged or truncated OpenEXR data")
    part = parts[0]  # multi-part files: the first part only
    channels = {name: ch.pixels for name, ch in part.channels.items()}
    names, buffers = _exr_channels_to_read(channels)
    shape = channels[names[0]].shape
    if any(channels[n].shape != shape for n in names):
        raise ValueError("subsampled OpenEXR channels are not supported")
    # np.stack promotes half + float to float, so mixed files count as f32.
    image = _from_samples(np.stack([channels[n] for n in names], axis=-1), 3 if len(names) >= 3 else 1, None, "exr")
    held = {b: np.stack([channels[n] for n in triple], axis=-1) for b, triple in buffers.items()}
    return replace(
        image,
        buffers={b: values for b, values in held.items() if values.shape[:2] == shape},  # subsampled: none
        exr_attributes={k: v for k, v in part.header.items() if _carried_exr_attribute(k, v)},
    )


# The standard EXR attributes that describe the image rather than how the file stores it: the
# primaries and white (a render in ACEScg says so here, as a PNG does in its ICC profile), where
# the pixels sit in the frame (an overscan or a region render), the camera and the capture.
EXR_ATTRIBUTES = frozenset(
    {
        "chromaticities", "whiteLuminance", "adoptedNeutral", "dataWindow", "displayWindow", "pixelAspectRatio",
        "screenWindowCenter", "screenWindowWidth", "worldToCamera", "worldToNDC", "owner", "comments", "capDate",
        "utcOffset", "longitude", "latitude", "altitude", "focus", "expTime", "aperture", "isoSpeed",
        "framesPerSecond", "envmap", "xDensity",
    }
)  # fmt: skip
# Attributes the writer sets itself (the channels written, their storage), or that would no
# longer hold of the output (the views of a stereo file, of which one is read).
_EXR_STRUCTURE = frozenset(
    {
        "channels", "compression", "type", "lineOrder", "tiles", "chunkCount", "name", "version", "multiView", "view",
        "dwaCompressionLevel", "maxSamplesPerPixel", "BlenderMultiChannel",
    }
)  # fmt: skip


def scaled_exr_attributes(attributes: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """An EXR's attributes for its pixels resized by `scale`, as the DPI of other formats is: the
    data window's origin and the display window scaled, each display edge placed from the data
    window's origin so that windows that agreed still agree, and xDensity (pixels per inch)
    multiplied. The writer fits the data window's far corner to the pixels written."""
    scaled = dict(attributes)
    data, display = attributes.get("dataWindow"), attributes.get("displayWindow")
    if data is not None:
        low = np.asarray(data[0], dtype=np.int64)
        origin = np.floor(low * scale + 0.5).astype(np.int64)
        edge = lambda v: origin + np.floor((np.asarray(v, dtype=np.int64) - low) * scale + 0.5).astype(np.int64)  # noqa: E731
        scaled["dataWindow"] = (origin.astype(np.int32), (edge(np.asarray(data[1]) + 1) - 1).astype(np.int32))
        if display is not None:
            scaled["displayWindow"] = (edge(display[0]).astype(np.int32), (edge(np.asarray(display[1]) + 1) - 1).astype(np.int32))
    if "xDensity" in attributes:
        scaled["xDensity"] = float(attributes["xDensity"]) * scale
    return scaled


def _carried_exr_attribute(name: str, value: object) -> bool:
    """Whether an EXR header attribute goes to the output: a standard one describing the image,
    or a renderer's own of plain text or number (Blender's, Arnold's render settings)."""
    if name in _EXR_STRUCTURE:
        return False
    return name in EXR_ATTRIBUTES or isinstance(value, (str, int, float)) and not isinstance(value, bool)


def exr_buffers(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The render buffers ("albedo", "normal") an EXR file holds as full-resolution layers, from
    its header alone; () for other files and for a header that cannot be read (reading the image
    says why)."""
    if os.path.splitext(os.fspath(path))[1].lower() != ".exr" or not os.path.isfile(path):
        return ()
    try:
        header = OpenEXR.File(os.fspath(path), header_only=True).parts[0].header
        full = {c.name for c in header["channels"] if c.xSampling == c.ySampling == 1}
        buffers = _exr_channels_to_read(c.name for c in header["channels"])[1]
        return tuple(b for b, triple in buffers.items() if set(triple) <= full)
    except (RuntimeError, IndexError, KeyError, ValueError):
        return ()


def _exr_channels_to_read(channels: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Of an EXR's channel names: those of the colour (then alpha) and of each buffer it holds
    (buffers only beside a colour image: the render models take RGB)."""
    layers: dict[str, dict[str, str]] = {}  # layer -> {channel: full name}; bare channels under ""
    for name in channels:
        layer, _, channel = name.rpartition(".")
        layers.setdefault(layer, {})[channel] = name
    bare = layers.get("", {})
    if {"R", "G", "B"} <= bare.keys():
        colour_layer, names = "", [bare[c] for c in "RGB"]
    elif "Y" in bare and not {"RY", "BY"} & bare.keys():
        return [bare["Y"], *([bare["A"]] if "A" in bare else [])], {}
    else:
        colour_layer = _exr_colour_layer(layers)
        names = [layers[colour_layer][c] for c in "RGB"]
    view = _view_of(colour_layer)
    for layer in (colour_layer, _exr_layer_in(layers, view, ("combined",))):
        if "A" in layers.get(layer, {}):
            names.append(layers[layer]["A"])
            break
    buffers: dict[str, list[str]] = {}
    for buffer, layer_names in EXR_BUFFER_LAYERS.items():
        have = layers.get(_exr_layer_in(layers, view, layer_names), {})
        triple = next((t for t in _EXR_TRIPLES if set(t) <= have.keys()), None)
        if triple is not None:
            buffers[buffer] = [have[c] for c in triple]
    return names, buffers


def _view_of(layer: str) -> str:
    """A layer's view layer: its name before the last dot ("" for none)."""
    return layer.rpartition(".")[0]


def _own_name(layer: str) -> str:
    """A layer's own name, its last dotted part, in lower case as the layer tables hold it."""
    return layer.rpartition(".")[2].lower()


def _exr_layer_in(layers: Mapping[str, Mapping[str, str]], view: str, wanted: Sequence[str]) -> str | None:
    """The layer of view layer `view` (its names' prefix; "" for none) whose own name is the
    first of `wanted` (lower case) that the file has, or None."""
    own = {_own_name(layer): layer for layer in layers if layer and _view_of(layer) == view}
    return next((own[name] for name in wanted if name in own), None)


def _exr_colour_layer(layers: Mapping[str, Mapping[str, str]]) -> str:
    """The layer a multilayer EXR's colour is read from (EXR_COLOUR_LAYERS, else its only RGB
    layer that is no buffer; of several, the one not in Blender's Composite view layer, else the
    one whose view layer holds buffers); ValueError naming what the file holds when there is none."""
    buffer_names = {name for names in EXR_BUFFER_LAYERS.values() for name in names}
    rgb = [
        layer
        for layer, have in layers.items()
        if layer and {"R", "G", "B"} <= have.keys() and _own_name(layer) not in buffer_names
    ]
    for wanted in EXR_COLOUR_LAYERS:
        named = [layer for layer in rgb if _own_name(layer) == wanted]
        if len(named) > 1:
            named = [layer for layer in named if _view_of(layer).lower() != _EXR_COMPOSITE_VIEW] or named
        if len(named) > 1:
            with_buffers = [layer for layer in named if _exr_layer_in(layers, _view_of(layer), EXR_BUFFER_LAYERS["albedo"])]
            named = with_buffers or named
        if len(named) == 1:
            return named[0]
        if named:
            raise ValueError(f"several {wanted!r} layers ({', '.join(sorted(named))}); restore reads one")
    if len(rgb) == 1:
        return rgb[0]
    if set(layers) <= {""}:
        raise ValueError(f"no R,G,B or Y channels to read (found {', '.join(sorted(layers.get('', {}).values()))})")
    found = ", ".join(sorted(set(layers) - {""}))
    raise ValueError(f"no R,G,B or Y channels to read, nor one colour layer (found layers {found})")


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("PNG has no valid IHDR header")
    return struct.unpack(">II", data[16:24])


def _tiff_size(data: bytes) -> tuple[int, int]:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:  # parses the tags, not the strips
        if not tif.pages:
            raise ValueError("TIFF holds no image")
        page = tif.pages[0]
        return int(page.imagewidth), int(page.imagelength)


def _exr_size(data: bytes) -> tuple[int, int]:
    try:
        part = OpenEXR.File(io.BytesIO(data), header_only=True).parts[0]
        low, high = part.header["dataWindow"]
    except (RuntimeError, IndexError, KeyError) as err:
        raise ValueError("damaged or truncated OpenEXR data") from err
    return int(high[0]) - int(low[0]) + 1, int(high[1]) - int(low[1]) + 1


def _pfm_header(data: bytes) -> re.Match[bytes]:
    header = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data)
    if header is None:
        raise ValueError("damaged PFM header")
    return header


def _pfm_size(data: bytes) -> tuple[int, int]:
    header = _pfm_header(data)
    return int(header[2]), int(header[3])


def _read_pfm(data: bytes) -> Image:
    header = _pfm_header(data)
    colour = 3 if header[1] == b"PF" else 1
    width, height, scale = int(header[2]), int(header[3]), float(header[4])
    count = width * height * colour
    if len(data) - header.end() < 4 * count:
        raise ValueError("file is truncated")
    # The scale's sign gives the byte order; its magnitude is ignored, values stay as stored.
    dtype = "<f4" if scale < 0 else ">f4"
    rows = np.frombuffer(data, dtype, count, header.end()).reshape(height, width, colour)
    return _from_samples(rows[::-1].astype(np.float32), colour, None, "pfm")  # stored bottom row first


def _hdr_header(data: bytes) -> tuple[re.Match[bytes], int]:
    """The resolution line of a Radiance file (signs and axes) and where its scanlines start."""
    end = data.find(b"\n\n")
    if end < 0:
        raise ValueError("damaged Radiance header")
    if b"FORMAT=32-bit_rle_xyze" in data[:end]:
        raise ValueError("XYZE Radiance files are not supported (only RGBE)")
    line_end = data.find(b"\n", end + 2)
    line = data[end + 2 : line_end].strip() if line_end > 0 else b""
    size = re.fullmatch(rb"([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", line)
    if size is None or size[2] == size[5]:
        raise ValueError("damaged Radiance resolution line")
    return size, line_end + 1


def _hdr_size(data: bytes) -> tuple[int, int]:
    size, _ = _hdr_header(data)
    outer, inner = int(size[3]), int(size[6])
    return (inner, outer) if size[2] == b"Y" else (outer, inner)


def _read_hdr(data: bytes) -> Image:
    size, start = _hdr_header(data)
    outer, inner = int(size[3]), int(size[6])
    rgbe = _rgbe_scanlines(data, start, outer, inner)
    # "-Y" runs top to bottom and "+X" left to right; other signs mean flipped axes.
    for axis, (sign, name) in enumerate([(size[1], size[2]), (size[4], size[5])]):
        if (name == b"Y") == (sign == b"+"):
            rgbe = np.flip(rgbe, axis)
    if size[2] == b"X":  # scanlines are columns
        rgbe = rgbe.swapaxes(0, 1)
    exponent = rgbe[..., 3:].astype(np.int32)
    # Radiance's own colr_color(): (mantissa + 0.5) * 2^(exponent - 136); exponent 0 is black.
    rgb = np.where(exponent > 0, np.ldexp(rgbe[..., :3] + 0.5, exponent - 136), 0.0)
    return _from_samples(rgb.astype(np.float32), 3, None, "hdr")


def _rgbe_scanlines(data: bytes, pos: int, count: int, width: int) -> np.ndarray:
    """Decode `count` RGBE scanlines of `width` pixels, flat or new-style run-length encoded."""
    out = np.empty((count, width, 4), np.uint8)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ValueError("file is truncated")
        pos += n
        return data[pos - n : pos]

    for y in range(count):
        if 8 <= width < 32768 and data[pos : pos + 4] == bytes([2, 2, width >> 8, width & 255]):
            pos += 4
            for c in range(4):  # each component is its own run of bytes
                x = 0
                while x < width:
                    n = take(1)[0]
                    run = n > 128
                    n = n - 128 if run else n
                    if n == 0 or x + n > width:
                        raise ValueError("damaged run-length data")
                    out[y, x : x + n, c] = take(1)[0] if run else np.frombuffer(take(n), np.uint8)
                    x += n
        else:
            out[y] = np.frombuffer(take(4 * width), np.uint8).reshape(width, 4)
    return out


MAX_PIXELS = 2 * 89_478_485
"""The default decoded-size limit, in pixels: the size at which Pillow refuses a decompression
bomb (about 179 megapixels, 2.9 GB of 4-channel float samples). Every format's header is
checked against it before anything is decoded; read_image's `max_pixels` raises it."""


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> Image:
    """Read an image file into an :class:`Image`, losing nothing the format holds.

    The suffix must be a known image suffix; the file's content decides the decoder. EXIF
    (or TIFF) orientation is applied. A header claiming more than `max_pixels` pixels is refused
    before decoding (a 2 KB PNG can claim 100000 x 100000). Raises ImageError with a one-line
    message on failure.
    """
    name = os.fspath(path)
    format_of(name)
    try:
        # A pipe would block the read forever and a device such as /dev/zero never end it.
        if not stat.S_ISREG(os.stat(name).st_mode):
            raise ImageError(f"cannot read '{name}': not a regular file")
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(f"no such file: '{name}'") from None
    except OSError as err:
        raise ImageError(f"cannot read '{name}': {_one_line(err)}") from None
    if not data:
        raise ImageError(f"cannot read '{name}': file is empty")
    found = _sniff(data)
    if found is None:
        known = "/".join(f.label for f in FORMATS)
        raise ImageError(f"cannot read '{name}': not a {known} image (unrecognised data)")
    try:
        width, height = found.size(data)
        if width * height > max_pixels:
            raise ValueError(
                f"claims {width} x {height} pixels, more than the {max_pixels:,}-pixel limit"
                " (a decompression bomb? raise it with --max-pixels, or max_pixels in the library)"
            )
        image = found.read(data)
    except Exception as err:
        raise ImageError(f"cannot read '{name}': {_one_line(err)}") from err
    if image.pixels.size == 0:
        height, width = image.pixels.shape[:2]
        raise ImageError(f"cannot read '{name}': the image is {width} x {height}, without pixels")
    return image


# ---------------------------------------------------------------------------- writers


def _exif_to_write(exif: bytes | None, width: int, height: int) -> bytes | None:
    """The EXIF block for an output: Orientation 1 (restore's pixels are already upright) and the
    Exif IFD's pixel dimensions those of the written image; None if there is none or it is unreadable."""
    if not exif:
        return None
    tags = PILImage.Exif()
    try:
        tags.load(exif)
    except Exception:  # a damaged block is dropped rather than copied
        return None
    if ExifTags.Base.Orientation in tags:
        tags[ExifTags.Base.Orientation] = 1
    sizes = tags.get_ifd(ExifTags.IFD.Exif)
    for tag, value in ((ExifTags.Base.ExifImageWidth, width), (ExifTags.Base.ExifImageHeight, height)):
        if tag in sizes:
            sizes[tag] = value
    return tags.tobytes()


def _write_pillow(tmp: str, samples: np.ndarray, image: Image, fmt: str) -> None:
    """8-bit PNG, JPEG, WebP and AVIF. JPEG and AVIF: quality 95 without chroma subsampling;
    WebP: lossless, keeping the colour under fully transparent pixels (exact)."""
    options: dict[str, object] = {
        "jpeg": {"quality": 95, "subsampling": 0},
        "webp": {"lossless": True, "exact": True},
        "avif": {"quality": 95, "subsampling": "4:4:4"},
    }.get(fmt, {})
    if image.icc_profile:
        options["icc_profile"] = image.icc_profile
    exif = _exif_to_write(image.exif, samples.shape[1], samples.shape[0])
    if exif:
        options["exif"] = exif
    if image.dpi and fmt in ("png", "jpeg"):  # WebP and AVIF have no field for it
        options["dpi"] = image.dpi
    PILImage.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples).save(tmp, format=fmt.upper(), **options)


def _write_png(tmp: str, samples: np.ndarray, image: Image) -> None:
    if samples.dtype == np.uint8:
        _write_pillow(tmp, samples, image, "png")
        return
    height, width, n = samples.shape
    if n == 2:  # no gray+alpha in kornia_rs: write the same bytes as 8-bit RGBA, retag the header
        kio.write_image_png_u8(tmp, samples.astype(">u2").view(np.uint8).reshape(height, width, 4), "rgba")
    else:
        kio.write_image_png_u16(tmp, np.ascontiguousarray(samples), _KORNIA_PNG_MODES[n])
    # kornia_rs writes no metadata: iCCP, pHYs and eXIf go in by hand, right after IHDR (before IDAT).
    extra = []
    if image.icc_profile:
        extra.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(image.icc_profile)))
    if image.dpi:
        extra.append((b"pHYs", struct.pack(">IIB", *(round(v / _INCH) for v in image.dpi), 1)))
    exif = _exif_to_write(image.exif, width, height)
    if exif:
        extra.append((b"eXIf", exif.removeprefix(b"Exif\0\0")))
    if n != 2 and not extra:
        return
    with open(tmp, "rb") as f:
        chunks = _png_chunks(f.read())
    if n == 2:
        chunks[0] = (b"IHDR", _retag_ihdr(chunks[0][1], 16, 4))
    chunks[1:1] = extra
    with open(tmp, "wb") as f:
        f.write(_png_bytes(chunks))


def _write_tiff(tmp: str, samples: np.ndarray, image: Image) -> None:
    # The DPI is written; EXIF is not (tifffile cannot write an EXIF sub-IFD).
    n = samples.shape[2]
    # zlib and the horizontal predictor work without imagecodecs; the float predictor does not.
    # A trailing axis of 1 would be read as 1-pixel-wide pages, so gray goes in as 2-D.
    tifffile.imwrite(
        tmp,
        samples[..., 0] if n == 1 else samples,
        photometric="minisblack" if n <= 2 else "rgb",
        extrasamples=["unassalpha"] if n in (2, 4) else None,
        compression="zlib",
        predictor=samples.dtype.kind == "u",
        iccprofile=image.icc_profile,
        resolution=image.dpi,
        resolutionunit="INCH" if image.dpi else None,
        metadata=None,
    )


def _write_exr(tmp: str, samples: np.ndarray, image: Image) -> None:
    # OpenEXR has no ICC profile or EXIF; its own attributes go back (Image.exr_attributes; a
    # resize scales them first: scaled_exr_attributes), the data window's far corner fitted to
    # the pixels written.
    names = {1: "Y", 2: "YA", 3: "RGB", 4: "RGBA"}[samples.shape[2]]
    channels = {c: np.ascontiguousarray(samples[..., i]) for i, c in enumerate(names)}
    storage = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    header = {**image.exr_attributes, **storage}
    if "dataWindow" in header:
        origin = np.asarray(header["dataWindow"][0], dtype=np.int32)
        header["dataWindow"] = (origin, origin + np.array([samples.shape[1] - 1, samples.shape[0] - 1], dtype=np.int32))
    try:
        OpenEXR.File(header, channels).write(tmp)
    except (TypeError, ValueError, RuntimeError):  # an attribute the writer cannot store: the pixels matter more
        OpenEXR.File(storage, channels).write(tmp)


def _write_pfm(tmp: str, samples: np.ndarray, image: Image) -> None:
    height, width, n = samples.shape
    with open(tmp, "wb") as f:
        # Negative scale = little endian; rows go bottom to top.
        f.write(b"%s\n%d %d\n-1.0\n" % (b"PF" if n == 3 else b"Pf", width, height))
        f.write(np.ascontiguousarray(samples[::-1], "<f4").tobytes())


@dataclass(frozen=True)
class ImageFormat:
    """Everything restore knows about one image format, in one row of `FORMATS`."""

    name: str
    label: str
    suffixes: tuple[str, ...]
    matches: Callable[[bytes], bool]  # does a file's start say it is this format?
    size: Callable[[bytes], tuple[int, int]]  # (width, height) from the header, before any decoding
    read: Callable[[bytes], Image]
    write: Callable[[str, np.ndarray, Image], None] | None  # (temp file, samples, image for its metadata); None: read-only
    depths: tuple[str, ...] = ()  # sample types it can write, narrowest first (_output_depth relies on it)
    alpha: bool = False


_AVIF = PILFeatures.check("avif")  # Pillow built with libavif

FORMATS: tuple[ImageFormat, ...] = tuple(
    f
    for f in (
        ImageFormat(
            "png", "PNG", (".png",), lambda d: d.startswith(_PNG_SIGNATURE), _png_size, _read_png, _write_png, ("u8", "u16"),
            True,
        ),
        ImageFormat(
            "jpeg", "JPEG", (".jpg", ".jpeg"), lambda d: d.startswith(b"\xff\xd8\xff"), lambda d: _pillow_size(d, "jpeg"),
            lambda d: _read_pillow(d, "jpeg"), lambda t, s, i: _write_pillow(t, s, i, "jpeg"), ("u8",),
        ),
        ImageFormat(
            "webp", "WebP", (".webp",), lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", lambda d: _pillow_size(d, "webp"),
            lambda d: _read_pillow(d, "webp"), lambda t, s, i: _write_pillow(t, s, i, "webp"), ("u8",), True,
        ),
        ImageFormat(
            "avif", "AVIF", (".avif",), lambda d: d[4:12] in (b"ftypavif", b"ftypavis"), lambda d: _pillow_size(d, "avif"),
            lambda d: _read_pillow(d, "avif"), lambda t, s, i: _write_pillow(t, s, i, "avif"), ("u8",), True,
        ) if _AVIF else None,
        ImageFormat(
            "tiff", "TIFF", (".tif", ".tiff"), lambda d: d[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff_size,
            _read_tiff, _write_tiff, ("u8", "u16", "f32"), True,
        ),
        ImageFormat(
            "exr", "OpenEXR", (".exr",), lambda d: d.startswith(b"v/1\x01"), _exr_size, _read_exr, _write_exr, ("f16", "f32"),
            True,
        ),
        ImageFormat(
            "pfm", "PFM", (".pfm",), lambda d: re.match(rb"P[Ff]\s", d) is not None, _pfm_size, _read_pfm, _write_pfm, ("f32",)
        ),
        ImageFormat("hdr", "Radiance HDR", (".hdr",), lambda d: d.startswith(b"#?"), _hdr_size, _read_hdr, None),
    )
    if f is not None
)  # fmt: skip
_BY_NAME = {f.name: f for f in FORMATS}
READ_FORMATS: Mapping[str, str] = MappingProxyType({suffix: f.name for f in FORMATS for suffix in f.suffixes})
WRITE_FORMATS: Mapping[str, str] = MappingProxyType(
    {suffix: f.name for f in FORMATS if f.write is not None for suffix in f.suffixes}
)


def _sniff(data: bytes) -> ImageFormat | None:
    """The format a file's first bytes name; the content wins over the suffix."""
    return next((f for f in FORMATS if f.matches(data)), None)


def _output_depth(fmt: str, depth: str) -> str:
    """The sample type `fmt` writes for a `depth` source: itself when the format holds it,
    else floats go to the widest type (u16 PNG, f32 TIFF) and integers to the narrowest
    float (f16 EXR); JPEG/WebP/PFM have a single choice."""
    allowed = _BY_NAME[fmt].depths
    if depth in allowed:
        return depth
    return allowed[-1] if depth.startswith("f") else allowed[0]


def atomic_write(name: str, overwrite: bool, encode: Callable[[str], None]) -> None:
    """Run `encode` on a hidden temp file beside `name`, flush it to disk, then move it into place.

    Without `overwrite` the move is a hard link, which fails if `name` appeared meanwhile (two
    runs writing one output: the second fails instead of both succeeding). With it, the file is
    replaced and keeps the permissions of the one it replaces.
    """
    if not overwrite and os.path.lexists(name):
        raise ImageError(f"cannot write '{name}': file exists (--overwrite, or overwrite=True in the library, replaces it)")
    folder, base = os.path.split(os.path.abspath(name))
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never reuse someone's file; mode 0o666 lets the umask apply as for any new file.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise ImageError(f"cannot write '{name}': {_one_line(err)} (folder '{folder}')") from None
    try:
        encode(tmp)
        replaced_mode = stat.S_IMODE(os.stat(name).st_mode) if overwrite and os.path.exists(name) else None
        if replaced_mode is not None:
            os.chmod(tmp, replaced_mode)
        _fsync(tmp)
        if overwrite:
            os.replace(tmp, name)
        else:
            try:
                os.link(tmp, name)
            except FileExistsError:
                raise ImageError(f"cannot write '{name}': file exists (written by another run meanwhile)") from None
            except OSError:  # a file system without hard links: the check above is all there is
                os.replace(tmp, name)
            else:
                os.unlink(tmp)
        _fsync(folder)  # the rename itself survives a crash
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync(path: str) -> None:
    """Flush a file's (or a folder's) data to disk; a file system that cannot is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_image(path: str | os.PathLike[str], image: Image, bit_depth: str | None = None, overwrite: bool = False) -> None:
    """Write `image` in the format named by `path`'s suffix, atomically.

    The sample type is `bit_depth` if given (ImageError if the format cannot hold it), else
    the image's own, mapped to the nearest one the format holds: JPEG/WebP u8; PNG u8/u16
    (floats -> u16); TIFF u8/u16/f32 (f16 -> f32); EXR f16/f32 (integers -> f16); PFM f32.
    Integer outputs hold sRGB values and EXR/PFM linear ones; the sRGB transfer function
    converts when the image's transfer differs. Float TIFF keeps the image's transfer as is.
    Formats without alpha (JPEG, PFM) refuse an image that has one rather than drop it; the
    ICC profile, EXIF (PNG, JPEG, WebP, AVIF) and DPI (PNG, JPEG, TIFF) are written where the
    format has a place for them; EXIF with Orientation 1 and the written size. An existing
    file is replaced only with `overwrite=True`; on failure no file is left behind.
    """
    name = os.fspath(path)
    fmt = format_of(name)
    row = _BY_NAME[fmt]
    if row.write is None:
        writable = ", ".join(WRITE_FORMATS)
        raise ImageError(f"cannot write '{name}': {row.label} is read-only here (writable: {writable})")
    encode = row.write
    problem = _image_problem(image)
    if problem:
        raise ImageError(f"cannot write '{name}': {problem}")
    if bit_depth is not None and bit_depth not in row.depths:
        raise ImageError(
            f"cannot write '{name}': {row.label} cannot hold {bit_depth!r} samples (allowed: {', '.join(row.depths)})"
        )
    if image.alpha is not None and not row.alpha:
        raise ImageError(f"cannot write '{name}': {row.label} has no alpha channel (set image.alpha to None to write without it)")
    depth = bit_depth or _output_depth(fmt, image.bit_depth)
    transfer = "srgb" if depth in ("u8", "u16") else "linear" if fmt in ("exr", "pfm") else image.transfer
    pixels = np.asarray(image.pixels, dtype=np.float32)
    if image.transfer != transfer:
        pixels = srgb_encode(pixels) if transfer == "srgb" else srgb_decode(pixels)
    if depth == "f16" and np.abs(pixels).max(initial=0.0) > HALF_MAX:
        # Half floats overflow to infinity: a bright highlight would come back as inf.
        peak = float(np.abs(pixels).max())
        raise ImageError(f"cannot write '{name}': values up to {peak:.6g} exceed half float's {HALF_MAX:g} (use f32)")
    planes = [pixels] if image.alpha is None else [pixels, np.asarray(image.alpha, dtype=np.float32)]
    samples = _quantise(np.concatenate(planes, axis=-1), depth)
    try:
        atomic_write(name, overwrite, lambda tmp: encode(tmp, samples, image))
    except ImageError:
        raise
    except Exception as err:
        raise ImageError(f"cannot write '{name}': {_one_line(err)}") from err
