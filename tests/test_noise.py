"""Tests of restore.noise: statistics, reproducibility and the spec strings."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from restore.noise import (
    CorrelatedGaussianNoise,
    GaussianNoise,
    PoissonGaussianNoise,
    PoissonNoise,
    estimate_sigma,
    parse_noise,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _levels(shape: tuple[int, int, int, int] = (1, 3, 128, 128)) -> tuple[torch.Tensor, list[float]]:
    """An image whose channels are flat at 0.2, 0.5 and 0.8, to check stats per level."""
    values = [0.2, 0.5, 0.8]
    clean = torch.tensor(values, dtype=torch.float64).view(1, 3, 1, 1).expand(shape).clone()
    return clean, values


def test_gaussian_mean_and_std() -> None:
    clean = torch.full((1, 3, 128, 128), 0.5)
    noisy = parse_noise("gaussian:25").apply(clean, _gen(0))
    assert noisy.mean().item() == pytest.approx(0.5, abs=2e-3)
    assert noisy.std().item() == pytest.approx(25 / 255, rel=0.02)
    # Not clipped: values beyond [0, 1] survive.
    assert noisy.max().item() > 0.85 and noisy.min().item() < 0.15


def test_gaussian_matches_the_denoising_protocol() -> None:
    clean255 = torch.rand(1, 3, 32, 32, generator=_gen(5)) * 255
    seed = 1234
    protocol = clean255 + 25 * torch.randn(clean255.shape, generator=_gen(seed))
    ours = GaussianNoise(25).apply(clean255 / 255, _gen(seed)) * 255
    assert torch.allclose(ours, protocol, atol=1e-3)


def test_gaussian8_is_the_same_noise_saved_as_an_8_bit_file() -> None:
    clean = torch.rand(2, 3, 64, 64, generator=_gen(4), dtype=torch.float64)
    float_noisy = parse_noise("gaussian:0-50").apply(clean, _gen(6))
    file_noisy = parse_noise("gaussian8:0-50").apply(clean, _gen(6))
    assert torch.equal(file_noisy, (float_noisy.clamp(0, 1) * 255).round() / 255)
    assert file_noisy.min() >= 0 and file_noisy.max() <= 1
    assert str(parse_noise("gaussian8:0-50")) == "gaussian8:0-50"


def test_poisson_preserves_mean_and_has_variance_clean_over_lambda() -> None:
    clean, values = _levels()
    noisy = parse_noise("poisson:30").apply(clean, _gen(1))
    for c, v in enumerate(values):
        assert noisy[:, c].mean().item() == pytest.approx(v, abs=4e-3)
        assert noisy[:, c].var().item() == pytest.approx(v / 30, rel=0.05)
    # Photon counts: every value is a multiple of 1 / lambda.
    counts = noisy * 30
    assert torch.allclose(counts, counts.round())


def test_poisson_gaussian_variance() -> None:
    clean, values = _levels()
    noisy = parse_noise("poisson-gaussian:30,5").apply(clean, _gen(2))
    for c, v in enumerate(values):
        assert noisy[:, c].mean().item() == pytest.approx(v, abs=4e-3)
        assert noisy[:, c].var().item() == pytest.approx(v / 30 + (5 / 255) ** 2, rel=0.05)


def test_correlated_noise_has_sigma_per_pixel_and_correlated_neighbours() -> None:
    clean = torch.full((1, 3, 256, 256), 0.5, dtype=torch.float64)
    noise = parse_noise("correlated:25,1").apply(clean, _gen(3)) - clean
    assert noise.mean().item() == pytest.approx(0.0, abs=2e-3)
    assert noise.std().item() == pytest.approx(25 / 255, rel=0.05)
    # A Gaussian kernel of std b correlates neighbours by exp(-1 / (4 b^2)): 0.78 for b = 1.
    right = (noise[..., :, 1:] * noise[..., :, :-1]).mean() / noise.var()
    below = (noise[..., 1:, :] * noise[..., :-1, :]).mean() / noise.var()
    assert right.item() == pytest.approx(0.7788, abs=0.03) and below.item() == pytest.approx(0.7788, abs=0.03)
    # Channels stay independent.
    assert abs((noise[:, 0] * noise[:, 1]).mean() / noise.var()).item() < 0.05


@pytest.mark.parametrize(
    "spec", ["gaussian:25", "gaussian:0-50", "poisson:30", "poisson-gaussian:5-100,0-10", "correlated:5-30,1.5"]
)
def test_same_seed_same_noise_other_seed_other_noise(spec: str) -> None:
    model = parse_noise(spec)
    clean = torch.rand(4, 3, 16, 16, generator=_gen(9))
    first = model.apply(clean, _gen(7))
    assert torch.equal(first, model.apply(clean, _gen(7)))
    assert not torch.equal(first, model.apply(clean, _gen(8)))


def test_gaussian_range_draws_sigma_per_image() -> None:
    clean = torch.zeros(8, 1, 64, 64, dtype=torch.float64)
    noisy = parse_noise("gaussian:0-50").apply(clean, _gen(3))
    sigmas = noisy.std(dim=(1, 2, 3)) * 255
    assert sigmas.max() - sigmas.min() > 10
    assert torch.all(sigmas <= 50 * 1.05)


def test_poisson_ranges_draw_lambda_per_image() -> None:
    clean = torch.full((8, 1, 64, 64), 0.5, dtype=torch.float64)
    noisy = parse_noise("poisson:5-100").apply(clean, _gen(4))
    # Var = 0.5 / lambda, so each image's lambda can be read back from its variance.
    lambdas = 0.5 / noisy.var(dim=(1, 2, 3))
    assert lambdas.max() / lambdas.min() > 2
    assert torch.all((lambdas > 5 * 0.85) & (lambdas < 100 * 1.15))

    zeros = torch.zeros(8, 1, 64, 64, dtype=torch.float64)
    read_only = parse_noise("poisson-gaussian:30,0-10").apply(zeros, _gen(5))
    reads = read_only.std(dim=(1, 2, 3)) * 255
    assert reads.max() - reads.min() > 2


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("gaussian:25", GaussianNoise(25.0)),
        ("gaussian:0-50", GaussianNoise((0.0, 50.0))),
        ("poisson:30", PoissonNoise(30.0)),
        ("poisson:5-100", PoissonNoise((5.0, 100.0))),
        ("poisson-gaussian:30,5", PoissonGaussianNoise(30.0, 5.0)),
        ("poisson-gaussian:5-100,0-10", PoissonGaussianNoise((5.0, 100.0), (0.0, 10.0))),
        ("gaussian:12.5", GaussianNoise(12.5)),
        ("correlated:25,1.5", CorrelatedGaussianNoise(25.0, 1.5)),
        ("correlated:0-50,1", CorrelatedGaussianNoise((0.0, 50.0), 1.0)),
    ],
)
def test_parse_and_str_round_trip(spec: str, expected: object) -> None:
    model = parse_noise(spec)
    assert model == expected
    assert str(model) == spec


def test_str_round_trips_awkward_numbers() -> None:
    for model in (GaussianNoise(1e-7), GaussianNoise((2.5e-7, 3.0)), PoissonNoise(1e20)):
        assert parse_noise(str(model)) == model


@pytest.mark.parametrize("sigma", [5, 25])
def test_the_noise_level_of_an_image_is_estimated_from_the_image_alone(sigma: int) -> None:
    y, x = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    clean = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y])[None]
    noisy = GaussianNoise(sigma).apply(clean, _gen(20))
    assert estimate_sigma(noisy) * 255 == pytest.approx(sigma, rel=0.05)
    assert estimate_sigma(clean) * 255 < 0.5


def test_models_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GaussianNoise(25).sigma = 10  # type: ignore[misc]


def test_unknown_noise_message() -> None:
    expected = (
        r"unknown noise 'foo' "
        r"\(expected gaussian:SIGMA, gaussian8:SIGMA, poisson:LAMBDA, poisson-gaussian:LAMBDA,READ, correlated:SIGMA,BLUR, "
        r"photo:SHOT,QUALITY\[,COARSE\]\[,BLUR\]\[,GAMMA\], erase:P, blur:SIGMA, block:SIZE or mix:SPEC\|SPEC\|...\)"
    )
    with pytest.raises(ValueError, match=expected):
        parse_noise("foo")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "speckle:3",
        "gaussian",
        "gaussian:",
        "gaussian:abc",
        "gaussian:-5",
        "gaussian:50-10",
        "gaussian:inf",
        "poisson:0",
        "poisson:0-10",
        "poisson-gaussian:30",
        "poisson-gaussian:30,5,1",
        "correlated:25",
        "correlated:25,0",
        "correlated:25,1-2",
    ],
)
def test_bad_specs_raise_value_error(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_noise(spec)


def test_apply_needs_a_batch() -> None:
    with pytest.raises(ValueError, match="N x C x H x W"):
        GaussianNoise(25).apply(torch.zeros(3, 8, 8), _gen(0))
