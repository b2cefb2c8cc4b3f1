"""HDR renders: the Noise2Noise tone map, auto-exposure, and HDR models end to end on EXR files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import restore
from conftest import assert_one_line_error, manifest_lines, run, smooth_image
from restore.archs import create
from restore.hdr import (
    ALBEDO_EPS,
    CONVERGED_SPREAD,
    DEMODULATED,
    LOG,
    LOG_DEMODULATED,
    HdrFrame,
    black_albedo_share,
    buffer_convention_note,
    estimated_psnr_tone_mapped,
    exposure,
    keep_converged,
    log_decode,
    luminance,
    network_input,
    psnr_tone_mapped,
    tone_map,
)
from restore.io.images import Image, read_image, write_image
from restore.metrics import noisy_reference_psnr
from restore.modelfile import ModelFileError, ModelInfo, load_model_file, save_model_file
from restore.training.loop import RELATIVE_LEVEL_FLOOR, TrainConfig, level_weights, train
from restore.training.sources import relative_crop_levels


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


def test_a_finetune_s_reference_free_score_ranks_a_dimmed_render_below_the_right_one():
    # Two independent renders A, B of a scene (radiance up to 4, per-pixel noise with the spread of
    # a few samples), a good denoiser's output f(A), and the same output 10% dimmer.
    torch.manual_seed(0)
    reference = torch.from_numpy(smooth_image(128, 128)).permute(2, 0, 1)[None] * 4
    first, second = (reference * torch.distributions.Gamma(4.0, 4.0).sample(reference.shape) for _ in range(2))
    good = reference * (1 + 0.03 * torch.randn(reference.shape))
    dimmed = 0.9 * good
    assert psnr_tone_mapped(good, reference) > psnr_tone_mapped(dimmed, reference) + 10
    # Tone-mapped noisy renders are darker on average than the tone-mapped reference (T is
    # concave), so comparing tone-mapped values prefers the dimmed output:
    tone_mapped = [noisy_reference_psnr(tone_map(out), tone_map(first), tone_map(second)) for out in (good, dimmed)]
    assert tone_mapped[1] > tone_mapped[0]
    # The estimate on linear values ranks them as the reference does, and reads the noisy render
    # within a dB of its true score.
    assert estimated_psnr_tone_mapped(good, first, second) > estimated_psnr_tone_mapped(dimmed, first, second) + 3
    assert estimated_psnr_tone_mapped(first, first, second) == pytest.approx(psnr_tone_mapped(first, reference), abs=1)
    # A firefly in B (one sample 1000 times the scene) hardly moves it.
    fired = second.clone()
    fired[0, :, 40, 40] = 1000.0
    unfired = estimated_psnr_tone_mapped(good, first, second)
    assert estimated_psnr_tone_mapped(good, first, fired) == pytest.approx(unfired, abs=0.5)


def test_a_pair_that_cannot_tell_an_output_from_the_reference_scores_it_at_what_the_pair_can_measure():
    # An output equal to the reference: its estimated error, the difference of two noisy terms,
    # comes out below zero with this seed. It reads as the estimate's standard error (about 47 dB
    # here), not as 120 dB, which would lift a validation's mean over four pairs by 20 dB.
    torch.manual_seed(0)
    reference = torch.full((1, 3, 64, 64), 0.5)
    first, second = (reference * torch.distributions.Gamma(16.0, 16.0).sample(reference.shape) for _ in range(2))
    perfect = estimated_psnr_tone_mapped(reference, first, second)
    assert 40 < perfect < 60
    assert perfect > estimated_psnr_tone_mapped(first, first, second) + 10  # still far above the noisy input


def untone_map(t: torch.Tensor) -> torch.Tensor:
    """T's inverse on [0, 1): v = t^2.2 / (1 - t^2.2)."""
    power = t.pow(2.2)
    return power / (1 - power)


def test_demodulated_input_is_the_light_on_the_surfaces_and_the_output_comes_back_as_radiance():
    # A smooth light falling on a checkerboard texture: the radiance carries the texture's edges,
    # the demodulated input the light alone, and the network's output is multiplied back.
    light = torch.from_numpy(smooth_image(32, 32)).permute(2, 0, 1)[None] * 4
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    albedo = torch.where((y // 4 + x // 4) % 2 == 0, 0.8, 0.1).expand(1, 3, 32, 32)
    normal = torch.zeros(1, 3, 32, 32)
    radiance = light * albedo
    render = torch.cat([radiance, albedo, normal], dim=1)

    def edges(image: torch.Tensor) -> float:
        return float((image[..., 1:] - image[..., :-1]).abs().mean())

    plain, _ = network_input(render, 3)
    seen, frame = network_input(render, 3, DEMODULATED)
    assert torch.equal(seen[:, 3:], render[:, 3:])  # the buffers go in as they are
    assert edges(seen[:, :3]) < edges(plain[:, :3]) / 10
    lit = light * albedo / (albedo + ALBEDO_EPS)  # the light, but for the eps that keeps black surfaces finite
    torch.testing.assert_close(untone_map(seen[:, :3]) / frame.exposure, lit, rtol=1e-4, atol=1e-5)
    # A network that returned what it saw, untone-mapped, gives back the radiance.
    torch.testing.assert_close(frame.radiance(untone_map(seen[:, :3])), radiance, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="needs an albedo buffer"):
        network_input(radiance, 3, DEMODULATED)


def test_log_input_keeps_emitters_apart_and_a_network_that_returns_it_gives_back_the_radiance():
    # Tone-mapped, an emitter of 20 and one of 200 are 0.03 apart near 1; in log space they are
    # as far apart as 0.2 and 2, and the output is decoded from the same space.
    # A gray room (the exposure keeps it near middle gray) with a row of ever brighter lights.
    radiance = torch.full((1, 3, 64, 64), 0.18)
    radiance[..., 0, :6] = torch.tensor([0.02, 0.2, 2.0, 20.0, 200.0, 5000.0])
    seen, frame = network_input(radiance, 3, LOG)
    tone_mapped, _ = network_input(radiance, 3)
    row, tone_row = seen[0, 0, 0, :6], tone_mapped[0, 0, 0, :6]
    assert float(row[4] - row[3]) > 3 * float(tone_row[4] - tone_row[3])
    assert torch.all(row[1:] > row[:-1])
    torch.testing.assert_close(frame.radiance(seen), radiance, rtol=1e-4, atol=1e-6)
    # Demodulated too: the albedo is divided out before the log and multiplied back after it.
    albedo = torch.full_like(radiance, 0.5)
    seen, frame = network_input(torch.cat([radiance, albedo], dim=1), 3, LOG_DEMODULATED)
    torch.testing.assert_close(frame.radiance(seen[:, :3]), radiance, rtol=1e-4, atol=1e-6)
    # An untrained network's wild output stays finite.
    assert torch.isfinite(log_decode(torch.tensor([1e6]))).all()


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
    # Noisy, as renders are, so that no pixel is handed through as converged (restore.hdr.keep_converged):
    # there the untrained network's output, far from the pixel, would be mixed in with a weight
    # rounded differently at each scale, and the comparison would measure that rounding.
    noise = np.random.default_rng(3).gamma(4.0, 0.25, (40, 56, 3))
    image = torch.from_numpy((smooth_image(40, 56) * noise).astype(np.float32)).permute(2, 0, 1) * 5
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


@pytest.mark.parametrize("loss", ["hdr", "tonemapped"])
def test_finetune_on_exr_pairs_with_a_loss_for_renders(tmp_path, loss):
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
        out=str(tmp_path / "mc.safetensors"), pairs=[str(folders["a"]), str(folders["b"])], loss=loss,
        steps=3, batch=2, patch=32, val_count=1, val_every=1, checkpoint_every=1, device="cpu",
    )  # fmt: skip
    info = train(config, show_progress=False)
    assert info.input_transform == "hdr" and info.transfer == "linear"
    assert np.isfinite(info.training["val_psnr"])
    assert restore.load(config.out).info.input_transform == "hdr"


def write_renders(folder, count: int = 3, size: int = 40, seed: int = 0):
    """Tiny fake renders: a/ and b/ noisy shots with NAME.albedo.exr and NAME.normal.exr beside each."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        clean = smooth_image(size, size, seed=i) * 10
        albedo = smooth_image(size, size, seed=100 + i)
        normal = np.zeros((size, size, 3), np.float32)
        normal[..., 2] = 1
        for shot in ("a", "b"):
            (folder / shot).mkdir(parents=True, exist_ok=True)
            noisy = clean * rng.gamma(4.0, 0.25, clean.shape)
            for name, pixels in ((f"frame{i}", noisy), (f"frame{i}.albedo", albedo), (f"frame{i}.normal", normal)):
                write_image(folder / shot / f"{name}.exr", Image(pixels.astype(np.float32), None, "f32", "linear"))


def test_a_model_with_albedo_and_normal_inputs_trains_on_pairs_and_denoises_with_its_buffers(tmp_path):
    write_renders(tmp_path)
    model = tmp_path / "mc-aux.safetensors"
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    options = ["--arch", "n2n_unet_aux", "--loss", "hdr", "--steps", "2", "--batch", "2", "--patch", "32", "--val-count", "1"]
    result = run("train", *pairs, "-o", str(model), *options)
    assert result.returncode == 0, result.stderr
    info = restore.load(model).info
    assert info.aux == ["albedo", "normal"] and info.input_transform == "hdr" and info.channels == 3

    frame = tmp_path / "a" / "frame0.exr"
    result = run("denoise", str(frame), "-o", str(tmp_path / "out.exr"), "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert read_image(tmp_path / "out.exr").pixels.shape == (40, 40, 3)
    # Explicit buffers for an image without any beside it; and a clear line when they are missing.
    lonely = tmp_path / "lonely.exr"
    lonely.write_bytes(frame.read_bytes())
    buffers = ["--albedo", str(tmp_path / "a" / "frame0.albedo.exr"), "--normal", str(tmp_path / "a" / "frame0.normal.exr")]
    assert run("denoise", str(lonely), "--model", str(model), *buffers).returncode == 0
    (tmp_path / "lonely.denoised.exr").unlink()
    assert_one_line_error(run("denoise", str(lonely), "--model", str(model)), "lonely.albedo.exr")


def test_a_demodulating_model_trains_on_render_pairs_and_denoises_through_its_albedo(tmp_path):
    write_renders(tmp_path)
    model = tmp_path / "demod.safetensors"
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    options = ["--loss", "hdr", "--demodulate", "--steps", "2", "--batch", "2", "--patch", "32", "--val-count", "1"]
    result = run("train", *pairs, "-o", str(model), "--arch", "n2n_unet_aux", *options)
    assert result.returncode == 0, result.stderr
    assert restore.load(model).info.input_transform == "hdr-demodulated"
    frame = tmp_path / "a" / "frame0.exr"
    assert run("denoise", str(frame), "-o", str(tmp_path / "out.exr"), "--model", str(model)).returncode == 0
    assert np.isfinite(read_image(tmp_path / "out.exr").pixels).all()
    # Without an albedo buffer there is nothing to divide by: one line, before any step.
    plain = run("train", *pairs, "-o", str(tmp_path / "plain.safetensors"), *options)
    assert_one_line_error(plain, "--demodulate divides by the albedo buffer")


def test_a_log_radiance_model_trains_on_render_pairs_and_its_finetune_keeps_the_transform(tmp_path):
    write_renders(tmp_path)
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    options = ["--steps", "2", "--batch", "2", "--patch", "32", "--val-count", "1"]
    model = tmp_path / "log.safetensors"
    result = run(
        "train", *pairs, "-o", str(model), "--arch", "n2n_unet_aux", "--loss", "hdr", "--log-radiance", "--demodulate", *options
    )
    assert result.returncode == 0, result.stderr
    assert restore.load(model).info.input_transform == LOG_DEMODULATED
    frame = tmp_path / "a" / "frame0.exr"
    assert run("denoise", str(frame), "-o", str(tmp_path / "out.exr"), "--model", str(model)).returncode == 0
    assert np.isfinite(read_image(tmp_path / "out.exr").pixels).all()
    # A finetune with another loss feeds the network what it was trained on.
    tuned = tmp_path / "tuned.safetensors"
    result = run(
        "finetune", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tuned), "--from", str(model), "--loss", "l1", *options
    )
    assert result.returncode == 0, result.stderr
    assert restore.load(tuned).info.input_transform == LOG_DEMODULATED


@pytest.mark.parametrize(
    ("transform", "aux", "refusal"),
    [("hdr-demodulated", [], "albedo is not its first buffer"), ("log", [], "input transform 'log' is none of")],
)
def test_a_model_file_whose_input_transform_cannot_be_followed_is_refused(tmp_path, transform, aux, refusal):
    network = create("n2n_unet")
    info = ModelInfo(
        name="odd", architecture=network.architecture, config=network.config_dict(), task="denoise",
        transfer="linear", input_transform=transform, aux=aux,
    )  # fmt: skip
    save_model_file(tmp_path / "odd.safetensors", network, info)
    with pytest.raises(ModelFileError, match=refusal):
        load_model_file(tmp_path / "odd.safetensors")


def test_the_library_asks_for_the_buffers_an_aux_model_needs(tmp_path):
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise",
        transfer="linear", input_transform="hdr", aux=["albedo", "normal"],
    )  # fmt: skip
    save_model_file(tmp_path / "aux.safetensors", network, info)
    image = torch.rand(3, 24, 24)
    with pytest.raises(ValueError, match="needs albedo and normal buffers"):
        restore.denoise(image, tmp_path / "aux.safetensors")
    model = restore.load(tmp_path / "aux.safetensors")
    assert restore.api.run_model(model, image, aux=torch.rand(6, 24, 24)).shape == (3, 24, 24)
    with pytest.raises(ValueError, match="the buffers are 20 x 24, the image 24 x 24"):
        restore.api.run_model(model, image, aux=torch.rand(6, 24, 20))


@pytest.mark.parametrize(("buffers", "model"), [(False, "n2n-mc"), (True, "n2n-mc-aux")])
def test_the_bundled_render_denoisers_clean_the_cornell_box(tmp_path, shared_data, buffers, model):
    """`restore denoise noisy.exr -o clean.exr` picks n2n-mc, or n2n-mc-aux with --albedo / --normal,
    keeps linear HDR values and comes clearly closer to the 13,312 spp reference than the 4 spp input."""
    cbox = shared_data / "mc" / "cbox"
    out = tmp_path / "clean.exr"
    extra = ["--albedo", str(cbox / "albedo.exr"), "--normal", str(cbox / "normal.exr")] if buffers else []
    result = run("denoise", str(cbox / "noisy_4spp_a.exr"), "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    assert f"{model}," in result.stderr  # the result line names the model
    denoised = read_image(out)
    assert denoised.transfer == "linear" and denoised.bit_depth == read_image(cbox / "noisy_4spp_a.exr").bit_depth
    assert np.isfinite(denoised.pixels).all() and denoised.pixels.max() > 1  # the light stays brighter than white
    reference = torch.from_numpy(read_image(cbox / "reference.exr").pixels)
    noisy = torch.from_numpy(read_image(cbox / "noisy_4spp_a.exr").pixels)
    gain = psnr_tone_mapped(torch.from_numpy(denoised.pixels), reference) - psnr_tone_mapped(noisy, reference)
    assert gain > 3  # dB; bench/mc_benchmark.py has the measured numbers


def test_finetuning_an_hdr_model_with_the_l1_loss_feeds_it_the_input_it_expects(tmp_path, hdr_model, monkeypatch):
    # The input contract is the model's (its metadata says "hdr"), not the loss's.
    write_renders(tmp_path)
    exposed = []
    real_network_input = restore.training.loop.network_input

    def spy(x: torch.Tensor, colours: int, input_transform: str = "hdr") -> tuple[torch.Tensor, HdrFrame]:
        exposed.append(x.shape[0])
        return real_network_input(x, colours, input_transform)

    monkeypatch.setattr(restore.training.loop, "network_input", spy)
    config = TrainConfig(
        out=str(tmp_path / "ft.safetensors"), pairs=[str(tmp_path / "a"), str(tmp_path / "b")], init=hdr_model,
        loss="l1", steps=2, batch=2, patch=32, val_count=1, val_every=1, checkpoint_every=1, device="cpu", precision="fp32",
    )  # fmt: skip
    info = train(config, show_progress=False)
    # Each step's batch (2 crops), then the validation pair, exposed and tone-mapped first.
    assert exposed == [2, 1, 2, 1]
    assert info.input_transform == "hdr" and info.transfer == "linear"


def glass_render(black_rows: int, size: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A lit render (H x W x 3) whose albedo is black on its first `black_rows` rows, as a renderer that
    stops at glass writes it, and whose last 5 rows show the sky (no surface: normal 0)."""
    colour = np.full((size, size, 3), 0.5, np.float32)
    albedo = np.full((size, size, 3), 0.6, np.float32)
    albedo[:black_rows] = 0
    normal = np.zeros((size, size, 3), np.float32)
    normal[: size - 5, :, 2] = 1
    albedo[size - 5 :] = 0  # the sky has no albedo in either convention
    return colour, albedo, normal


def test_the_black_albedo_share_counts_lit_surfaces_only():
    colour, albedo, normal = (torch.from_numpy(a).permute(2, 0, 1) for a in glass_render(black_rows=3))
    assert black_albedo_share(colour, albedo, normal) == pytest.approx(3 / 15)  # the sky's 5 rows are not surfaces
    colour[:, :3] = 0  # unlit, a black albedo says nothing of the convention
    assert black_albedo_share(colour, albedo, normal) == 0
    assert buffer_convention_note(colour, albedo, normal, "n2n-mc") is None


def test_buffers_black_on_glass_draw_one_warning_line_and_the_render_is_still_denoised(tmp_path):
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise",
        transfer="linear", input_transform=LOG_DEMODULATED, aux=["albedo", "normal"],
    )  # fmt: skip
    save_model_file(tmp_path / "aux.safetensors", network, info)
    (tmp_path / "in").mkdir()
    for name, black_rows in (("glass", 6), ("opaque", 0)):
        for suffix, pixels in zip(("", ".albedo", ".normal"), glass_render(black_rows), strict=True):
            write_image(tmp_path / "in" / f"{name}{suffix}.exr", Image(pixels, None, "f32", "linear"))
    manifest = tmp_path / "runs.jsonl"
    result = run("denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "aux.safetensors"),
                 "--manifest", str(manifest))  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "glass.exr" in warnings[0] and "black on 40% of the lit surfaces" in warnings[0]
    assert {Path(line["source"]).name: line.get("notes") for line in manifest_lines(manifest)} == {
        "glass.exr": [warnings[0].split("glass.exr': ", 1)[1]],
        "opaque.exr": None,
    }
    assert (tmp_path / "out" / "glass.exr").is_file() and (tmp_path / "out" / "opaque.exr").is_file()


def test_a_large_renders_buffers_are_checked_on_a_sample_that_finds_the_same_share():
    from restore.pipeline import NOTE_SAMPLE_PIXELS, _buffer_notes

    colour, albedo, normal = glass_render(black_rows=0, size=2100)  # 4.4 megapixels: every 2nd row and column looked at
    albedo[:700] = 0  # a third of the 2,095 surface rows
    assert 2100 * 2100 > 4 * NOTE_SAMPLE_PIXELS
    model = restore.load("n2n-mc-aux")
    (note,) = _buffer_notes(colour, model, np.concatenate([albedo, normal], axis=-1))
    assert "black on 33% of the lit surfaces" in note


def test_converged_pixels_of_a_render_come_back_as_rendered_and_the_rest_from_the_network(tmp_path):
    # An emitter in view is exact at any spp; a network in log space returned the Cornell box's
    # light 3% too bright. Pixels in a 3 x 3 block that agrees with its centre are handed through.
    network = create("n2n_unet")
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    info = ModelInfo(
        name="render", architecture=network.architecture, config=network.config_dict(), task="denoise",
        transfer="linear", input_transform=LOG,
    )  # fmt: skip
    model = restore.api.Model(network, info, "memory")
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.gamma(2.0, 0.5, (3, 48, 48)).astype(np.float32))
    image[:, 7:25, 7:25] = image[:, 7:25, 7:25] / 2 + torch.tensor([20.0, 15.0, 6.0]).view(3, 1, 1)  # its edge: half in view
    image[:, 8:24, 8:24] = torch.tensor([40.0, 30.0, 12.0]).view(3, 1, 1)  # an emitter
    image[:, 30:40, 30:40] = 0  # no path has found light here yet: not converged
    exact = restore.api.InferenceOptions(device="cpu", precision="fp32")
    handed = restore.api.run_model(model, image, exact)
    network_alone = restore.api.run_model(model, image, replace(exact, keep_converged=False))
    # Within its edge, its ring just inside too, whose outer neighbours the edge's mixed pixels are.
    assert torch.equal(handed[:, 8:24, 8:24], image[:, 8:24, 8:24])
    assert not torch.allclose(network_alone[:, 8:24, 8:24], image[:, 8:24, 8:24], rtol=0.01)
    assert torch.equal(handed[:, 31:39, 31:39], network_alone[:, 31:39, 31:39])
    noisy = torch.ones(48, 48, dtype=torch.bool)
    noisy[8:24, 8:24] = False
    assert torch.equal(handed[:, noisy], network_alone[:, noisy])


HALF = CONVERGED_SPREAD / 2


@pytest.mark.parametrize(
    ("neighbour", "weight"),
    [
        (1 + HALF * 0.8, 1.0),  # within half the spread: handed through whole
        (1 + HALF * 1.5, 0.5),  # halfway down the ramp, above or below
        (1 / (1 + HALF * 1.5), 0.5),
        (1 + CONVERGED_SPREAD, 0.0),  # at the spread and beyond: the network's output
        (1.3, 0.0),
        (0.0, 0.0),  # a neighbour no path has reached, or a negative lobe of a wide pixel filter
        (-0.5, 0.0),
    ],
)
def test_a_pixel_is_handed_through_fully_within_half_the_spread_and_not_at_all_beyond_it(neighbour, weight):
    colour = torch.full((1, 3, 5, 5), 2.6)  # a ring no block agrees with: the centre's block alone decides
    colour[..., 1:4, 1:4] = 2.0
    colour[0, 1, 1, 2] *= neighbour  # one neighbour of the centre, in one channel
    output = torch.zeros(1, 3, 5, 5)
    kept = keep_converged(colour, output)
    assert kept[0, 1, 2, 2].item() == pytest.approx(2.0 * weight, abs=1e-4)
    torch.testing.assert_close(keep_converged(colour * 100, output), kept * 100)  # a ratio: exposure does not move it


def test_the_cli_hands_clean_buffers_over_as_given_and_can_denoise_converged_pixels_too(tmp_path):
    # --clean-buffers is OIDN's cleanAux: buffers without noise skip the model's prefilter.
    # --no-keep-converged lets the network redo the emitter it would otherwise hand through.
    rng = np.random.default_rng(2)
    render = (smooth_image(32, 32, seed=8) * rng.gamma(4.0, 0.5, (32, 32, 3))).astype(np.float32)
    render[4:16, 4:16] = [20.0, 16.0, 9.0]  # an emitter in view
    albedo = smooth_image(32, 32, seed=9).astype(np.float32)
    normal = np.zeros((32, 32, 3), np.float32)
    normal[..., 2] = 1
    for name, pixels in (("render", render), ("render.albedo", albedo), ("render.normal", normal)):
        write_image(tmp_path / f"{name}.exr", Image(pixels, None, "f32", "linear"))
    model, exact = restore.load("n2n-mc-aux"), restore.api.InferenceOptions(device="cpu", precision="fp32")
    buffers = np.concatenate([albedo, normal], -1)
    outputs = {}
    for flags, options in [
        ((), exact),
        (("--clean-buffers",), replace(exact, prefilter_aux=False)),
        (("--no-keep-converged",), replace(exact, keep_converged=False)),
    ]:
        out = tmp_path / f"out{len(outputs)}.exr"
        result = run("denoise", str(tmp_path / "render.exr"), "-o", str(out), "--device", "cpu", "--precision", "fp32", *flags)
        assert result.returncode == 0, result.stderr
        assert ("buffers cleaned by mc-aux-prefilter" in result.stdout + result.stderr) == (flags != ("--clean-buffers",))
        outputs[flags] = read_image(out).pixels
        np.testing.assert_allclose(outputs[flags], restore.api.run_model(model, render, options, aux=buffers), rtol=1e-6)
    default, clean, redone = outputs.values()
    assert not np.allclose(default, clean, rtol=1e-3)
    np.testing.assert_array_equal(default[6:14, 6:14], render[6:14, 6:14])  # the emitter, handed through
    assert not np.allclose(redone[6:14, 6:14], render[6:14, 6:14], rtol=1e-3)


def test_a_blender_render_is_denoised_with_the_buffers_its_own_exr_holds(tmp_path):
    import OpenEXR

    rng = np.random.default_rng(4)
    render = (smooth_image(24, 24, seed=10) * rng.gamma(4.0, 0.5, (24, 24, 3))).astype(np.float32)
    albedo = smooth_image(24, 24, seed=11).astype(np.float32)
    normal = np.zeros((24, 24, 3), np.float32)
    normal[..., 1] = 1
    coverage = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24, 1)
    layers = {
        "Noisy Image": (np.concatenate([render, coverage], -1), "RGBA"),
        "Denoising Albedo": (albedo, "RGB"),
        "Denoising Normal": (normal, "XYZ"),
    }
    channels = {
        f"ViewLayer.{layer}.{c}": values[..., i] for layer, (values, names) in layers.items() for i, c in enumerate(names)
    }
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(tmp_path / "frame.exr"))
    model, exact = restore.load("n2n-mc-aux"), restore.api.InferenceOptions(device="cpu", precision="fp32")

    def denoised_with(*flags: str) -> np.ndarray:
        result = run("denoise", str(tmp_path / "frame.exr"), "--device", "cpu", "--precision", "fp32", "--overwrite", *flags)
        assert result.returncode == 0, result.stderr
        assert "n2n-mc-aux" in result.stdout + result.stderr  # the buffers found choose the buffer model
        out = read_image(tmp_path / "frame.denoised.exr")
        np.testing.assert_array_equal(out.alpha, coverage)
        return out.pixels

    expected = restore.api.run_model(model, render, exact, aux=np.concatenate([albedo, normal], -1))
    np.testing.assert_allclose(denoised_with(), expected, rtol=1e-6)
    # A buffer file beside the render, or one named on the command line, comes before the layer.
    grey = np.full((24, 24, 3), 0.5, np.float32)
    write_image(tmp_path / "frame.albedo.exr", Image(grey, None, "f32", "linear"))
    beside = restore.api.run_model(model, render, exact, aux=np.concatenate([grey, normal], -1))
    assert not np.allclose(beside, expected, rtol=1e-3)
    np.testing.assert_allclose(denoised_with(), beside, rtol=1e-6)
    (tmp_path / "frame.albedo.exr").rename(tmp_path / "grey.exr")
    np.testing.assert_allclose(denoised_with("--albedo", str(tmp_path / "grey.exr")), beside, rtol=1e-6)


def test_a_finetune_on_blender_renders_finds_their_buffers_in_their_own_files(tmp_path, monkeypatch):
    # `restore finetune a/ b/ --loss hdr` starts from the buffer model when every shot has its
    # buffers, and its pairs carry them: multilayer EXRs hold them as layers, with no files beside.
    import OpenEXR

    from restore.io import datasets
    from restore.io.datasets import has_aux_buffers, load_aux
    from restore.io.images import read_image

    plane = np.arange(16, dtype=np.float32).reshape(4, 4)
    for shot in ("a", "b"):
        (tmp_path / shot).mkdir()
        layers = {"Noisy Image": "RGB", "Denoising Albedo": "RGB", "Denoising Normal": "XYZ"}
        channels = {f"ViewLayer.{layer}.{c}": plane + i for layer, names in layers.items() for i, c in enumerate(names)}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, channels).write(str(tmp_path / shot / "frame.exr"))
    frame = tmp_path / "a" / "frame.exr"
    assert has_aux_buffers(frame)
    assert restore.api.finetune_base("hdr", [tmp_path / "a", tmp_path / "b"]) == "n2n-mc-aux"
    buffers = load_aux(frame, ["albedo", "normal"])
    assert buffers.shape == (6, 4, 4)
    assert torch.equal(buffers[4], torch.from_numpy(plane + 1))  # the normal's Y
    # Training reads each shot once: its colour and its layers from one decode.
    reads = []
    monkeypatch.setattr(datasets, "read_image", lambda path: reads.append(path) or read_image(path))
    shot = datasets.load_render(frame, ["albedo", "normal"])
    assert reads == [frame]
    assert torch.equal(shot[3:], buffers) and torch.equal(shot[0], torch.from_numpy(plane))  # colour, then buffers
    (tmp_path / "a" / "frame.exr").write_bytes(b"")  # a shot whose file holds no buffers after all
    assert not has_aux_buffers(frame)


def test_turned_normals_are_rotated_alike_in_both_shots_of_a_crop_and_nothing_else_moves():
    from restore.training.sources import PairSource, random_crops, random_rotations, turn_normals

    rotations = random_rotations(500, torch.Generator().manual_seed(0))
    eye = torch.eye(3).expand(500, 3, 3)
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), eye, atol=1e-5, rtol=0)  # orthonormal
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(500), atol=1e-5, rtol=0)  # no mirror
    assert (rotations @ torch.tensor([0.0, 1.0, 0.0])).mean(0).abs().max() < 0.1  # "up" goes anywhere alike
    crops = torch.rand(4, 2, 9, 8, 8)
    turned = turn_normals(crops, slice(6, 9), torch.Generator().manual_seed(1))
    assert torch.equal(turned[:, :, :6], crops[:, :, :6])  # colour and albedo untouched
    torch.testing.assert_close(turned[:, :, 6:].norm(dim=2), crops[:, :, 6:].norm(dim=2))  # lengths kept
    assert not torch.allclose(turned[:, :, 6:], crops[:, :, 6:])
    # one rotation per crop, the same for its two shots: recover it from the first and apply it to the second
    for k in range(4):
        a, b = (crops[k, p, 6:].reshape(3, -1) for p in (0, 1))
        rotation = turned[k, 0, 6:].reshape(3, -1) @ torch.linalg.pinv(a)
        torch.testing.assert_close(rotation @ b, turned[k, 1, 6:].reshape(3, -1), atol=1e-4, rtol=1e-4)
    # A source without it draws what a source drew before the option existed: the crops, then
    # the swaps, and nothing more (a resumed run sees the batches it would have seen).
    stacks = [torch.rand(2, 9, 16, 16) for _ in range(3)]
    by_hand = torch.Generator().manual_seed(5)
    crops = random_crops(stacks, 4, 8, by_hand, partners=2)
    swap = torch.rand(4, generator=by_hand) < 0.5
    generator = torch.Generator().manual_seed(5)
    first, _ = PairSource(stacks, 8).batch(4, generator)
    assert torch.equal(first, torch.where(swap[:, None, None, None], crops[:, 1], crops[:, 0]))
    assert torch.equal(generator.get_state(), by_hand.get_state())
    with_turns, _ = PairSource(stacks, 8, normal_channels=slice(6, 9)).batch(4, torch.Generator().manual_seed(5))
    assert torch.equal(with_turns[:, :6], first[:, :6]) and not torch.allclose(with_turns[:, 6:], first[:, 6:])


def test_a_buffer_model_trains_with_turned_normals_and_records_it(tmp_path):
    write_renders(tmp_path)
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    options = ["--loss", "hdr", "--steps", "2", "--batch", "2", "--patch", "32", "--val-count", "1", "--turn-normals"]
    model = tmp_path / "turned.safetensors"
    result = run("train", *pairs, "-o", str(model), "--arch", "n2n_unet_aux", *options)
    assert result.returncode == 0, result.stderr
    assert restore.load(model).info.training["turn_normals"] is True
    refused = run("train", *pairs, "-o", str(tmp_path / "colour.safetensors"), *options)
    assert_one_line_error(refused, "--turn-normals turns a normal buffer")


def test_a_render_crops_level_is_its_noise_relative_to_its_brightness():
    # Two shots of one scene with 5% and 30% relative noise, each at two brightnesses: the level
    # follows the noise, not the radiance, as the relative HDR loss scores errors.
    generator = torch.Generator().manual_seed(0)
    radiance = 0.5 + torch.rand(1, 3, 64, 64, generator=generator)
    shot = lambda spread: radiance * (1 + spread * torch.randn(radiance.shape, generator=generator))  # noqa: E731
    for spread in (0.05, 0.3):
        a, b = shot(spread), shot(spread)
        levels = relative_crop_levels(torch.cat([a, 10 * a]), torch.cat([b, 10 * b]))
        assert levels.tolist() == pytest.approx([spread, spread], rel=0.1)
    # Balanced, a crop at 1024 spp (about 0.05) weighs several times one at 4 spp (about 0.4).
    clean, noisy = level_weights(torch.tensor([0.05, 0.4]), RELATIVE_LEVEL_FLOOR).tolist()
    assert clean / noisy == pytest.approx((0.4 + RELATIVE_LEVEL_FLOOR) / (0.05 + RELATIVE_LEVEL_FLOOR))


def test_a_render_model_trains_with_balanced_levels_and_records_it(tmp_path):
    write_renders(tmp_path)
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    options = ["--loss", "hdr", "--log-radiance", "--demodulate", "--steps", "2", "--batch", "2", "--patch", "32"]
    model = tmp_path / "balanced.safetensors"
    result = run("train", *pairs, "-o", str(model), "--arch", "n2n_unet_aux", *options, "--val-count", "1", "--balance-levels")
    assert result.returncode == 0, result.stderr
    assert restore.load(model).info.training["balance_levels"] is True


def test_an_exr_s_primaries_frame_and_renderer_notes_survive_denoising_and_upscaling(tmp_path, tiny_models):
    # An ACEScg render says so in its chromaticities, as a PNG does in its ICC profile; an overscan
    # render's data window reaches outside its display window. Both, and the renderer's own notes,
    # go to the output, the windows scaled with the pixels.
    import OpenEXR

    aces_cg = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
    window = lambda low, high: (np.array(low, np.int32), np.array(high, np.int32))  # noqa: E731
    header = {
        "type": OpenEXR.scanlineimage,
        "chromaticities": aces_cg,
        "owner": "studio",
        "worldToCamera": np.diag([1.0, 1.0, -1.0, 1.0]).astype(np.float32),
        "cycles.ViewLayer.samples": "16",
        "dataWindow": window([-4, -2], [27, 21]),  # 32 x 24 pixels, 4 and 2 beyond the frame's edge
        "displayWindow": window([0, 0], [23, 19]),
    }
    pixels = (smooth_image(24, 32, seed=3) * 4).astype(np.float32)
    channels = {c: np.ascontiguousarray(pixels[..., i]) for i, c in enumerate("RGB")}
    OpenEXR.File(header, channels).write(str(tmp_path / "shot.exr"))
    model = ["--model", str(tiny_models["denoiser"])]
    assert run("denoise", str(tmp_path / "shot.exr"), *model).returncode == 0
    assert run("upscale", str(tmp_path / "shot.exr"), "--x2", "--model", str(tiny_models["upscaler"])).returncode == 0
    for name, scale in (("shot.denoised.exr", 1), ("shot.x2.exr", 2)):
        written = OpenEXR.File(str(tmp_path / name), header_only=True).parts[0].header
        assert written["chromaticities"] == pytest.approx(aces_cg)
        assert written["owner"] == "studio" and written["cycles.ViewLayer.samples"] == "16"
        np.testing.assert_array_equal(written["worldToCamera"], header["worldToCamera"])
        low, high = written["dataWindow"]
        assert low.tolist() == [-4 * scale, -2 * scale] and high.tolist() == [28 * scale - 1, 22 * scale - 1]
        assert [corner.tolist() for corner in written["displayWindow"]] == [[0, 0], [24 * scale - 1, 20 * scale - 1]]
        assert read_image(tmp_path / name).pixels.shape == (24 * scale, 32 * scale, 3)


@pytest.mark.parametrize("scale", [1.5, 2, 0.5])
def test_windows_that_agreed_still_agree_after_any_resize_and_the_far_corner_fits_the_pixels(scale):
    from restore.io.images import scaled_exr_attributes

    window = lambda low, high: (np.array(low, np.int32), np.array(high, np.int32))  # noqa: E731
    for low, high in (([1, 1], [10, 10]), ([3, 3], [12, 12]), ([-4, -2], [27, 21])):
        scaled = scaled_exr_attributes(
            {"dataWindow": window(low, high), "displayWindow": window(low, high), "xDensity": 72.0}, scale
        )
        data, display = scaled["dataWindow"], scaled["displayWindow"]
        assert data[0].tolist() == display[0].tolist() and data[1].tolist() == display[1].tolist()
        size = (np.array(high) - np.array(low) + 1) * scale
        assert (data[1] - data[0] + 1).tolist() == np.floor(size + 0.5).astype(int).tolist()
        assert scaled["xDensity"] == 72.0 * scale
