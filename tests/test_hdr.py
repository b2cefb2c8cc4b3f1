"""HDR renders: the Noise2Noise tone map, auto-exposure, and HDR models end to end on EXR files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import restore
from conftest import run, smooth_image
from restore.archs import create
from restore.hdr import exposure, luminance, psnr_tone_mapped, tone_map
from restore.imageio import Image, read_image, write_image
from restore.modelfile import ModelInfo, save_model_file
from restore.training import TrainConfig, train


def test_tone_map_is_the_papers_formula_and_clips_negatives():
    v = torch.tensor([-1.0, 0.0, 1.0, 3.0, 1e6])
    expected = torch.tensor([0.0, 0.0, 0.5 ** (1 / 2.2), 0.75 ** (1 / 2.2), (1e6 / (1 + 1e6)) ** (1 / 2.2)])
    torch.testing.assert_close(tone_map(v), expected)


def test_exposure_brings_the_geometric_mean_luminance_to_middle_gray():
    image = torch.rand(2, 3, 64, 48) * torch.tensor([0.01, 50.0]).view(2, 1, 1, 1)
    scale = exposure(image)
    exposed = luminance(image * scale)
    blocks = torch.nn.functional.avg_pool2d(exposed, 16)
    assert torch.allclose(blocks.flatten(1).log().mean(1).exp(), torch.tensor([0.18, 0.18]), rtol=1e-3)
    # Scaling the image scales the exposure inversely; a black image keeps a scale of 1.
    assert torch.allclose(exposure(image * 8) * 8, scale, rtol=1e-4)
    assert exposure(torch.zeros(1, 3, 8, 8)).item() == 1.0


def test_mc_psnr_is_on_tone_mapped_values():
    reference = torch.full((1, 3, 8, 8), 1.0)
    assert psnr_tone_mapped(reference, reference) > 100
    assert psnr_tone_mapped(reference * 2, reference) == pytest.approx(
        -10 * np.log10(float((tone_map(torch.tensor(2.0)) - tone_map(torch.tensor(1.0))) ** 2))
    )


@pytest.fixture(scope="module")
def hdr_model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    network = create("n2n_unet")
    info = ModelInfo(
        name="tiny-hdr", architecture=network.architecture, config=network.config_dict(), task="denoise",
        transfer="linear", input_transform="hdr", value_range=[0.0, float("inf")],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("hdr") / "tiny-hdr.safetensors"
    save_model_file(path, network, info)
    return str(path)


def test_an_hdr_model_is_exposure_invariant(hdr_model):
    image = torch.from_numpy(smooth_image(40, 56)).permute(2, 0, 1) * 5
    out = restore.denoise(image, hdr_model, device="cpu", precision="fp32")
    brighter = restore.denoise(image * 100, hdr_model, device="cpu", precision="fp32")
    torch.testing.assert_close(brighter, out * 100, rtol=1e-4, atol=1e-6)


def test_denoising_an_exr_keeps_values_above_one(tmp_path, hdr_model):
    pixels = smooth_image(32, 48) * 40  # a bright render, far above 1
    src = tmp_path / "render.exr"
    write_image(src, Image(pixels.astype(np.float32), None, "f32", "linear"))
    result = run("denoise", str(src), "--model", hdr_model)
    assert result.returncode == 0, result.stderr
    out = read_image(tmp_path / "render.denoised.exr")
    assert out.transfer == "linear" and out.pixels.max() > 1 and np.isfinite(out.pixels).all()


def test_finetune_on_exr_pairs_with_the_hdr_loss(tmp_path):
    rng = np.random.default_rng(0)
    folders = {name: tmp_path / name for name in ("a", "b")}
    for folder in folders.values():
        folder.mkdir()
    for i in range(3):
        clean = smooth_image(40, 40, seed=i) * 10
        for folder in folders.values():
            noisy = clean * rng.gamma(4.0, 0.25, clean.shape)  # Monte Carlo-like multiplicative noise
            write_image(folder / f"frame{i}.exr", Image(noisy.astype(np.float32), None, "f32", "linear"))
    config = TrainConfig(
        out=str(tmp_path / "mc.safetensors"), pairs=[str(folders["a"]), str(folders["b"])], loss="hdr",
        steps=3, batch=2, patch=32, val_count=1, val_every=1, checkpoint_every=1, device="cpu",
    )  # fmt: skip
    info = train(config, show_progress=False)
    assert info.input_transform == "hdr" and info.transfer == "linear"
    assert np.isfinite(info.training["val_psnr"])
    assert restore.load(config.out).info.input_transform == "hdr"
