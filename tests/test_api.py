"""The library API: restore.load / denoise / upscale on tensors and arrays, and eval's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import restore
from conftest import smooth_image, write_png
from restore.evaluation import evaluate_folder
from restore.io.images import read_image
from restore.io.nonfinite import repair_nonfinite


def test_denoise_keeps_the_callers_type_and_layout(tiny_models):
    model = restore.load(tiny_models["denoiser"])
    hwc = smooth_image(20, 30)
    assert restore.denoise(hwc, model).shape == (20, 30, 3) and isinstance(restore.denoise(hwc, model), np.ndarray)
    assert restore.denoise(hwc[..., 0], model).shape == (20, 30)  # gray H x W on a colour model
    chw = torch.rand(3, 20, 30)
    assert restore.denoise(chw, model).shape == (3, 20, 30)
    batch = torch.rand(2, 3, 20, 30)
    out = restore.denoise(batch, model)
    assert out.shape == (2, 3, 20, 30)
    assert torch.allclose(out[1], restore.denoise(batch[1], model), atol=1e-5)  # images run one by one


def test_a_gray_model_runs_a_colour_image_channel_by_channel(tiny_models):
    gray = restore.load(tiny_models["gray"])
    colour = smooth_image(24, 40)
    out = restore.denoise(colour, gray)
    assert out.shape == (24, 40, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], restore.denoise(colour[..., c], gray), atol=1e-5)


def test_gray_images_get_the_gray_model_by_default():
    gray = smooth_image(16, 16, channels=1)
    assert restore.api.default_denoiser(gray[..., 0]) == "n2n-gray-level"
    assert restore.api.default_denoiser(np.repeat(gray, 3, axis=-1)) == "n2n-gray-level"  # RGB with R = G = B
    assert restore.api.default_denoiser(smooth_image(16, 16)) == "n2n-photo-level"  # colour photos


@pytest.mark.parametrize(
    ("bundled", "aux", "expected"),
    [
        ({"n2n-mc", "n2n-mc-aux"}, True, "n2n-mc-aux"),
        ({"n2n-mc", "n2n-mc-aux"}, False, "n2n-mc"),
        ({"n2n-mc"}, True, "n2n-mc"),  # no aux model: the colour-only one
        (set(), False, "n2n-gaussian"),  # no render model at all: the photo model
    ],
)
def test_hdr_renders_get_the_render_denoiser_by_default(monkeypatch, bundled, aux, expected):
    models = {name: object() for name in {"n2n-gaussian", "n2n-gray-level", *bundled}}
    monkeypatch.setattr(restore.api, "bundled_models", lambda: models)
    render = smooth_image(16, 16) * 40  # linear radiance, far above 1
    assert restore.api.default_denoiser(render, linear=True, aux=aux) == expected
    assert restore.api.default_denoiser(render, linear=False, aux=aux) == "n2n-gaussian"


def test_a_render_with_its_buffers_is_denoised_as_the_cli_runs_it_with_them():
    rng = np.random.default_rng(0)
    render = rng.gamma(2.0, 0.5, (24, 32, 3)).astype(np.float32)  # linear HDR radiance, noisy
    albedo = np.full((24, 32, 3), 0.6, np.float32)
    normal = np.zeros((24, 32, 3), np.float32)
    normal[..., 2] = 1
    options = restore.InferenceOptions(device="cpu", precision="fp32")
    expected = restore.api.run_model(restore.load("n2n-mc-aux"), render, options, aux=np.concatenate([albedo, normal], -1))
    out = restore.denoise(render, albedo=albedo, normal=normal, device="cpu", precision="fp32")  # n2n-mc-aux by default
    np.testing.assert_array_equal(out, expected)
    chw = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())  # noqa: E731
    as_tensors = restore.denoise(chw(render), albedo=chw(albedo), normal=chw(normal), device="cpu", precision="fp32")
    np.testing.assert_allclose(as_tensors.permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="as a pair"):
        restore.denoise(render, albedo=albedo)
    with pytest.raises(ValueError, match="'n2n-mc' takes no albedo and normal buffers"):
        restore.denoise(render, "n2n-mc", albedo=albedo, normal=normal)


def test_a_finetune_starts_from_the_render_model_for_the_hdr_loss_and_from_the_photo_model_otherwise(tmp_path):
    assert restore.api.finetune_base("hdr") == "n2n-mc"
    assert restore.api.finetune_base("l1") == restore.api.finetune_base("l2") == "n2n-photo-level"
    # Renders with their albedo and normal beside them: the buffer model, which `restore denoise`
    # picks for them too. One shot without its normal: the colour-only model.
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        for name in ("scene0.png", "scene0.albedo.png", "scene0.normal.png", "scene1.png", "scene1.albedo.png"):
            write_png(folder / name, smooth_image(8, 8))
    assert restore.api.finetune_base("hdr", folders) == "n2n-mc"
    for folder in folders:
        write_png(folder / "scene1.normal.png", smooth_image(8, 8))
    assert restore.api.finetune_base("hdr", folders) == "n2n-mc-aux"
    assert restore.api.finetune_base("l1", folders) == "n2n-photo-level"


def test_upscale_by_path_and_scale(tiny_models):
    out = restore.upscale(torch.rand(3, 11, 13), scale=2, model=tiny_models["upscaler"])
    assert out.shape == (3, 22, 26)
    with pytest.raises(ValueError, match="not x4"):
        restore.upscale(torch.rand(3, 11, 13), scale=4, model=tiny_models["upscaler"])


def test_ensemble_is_the_mean_of_the_8_flips_and_rotations(tiny_models):
    model = restore.load(tiny_models["upscaler"])
    image = torch.rand(3, 11, 14)
    expected = []
    for transpose in (False, True):
        for flips in ((), (-1,), (-2,), (-1, -2)):
            x = image.transpose(-1, -2) if transpose else image
            x = x.flip(flips) if flips else x
            y = restore.upscale(x, scale=2, model=model)
            y = y.flip(flips) if flips else y
            expected.append(y.transpose(-1, -2) if transpose else y)
    ensembled = restore.upscale(image, scale=2, model=model, ensemble=True)
    torch.testing.assert_close(ensembled, torch.stack(expected).mean(0), atol=1e-5, rtol=0)
    assert not torch.allclose(ensembled, restore.upscale(image, scale=2, model=model), atol=1e-4)


def test_outscale_resizes_the_network_output_to_any_factor(tiny_models):
    image = torch.rand(3, 20, 30)
    out = restore.upscale(image, scale=2, model=tiny_models["upscaler"], outscale=1.5)
    assert out.shape == (3, 30, 45)
    # Without a scale, the network scale is the smallest that reaches the factor (x4 beyond 4).
    assert [restore.api.network_scale_for(f) for f in (None, 1.5, 2, 2.5, 3, 3.5, 4, 6)] == [2, 2, 2, 3, 3, 4, 4, 4]
    small, exact = torch.rand(3, 8, 10), {"device": "cpu", "precision": "fp32"}
    by_x4 = restore.upscale(small, outscale=3.5, **exact)  # the bundled edsr-x4, resized to 3.5x
    assert by_x4.shape == (3, 28, 35) and torch.equal(by_x4, restore.upscale(small, 4, outscale=3.5, **exact))
    with pytest.raises(ValueError, match="outscale"):
        restore.upscale(image, scale=2, model=tiny_models["upscaler"], outscale=0)


def test_one_options_object_runs_the_model_as_the_keywords_of_denoise_and_upscale_do(tiny_models):
    image = torch.rand(3, 20, 30)
    options = restore.InferenceOptions(device="cpu", precision="fp32", tile=16, outscale=1.5)
    model = restore.api.upscaler_for(2, tiny_models["upscaler"])
    by_keywords = restore.upscale(image, 2, model, device="cpu", precision="fp32", tile=16, outscale=1.5)
    torch.testing.assert_close(restore.api.run_model(model, image, options), by_keywords)
    # Values no run could use are refused where the options are made, before any model runs.
    for bad in ({"strength": -1.0}, {"strength": float("nan")}, {"outscale": 0.0}, {"outscale": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            restore.InferenceOptions(**bad)


@pytest.mark.defect(8)
def test_a_nan_pixel_is_refused_by_the_library_not_spread_over_the_image(tiny_models):
    image = torch.rand(3, 24, 24)
    image[1, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="1 pixel is NaN or infinite"):
        restore.denoise(image, tiny_models["denoiser"])
    repaired = torch.from_numpy(repair_nonfinite(image.permute(1, 2, 0).numpy())).permute(2, 0, 1)
    assert torch.isfinite(restore.denoise(repaired, tiny_models["denoiser"])).all()


@pytest.mark.defect(10, 23)
def test_a_denoiser_is_not_an_upscaler_and_the_reverse(tiny_models):
    with pytest.raises(restore.modelfile.ModelFileError, match="'tiny-denoiser' is a denoiser, not an upscaler"):
        restore.upscale(torch.rand(3, 8, 8), scale=2, model=tiny_models["denoiser"])
    with pytest.raises(restore.modelfile.ModelFileError, match="'tiny-upscaler' is an upscaler, not a denoiser"):
        restore.denoise(torch.rand(3, 8, 8), tiny_models["upscaler"])


def test_a_2_d_tensor_is_a_gray_image_like_a_2_d_array(tiny_models):
    gray = torch.rand(20, 30)
    out = restore.denoise(gray, tiny_models["denoiser"])
    assert isinstance(out, torch.Tensor) and out.shape == (20, 30)
    np.testing.assert_allclose(out.numpy(), restore.denoise(gray.numpy(), tiny_models["denoiser"]), atol=1e-6)


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        ([[0.5, 0.5]], TypeError, "expected a torch.Tensor or numpy.ndarray image, got list"),
        (
            np.zeros((0, 0, 3), np.float32),
            ValueError,
            r"no pixels \(numpy images are H x W or H x W x C, got shape \(0, 0, 3\)\)",
        ),
        (torch.zeros(3, 0, 8), ValueError, r"the image has no pixels"),
        (torch.zeros(8), ValueError, r"tensors are H x W, C x H x W or N x C x H x W, got shape \(8,\)"),
        (np.zeros((1, 2, 8, 8)), ValueError, r"numpy images are H x W or H x W x C, got shape \(1, 2, 8, 8\)"),
    ],
)
@pytest.mark.defect(23)
def test_what_no_layout_reads_is_refused_in_one_line_before_a_model_is_chosen_or_loaded(image, error, message, monkeypatch):
    monkeypatch.setattr(restore.api, "_as_model", lambda *args: pytest.fail("a model was loaded for an impossible image"))
    for call in (lambda: restore.denoise(image), lambda: restore.upscale(image, 2)):
        with pytest.raises(error, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_eval_reports_the_model_next_to_the_noisy_baseline(tmp_path, tiny_models):
    for i in range(2):
        write_png(tmp_path / f"{i}.png", smooth_image(40, 40, seed=i))
    report = evaluate_folder(str(tiny_models["denoiser"]), str(tmp_path), noise="gaussian:25", device="cpu")
    assert [row.label for row in report.rows] == ["noisy input", "tiny-denoiser"]
    # sigma 25 on [0, 255]: the unclipped noisy input scores about 20.2 dB.
    assert report.rows[0].psnr == pytest.approx(20.17, abs=0.3)


def test_eval_scores_real_pairs_against_their_clean_images(tmp_path, tiny_models):
    # The PolyU layout: NAME_noisy.EXT beside NAME_clean.EXT; the noisy file is the input as stored.
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        clean = smooth_image(32, 32, seed=len(name))
        noisy = np.clip(clean + rng.normal(0, 10 / 255, clean.shape), 0, 1).astype(np.float32)
        write_png(tmp_path / f"{name}_clean.png", clean)
        write_png(tmp_path / f"{name}_noisy.png", noisy)
    report = evaluate_folder(str(tiny_models["denoiser"]), str(tmp_path), pairs=True, device="cpu")
    assert report.images == 2 and report.rows[0].label == "noisy input"
    assert report.rows[0].psnr == pytest.approx(28.1, abs=0.5)  # sigma 10, as stored in 8 bits
    assert sorted(report.gains) == ["a_noisy.png", "b_noisy.png"]
    assert report.rows[1].psnr - report.rows[0].psnr == pytest.approx(sum(report.gains.values()) / 2)
    (tmp_path / "b_clean.png").unlink()
    with pytest.raises(ValueError, match="no clean partner b_clean.png"):
        evaluate_folder(str(tiny_models["denoiser"]), str(tmp_path), pairs=True, device="cpu")


def test_eval_bicubic_baseline_for_super_resolution(tmp_path, tiny_models):
    write_png(tmp_path / "a.png", smooth_image(48, 64))
    report = evaluate_folder(str(tiny_models["upscaler"]), str(tmp_path), scale=2, device="cpu")
    assert report.rows[0].label == "bicubic" and report.rows[0].psnr > 35  # a smooth image is easy for bicubic


def test_eval_save_writes_side_by_side_crops_of_the_least_and_most_improved_images(tmp_path, tiny_models):
    folder = tmp_path / "photos"
    for i in range(3):
        write_png(folder / f"{i}.png", smooth_image(40, 300, seed=i))
    report = evaluate_folder(
        str(tiny_models["denoiser"]), str(folder), noise="gaussian:25", device="cpu", save=tmp_path / "crops"
    )
    least, most = min(report.gains, key=report.gains.get), max(report.gains, key=report.gains.get)
    names = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert names == sorted([f"least-gain-{Path(least).stem}.png", f"most-gain-{Path(most).stem}.png"])
    strip = read_image(tmp_path / "crops" / names[0])
    assert strip.pixels.shape == (40 + 16, 3 * 256 + 2 * 6, 3)  # three 256-wide crops under their labels


def test_a_bf16_run_leaves_the_models_fp32_weights_untouched(tiny_models):
    model = restore.load(tiny_models["denoiser"])
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    image = torch.rand(3, 24, 24)
    first = restore.denoise(image, model, device="cpu", precision="fp32")
    restore.denoise(image, model, device="cpu", precision="bf16")
    after = model.network.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], before[k]) for k in before)
    assert torch.equal(restore.denoise(image, model, device="cpu", precision="fp32"), first)  # not rounded to bf16
