"""restore.io.images: every format round-trips without losing samples, alpha or ICC profile."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import ExifTags, ImageCms
from PIL import Image as PILImage
from PIL import features as PILFeatures

from restore.io import images as image_formats
from restore.io.images import (
    READ_FORMATS,
    WRITE_FORMATS,
    Image,
    ImageError,
    atomic_write,
    exr_buffers,
    format_of,
    read_image,
    write_image,
)

H, W = 29, 37
LAYOUTS = {"gray": (1, False), "gray+alpha": (1, True), "rgb": (3, False), "rgba": (3, True)}
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def smooth(channels: int, seed: int = 0) -> np.ndarray:
    """H x W x channels values in [0, 1]: a gradient plus seeded noise."""
    y, x = np.mgrid[0:H, 0:W]
    ramp = (x / (W - 1) + y / (H - 1)) / 2
    noise = np.random.default_rng(seed).uniform(-0.15, 0.15, (H, W, channels))
    return np.clip(ramp[..., None] + noise, 0, 1).astype(np.float32)


def levels(channels: int, maxval: int, seed: int = 0) -> np.ndarray:
    """Random integer samples 0..maxval, as a float32 image on that grid."""
    ints = np.random.default_rng(seed).integers(0, maxval + 1, (H, W, channels))
    return (ints / np.float32(maxval)).astype(np.float32)


def make(layout: str, depth: str = "u8", transfer: str = "srgb", icc: bytes | None = None) -> Image:
    colour, has_alpha = LAYOUTS[layout]
    maxval = {"u8": 255, "u16": 65535}.get(depth)
    values = levels(colour + 1, maxval) if maxval else smooth(colour + 1)
    return Image(values[..., :colour], values[..., colour:] if has_alpha else None, depth, transfer, icc)


def hdr_values(channels: int, dtype: type = np.float32) -> np.ndarray:
    """Linear values well outside [0, 1], negatives included."""
    v = np.random.default_rng(1).normal(0, 40, (H, W, channels)).astype(dtype)
    v[0, 0] = 65000 if dtype == np.float16 else 1e30
    return v.astype(np.float32)


def one_line_error(info: pytest.ExceptionInfo[ImageError], name: str) -> str:
    message = str(info.value)
    assert "\n" not in message and name in message, message
    return message


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def assert_same(a: Image, b: Image) -> None:
    np.testing.assert_array_equal(a.pixels, b.pixels)
    if b.alpha is None:
        assert a.alpha is None
    else:
        np.testing.assert_array_equal(a.alpha, b.alpha)


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("depth", ["u8", "u16"])
def test_png_round_trip_is_exact(tmp_path: Path, layout: str, depth: str) -> None:
    image = make(layout, depth)
    write_image(tmp_path / "a.png", image)
    back = read_image(tmp_path / "a.png")
    assert (back.bit_depth, back.transfer, back.format) == (depth, "srgb", "png")
    assert back.pixels.dtype == np.float32 and back.pixels.shape == image.pixels.shape
    assert_same(back, image)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_every_16_bit_level_survives(tmp_path: Path, suffix: str) -> None:
    ints = np.random.default_rng(2).permutation(65536).reshape(256, 256, 1)
    write_image(tmp_path / f"all{suffix}", Image(ints / np.float32(65535), None, "u16", "srgb"))
    back = read_image(tmp_path / f"all{suffix}")
    assert back.bit_depth == "u16"
    np.testing.assert_array_equal(np.round(back.pixels * 65535), ints)


def test_16_bit_gray_alpha_png_is_standard(tmp_path: Path) -> None:
    # A hand-made GA16 PNG (unfiltered rows) reads exactly...
    ints = np.random.default_rng(3).integers(0, 65536, (H, W, 2)).astype(">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in ints)
    ihdr = struct.pack(">IIBBBBB", W, H, 16, 4, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
    (tmp_path / "ga.png").write_bytes(data + png_chunk(b"IEND", b""))
    back = read_image(tmp_path / "ga.png")
    assert back.bit_depth == "u16" and back.channels == 1
    np.testing.assert_array_equal(np.round(back.pixels[..., 0] * 65535), ints[..., 0])
    np.testing.assert_array_equal(np.round(back.alpha[..., 0] * 65535), ints[..., 1])
    # ...and what we write is a GA16 PNG that another decoder (Pillow, to 8 bits) agrees with.
    write_image(tmp_path / "out.png", back)
    with PILImage.open(tmp_path / "out.png") as im:
        eight = np.asarray(im.convert("LA"))
    np.testing.assert_array_equal(eight, ints >> 8)


def test_16_bit_png_colour_key_becomes_alpha(tmp_path: Path) -> None:
    image = make("rgb", "u16")
    key = np.round(image.pixels[3, 4] * 65535).astype(">u2")
    write_image(tmp_path / "a.png", image)
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:33] + png_chunk(b"tRNS", key.tobytes()) + data[33:])  # after IHDR
    back = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(back.pixels, image.pixels)
    np.testing.assert_array_equal(back.alpha[..., 0], np.where((back.pixels == image.pixels[3, 4]).all(-1), 0, 1))
    assert back.alpha[3, 4] == 0


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png_reads_as_rgb(tmp_path: Path, transparent: bool) -> None:
    rgb = (levels(3, 255) * 255).astype(np.uint8)
    im = PILImage.fromarray(rgb).quantize(16)
    im.save(tmp_path / "p.png", **({"transparency": 0} if transparent else {}))
    back = read_image(tmp_path / "p.png")
    assert back.channels == 3 and back.bit_depth == "u8"
    np.testing.assert_array_equal(np.round(back.pixels * 255), np.asarray(im.convert("RGB")))
    assert (back.alpha is not None) == transparent


@pytest.mark.parametrize("layout", ["gray", "rgb"])
def test_jpeg_round_trip_is_close(tmp_path: Path, layout: str) -> None:
    image = Image(smooth(LAYOUTS[layout][0]), None, "u8", "srgb")
    write_image(tmp_path / "a.jpg", image)
    back = read_image(tmp_path / "a.jpg")
    assert (back.format, back.bit_depth, back.channels) == ("jpeg", "u8", image.channels)
    assert np.abs(back.pixels - image.pixels).mean() < 0.03


def test_webp_is_lossless_with_alpha(tmp_path: Path) -> None:
    image = make("rgba")
    write_image(tmp_path / "a.webp", image)
    back = read_image(tmp_path / "a.webp")
    assert (back.format, back.bit_depth) == ("webp", "u8")
    assert_same(back, image)


def test_gray_webp_comes_back_as_equal_rgb(tmp_path: Path) -> None:
    # WebP has no gray layout: the limitation is three identical channels.
    image = make("gray")
    write_image(tmp_path / "g.webp", image)
    back = read_image(tmp_path / "g.webp")
    np.testing.assert_array_equal(back.pixels, np.repeat(image.pixels, 3, axis=2))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("depth", ["u8", "u16", "f32"])
def test_tiff_round_trip_is_exact(tmp_path: Path, layout: str, depth: str) -> None:
    image = make(layout, depth, "linear" if depth == "f32" else "srgb")
    write_image(tmp_path / "a.tiff", image)
    back = read_image(tmp_path / "a.tiff")
    assert (back.format, back.bit_depth) == ("tiff", depth)
    assert back.transfer == ("linear" if depth == "f32" else "srgb")
    assert_same(back, image)


def test_tiff_half_planar_with_orientation(tmp_path: Path) -> None:
    values = hdr_values(3, np.float16)
    planar = np.moveaxis(values.astype(np.float16), -1, 0)
    tifffile.imwrite(
        tmp_path / "h.tif", planar, photometric="rgb", planarconfig="separate", extratags=[(274, "H", 1, 3, True)]
    )  # orientation 3: rotated 180 degrees
    back = read_image(tmp_path / "h.tif")
    assert (back.bit_depth, back.transfer) == ("f16", "linear")
    np.testing.assert_array_equal(back.pixels, values[::-1, ::-1])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("depth", ["f16", "f32"])
def test_exr_keeps_hdr_values_bit_exact(tmp_path: Path, layout: str, depth: str) -> None:
    colour, has_alpha = LAYOUTS[layout]
    values = hdr_values(colour + 1, np.float16 if depth == "f16" else np.float32)
    image = Image(values[..., :colour], values[..., colour:] if has_alpha else None, depth, "linear")
    write_image(tmp_path / "a.exr", image)
    back = read_image(tmp_path / "a.exr")
    assert (back.format, back.bit_depth, back.transfer) == ("exr", depth, "linear")
    assert back.pixels.max() > 1 and back.pixels.min() < 0
    assert_same(back, image)


@pytest.mark.parametrize("channels", [1, 3])
def test_pfm_round_trip_is_bit_exact(tmp_path: Path, channels: int) -> None:
    image = Image(hdr_values(channels), None, "f32", "linear")
    image.pixels[1, 2] = [np.nan] * channels  # NaN/Inf come back as stored
    image.pixels[2, 1] = [np.inf] * channels
    write_image(tmp_path / "a.pfm", image)
    back = read_image(tmp_path / "a.pfm")
    assert (back.format, back.bit_depth, back.transfer, back.channels) == ("pfm", "f32", "linear", channels)
    np.testing.assert_array_equal(back.pixels, image.pixels)


def test_pfm_big_endian_rows_bottom_to_top(tmp_path: Path) -> None:
    rows = np.array([[1.5, -2.0, 3.0], [4.0, 5.0, 1e20]], ">f4")  # stored bottom row first
    (tmp_path / "b.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + rows.tobytes())
    back = read_image(tmp_path / "b.pfm")
    np.testing.assert_array_equal(back.pixels[..., 0], rows[::-1])


def rgbe_encode(rgb: np.ndarray) -> np.ndarray:
    """Float RGB -> RGBE bytes, the way Radiance's setcolr does it."""
    top = rgb.max(axis=-1)
    mantissa, exponent = np.frexp(top)
    scale = np.where(top > 1e-32, mantissa * 256 / np.where(top > 0, top, 1), 0)
    out = np.zeros((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb * scale[..., None]
    out[..., 3] = np.where(top > 1e-32, exponent + 128, 0)
    return out


def rle_scanline(row: np.ndarray) -> bytes:
    """New-style run-length scanline: 2, 2, width, then each component as runs/literals."""
    out = bytearray([2, 2, len(row) >> 8, len(row) & 255])
    for c in range(4):
        data, x = row[:, c].tobytes(), 0
        while x < len(data):
            run = 1
            while x + run < len(data) and run < 127 and data[x + run] == data[x]:
                run += 1
            if run >= 3:
                out += bytes([128 + run, data[x]])
                x += run
            else:
                n = min(128, len(data) - x)
                out += bytes([n]) + data[x : x + n]
                x += n
    return bytes(out)


@pytest.mark.parametrize("y_sign", ["-", "+"])
def test_hdr_reads_rle_and_flat_scanlines(tmp_path: Path, y_sign: str) -> None:
    rgb = smooth(3) * np.float32(50)
    rgb[:, :20] = [0.25, 3.0, 1000.0]  # long runs for the encoder
    rgb[5] = 0  # exponent 0 is black
    rgbe = rgbe_encode(rgb)
    stored = rgbe if y_sign == "-" else rgbe[::-1]  # "+Y" stores the bottom row first
    body = b"".join(rle_scanline(r) if i % 2 else r.tobytes() for i, r in enumerate(stored))
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=1.0\n\n%b %d +X %d\n" % (y_sign.encode() + b"Y", H, W)
    (tmp_path / "a.hdr").write_bytes(header + body)
    back = read_image(tmp_path / "a.hdr")
    assert (back.format, back.bit_depth, back.transfer, back.alpha) == ("hdr", "f32", "linear", None)
    tolerance = rgb.max(axis=-1, keepdims=True) / 128
    assert np.all(np.abs(back.pixels - rgb) <= tolerance)
    assert np.all(back.pixels[5] == 0) and back.pixels.max() > 900


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    "name, depth", [("a.png", "u8"), ("a.png", "u16"), ("a.jpg", "u8"), ("a.webp", "u8"), ("a.tif", "u16"), ("a.tif", "f32")]
)
def test_icc_profile_is_kept_byte_exact(tmp_path: Path, name: str, depth: str) -> None:
    layout = "rgb" if name.endswith(".jpg") else "rgba"
    write_image(tmp_path / name, make(layout, depth, icc=SRGB_ICC))
    assert read_image(tmp_path / name).icc_profile == SRGB_ICC


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:8, :8] = 255  # a white block top left
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    PILImage.fromarray(pixels).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    back = read_image(tmp_path / "o.jpg")
    assert (back.height, back.width) == (W, H)
    assert back.pixels[:8, -8:].mean() > 0.9 and back.pixels[:8, :8].mean() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_png_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    image = make("rgba")
    ints = np.round(np.concatenate([image.pixels, image.alpha], axis=-1) * 255).astype(np.uint8)
    PILImage.fromarray(ints).save(tmp_path / "8.png", exif=exif.tobytes())
    write_image(tmp_path / "16.png", image, bit_depth="u16")
    data = (tmp_path / "16.png").read_bytes()
    iend = data.rindex(b"IEND") - 4
    (tmp_path / "16.png").write_bytes(data[:iend] + png_chunk(b"eXIf", exif.tobytes()) + data[iend:])
    eight, sixteen = read_image(tmp_path / "8.png"), read_image(tmp_path / "16.png")
    assert (eight.bit_depth, sixteen.bit_depth) == ("u8", "u16")
    assert_same(sixteen, eight)


def camera_exif(orientation: int = 1) -> bytes:
    """An EXIF block as a camera writes one: make, ISO, orientation and the pixel size."""
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Orientation] = "Canon", orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.ISOSpeedRatings], details[ExifTags.Base.ExifImageWidth] = 3200, W
    details[ExifTags.Base.ExifImageHeight] = H
    return exif.tobytes()


def exif_of(path: Path) -> tuple[dict[int, object], dict[int, object]]:
    with PILImage.open(path) as im:
        exif = im.getexif()
        return dict(exif), dict(exif.get_ifd(ExifTags.IFD.Exif))


@pytest.mark.parametrize("name, depth", [("a.png", "u8"), ("a.png", "u16"), ("a.jpg", "u8"), ("a.webp", "u8")])
@pytest.mark.defect(12)
def test_exif_goes_through_with_the_camera_details_and_an_upright_orientation(tmp_path: Path, name: str, depth: str) -> None:
    PILImage.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "in.jpg", exif=camera_exif(orientation=6))
    image = read_image(tmp_path / "in.jpg")  # rotated upright on reading: W rows, H columns
    image.bit_depth = depth
    write_image(tmp_path / name, image)
    tags, details = exif_of(tmp_path / name)
    assert tags[ExifTags.Base.Make] == "Canon" and details[ExifTags.Base.ISOSpeedRatings] == 3200
    assert tags[ExifTags.Base.Orientation] == 1  # viewers must not rotate the upright pixels again
    assert (details[ExifTags.Base.ExifImageWidth], details[ExifTags.Base.ExifImageHeight]) == (H, W)
    assert read_image(tmp_path / name).exif is not None


@pytest.mark.parametrize("name, depth", [("a.png", "u8"), ("a.png", "u16"), ("a.jpg", "u8"), ("a.tif", "u8"), ("a.tif", "f32")])
@pytest.mark.defect(12)
def test_dpi_goes_through(tmp_path: Path, name: str, depth: str) -> None:
    image = make("rgb", depth)
    image.dpi = (300.0, 150.0)
    write_image(tmp_path / name, image)
    assert read_image(tmp_path / name).dpi == pytest.approx((300.0, 150.0), rel=1e-4)  # PNG stores whole dots per metre


def test_a_damaged_exif_block_is_dropped_not_copied(tmp_path: Path) -> None:
    image = make("rgb")
    image.exif = b"Exif\0\0garbage"
    write_image(tmp_path / "a.jpg", image)
    assert read_image(tmp_path / "a.jpg").exif is None


# ---------------------------------------------------------------------------- bit depth and transfer


def test_bit_depth_comes_from_the_dtype_not_the_values(tmp_path: Path) -> None:
    image = make("rgb", "u8")  # u8 levels, so every 16-bit sample is a multiple of 257
    write_image(tmp_path / "a.png", image, bit_depth="u16")
    back = read_image(tmp_path / "a.png")
    assert back.bit_depth == "u16"
    np.testing.assert_array_equal(back.pixels, image.pixels)


def test_bit_depth_override_u16_to_u8(tmp_path: Path) -> None:
    image = make("rgba", "u16")
    write_image(tmp_path / "a.png", image, bit_depth="u8")
    back = read_image(tmp_path / "a.png")
    assert back.bit_depth == "u8"
    np.testing.assert_array_equal(back.pixels * 255, np.round(image.pixels * 255))
    np.testing.assert_array_equal(back.alpha * 255, np.round(image.alpha * 255))


@pytest.mark.parametrize(
    "name, source, written",
    [
        ("a.png", "f32", "u16"),
        ("a.png", "f16", "u16"),
        ("a.tif", "f16", "f32"),
        ("a.exr", "u8", "f16"),
        ("a.exr", "u16", "f16"),
        ("a.jpg", "u16", "u8"),
        ("a.webp", "f32", "u8"),
        ("a.pfm", "u8", "f32"),
    ],
)
def test_default_bit_depth_is_the_nearest_the_format_holds(tmp_path: Path, name: str, source: str, written: str) -> None:
    write_image(tmp_path / name, make("rgb", source))
    assert read_image(tmp_path / name).bit_depth == written


@pytest.mark.parametrize("name, depth", [("a.jpg", "u16"), ("a.png", "f32"), ("a.exr", "u8"), ("a.tif", "f16")])
def test_bit_depth_the_format_cannot_hold_is_refused(tmp_path: Path, name: str, depth: str) -> None:
    with pytest.raises(ImageError, match="allowed") as info:
        write_image(tmp_path / name, make("rgb"), bit_depth=depth)
    one_line_error(info, name)
    assert not os.listdir(tmp_path)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def test_linear_exr_to_png_is_srgb_encoded(tmp_path: Path) -> None:
    linear = np.array([0.0, 0.001, 0.0031308, 0.18, 0.5, 1.0, 4.0, -1.0], np.float32).reshape(1, 8, 1)
    write_image(tmp_path / "a.exr", Image(linear, None, "f32", "linear"))
    write_image(tmp_path / "a.png", read_image(tmp_path / "a.exr"))
    back = read_image(tmp_path / "a.png")
    assert (back.bit_depth, back.transfer) == ("u16", "srgb")
    expected = np.round(srgb_encode(np.clip(linear.astype(np.float64), 0, 1)) * 65535) / 65535
    np.testing.assert_allclose(back.pixels, expected, atol=1e-7)


def test_srgb_png_to_exr_is_linearised_and_back(tmp_path: Path) -> None:
    image = make("rgba", "u16")
    write_image(tmp_path / "a.exr", image, bit_depth="f32")
    linear = read_image(tmp_path / "a.exr")
    assert linear.transfer == "linear"
    np.testing.assert_allclose(srgb_encode(linear.pixels.astype(np.float64)), image.pixels, atol=1e-5)
    np.testing.assert_array_equal(linear.alpha, image.alpha)  # alpha is never transfer-converted
    write_image(tmp_path / "b.png", linear)
    assert_same(read_image(tmp_path / "b.png"), image)


def test_float_tiff_keeps_the_image_transfer(tmp_path: Path) -> None:
    image = make("rgb", "f32", "srgb")
    write_image(tmp_path / "a.tif", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif").pixels, image.pixels)


# ---------------------------------------------------------------------------- errors


def test_format_tables_and_format_of() -> None:
    assert format_of("x/y.JPEG") == "jpeg" and format_of(Path("a.tif")) == "tiff"
    avif = {"avif"} if PILFeatures.check("avif") else set()
    assert set(READ_FORMATS.values()) == {"png", "jpeg", "webp", "tiff", "exr", "pfm", "hdr"} | avif
    assert ".hdr" not in WRITE_FORMATS and set(WRITE_FORMATS) == set(READ_FORMATS) - {".hdr"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file") as info:
        read_image(tmp_path / "nope.png")
    one_line_error(info, "nope.png")


def test_garbage_named_png(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"this is not an image\n" * 5)
    with pytest.raises(ImageError, match="unrecognised data") as info:
        read_image(tmp_path / "junk.png")
    one_line_error(info, "junk.png")


@pytest.mark.parametrize("depth", ["u8", "u16"])
def test_truncated_png(tmp_path: Path, depth: str) -> None:
    write_image(tmp_path / "whole.png", make("rgb", depth))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as info:
        read_image(tmp_path / "half.png")
    one_line_error(info, "half.png")


@pytest.mark.parametrize("name", ["t.jpg", "t.webp", "t.tif", "t.exr", "t.pfm"])
def test_damaged_files_of_every_format(tmp_path: Path, name: str) -> None:
    image = make("rgb", "f32" if name.endswith((".exr", ".pfm")) else "u8")
    write_image(tmp_path / name, image)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / name)
    one_line_error(info, name)


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported image format '.bmp'") as info:
        read_image(tmp_path / "pic.bmp")
    one_line_error(info, "pic.bmp")
    with pytest.raises(ImageError) as info:
        write_image(tmp_path / "pic.bmp", make("rgb"))
    one_line_error(info, "pic.bmp")
    with pytest.raises(ImageError, match="read-only") as info:
        write_image(tmp_path / "pic.hdr", make("rgb", "f32", "linear"))
    one_line_error(info, "pic.hdr")


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"keep me")
    with pytest.raises(ImageError, match="exists") as info:
        write_image(tmp_path / "a.png", make("rgb"))
    one_line_error(info, "a.png")
    assert (tmp_path / "a.png").read_bytes() == b"keep me"
    write_image(tmp_path / "a.png", make("rgb"), overwrite=True)
    assert_same(read_image(tmp_path / "a.png"), make("rgb"))
    assert os.listdir(tmp_path) == ["a.png"]


def sixteen_bit_png_bomb(path: Path, side: int = 100_000) -> Path:
    """A 16-bit RGB PNG of a few hundred bytes whose header claims side x side pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    path.write_bytes(image_formats._png_bytes([(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")]))
    return path


def test_a_16_bit_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = sixteen_bit_png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImageError, match="claims 100000 x 100000 pixels") as info:
        read_image(bomb)
    one_line_error(info, "bomb.png")


def bomb_of(kind: str, path: Path) -> Path:
    """A small file of format `kind` whose header claims far more pixels than it holds."""
    if kind == "png16":
        return sixteen_bit_png_bomb(path)
    if kind == "pfm":
        path.write_bytes(b"PF\n100000 100000\n-1.0\n" + bytes(64))
    elif kind == "hdr":
        path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 100000 +X 100000\n" + bytes(64))
    elif kind == "jpeg":  # a real 8 x 8 JPEG whose start-of-frame says 65000 x 65000
        PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, "JPEG")
        data = bytearray(path.read_bytes())
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
        path.write_bytes(bytes(data))
    elif kind == "webp":  # a real 8 x 8 lossless WebP whose VP8L header says 16384 x 16384
        PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, "WEBP", lossless=True)
        data = bytearray(path.read_bytes())
        at = data.index(b"VP8L") + 9  # chunk tag, size, signature byte; then 14 bits each of width - 1, height - 1
        bits = struct.unpack("<I", data[at : at + 4])[0] & ~0x0FFFFFFF | 16383 | 16383 << 14
        data[at : at + 4] = struct.pack("<I", bits)
        path.write_bytes(bytes(data))
    elif kind == "tiff":  # one strip of 16 bytes, tags claiming 100000 x 100000 16-bit RGB
        tags = [(256, 4, 100_000), (257, 4, 100_000), (258, 3, 16), (259, 3, 1), (262, 3, 2), (273, 4, 8), (277, 3, 3),
                (278, 4, 100_000), (279, 4, 16)]  # fmt: skip
        ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, kind_, 1, v) for tag, kind_, v in tags)
        path.write_bytes(b"II*\0" + struct.pack("<I", 24) + bytes(16) + ifd + b"\0\0\0\0")
    elif kind == "exr":  # a 2 x 2 EXR whose data window is stretched to 100000 x 100000
        write_image(path, Image(np.zeros((2, 2, 3), np.float32), None, "f32", "linear"))
        data = bytearray(path.read_bytes())
        window = data.index(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
        data[window + 8 : window + 16] = struct.pack("<ii", 99_999, 99_999)
        path.write_bytes(bytes(data))
    return path


BOMBS = ["png16:b.png", "jpeg:b.jpg", "webp:b.webp", "tiff:b.tif", "exr:b.exr", "pfm:b.pfm", "hdr:b.hdr"]


@pytest.mark.parametrize("kind, name", [bomb.split(":") for bomb in BOMBS])
@pytest.mark.defect(14)
def test_every_format_refuses_a_header_claiming_too_many_pixels_before_decoding(tmp_path: Path, kind: str, name: str) -> None:
    bomb = bomb_of(kind, tmp_path / name)
    assert bomb.stat().st_size < 2000
    with pytest.raises(ImageError, match=r"claims \d+ x \d+ pixels, more than the 178,956,970-pixel limit") as info:
        read_image(bomb)
    one_line_error(info, name)


def test_the_pixel_limit_can_be_lowered_and_raised(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", make("rgb"))
    with pytest.raises(ImageError, match=f"claims {W} x {H} pixels"):
        read_image(tmp_path / "a.png", max_pixels=W * H - 1)
    assert read_image(tmp_path / "a.png", max_pixels=W * H).width == W
    PILImage.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "b.png")
    limit = PILImage.MAX_IMAGE_PIXELS
    try:  # a raised limit overrules Pillow's own bomb check, which is restored after reading
        PILImage.MAX_IMAGE_PIXELS = 2
        assert read_image(tmp_path / "b.png", max_pixels=10).width == 3
        assert PILImage.MAX_IMAGE_PIXELS == 2
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit


@pytest.mark.defect(17)
def test_a_pipe_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file") as info:
        read_image(fifo)  # opening it for reading would block until a writer came
    one_line_error(info, "pipe.png")


@pytest.mark.defect(11)
def test_half_float_output_refuses_values_it_cannot_hold(tmp_path: Path) -> None:
    bright = Image(np.full((4, 4, 3), 70000.0, np.float32), None, "f32", "linear")
    with pytest.raises(ImageError, match="exceed half float's 65504 \\(use f32\\)") as info:
        write_image(tmp_path / "sun.exr", bright, bit_depth="f16")
    one_line_error(info, "sun.exr")
    assert not (tmp_path / "sun.exr").exists()
    write_image(tmp_path / "sun.exr", bright, bit_depth="f32")  # f32 holds it


@pytest.mark.defect(9)
def test_multi_frame_files_are_refused_not_cut_to_their_first_frame(tmp_path: Path) -> None:
    frames = [PILImage.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    for name, count in (("anim.webp", "3 frames"), ("stack.tif", "3 pages")):
        with pytest.raises(ImageError, match=count) as info:
            read_image(tmp_path / name)
        one_line_error(info, name)


@pytest.mark.defect(4)
def test_overwriting_keeps_the_replaced_files_permissions(tmp_path: Path) -> None:
    target = tmp_path / "private.png"
    write_image(target, make("rgb"))
    os.chmod(target, 0o600)
    write_image(target, make("gray"), overwrite=True)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


@pytest.mark.defect(2)
def test_an_output_that_appears_while_encoding_is_not_replaced(tmp_path: Path) -> None:
    # Two runs writing one output: the check before encoding passed for both; the move must not.
    target = tmp_path / "race.png"

    def encode_while_another_run_finishes(tmp: str) -> None:
        Path(tmp).write_bytes(b"ours")
        target.write_bytes(b"theirs")

    with pytest.raises(ImageError, match="written by another run meanwhile"):
        atomic_write(str(target), False, encode_while_another_run_finishes)
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["race.png"]


@pytest.mark.parametrize("folder", ["plain.txt", "missing"])
def test_unwritable_folder(tmp_path: Path, folder: str) -> None:
    (tmp_path / "plain.txt").write_text("a regular file, not a folder")
    with pytest.raises(ImageError) as info:
        write_image(tmp_path / folder / "out.png", make("rgb"))
    one_line_error(info, "out.png")


@pytest.mark.defect(6)
def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp_names = []

    def broken_encoder(path: str, *args: object, **kwargs: object) -> None:
        temp_names.append(path)
        Path(path).write_bytes(b"half an image")
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(image_formats.tifffile, "imwrite", broken_encoder)
    with pytest.raises(ImageError, match="disk on fire second line") as info:
        write_image(tmp_path / "out.tif", make("rgb"))
    one_line_error(info, "out.tif")
    temp = Path(temp_names[0])
    assert temp.parent == tmp_path and temp.name.startswith(".out.tif.") and temp.name.endswith(".tmp")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["a.jpg", "a.pfm"])
def test_alpha_is_never_dropped_silently(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageError, match="no alpha") as info:
        write_image(tmp_path / name, make("rgba", "f32"))
    one_line_error(info, name)


def test_image_contract_is_checked() -> None:
    with pytest.raises(ValueError):
        Image(np.zeros((H, W, 2), np.float32), None, "u8", "srgb")
    with pytest.raises(ValueError):
        Image(np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.float32), "u8", "srgb")
    with pytest.raises(ValueError):
        Image(np.zeros((H, W, 3), np.float32), None, "u12", "srgb")
    image = Image(np.zeros((H, W, 3)), None, "u8", "srgb")
    assert image.pixels.dtype == np.float32 and (image.height, image.width, image.channels) == (H, W, 3)


@pytest.mark.skipif(not PILFeatures.check("avif"), reason="this Pillow has no libavif")
def test_avif_keeps_alpha_and_the_colour_profile_and_loses_little(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pixels = np.clip(np.linspace(0, 1, 48 * 64 * 3).reshape(48, 64, 3) + rng.normal(0, 0.01, (48, 64, 3)), 0, 1)
    alpha = rng.uniform(0, 1, (48, 64, 1)).astype(np.float32)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_image(
        tmp_path / "a.avif",
        Image(pixels=pixels.astype(np.float32), alpha=alpha, bit_depth="u8", transfer="srgb", icc_profile=icc),
    )
    back = read_image(tmp_path / "a.avif")
    assert (back.format, back.bit_depth, back.icc_profile) == ("avif", "u8", icc)
    assert back.alpha is not None and np.abs(back.pixels - pixels).mean() < 0.01


def write_layers(path: Path, channels: dict[str, np.ndarray], dtype: type = np.float32) -> None:
    """A multilayer EXR with these channels, as a renderer writes one."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {name: np.ascontiguousarray(values, dtype) for name, values in channels.items()}).write(str(path))


def blender_layers(planes: dict[str, np.ndarray], composite: bool = False) -> dict[str, np.ndarray]:
    """The channels Blender writes with its denoiser on and the Denoising Data pass: the render as
    rendered (Noisy Image), the denoised one (Combined), the buffers, and with `composite` the
    compositor's result as view layer Composite."""
    channels = {f"ViewLayer.Noisy Image.{c}": planes[c] for c in "RGBA"}
    channels |= {f"ViewLayer.Combined.{c}": planes[c] / 2 for c in "RGBA"}
    channels |= {f"ViewLayer.Denoising Albedo.{c}": planes[c] / 4 for c in "RGB"}
    channels |= {f"ViewLayer.Denoising Normal.{c}": planes[c] - 2 for c in "XYZ"}
    channels["ViewLayer.Denoising Depth.Z"] = planes["Z"]
    if composite:
        channels |= {f"Composite.Combined.{c}": planes[c] / 3 for c in "RGBA"}
    return channels


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_blender_multilayer_exr_gives_the_render_as_rendered_with_its_alpha_and_its_denoising_buffers(tmp_path, dtype):
    rng = np.random.default_rng(3)
    planes = {name: (rng.random((6, 8)) * 4).astype(dtype).astype(np.float32) for name in "RGBAXYZ"}
    write_layers(tmp_path / "frame.exr", blender_layers(planes), dtype)
    image = read_image(tmp_path / "frame.exr")
    assert image.bit_depth == ("f16" if dtype == np.float16 else "f32")
    np.testing.assert_array_equal(image.pixels, np.stack([planes[c] for c in "RGB"], -1))  # not Blender's denoised Combined
    np.testing.assert_array_equal(image.alpha[..., 0], planes["A"])
    np.testing.assert_allclose(image.buffers["albedo"], np.stack([planes[c] for c in "RGB"], -1) / 4, rtol=1e-3)
    np.testing.assert_allclose(image.buffers["normal"], np.stack([planes[c] for c in "XYZ"], -1) - 2, rtol=1e-3, atol=1e-3)
    assert image.buffers["normal"].dtype == np.float32


def test_with_blender_s_denoiser_off_the_view_layer_s_combined_is_read_not_the_compositor_s(tmp_path: Path) -> None:
    planes = {name: np.full((4, 4), 8.0, np.float32) for name in "RGBAXYZ"}
    channels = {k: v for k, v in blender_layers(planes, composite=True).items() if "Noisy Image" not in k}
    write_layers(tmp_path / "frame.exr", channels)
    image = read_image(tmp_path / "frame.exr")
    assert image.pixels[0, 0, 0] == 4.0 and image.alpha[0, 0, 0] == 4.0  # ViewLayer.Combined, planes / 2
    assert set(image.buffers) == {"albedo", "normal"} and exr_buffers(tmp_path / "frame.exr") == ("albedo", "normal")


@pytest.mark.parametrize(
    ("channels", "colour"),
    [
        (["R", "G", "B", "albedo.R", "albedo.G", "albedo.B", "N.X", "N.Y", "N.Z"], "R"),  # bare colour, buffers beside it
        ([".R", ".G", ".B"], ".R"),  # an empty layer name is the bare colour
        (["beauty.R", "beauty.G", "beauty.B", "Z"], "beauty.R"),
        (["Main.Combined.R", "Main.Combined.G", "Main.Combined.B", "Main.Depth.Z"], "Main.Combined.R"),
        (["Main.RGB.R", "Main.RGB.G", "Main.RGB.B", "Main.spec.R", "Main.spec.G", "Main.spec.B"], "Main.RGB.R"),
        (["spec.R", "spec.G", "spec.B"], "spec.R"),  # the only colour layer, whatever its name
        (["Y", "albedo.R", "albedo.G", "albedo.B", "N.X", "N.Y", "N.Z"], "Y"),  # gray: no buffers (the models take RGB)
    ],
)
def test_the_colour_of_a_multilayer_exr_is_its_bare_rgb_else_its_named_or_only_colour_layer(tmp_path, channels, colour):
    values = {name: np.full((4, 4), float(i), np.float32) for i, name in enumerate(channels)}
    write_layers(tmp_path / "x.exr", values)
    image = read_image(tmp_path / "x.exr")
    assert image.pixels[0, 0, 0] == values[colour][0, 0]
    with_buffers = "albedo.R" in channels and colour != "Y"
    assert set(image.buffers) == ({"albedo", "normal"} if with_buffers else set())
    if with_buffers:
        assert image.buffers["normal"][0, 0].tolist() == [values[f"N.{c}"][0, 0] for c in "XYZ"]


def test_a_multilayer_exr_with_no_colour_to_choose_is_refused_in_one_line_naming_its_layers(tmp_path: Path) -> None:
    write_layers(tmp_path / "x.exr", {f"{layer}.{c}": np.zeros((4, 4)) for layer in ("diffuse", "specular") for c in "RGB"})
    with pytest.raises(ImageError, match=r"nor one colour layer \(found layers diffuse, specular\)"):
        read_image(tmp_path / "x.exr")
    write_layers(tmp_path / "y.exr", {f"{view}.Combined.{c}": np.zeros((4, 4)) for view in ("Left", "Right") for c in "RGB"})
    with pytest.raises(ImageError, match=r"several 'combined' layers \(Left.Combined, Right.Combined\)"):
        read_image(tmp_path / "y.exr")
    assert exr_buffers(tmp_path / "y.exr") == ()
