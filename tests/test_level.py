"""Denoisers told the noise level (FFDNet's noise map) with an estimator that reads it off the
image: how training makes their level channel, and what `--strength` does with it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import restore
from conftest import assert_one_line_error, run, smooth_image, write_png
from restore.api import InferenceOptions, estimate_noise_level, run_model
from restore.archs import create
from restore.archs.unet import OVER_READ_WEIGHT, LevelUNet, with_level_map
from restore.modelfile import ModelInfo, save_model_file
from restore.noise import GaussianNoise, PhotoNoise, noisy_pair_with_reference, parse_noise
from restore.training.loop import TrainConfig, build_network, train
from restore.training.sources import NoisySource, PairSource


def level_model(tmp_path: Path, photos: Path, steps: int) -> Path:
    config = TrainConfig(
        out=str(tmp_path / "level.safetensors"), data=str(photos), variant="n2n_unet_level", steps=steps, batch=8, patch=32,
        val_count=2, val_every=steps, noise="gaussian:0-50", lr=1e-3, device="cpu", precision="fp32",
    )  # fmt: skip
    train(config, show_progress=False)
    return Path(config.out)


def test_training_inputs_carry_the_level_their_noise_was_drawn_at():
    clean = [torch.from_numpy(smooth_image(40, 40, seed=i)).permute(2, 0, 1) for i in range(3)]
    inputs, _ = NoisySource(clean, GaussianNoise(25), 32, clean_targets=False, level_channel=True).batch(64, torch.Generator())
    assert inputs.shape == (64, 4, 32, 32)
    assert torch.all(inputs[:, 3] == inputs[:, 3, :1, :1])  # one level per crop
    assert inputs[:, 3].mean().item() == pytest.approx(25 / 255, rel=0.02)


def test_a_level_jitter_tells_each_crop_its_level_off_by_a_bounded_factor():
    # --level-jitter 0.5: the denoiser is told each crop's level times a factor from e^-0.5 to
    # e^0.5, as an estimated level is off at inference; the crops and their noise are the same.
    clean = [torch.from_numpy(smooth_image(40, 40, seed=i)).permute(2, 0, 1) for i in range(3)]
    exact = NoisySource(clean, GaussianNoise(25), 32, clean_targets=False, level_channel=True)
    jittered = NoisySource(clean, GaussianNoise(25), 32, clean_targets=False, level_channel=True, level_jitter=0.5)
    told, target = jittered.batch(64, torch.Generator().manual_seed(2))
    drawn, same_target = exact.batch(64, torch.Generator().manual_seed(2))
    assert torch.equal(told[:, :3], drawn[:, :3]) and torch.equal(target, same_target)
    factors = told[:, 3, 0, 0] / drawn[:, 3, 0, 0]
    assert factors.min() >= np.exp(-0.5) - 1e-6 and factors.max() <= np.exp(0.5) + 1e-6
    assert factors.min() < 0.75 and factors.max() > 1.35  # spread over the range, both ways
    with pytest.raises(ValueError, match="add --denoiser-only"):
        TrainConfig(out="", level_jitter=0.5)


def test_an_estimator_learned_by_denoising_can_be_held_to_reading_nearly_clean_crops_low(tmp_path, photos):
    # --clean-read-cap 1.5: a crop drawn below sigma 1.5 leaves the denoising loss and pays the
    # square of its reading's excess over 1.5 (a variance, as an L2 loss is); readings at or below
    # the cap and noisier crops cost nothing.
    cap = 1.5 / 255
    drawn = torch.tensor([0.5, 0.5, 1.0, 5.0]) / 255
    read = torch.tensor([1.0, 3.0, 1.5, 20.0]) / 255
    expected = OVER_READ_WEIGHT * (1.5 / 255) ** 2 / 4  # only the second crop pays
    assert LevelUNet.over_read_loss(read, drawn, cap).item() == pytest.approx(expected, rel=1e-5)
    assert LevelUNet.over_read_loss(read, drawn, 0.5 / 255).item() == 0  # no crop drawn below the cap

    start = level_model(tmp_path, photos, steps=2)  # its estimator reads about 4.6, where it starts
    nearly_clean = replace(estimator_run(tmp_path / "by-denoising.safetensors", photos, start), noise="gaussian:0-1")
    by_denoising = replace(nearly_clean, estimator_by_denoising=True)
    capped = replace(by_denoising, out=str(tmp_path / "capped.safetensors"), clean_read_cap=1.0)
    train(by_denoising, show_progress=False)
    train(capped, show_progress=False)
    assert parts_changed(by_denoising.out, capped.out) == {"estimator"}  # the cap changed the gradient
    # Three steps on crops all drawn below the cap: by denoising alone the estimator reads a nearly
    # clean photo higher than at the start (about 12 against 6), held to the cap it reads it lower.
    photo = torch.from_numpy(smooth_image(48, 48, seed=7)).permute(2, 0, 1)[None]
    start_read, capped_read, uncapped_read = (
        restore.load(f).network.estimate_level(photo).item() for f in (start, capped.out, by_denoising.out)
    )
    assert capped_read < start_read < uncapped_read
    assert restore.load(capped.out).info.training["clean_read_cap"] == 1.0
    with pytest.raises(ValueError, match="add --estimator-by-denoising"):
        replace(by_denoising, estimator_by_denoising=False, clean_read_cap=1.5)
    with pytest.raises(ValueError, match="sigma from 0 to 50"):
        replace(by_denoising, clean_read_cap=60.0)


def test_an_overstated_level_is_the_crops_own_plus_up_to_the_given_sigma():
    # --level-overstate 3: the denoiser is told each crop's level plus 0 to 3 (0-255 scale), never
    # less, so that a clean photo read at 2.4 is something it has been told in training.
    clean = [torch.from_numpy(smooth_image(40, 40, seed=i)).permute(2, 0, 1) for i in range(3)]
    exact = NoisySource(clean, GaussianNoise((0, 10)), 32, clean_targets=False, level_channel=True)
    raised = NoisySource(clean, GaussianNoise((0, 10)), 32, clean_targets=False, level_channel=True, level_overstate=3 / 255)
    told, _ = raised.batch(64, torch.Generator().manual_seed(4))
    drawn, _ = exact.batch(64, torch.Generator().manual_seed(4))
    added = (told[:, 3, 0, 0] - drawn[:, 3, 0, 0]) * 255
    assert added.min() >= 0 and added.max() <= 3 + 1e-4
    assert added.min() < 0.5 and added.max() > 2.5
    with pytest.raises(ValueError, match="add --denoiser-only"):
        TrainConfig(out="", level_overstate=3)


def test_a_photos_level_leaves_out_the_jpeg_compression_of_the_clean_image():
    # At quality 60 a textured image loses more to JPEG than to the sensor noise of a low ISO:
    # the label is the noise's own level, measured against the clean image through the same
    # camera without noise, not against the clean image itself.
    textured = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    noise = PhotoNoise(1e-4, 60)
    inputs, _ = NoisySource(list(textured), noise, 48, clean_targets=False, level_channel=True).batch(8, torch.Generator())
    first, _, reference = noisy_pair_with_reference(noise, textured, torch.Generator().manual_seed(1))
    against_clean = (first - textured).square().mean(dim=(1, 2, 3)).sqrt()
    against_reference = (first - reference).square().mean(dim=(1, 2, 3)).sqrt()
    assert torch.all(against_reference < against_clean / 2)
    assert inputs[:, 3].mean() < against_clean.mean() / 2
    # The pair itself is the one `pair` draws: the reference costs no random numbers.
    pair = noise.pair(textured, torch.Generator().manual_seed(1))
    assert torch.equal(pair[0], first)


def test_an_estimator_only_source_skips_the_target_and_labels_the_same_shot():
    # A run that trains the estimator alone never looks at the Noise2Noise target, so its source
    # does not draw one (a second camera pipeline per crop): the shot and its label are the ones a
    # full batch holds, and the reference takes the target's place.
    textured = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    noise = PhotoNoise((1e-4, 1e-2), (60, 99))
    full, _ = NoisySource(list(textured), noise, 48, False, level_channel=True).batch(6, torch.Generator().manual_seed(3))
    alone = NoisySource(list(textured), noise, 48, False, level_channel=True, draw_targets=False)
    shots, references = alone.batch(6, torch.Generator().manual_seed(3))
    assert torch.equal(shots, full)
    measured = (shots[:, :3] - references).square().mean(dim=(1, 2, 3)).sqrt()
    assert torch.allclose(shots[:, 3, 0, 0], measured)
    mix = parse_noise("mix:photo:0.0001-0.01,60-99|gaussian:0-50")  # each crop its own model's shot and reference
    shots, references = NoisySource(list(textured), mix, 48, False, True, draw_targets=False).batch(8, torch.Generator())
    assert torch.allclose(shots[:, 3, 0, 0], (shots[:, :3] - references).square().mean(dim=(1, 2, 3)).sqrt())
    with pytest.raises(ValueError, match="level channel"):
        NoisySource(list(textured), noise, 48, False, draw_targets=False)


def test_a_pair_tells_its_own_level_without_a_clean_image():
    clean = torch.from_numpy(smooth_image(64, 64)).permute(2, 0, 1)
    noise = GaussianNoise(10)
    shots = [torch.cat([noise.apply(clean[None], torch.Generator().manual_seed(2 * i + k)) for k in (0, 1)]) for i in range(4)]
    inputs, targets = PairSource(shots, 48, level_channel=True).batch(16, torch.Generator())
    assert inputs.shape[1] == 4 and targets.shape[1] == 3
    assert inputs[:, 3].mean().item() == pytest.approx(10 / 255, rel=0.05)  # RMS(A - B) / sqrt 2


def test_the_estimator_learns_to_read_the_level_and_the_model_file_runs_through_the_cli(tmp_path, photos):
    path = level_model(tmp_path, photos, steps=80)
    model = restore.load(path)
    assert model.network.takes_noise_level and model.info.channels == 3
    clean = torch.from_numpy(smooth_image(96, 96, seed=9)).permute(2, 0, 1)
    noisy = [GaussianNoise(sigma).apply(clean[None], torch.Generator().manual_seed(0))[0] for sigma in (5, 20, 45)]
    levels = [estimate_noise_level(model, image) for image in noisy]
    assert levels[0] < levels[1] < levels[2], levels  # more noise reads as more

    noisy = write_png(
        tmp_path / "noisy.png", np.clip(smooth_image(40, 40) + np.random.default_rng(0).normal(0, 0.1, (40, 40, 3)), 0, 1)
    )
    result = run("denoise", str(noisy), "--model", str(path), "--strength", "0.5")
    assert result.returncode == 0, result.stderr
    assert ", noise " in result.stdout + result.stderr  # the estimate is printed beside the model


def test_strength_zero_returns_the_input_and_a_level_is_applied_to_the_whole_image_not_per_tile():
    torch.manual_seed(0)
    network = create("n2n_unet_level").eval()
    model = restore.api.Model(
        network, restore.modelfile.ModelInfo("lvl", network.architecture, network.config_dict(), "denoise"), "-"
    )
    image = torch.rand(3, 70, 90)
    exact = InferenceOptions(device="cpu", precision="fp32")
    assert torch.equal(run_model(model, image, InferenceOptions(strength=0)), image)
    whole = run_model(model, image, exact)
    tiled = run_model(model, image, replace(exact, tile=32))
    assert torch.allclose(whole, tiled, atol=1e-5)
    told = run_model(model, image, exact, noise_level=estimate_noise_level(model, image))
    assert torch.allclose(whole, told, atol=1e-5)  # without a level, the estimate is what it is told
    weaker = run_model(model, image, replace(exact, strength=0.5))
    assert not torch.allclose(whole, weaker, atol=1e-4)


def test_a_folder_gets_each_photos_estimate_printed_and_strength_applies_to_every_file(tmp_path):
    # The default colour model over a folder: one line per file with the level it read, and
    # --strength 0 writes every photo back unchanged while --strength 0.5 keeps more grain than 1.
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png"):
        photo = np.clip(smooth_image(40, 48, seed=len(name)) + rng.normal(0, 0.08, (40, 48, 3)), 0, 1)
        Image.fromarray((photo * 255).round().astype(np.uint8)).save(folder / name)
    outputs = {}
    for strength in ("0", "0.5", "1"):
        result = run("denoise", str(folder), "--strength", strength, "-o", str(tmp_path / strength))
        assert result.returncode == 0, result.stderr
        lines = [line for line in (result.stdout + result.stderr).splitlines() if " -> " in line]
        assert len(lines) == 2 and all("n2n-photo-level, noise " in line for line in lines), lines
        outputs[strength] = {n: np.asarray(Image.open(tmp_path / strength / n), dtype=float) for n in ("a.png", "b.png")}
    for name in ("a.png", "b.png"):
        given = np.asarray(Image.open(folder / name), dtype=float)
        assert np.array_equal(outputs["0"][name], given)
        kept, removed = (np.abs(outputs[s][name] - given).mean() for s in ("0.5", "1"))
        assert 0 < kept < removed  # half the strength changes the photo less


def test_a_model_without_a_level_has_no_strength_control(tmp_path, tiny_models):
    with pytest.raises(ValueError, match="'tiny-denoiser' has no strength control"):
        restore.denoise(torch.rand(3, 16, 16), tiny_models["denoiser"], strength=0.5)
    assert estimate_noise_level(restore.load(tiny_models["denoiser"]), torch.rand(3, 16, 16)) is None
    photo = write_png(tmp_path / "p.png", smooth_image(20, 20))
    assert_one_line_error(
        run("denoise", str(photo), "--model", str(tiny_models["denoiser"]), "--strength", "2"), "no strength control"
    )
    assert_one_line_error(run("denoise", str(photo), "--strength", "-1"), "--strength must be a number >= 0", code=2)


def test_a_level_model_started_from_a_photo_model_first_computes_what_that_model_computes(tmp_path, photos, tiny_models):
    config = TrainConfig(out=str(tmp_path / "l.safetensors"), data=str(photos), init=str(tiny_models["denoiser"]))
    config.variant = "n2n_unet_level"
    network, _ = build_network(config)
    photo_model = restore.load(tiny_models["denoiser"]).network
    image = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        for level in (0.0, 0.05, 0.3):  # the level's weights start at zero: training adds what it tells
            assert torch.allclose(
                network.eval()(with_level_map(network, image, torch.tensor([level]))), photo_model(image), atol=1e-5
            )
    config.steps, config.batch, config.patch, config.val_count, config.val_every = 2, 2, 32, 2, 2
    config.device, config.precision = "cpu", "fp32"
    train(config, show_progress=False)
    assert restore.load(config.out).info.architecture == "unet-level"


def test_the_wide_estimator_starts_as_a_plain_mean_and_trains_at_three_times_the_denoisers_rate(tmp_path, photos):
    network = create("n2n_unet_level_wide")
    assert network.config.estimator_pooling == "weighted" and max(network.config.estimator_dilations) == 8
    flat, busy = torch.full((1, 3, 48, 48), 0.5), torch.rand(1, 3, 48, 48)
    with torch.no_grad():  # equal weights at the start: an image's level is the mean of its pixels' levels
        per_pixel = torch.nn.functional.softplus(network.estimator(torch.cat([flat, busy]))[:, 0])
        assert torch.allclose(network.estimate_level(torch.cat([flat, busy])), per_pixel.mean(dim=(1, 2)))
    groups = network.parameter_groups()
    assert [group["lr_scale"] for group in groups] == [1.0, 3.0]
    assert sum(len(group["params"]) for group in groups) == len(list(network.parameters()))

    config = TrainConfig(
        out=str(tmp_path / "wide.safetensors"), data=str(photos), variant="n2n_unet_level_wide", steps=2, batch=2, patch=32,
        val_count=2, val_every=2, noise="gaussian:0-50", lr=1e-4, device="cpu", precision="fp32",
        run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    train(config, show_progress=False)
    config.steps, config.overwrite = 3, True  # resumes from the checkpoint, the estimator's own rate with it
    train(config, show_progress=False)
    model = restore.load(config.out)
    assert list(model.network.config.estimator_dilations) == [1, 1, 2, 4, 8, 1]  # the file rebuilds its estimator
    assert estimate_noise_level(model, busy[0]) > 0


@pytest.mark.parametrize(("variant", "channels"), [("n2n_unet_level_pyramid", 3), ("n2n_unet_level_pyramid_gray", 1)])
def test_the_pyramid_estimator_reads_one_level_per_image_of_any_size_from_four_scales(tmp_path, variant, channels):
    network = create(variant).eval()
    pools = [layer for layer in network.estimator if isinstance(layer, torch.nn.AvgPool2d)]
    assert len(pools) == 3  # full, half, quarter and eighth size
    with torch.no_grad():
        for size in ((1, 1), (17, 23), (96, 64)):  # odd edges and a single pixel keep a pixel
            level = network.estimate_level(torch.rand(2, channels, *size))
            assert level.shape == (2,) and torch.all(level > 0)
    info = ModelInfo("pyramid", network.architecture, network.config_dict(), "denoise", channels=channels)
    save_model_file(tmp_path / "pyramid.safetensors", network, info)
    rebuilt = restore.load(tmp_path / "pyramid.safetensors").network
    image = torch.rand(1, channels, 40, 56)
    with torch.no_grad():  # the file rebuilds the same estimator: same pools, same perceptron
        assert torch.equal(rebuilt.estimate_level(image), network.estimate_level(image))


def test_a_windowed_estimator_reads_a_large_image_as_the_mean_of_its_central_tiles():
    network = create("n2n_unet_level_pyramid").eval()
    assert network.config.estimator_window == 96
    image = torch.rand(2, 3, 200, 300)  # 2 x 3 whole tiles, centred: rows 4-195, columns 6-293
    with torch.no_grad():
        tiles = [image[:, :, 4 + 96 * r : 100 + 96 * r, 6 + 96 * c : 102 + 96 * c] for r in range(2) for c in range(3)]
        expected = torch.stack([network.estimate_level(tile) for tile in tiles]).mean(dim=0)
        assert torch.allclose(network.estimate_level(image), expected, atol=1e-6)
        small = image[:, :, :96, :150]  # not larger than a tile on one side: read whole
        network.config.estimator_window = 0
        whole = network.estimate_level(small)
        network.config.estimator_window = 96
        assert torch.equal(network.estimate_level(small), whole)


@pytest.mark.parametrize(
    ("plain_variant", "gated_variant", "channels"),
    [("n2n_unet_level_pyramid", "n2n_unet_level_gated", 3), ("n2n_unet_aux", "n2n_unet_aux_gated", 9)],
)
def test_the_input_gate_starts_closed_on_a_warm_start_and_open_hands_the_input_through(
    tmp_path, plain_variant, gated_variant, channels
):
    plain = create(plain_variant).eval()
    info = ModelInfo("plain", plain.architecture, plain.config_dict(), "denoise")
    save_model_file(tmp_path / "plain.safetensors", plain, info)
    warm_start = TrainConfig(out="unused", init=str(tmp_path / "plain.safetensors"), variant=gated_variant)
    gated, _ = build_network(warm_start)
    gated.eval()
    assert gated.config.input_gate and not plain.config.input_gate
    x = with_level_map(plain, torch.rand(1, channels, 64, 64))  # the colour first, then buffers or the level
    with torch.no_grad():
        before, after = plain(x), gated(x)
        # every weight of the file copied; the new gate nearly shut: the file's output to 0.25% of its residual
        assert (after - before).abs().max() <= 0.003 * (x[:, :3] - before).abs().max()
        torch.nn.init.constant_(getattr(gated, "denoiser", gated).gate_conv.bias, 30.0)  # wide open
        assert torch.allclose(gated(x), x[:, :3], atol=1e-6)  # the input's colour handed through unchanged
    gated_info = replace(info, architecture=gated.architecture, config=gated.config_dict())
    save_model_file(tmp_path / "gated.safetensors", gated, gated_info)
    rebuilt = restore.load(tmp_path / "gated.safetensors").network
    with torch.no_grad():  # the file rebuilds the gate
        assert rebuilt.config.input_gate and torch.equal(rebuilt(x), gated(x))


def test_set_config_writes_a_copy_that_runs_with_the_new_setting_and_says_so(tmp_path):
    network = create("n2n_unet_level_pyramid")
    network.config.estimator_window = 0
    info = ModelInfo("pyramid", network.architecture, network.config_dict(), "denoise")
    save_model_file(tmp_path / "whole.safetensors", network, info)
    tool = Path(__file__).resolve().parents[1] / "tools" / "set_config.py"
    out = tmp_path / "tiled.safetensors"
    command = [sys.executable, str(tool), str(tmp_path / "whole.safetensors"), "estimator_window=96", "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    edited = restore.load(out)
    assert edited.network.config.estimator_window == 96
    assert edited.info.training["edits"] == [{"config": {"estimator_window": 96}, "from": "whole.safetensors"}]
    before = restore.load(tmp_path / "whole.safetensors").network.state_dict()
    assert all(torch.equal(before[k], v) for k, v in edited.network.state_dict().items())  # the weights as they were
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "exists" in again.stderr  # an existing file is not replaced unasked
    assert "--overwrite" in again.stderr  # and the line names the flag that replaces it, which the tool has
    replaced = subprocess.run([*command, "--overwrite"], capture_output=True, text=True, timeout=300)
    assert replaced.returncode == 0, replaced.stderr


def test_a_gray_level_model_starts_from_the_gray_model_and_trains_on_gray_crops(tmp_path, photos):
    gray = TrainConfig(out=str(tmp_path / "g.safetensors"), data=str(photos), variant="n2n_unet_gray", steps=2)
    gray.batch, gray.patch, gray.val_count, gray.val_every, gray.device, gray.precision = 2, 32, 2, 2, "cpu", "fp32"
    train(gray, show_progress=False)
    config = TrainConfig(out=str(tmp_path / "l.safetensors"), data=str(photos), init=gray.out, variant="n2n_unet_level_gray")
    network, _ = build_network(config)
    image = torch.rand(1, 1, 40, 40)
    with torch.inference_mode():  # the level's weights start at zero: step 0 is the gray model
        started = network.eval()(with_level_map(network, image, torch.tensor([0.1])))
        assert torch.allclose(started, restore.load(gray.out).network(image), atol=1e-5)
    config.steps, config.batch, config.patch, config.val_count, config.val_every = 2, 2, 32, 2, 2
    config.device, config.precision = "cpu", "fp32"
    train(config, show_progress=False)
    model = restore.load(config.out)
    assert model.info.channels == 1 and model.network.takes_noise_level
    gray_image, colour_image = torch.rand(1, 24, 24), torch.rand(3, 24, 24)
    assert estimate_noise_level(model, gray_image) is not None
    # A colour image goes through a gray model channel by channel, its level read channel by channel.
    exact = InferenceOptions(device="cpu", precision="fp32")
    by_channel = [run_model(model, colour_image[c : c + 1], exact) for c in range(3)]
    assert torch.allclose(run_model(model, colour_image, exact), torch.cat(by_channel), atol=1e-5)
    levels = [estimate_noise_level(model, colour_image[c : c + 1]) for c in range(3)]
    assert estimate_noise_level(model, colour_image) == pytest.approx(sum(levels) / 3)


def parts_changed(start: Path, out: str) -> set[str]:
    """The parts of a level network ("denoiser", "estimator") with any weight that differs between two files."""
    before, after = restore.load(start).network.state_dict(), restore.load(out).network.state_dict()
    return {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}


def estimator_run(out: Path, photos: Path, start: Path) -> TrainConfig:
    """Three steps of a level model's estimator alone, from `start`."""
    return TrainConfig(
        out=str(out), data=str(photos), init=str(start), estimator_only=True, steps=3, batch=4, patch=48,
        val_count=2, val_every=3, noise="gaussian:0-50", lr=1e-3, device="cpu", precision="fp32",
    )  # fmt: skip


def test_an_estimator_only_run_trains_the_estimator_and_leaves_the_denoiser_as_it_was(tmp_path, photos):
    start = level_model(tmp_path, photos, steps=2)
    config = estimator_run(tmp_path / "estimator.safetensors", photos, start)
    train(config, show_progress=False)
    assert parts_changed(start, config.out) == {"estimator"}  # every denoiser weight as it was
    assert restore.load(config.out).info.training["estimator_only"] is True

    blind = replace(config, init="", variant="n2n_unet", out=str(tmp_path / "blind.safetensors"))
    with pytest.raises(ValueError, match="estimator-only trains a level model's estimator"):
        train(blind, show_progress=False)
    with pytest.raises(ValueError, match="no --balance-levels or clean targets"):
        replace(config, balance_levels=True)


def test_a_denoiser_only_run_trains_the_denoiser_and_leaves_the_estimator_as_it_was(tmp_path, photos):
    start = level_model(tmp_path, photos, steps=2)
    config = TrainConfig(
        out=str(tmp_path / "denoiser.safetensors"), data=str(photos), init=str(start), denoiser_only=True, steps=3,
        batch=4, patch=32, val_count=2, val_every=3, noise="gaussian:0-50", lr=1e-3, device="cpu", precision="fp32",
    )  # fmt: skip
    train(config, show_progress=False)
    assert parts_changed(start, config.out) == {"denoiser"}  # every estimator weight as it was
    assert restore.load(config.out).info.training["denoiser_only"] is True

    gated = replace(config, variant="n2n_unet_level_gated", out=str(tmp_path / "gated.safetensors"))
    train(gated, show_progress=False)  # a new gate on a kept estimator: the gate trains with the denoiser
    assert restore.load(gated.out).network.denoiser.gate_conv.bias.item() != -6.0
    groups = create("n2n_unet_level_gated").denoiser_parameter_groups()
    assert [group["lr_scale"] for group in groups] == [1.0, 10.0] and len(groups[1]["params"]) == 2  # the gate's own rate

    blind = replace(config, init="", variant="n2n_unet", out=str(tmp_path / "blind.safetensors"))
    with pytest.raises(ValueError, match="denoiser-only keeps a level model's estimator"):
        train(blind, show_progress=False)
    with pytest.raises(ValueError, match="give one"):
        replace(config, estimator_only=True)


def test_an_estimator_can_also_learn_the_level_its_denoiser_restores_best_at(tmp_path, photos):
    # --estimator-by-denoising: the kept denoiser's loss, told the estimator's reading, trains the estimator.
    start = level_model(tmp_path, photos, steps=2)
    by_level = estimator_run(tmp_path / "by-level.safetensors", photos, start)
    by_denoising = replace(by_level, out=str(tmp_path / "by-denoising.safetensors"), estimator_by_denoising=True)
    train(by_level, show_progress=False)
    train(by_denoising, show_progress=False)
    assert parts_changed(start, by_denoising.out) == {"estimator"}  # the denoiser is run, never changed
    assert parts_changed(by_level.out, by_denoising.out) == {"estimator"}  # the same crops, another gradient
    assert restore.load(by_denoising.out).info.training["estimator_by_denoising"] is True

    network = restore.load(start).network
    network.denoise_as_read(torch.rand(2, 3, 48, 48))[0].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.estimator.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="add --estimator-only"):
        replace(by_level, estimator_only=False, estimator_by_denoising=True)
