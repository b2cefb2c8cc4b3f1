"""Tests of restore.metrics against values worked out from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.metrics import noisy_reference_psnr, psnr, psnr_y, rgb_to_y, ssim, ssim_y


def _reference_ssim(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """SSIM of two 2-D arrays, one 11 x 11 window position at a time."""
    offsets = np.arange(11) - 5
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
            var_a = (window * (pa - mu_a) ** 2).sum()
            var_b = (window * (pb - mu_b) ** 2).sum()
            cov = (window * (pa - mu_a) * (pb - mu_b)).sum()
            numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
            values.append(numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_psnr_of_identical_images_is_inf() -> None:
    x = torch.rand(3, 16, 16) * 255
    assert psnr(x, x.clone()) == math.inf


def test_psnr_of_known_mse() -> None:
    a = torch.zeros(3, 8, 10)
    b = torch.full((3, 8, 10), 5.0)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    # Half the pixels off by 2: MSE 2.
    c = torch.zeros(1, 8, 8)
    c[..., :4] = 2.0
    assert psnr(torch.zeros(1, 8, 8), c) == pytest.approx(10 * math.log10(255**2 / 2))
    assert psnr(a / 255, b / 255, peak=1.0) == pytest.approx(10 * math.log10(255**2 / 25))


def test_psnr_shave_drops_the_border() -> None:
    a = torch.zeros(1, 1, 12, 12)
    b = a.clone()
    b[..., :2, :] = 50.0
    b[..., :, -2:] = 50.0
    assert psnr(a, b, shave=2) == math.inf
    assert psnr(a, b, shave=1) < 30


def test_psnr_refuses_a_batch_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one image"):
        psnr(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))


def test_ssim_of_identical_is_one_and_drops_with_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 48, 48, generator=g) * 255
    assert ssim(x, x.clone()) == pytest.approx(1.0)
    light = ssim(x, x + 5 * torch.randn(x.shape, generator=g))
    heavy = ssim(x, x + 30 * torch.randn(x.shape, generator=g))
    assert 1.0 > light > heavy


def test_ssim_matches_windowed_reference() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, (2, 22, 19))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    expected = np.mean([_reference_ssim(a[c], b[c], 255.0) for c in range(2)])
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, abs=1e-10)
    # shave cuts the border before the window slides.
    expected_shaved = _reference_ssim(a[0, 3:-3, 3:-3], b[0, 3:-3, 3:-3], 255.0)
    shaved = ssim(torch.from_numpy(a[:1]), torch.from_numpy(b[:1]), shave=3)
    assert shaved == pytest.approx(expected_shaved, abs=1e-10)


def test_rgb_to_y_white_black_and_gray() -> None:
    white = torch.full((1, 3, 2, 2), 255.0)
    black = torch.zeros(3, 2, 2)
    assert torch.allclose(rgb_to_y(white), torch.full((1, 1, 2, 2), 235.0))
    assert torch.allclose(rgb_to_y(black), torch.full((1, 2, 2), 16.0))
    gray = torch.rand(1, 5, 5) * 255
    assert rgb_to_y(gray) is gray
    with pytest.raises(ValueError):
        rgb_to_y(torch.zeros(2, 4, 4))


def test_psnr_y_and_ssim_y_use_luma_and_shave_scale() -> None:
    hr = torch.rand(3, 30, 30) * 255
    sr = hr.clone()
    sr[:, :3, :] = 0.0  # wrong only in the border that x3 shaves
    assert psnr_y(sr, hr, 3) == math.inf
    assert ssim_y(sr, hr, 3) == pytest.approx(1.0)
    # A change that keeps Y (R up, B down in the ratio of their weights) is invisible.
    shifted = hr.clone()
    shifted[0] += 24.966
    shifted[2] -= 65.481
    assert psnr_y(shifted, hr, 2) > 100


def test_the_noisy_reference_estimate_recovers_the_clean_psnr() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 256, 256, generator=g)
    first, second = (clean + 0.1 * torch.randn(clean.shape, generator=g) for _ in range(2))
    output = clean + 0.02 * torch.randn(clean.shape, generator=g)  # a denoiser's output, 34 dB
    assert noisy_reference_psnr(output, first, second) == pytest.approx(psnr(output, clean, peak=1.0), abs=0.3)
    assert psnr(output, second, peak=1.0) < 21  # the naive score: B's own noise hides the output's quality


def test_a_pair_that_cannot_tell_an_output_from_the_clean_image_scores_it_at_what_the_pair_can_measure() -> None:
    # The clean image itself as the output: its estimated error, the difference of two noisy terms,
    # comes out below zero with this seed. It reads as the estimate's standard error, not as the
    # 100 dB of a floor at 1e-10, which would lift a finetune's validation mean by tens of dB.
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(1, 3, 64, 64, generator=g)
    first, second = (clean + 0.1 * torch.randn(clean.shape, generator=g) for _ in range(2))
    excess = (F.mse_loss(clean, second) - F.mse_loss(first, second) / 2).item()
    assert excess < 0  # what the seed gives: the pair cannot tell this output from perfect
    perfect = noisy_reference_psnr(clean, first, second)
    assert 35 < perfect < 60
    assert perfect > noisy_reference_psnr(first, first, second) + 10  # still far above the noisy input
