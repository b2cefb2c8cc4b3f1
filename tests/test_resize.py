"""Tests of restore.resize: MATLAB's bicubic imresize, checked by hand and by the SR protocol."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restore.metrics import psnr_y, ssim_y
from restore.resize import center_crop, downscale, imresize, matlab_uint8, modcrop


def _data_dir() -> Path:
    """The shared data folder: $RESTORE_DATA, else ../shared/data beside the repository."""
    override = os.environ.get("RESTORE_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"


def _matlab_cubic(x: float) -> float:
    """Keys' cubic, a = -0.5, written out from its definition."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _reference_resize_1d(signal: np.ndarray, out_len: int) -> np.ndarray:
    """MATLAB's bicubic resize of a 1-D signal, one output pixel and one input position at a time.

    Every integer position near the output pixel gets the (stretched, when downscaling)
    kernel's weight; positions off the signal read the nearest edge sample. The widest kernel
    used here (x1/4) reaches 8 pixels, so positions -20 .. n + 20 cover every tap.
    """
    n = len(signal)
    scale = out_len / n
    stretch = min(scale, 1.0)
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        centre = i / scale + 0.5 * (1 - 1 / scale)
        weights = {}
        for k in range(-20, n + 21):
            w = stretch * _matlab_cubic(stretch * (centre - k))
            if w != 0:
                weights[k] = w
        total = sum(weights.values())
        out[i - 1] = sum(w / total * signal[min(max(k, 1), n) - 1] for k, w in weights.items())
    return out


def test_constant_image_stays_constant() -> None:
    x = torch.full((2, 3, 37, 29), 0.7, dtype=torch.float64)
    for scale in (1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7):
        y = imresize(x, scale)
        assert torch.allclose(y, torch.full_like(y, 0.7), atol=1e-12), scale


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_down_and_up(scale: int) -> None:
    hr = torch.rand(2, 3, 24, 36)
    lr = imresize(hr, 1 / scale)
    assert lr.shape == (2, 3, 24 // scale, 36 // scale)
    assert lr.dtype == hr.dtype
    assert imresize(lr, scale).shape == hr.shape
    # C x H x W input keeps its three dimensions.
    assert imresize(hr[0], 1 / scale).shape == (3, 24 // scale, 36 // scale)


def test_output_size_rounds_up_and_size_argument() -> None:
    x = torch.rand(1, 1, 25, 31)
    assert imresize(x, 0.5).shape == (1, 1, 13, 16)  # ceil, as MATLAB
    assert imresize(x, size=(10, 40)).shape == (1, 1, 10, 40)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, 0.5, size=(10, 10))
    with pytest.raises(ValueError):
        imresize(x.to(torch.uint8), 0.5)


def test_x2_upscale_of_an_impulse_gives_the_bicubic_weights() -> None:
    # Output pixels 2k, 2k+1 sit at input offsets -0.25 and +0.25 from pixel k, so the impulse
    # at the centre spreads as the kernel at distances 1.75, 1.25, 0.75, 0.25, 0.25, ...
    x = torch.zeros(1, 1, 1, 9, dtype=torch.float64)
    x[..., 4] = 1.0
    y = imresize(x, size=(1, 18))[0, 0, 0]
    tail, far, near, centre = -0.0234375, -0.0703125, 0.2265625, 0.8671875
    expected = torch.tensor([tail, far, near, centre, centre, near, far, tail], dtype=torch.float64)
    assert torch.allclose(y[5:13], expected, atol=1e-12)
    assert torch.all(y[:5] == 0) and torch.all(y[13:] == 0)


@pytest.mark.parametrize("in_len,out_len", [(12, 6), (12, 4), (12, 3), (10, 7), (6, 12), (5, 15), (7, 11)])
def test_matches_reference_on_1d_signal(in_len: int, out_len: int) -> None:
    rng = np.random.default_rng(in_len * 100 + out_len)
    signal = rng.uniform(0, 255, in_len)
    # Strong values at both ends, so mirroring instead of replicating the edge would show.
    signal[0], signal[-1] = 255.0, 0.0
    expected = _reference_resize_1d(signal, out_len)
    row = torch.from_numpy(signal).view(1, 1, 1, in_len)
    got_w = imresize(row, size=(1, out_len))[0, 0, 0].numpy()
    got_h = imresize(row.transpose(-1, -2), size=(out_len, 1))[0, 0, :, 0].numpy()
    np.testing.assert_allclose(got_w, expected, atol=1e-10)
    np.testing.assert_allclose(got_h, expected, atol=1e-10)


def test_separable_2d_matches_reference_on_each_dimension() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (9, 8))
    y = imresize(torch.from_numpy(img)[None], size=(4, 13))[0].numpy()
    rows = np.stack([_reference_resize_1d(r, 13) for r in img])
    expected = np.stack([_reference_resize_1d(c, 4) for c in rows.T]).T
    np.testing.assert_allclose(y, expected, atol=1e-9)


def test_modcrop() -> None:
    x = torch.rand(3, 27, 31)
    assert modcrop(x, 4).shape == (3, 24, 28)
    assert torch.equal(modcrop(x, 4), x[:, :24, :28])
    assert modcrop(x[None], 3).shape == (1, 3, 27, 30)


def test_8_bit_levels_round_halves_away_from_zero_as_matlab_uint8_does() -> None:
    values = torch.tensor([0.5, 1.5, 2.5, 253.5, 254.5, 255.4, 300.0, -3.0, 0.49], dtype=torch.float64)
    assert matlab_uint8(values).tolist() == [1, 2, 3, 254, 255, 255, 255, 0, 0]
    assert torch.round(values[:3]).tolist() == [0, 2, 2]  # half to even: what the protocol's LR images used before


def test_the_benchmark_degradation_is_matlab_bicubic_rounded_as_matlab() -> None:
    hr = torch.rand(1, 3, 12, 18, generator=torch.Generator().manual_seed(0))
    lr = downscale(hr, 3)
    assert lr.shape == (1, 3, 4, 6)
    assert torch.equal(lr * 255, matlab_uint8(imresize(hr * 255, scale=1 / 3)))


def test_center_crop_keeps_the_middle_and_a_multiple_of_the_scale() -> None:
    image = torch.arange(7 * 9).reshape(1, 7, 9)
    assert torch.equal(center_crop(image, 4), image[:, 1:5, 2:6])
    assert center_crop(image, 100, multiple=2).shape == (1, 6, 8)


def _load_set5() -> list[torch.Tensor]:
    folder = _data_dir() / "test" / "Set5"
    files = sorted(folder.glob("*.png"))
    if len(files) != 5:
        pytest.skip(f"Set5 (5 PNGs) not found in {folder}; set RESTORE_DATA to the shared data folder")
    images = []
    for f in files:
        with Image.open(f) as im:
            arr = np.array(im if im.mode == "L" else im.convert("RGB"), dtype=np.float64)
        images.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)))
    return images


@pytest.fixture(scope="module")
def set5() -> list[torch.Tensor]:
    return _load_set5()


def _bicubic_scores(images: list[torch.Tensor], scale: int) -> tuple[float, float]:
    """Mean PSNR-Y and SSIM-Y of bicubic down-then-up, per the README's SR protocol."""
    psnrs, ssims = [], []
    for img in images:
        hr = modcrop(img, scale)
        lr = matlab_uint8(imresize(hr, 1 / scale))
        sr = matlab_uint8(imresize(lr, scale))
        psnrs.append(psnr_y(sr, hr, scale))
        ssims.append(ssim_y(sr, hr, scale))
    return sum(psnrs) / len(psnrs), sum(ssims) / len(ssims)


# Published bicubic rows of Set5 (e.g. the VDSR / EDSR tables).
@pytest.mark.parametrize("scale,published_psnr,published_ssim", [(2, 33.66, 0.9299), (4, 28.42, None)])
def test_set5_bicubic_matches_published(
    set5: list[torch.Tensor], scale: int, published_psnr: float, published_ssim: float | None
) -> None:
    mean_psnr, mean_ssim = _bicubic_scores(set5, scale)
    print(f"Set5 bicubic x{scale}: PSNR-Y {mean_psnr:.3f} dB, SSIM-Y {mean_ssim:.4f}")
    assert math.isclose(mean_psnr, published_psnr, abs_tol=0.03), mean_psnr
    if published_ssim is not None:
        assert math.isclose(mean_ssim, published_ssim, abs_tol=0.002), mean_ssim
