"""NaN / Inf input: refused with one line by default, repaired on request, never in the output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_one_line_error, run, smooth_image
from restore.io.images import Image, read_image, write_image
from restore.io.nonfinite import count_nonfinite, repair_nonfinite


def test_count_is_per_pixel_not_per_value():
    pixels = np.ones((4, 5, 3), np.float32)
    pixels[1, 2] = [np.nan, np.inf, 0.5]
    pixels[3, 0, 1] = -np.inf
    assert count_nonfinite(pixels) == 2


def test_repair_takes_the_mean_of_finite_neighbours_of_the_same_channel():
    pixels = np.zeros((5, 5, 2), np.float32)
    pixels[..., 0] = np.arange(25, dtype=np.float32).reshape(5, 5)
    pixels[..., 1] = 7.0
    pixels[2, 2, 0] = np.nan
    repaired = repair_nonfinite(pixels)
    around = [pixels[y, x, 0] for y in (1, 2, 3) for x in (1, 2, 3) if (y, x) != (2, 2)]
    assert repaired[2, 2, 0] == pytest.approx(np.mean(around), rel=1e-6)
    np.testing.assert_array_equal(repaired[..., 1], 7.0)
    np.testing.assert_array_equal(np.delete(repaired.reshape(-1, 2), 12, axis=0), np.delete(pixels.reshape(-1, 2), 12, axis=0))


def test_a_hole_wider_than_the_window_is_still_filled():
    pixels = np.ones((16, 16, 1), np.float32) * 3
    pixels[2:14, 2:14] = np.inf
    np.testing.assert_allclose(repair_nonfinite(pixels), 3, rtol=1e-6)


def test_cli_refuses_nan_input_and_repairs_it_on_request(tmp_path, tiny_models):
    pixels = smooth_image(32, 40)
    pixels[5, 7] = np.nan
    pixels[20, 30, 1] = np.inf
    src = tmp_path / "render.exr"
    write_image(src, Image(pixels, None, "f32", "linear"))
    model = ["--model", str(tiny_models["denoiser"])]
    assert_one_line_error(run("denoise", str(src), *model), "2 pixels are NaN or infinite")
    assert not (tmp_path / "render.denoised.exr").exists()
    result = run("denoise", str(src), *model, "--repair-nonfinite")
    assert result.returncode == 0, result.stderr
    assert np.isfinite(read_image(tmp_path / "render.denoised.exr").pixels).all()
