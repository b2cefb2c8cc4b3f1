"""Tests of restore.noise.camera and the ``photo:`` noise family: photos as a camera delivers them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from restore.noise import PhotoNoise, noisy_pair, parse_noise, with_lossless_targets
from restore.noise.camera import (
    bayer_masks,
    demosaic_bilinear,
    draw_settings,
    from_raw,
    inverse_tone_curve,
    noise_reduction,
    photo_noise,
    raw_noise,
    to_raw,
    tone_curve,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_image(n: int = 2, size: int = 64) -> torch.Tensor:
    """Colour gradients in (0.05, 0.95): a photo-like image with no clipping anywhere."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([0.1 + 0.8 * x, 0.1 + 0.8 * y, 0.5 + 0.3 * (x - y)])
    return image.expand(n, 3, size, size).clone()


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def test_the_tone_curve_inverts() -> None:
    y = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(tone_curve(inverse_tone_curve(y)), y, atol=1e-9)


def test_a_clean_image_round_trips_through_the_camera_unchanged() -> None:
    # Unprocessing and processing are exact inverses: without noise, a photo comes back as it was.
    clean = _smooth_image()
    settings = draw_settings(2, (1e-3, 1e-2), (90, 90), _gen(0))
    assert torch.allclose(from_raw(to_raw(clean, settings), settings), clean, atol=1e-5)


def test_unprocessing_makes_the_image_darker_and_linear() -> None:
    clean = _smooth_image()
    raw = to_raw(clean, draw_settings(2, (1e-3, 1e-3), (90, 90), _gen(1)))
    assert raw.mean() < clean.mean() * 0.5  # gamma, tone curve and white-balance gains undone


def test_bayer_masks_cover_each_photosite_once_rggb() -> None:
    masks = bayer_masks(4, 6)
    assert torch.equal(masks.sum(0), torch.ones(4, 6))
    assert masks[0, 0, 0] == 1 and masks[1, 0, 1] == 1 and masks[1, 1, 0] == 1 and masks[2, 1, 1] == 1
    assert masks[1].mean() == 0.5


def test_bilinear_demosaicking_keeps_recorded_values_and_flat_colours() -> None:
    flat = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 9, 11)
    mosaic = (flat * bayer_masks(9, 11)).sum(1, keepdim=True)
    # Flat colour is rebuilt everywhere, borders and odd sizes included.
    assert torch.allclose(demosaic_bilinear(mosaic), flat, atol=1e-6)
    random_mosaic = torch.rand(1, 1, 8, 8, generator=_gen(2))
    rebuilt = demosaic_bilinear(random_mosaic)
    masks = bayer_masks(8, 8)
    assert torch.allclose((rebuilt * masks).sum(1, keepdim=True), random_mosaic)


def test_sensor_noise_grows_with_the_signal() -> None:
    # Shot noise: variance proportional to the raw signal, so bright areas are noisier.
    settings = draw_settings(1, (1e-2, 1e-2), (90, 90), _gen(3))
    dark, bright = torch.full((1, 3, 64, 64), 0.02), torch.full((1, 3, 64, 64), 0.5)
    assert raw_noise(bright, settings, _gen(4)).std() > 3 * raw_noise(dark, settings, _gen(4)).std()


def test_noise_reduction_leaves_mostly_luma_noise() -> None:
    # Cameras smooth colour noise more than luma noise: the channels' noise ends up correlated.
    settings = dataclasses.replace(draw_settings(1, (1e-2, 1e-2), (90, 90), _gen(5)), chroma=torch.tensor([0.25]))
    white = torch.randn(1, 3, 64, 64, generator=_gen(6))
    reduced = noise_reduction(white, settings)
    assert abs(_correlation(white[:, 0], white[:, 1])) < 0.1
    assert _correlation(reduced[:, 0], reduced[:, 1]) > 0.5


def test_a_coarse_grain_keeps_the_noise_correlated_further_away_at_the_same_level() -> None:
    # Real JPEGs' noise is still correlated two pixels away (bench/photo_noise_stats.py); the
    # coarse share moves luma variance to a blotchier grain without changing the level much.
    settings = dataclasses.replace(draw_settings(1, (1e-2, 1e-2), (90, 90), _gen(5)), blur=torch.tensor([0.8]))
    white = torch.randn(1, 3, 96, 96, generator=_gen(6))
    fine = noise_reduction(white, settings)
    coarse = noise_reduction(white, dataclasses.replace(settings, coarse=torch.tensor([0.5]), coarse_blur=torch.tensor([3.0])))
    lag2 = [_correlation(r[..., 2:], r[..., :-2]) for r in (fine, coarse)]
    assert lag2[1] > lag2[0] + 0.2
    assert 0.8 < float(coarse.std() / fine.std()) < 1.25


def test_photo_specs_without_a_coarse_share_draw_as_before_it_existed() -> None:
    # Models trained on `photo:SHOT,QUALITY` keep their noise: the optional share draws nothing.
    clean = _smooth_image()
    assert torch.equal(parse_noise("photo:1e-3,90").apply(clean, _gen(2)), PhotoNoise(1e-3, 90, 0.0).apply(clean, _gen(2)))
    assert not torch.equal(
        parse_noise("photo:1e-3,90").apply(clean, _gen(2)), parse_noise("photo:1e-3,90,0.5").apply(clean, _gen(2))
    )


def test_a_finer_luma_blur_keeps_more_of_the_noise_at_the_finest_scale() -> None:
    # Real camera noise peaks at 2 pixels, the default camera's at 4 (bench/photo_noise_stats.py):
    # a spec's BLUR moves the grain finer, with the default still drawn when it is left out.
    clean = _smooth_image(2, 96)
    default, fine = (parse_noise(spec).apply(clean, _gen(3)) - clean for spec in ("photo:1e-2,100", "photo:1e-2,100,0,0.3"))
    lag1 = [_correlation(r[..., 1:], r[..., :-1]) for r in (default, fine)]
    assert lag1[1] < lag1[0] - 0.15
    assert torch.equal(parse_noise("photo:1e-2,100,0,0.4-1.6").apply(clean, _gen(3)) - clean, default)


def test_a_larger_gamma_moves_the_noise_into_the_shadows() -> None:
    # Real camera JPEGs are noisier in the shadows and cleaner in the highlights than a 2.2 gamma
    # gives (bench/photo_noise_stats.py, noise by brightness); GAMMA lifts the shadows more.
    clean = torch.cat([torch.full((1, 3, 64, 32), 0.15), torch.full((1, 3, 64, 32), 0.8)], dim=3)

    def shadow_over_highlight(spec: str) -> float:
        residual = parse_noise(spec).apply(clean, _gen(4)) - clean
        return float(residual[..., 2:-2, 2:30].std() / residual[..., 2:-2, 34:-2].std())

    assert shadow_over_highlight("photo:1e-2,100,0,0.4-1.6,3") > 1.3 * shadow_over_highlight("photo:1e-2,100")
    same = (parse_noise(spec).apply(clean, _gen(4)) for spec in ("photo:1e-2,100,0,0.4-1.6,2.2", "photo:1e-2,100"))
    assert torch.equal(*same)  # the default gamma draws as before GAMMA existed


def test_photo_noise_is_8_bit_and_near_the_clean_image_at_low_iso() -> None:
    clean = _smooth_image()
    settings = draw_settings(2, (1e-5, 1e-5), (100, 100), _gen(7))
    noisy = photo_noise(clean, settings, _gen(8))
    assert torch.allclose(noisy * 255, (noisy * 255).round(), atol=1e-4)  # 8-bit values
    assert (noisy - clean).abs().max() < 2 / 255


def test_photo_noise_is_heavier_at_higher_iso_and_correlated_between_neighbours() -> None:
    clean = _smooth_image(1, 96)
    residuals = []
    for shot in (1e-4, 1e-2):
        noisy = PhotoNoise(shot, 95).apply(clean, _gen(9))
        residuals.append(noisy - clean)
    low, high = residuals
    assert high.std() > 3 * low.std()
    assert _correlation(high[..., 1:], high[..., :-1]) > 0.3  # demosaicking and noise reduction


def test_a_photo_pair_shares_its_camera_but_not_its_noise() -> None:
    clean = _smooth_image(4)
    first, second = PhotoNoise((1e-3, 1e-2), (80, 95)).pair(clean, _gen(10))
    assert not torch.equal(first, second)
    # Same camera and ISO per image: the two shots' noise levels match image by image.
    level_a = (first - clean).std(dim=(1, 2, 3))
    level_b = (second - clean).std(dim=(1, 2, 3))
    assert torch.allclose(level_a, level_b, rtol=0.15)
    assert level_a.max() > 1.5 * level_a.min()  # while the level differs between images


def test_a_lossless_target_is_the_same_shot_saved_without_jpeg() -> None:
    # JPEG drops fine detail from both shots alike, so a compressed target is not the clean image
    # plus zero-mean noise. With lossless targets the input keeps its drawn JPEG and the target is
    # the same camera's second shot in 8 bits only.
    texture = (0.2 + 0.6 * torch.rand(2, 3, 64, 64, generator=_gen(12))).clamp(0, 1)
    noise = PhotoNoise(1e-5, 60)
    first, second = noise.pair(texture, _gen(13))
    lossless = dataclasses.replace(noise, lossless_targets=True)
    first_l, second_l = lossless.pair(texture, _gen(13))
    assert torch.equal(first_l, first)

    def error(shot: torch.Tensor) -> float:
        return float((shot - texture).square().mean().sqrt())

    assert error(second_l) < error(second) / 3 and error(second_l) < 2 / 255
    assert torch.allclose(second_l * 255, (second_l * 255).round(), atol=1e-4)  # 8-bit values
    assert torch.equal(lossless.pair_with_reference(texture, _gen(13))[1], second_l)  # as a level run draws it


def test_lossless_targets_change_only_the_photo_families_of_a_mix() -> None:
    mix = with_lossless_targets(parse_noise("mix:photo:1e-4,80|gaussian8:0-5"))
    assert mix.choices == (PhotoNoise(1e-4, 80, lossless_targets=True), parse_noise("gaussian8:0-5"))
    assert with_lossless_targets(parse_noise("photo:1e-4,80")) == PhotoNoise(1e-4, 80, lossless_targets=True)
    with pytest.raises(ValueError, match="has no photo family"):
        with_lossless_targets(parse_noise("mix:gaussian:25|poisson:30"))


def test_photo_noise_is_reproducible_from_its_seed() -> None:
    clean = _smooth_image()
    noise = parse_noise("photo:0.0001-0.01,70-100")
    assert torch.equal(noise.apply(clean, _gen(11)), noise.apply(clean, _gen(11)))


def test_photo_spec_reads_back_and_rejects_bad_values() -> None:
    assert str(parse_noise("photo:0.0001-0.012,70-99")) == "photo:0.0001-0.012,70-99"
    assert str(parse_noise("photo:1e-5,100")) == "photo:1e-05,100"
    assert str(parse_noise("photo:1e-5,100,0-0.1")) == "photo:1e-05,100,0-0.1"
    assert str(parse_noise("photo:1e-5,100,0")) == "photo:1e-05,100"
    assert str(parse_noise("photo:1e-5,100,0,0.3-0.8")) == "photo:1e-05,100,0,0.3-0.8"
    assert str(parse_noise("photo:1e-5,100,0,0.4-1.6")) == "photo:1e-05,100"
    assert str(parse_noise("photo:1e-5,100,0,0.4-1.6,2.2-3")) == "photo:1e-05,100,0,0.4-1.6,2.2-3"
    assert str(parse_noise("photo:1e-5,100,0,0.4-1.6,2.2")) == "photo:1e-05,100"
    bad_specs = (
        "photo:0.001",
        "photo:0,90",
        "photo:0.001,101",
        "photo:0.001,0",
        "photo:0.001,90,1.5",
        "photo:0.001,90,0.1,0.5,0",
        "photo:0.001,90,0.1,0.5,2.2,1",
    )
    for bad in bad_specs:
        with pytest.raises(ValueError):
            parse_noise(bad)
    with pytest.raises(ValueError, match="colour"):
        PhotoNoise(1e-3, 90).apply(torch.rand(1, 1, 16, 16), _gen(0))


def test_a_mix_keeps_its_choice_for_both_images_of_a_pair() -> None:
    # One image of a pair photographed, the other with Gaussian noise, would not be a pair.
    clean = torch.full((8, 3, 32, 32), 0.5)
    first, second = noisy_pair(parse_noise("mix:photo:1e-5,100|gaussian:50"), clean, _gen(12))
    for a, b in zip(first, second, strict=True):
        quiet_a, quiet_b = bool((a - 0.5).std() < 5 / 255), bool((b - 0.5).std() < 5 / 255)
        assert quiet_a == quiet_b


def test_other_noise_pairs_are_two_independent_draws() -> None:
    clean = torch.full((2, 3, 16, 16), 0.5)
    first, second = noisy_pair(parse_noise("gaussian:25"), clean, _gen(13))
    generator = _gen(13)
    noise = parse_noise("gaussian:25")
    assert torch.equal(first, noise.apply(clean, generator))
    assert torch.equal(second, noise.apply(clean, generator))
