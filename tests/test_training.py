"""The training loop: train, resume after a kill, finetune on pairs, export a loadable model."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors import safe_open

import restore
from conftest import smooth_image, write_png
from restore.io.datasets import split_real_pairs
from restore.modelfile import read_info
from restore.noise import GaussianNoise
from restore.training.loop import (
    LOSSES,
    RunState,
    TrainConfig,
    ValidationScore,
    _resumable,
    _same_run,
    annealed_l0_loss,
    build_network,
    hdr_loss,
    learning_rate,
    level_weights,
    prepare_data,
    tone_mapped_loss,
    train,
    validate,
)
from restore.training.sources import NoisySource, crop_levels, parse_zoom, random_crops


@pytest.fixture
def noisy_pairs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(4):
        clean = smooth_image(40, 40, seed=i)
        for folder in (a, b):
            write_png(folder / f"scene{i}.png", np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32))
    return a, b


def tiny_config(tmp_path: Path, data: Path, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "m.safetensors"),
        data=str(data),
        steps=2,
        batch=2,
        patch=32,
        val_count=2,
        val_every=1,
        checkpoint_every=1,
        noise="gaussian:25",
        device="cpu",
        precision="fp32",  # exact comparisons between runs; "auto" would time each run
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_two_step_training_exports_a_loadable_model_with_its_summary(tmp_path, photos):
    info = train(tiny_config(tmp_path, photos), show_progress=False)
    loaded = restore.load(tmp_path / "m.safetensors")
    assert loaded.info.task == "denoise" and loaded.info.noise == "gaussian:25"
    assert info.training["steps"] == 2 and len(info.training["val_curve"]) == 2
    assert info.training["targets"] == "noisy (Noise2Noise)"
    out = restore.denoise(torch.rand(3, 20, 30), loaded)
    assert out.shape == (3, 20, 30)


def test_a_photo_run_with_lossless_targets_says_so_in_its_model_file(tmp_path, photos):
    config = tiny_config(tmp_path, photos, noise="photo:0.001,70", lossless_targets=True)
    info = train(config, show_progress=False)
    assert info.training["targets"] == "noisy (Noise2Noise), photo targets without JPEG"
    with pytest.raises(ValueError, match="no photo family"):
        train(tiny_config(tmp_path / "g", photos, lossless_targets=True), show_progress=False)
    with pytest.raises(ValueError, match="--lossless-targets changes the noisy targets"):
        tiny_config(tmp_path, photos, lossless_targets=True, clean_targets=True)


@pytest.mark.defect(1)
def test_resumed_training_matches_an_uninterrupted_run(tmp_path, photos):
    straight = tiny_config(tmp_path / "one", photos, steps=4)
    train(straight, show_progress=False)
    split = tiny_config(tmp_path / "two", photos, steps=2)
    train(split, show_progress=False)
    split.steps = 4
    with pytest.raises(FileExistsError, match=r"exists \(--overwrite, or overwrite=True in the library, replaces it\)"):
        train(split, show_progress=False)  # the finished run's file is not replaced by accident
    split.overwrite = True
    train(split, show_progress=False)  # picks up the checkpoint at step 2
    a = restore.load(tmp_path / "one" / "m.safetensors").network.state_dict()
    b = restore.load(tmp_path / "two" / "m.safetensors").network.state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_a_killed_cli_run_resumes_from_its_last_checkpoint(tmp_path, photos):
    out = tmp_path / "killed.safetensors"
    cmd = [
        sys.executable,
        "-m",
        "restore",
        "train",
        str(photos),
        "-o",
        str(out),
        "--steps",
        "10000",
        "--batch",
        "2",
        "--patch",
        "32",
        "--val-count",
        "2",
        "--val-every",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed.run" / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    assert checkpoint.exists() and not out.exists()
    resumed = subprocess.run(
        [*cmd[: cmd.index("10000")], "3", *cmd[cmd.index("10000") + 1 :]], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step" in resumed.stderr
    assert read_info(out).training["steps"] >= 3


def test_the_moving_average_follows_the_weights_at_the_ramped_decay():
    network = torch.nn.Linear(1, 1, bias=False)
    state = RunState()
    with torch.no_grad():
        network.weight.fill_(1.0)
        state.update_average(network, decay=0.9)  # the first call copies the weights
        network.weight.fill_(3.0)
        state.step = 10  # ramped decay (1 + 10) / (10 + 10) = 0.55: 45% of the way to the weights
        state.update_average(network, decay=0.9)
    assert state.average is not None and float(state.average["weight"]) == pytest.approx(1.9)
    state.step = 1000  # past the ramp the decay itself: 10% of the way
    state.update_average(network, decay=0.9)
    assert float(state.average["weight"]) == pytest.approx(2.01)


def test_an_averaged_run_exports_its_moving_average_and_resumes_it_exactly(tmp_path, photos):
    straight = tiny_config(tmp_path / "one", photos, steps=4, ema=0.9)
    info = train(straight, show_progress=False)
    assert info.training["steps"] == 4
    with safe_open(str(tmp_path / "one" / "m.run" / "checkpoint.safetensors"), framework="pt") as f:
        last = {k[6:]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
        average = {k[8:]: f.get_tensor(k) for k in f.keys() if k.startswith("average.")}
    exported = weights(tmp_path / "one" / "m.safetensors")
    assert all(torch.equal(exported[key], average[key]) for key in exported)
    assert not all(torch.equal(exported[key], last[key]) for key in exported)
    split = tiny_config(tmp_path / "two", photos, steps=2, ema=0.9)
    train(split, show_progress=False)
    split.steps, split.overwrite = 4, True
    train(split, show_progress=False)  # the average comes back from the checkpoint with the weights
    resumed = weights(tmp_path / "two" / "m.safetensors")
    for key in exported:
        assert torch.allclose(exported[key], resumed[key], atol=1e-6), key
    with pytest.raises(ValueError, match="--ema"):
        tiny_config(tmp_path, photos, ema=1.0)


def test_a_checkpoint_of_other_settings_is_not_silently_reused(tmp_path, photos):
    train(tiny_config(tmp_path, photos), show_progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train(tiny_config(tmp_path, photos, noise="gaussian:50", overwrite=True), show_progress=False)


def test_finetune_on_noisy_pairs_lowers_the_loss_and_exports(tmp_path, noisy_pairs, tiny_models):
    a, b = noisy_pairs
    config = TrainConfig(
        out=str(tmp_path / "ft.safetensors"),
        pairs=[str(a), str(b)],
        init=str(tiny_models["denoiser"]),
        steps=30,
        batch=4,
        patch=32,
        lr=1e-3,
        val_count=1,
        val_every=10,
        checkpoint_every=10,
        device="cpu",
    )
    info = train(config, show_progress=False)
    curve = [psnr for _, psnr, _ in info.training["val_curve"]]
    assert curve[-1] > curve[0]  # noisy-vs-noisy validation PSNR rises as the denoiser adapts
    assert info.training["from"] == "tiny-denoiser"
    assert restore.load(tmp_path / "ft.safetensors").info.task == "denoise"


def finetune_config(tmp_path: Path, pairs: tuple[Path, Path], init: Path, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "ft.safetensors"), pairs=[str(p) for p in pairs], init=str(init), steps=3, batch=2,
        patch=32, lr=1e-3, val_count=1, val_every=1, checkpoint_every=1, device="cpu", precision="fp32",
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def scripted_validation(monkeypatch, scores: list[float]) -> None:
    """Make validation return these scores in turn, so that which step is best is known."""
    remaining = iter(scores)
    monkeypatch.setattr("restore.training.loop.validate", lambda *args, **kwargs: ValidationScore(next(remaining)))


def test_validation_reports_the_least_gain_over_the_input_beside_the_mean():
    # "Never worse than the input" is a line about every photo: a run can raise the mean PSNR
    # while one image loses, so the validation also reports the worst image's gain.
    class Halving(torch.nn.Module):
        """Pulls every pixel halfway to 0.5: good for a noisy flat image, bad for a sharp one."""

        out_channels, takes_noise_level = 3, False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x + 0.5) / 2

    generator = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 16, 16), 0.5)
    noisy_flat = flat + 0.1 * torch.randn(flat.shape, generator=generator)
    sharp = (torch.rand(1, 3, 16, 16, generator=generator) > 0.5).float()
    score = validate(Halving(), [(noisy_flat, flat), (sharp, sharp)], torch.device("cpu"))
    flat_gain = 20 * np.log10(2)  # the noise halved: +6.02 dB
    assert score.least_gain is not None and score.least_gain < 0  # the sharp image, returned blurred
    halved_sharp = float(-10 * torch.log10(((sharp + 0.5) / 2 - sharp).square().mean()))
    noisy_psnr = float(-10 * torch.log10((noisy_flat.clamp(0, 1) - flat).square().mean()))
    assert score.psnr == pytest.approx((noisy_psnr + flat_gain + halved_sharp) / 2, abs=0.05)
    # Where the input cannot be compared with the reference (noisy references), there is none.
    assert validate(Halving(), [(noisy_flat, noisy_flat)], torch.device("cpu"), noisy_references=True).least_gain is None


def weights(path: Path) -> dict[str, torch.Tensor]:
    return restore.load(path).network.state_dict()


def test_finetune_keeps_the_best_validated_weights_through_a_resume(tmp_path, noisy_pairs, tiny_models, monkeypatch):
    one_step = finetune_config(tmp_path / "one", noisy_pairs, tiny_models["denoiser"], steps=1)
    train(one_step, show_progress=False)  # the reference: the weights after exactly one step
    scripted_validation(monkeypatch, [20.0, 25.0, 22.0, 21.0])  # steps 0, 1, 2, 3
    config = finetune_config(tmp_path / "run", noisy_pairs, tiny_models["denoiser"], steps=2, keep_best=True)
    train(config, show_progress=False)
    config.steps, config.overwrite = 3, True
    info = train(config, show_progress=False)  # resumed: the best weights came back from the checkpoint
    assert info.training["exported_step"] == 1 and info.training["val_psnr"] == 25.0
    assert [step for step, _, _ in info.training["val_curve"]] == [0, 1, 2, 3]
    best, reference = weights(tmp_path / "run" / "ft.safetensors"), weights(tmp_path / "one" / "ft.safetensors")
    assert all(torch.equal(best[key], reference[key]) for key in best)


def test_a_finetune_that_never_beats_its_start_hands_back_the_start(tmp_path, noisy_pairs, tiny_models, monkeypatch):
    scripted_validation(monkeypatch, [30.0, 20.0, 21.0, 22.0])
    config = finetune_config(tmp_path, noisy_pairs, tiny_models["denoiser"], keep_best=True)
    info = train(config, show_progress=False)
    assert info.training["exported_step"] == 0 and info.training["steps"] == 3
    exported, start = weights(tmp_path / "ft.safetensors"), weights(tiny_models["denoiser"])
    assert all(torch.equal(exported[key], start[key]) for key in exported)


def test_without_keep_best_the_last_weights_are_exported(tmp_path, noisy_pairs, tiny_models, monkeypatch):
    scripted_validation(monkeypatch, [30.0, 20.0, 21.0])
    info = train(finetune_config(tmp_path, noisy_pairs, tiny_models["denoiser"]), show_progress=False)
    assert "exported_step" not in info.training and info.training["val_psnr"] == 21.0


def test_a_run_that_kept_its_best_resumed_with_keep_last_exports_its_last_weights_and_keeps_its_best(
    tmp_path, noisy_pairs, tiny_models, monkeypatch
):
    scripted_validation(monkeypatch, [30.0, 20.0, 21.0, 22.0])  # the start stays the best
    config = finetune_config(tmp_path, noisy_pairs, tiny_models["denoiser"], keep_best=True)
    assert train(config, show_progress=False).training["exported_step"] == 0
    config.keep_best, config.overwrite = False, True
    info = train(config, show_progress=False)  # resumed at its last step: nothing to train, only the export
    assert "exported_step" not in info.training and info.training["val_psnr"] == 22.0
    exported, start = weights(tmp_path / "ft.safetensors"), weights(tiny_models["denoiser"])
    assert not all(torch.equal(exported[key], start[key]) for key in exported)
    # The checkpoint still holds the best weights: --keep best exports them again.
    config.keep_best = True
    assert train(config, show_progress=False).training["exported_step"] == 0
    exported = weights(tmp_path / "ft.safetensors")
    assert all(torch.equal(exported[key], start[key]) for key in exported)


def test_finetune_lists_unmatched_files(tmp_path, noisy_pairs, tiny_models):
    a, b = noisy_pairs
    (b / "scene0.png").rename(b / "other.png")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "restore",
            "finetune",
            str(a),
            str(b),
            "-o",
            str(tmp_path / "x.safetensors"),
            "--from",
            str(tiny_models["denoiser"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "scene0.png" in result.stderr and "other.png" in result.stderr
    assert "Traceback" not in result.stderr


def test_real_pairs_split_into_a_selection_half_and_an_unseen_half_alternating_by_name():
    pairs = [(Path(f"cam{i}_noisy.jpg"), Path(f"cam{i}_clean.jpg")) for i in range(5)]
    selection, unseen = split_real_pairs(pairs)
    assert [n.name for n, _ in selection] == ["cam0_noisy.jpg", "cam2_noisy.jpg", "cam4_noisy.jpg"]
    assert [n.name for n, _ in unseen] == ["cam1_noisy.jpg", "cam3_noisy.jpg"]


def test_a_zoom_magnifies_the_clean_crops_so_they_hold_less_fine_detail():
    # A camera's large photo holds far less detail per pixel than the small training photos:
    # --zoom draws each crop smaller and magnifies it to the patch, before the noise.
    generator = torch.Generator().manual_seed(0)
    texture = [torch.rand(3, 96, 96, generator=generator) for _ in range(4)]

    def fine_detail(zoom: float) -> float:
        _, target = NoisySource(texture, GaussianNoise(0), 32, clean_targets=True, zoom=(1, zoom)).batch(16, torch.Generator())
        return float((target[..., 1:] - target[..., :-1]).abs().mean())

    assert fine_detail(4) < 0.6 * fine_detail(1)
    unzoomed = NoisySource(texture, GaussianNoise(0), 32, clean_targets=True)
    assert torch.equal(
        unzoomed.batch(4, torch.Generator())[1], random_crops([t[None] for t in texture], 4, 32, torch.Generator())[:, 0]
    )
    with pytest.raises(ValueError, match="--zoom must be positive"):
        TrainConfig(out="", zoom=0)
    with pytest.raises(ValueError, match="does nothing for upscalers"):
        TrainConfig(out="", task="upscale", zoom=2)


def test_a_zoom_below_1_shrinks_the_crops_averaging_the_pixels_it_drops():
    # --zoom 0.5: each crop up to twice the patch, shrunk with antialiasing, so that its finest
    # detail is denser but no new pattern appears: a one-pixel checkerboard comes out gray.
    checkerboard = (torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2
    board = [checkerboard.float().expand(3, 128, 128).clone()]
    _, crops = NoisySource(board, GaussianNoise(0), 32, clean_targets=True, zoom=(1, 0.5)).batch(8, torch.Generator())
    assert crops.shape == (8, 3, 32, 32)
    shrunk = [c for c in crops if c.std() < 0.2]  # the crops drawn at a factor near 0.5
    assert shrunk and all(abs(c.mean().item() - 0.5) < 0.05 for c in shrunk)
    ramp = [torch.linspace(0, 1, 128).expand(3, 128, 128).clone()]
    _, steeper = NoisySource(ramp, GaussianNoise(0), 32, clean_targets=True, zoom=(1, 0.5)).batch(8, torch.Generator())
    slope = (steeper[..., 1:] - steeper[..., :-1]).abs().mean() + (steeper[..., 1:, :] - steeper[..., :-1, :]).abs().mean()
    assert slope > 1.2 / 127  # a shrunk ramp is steeper than the image's own


def test_aliased_shrunk_crops_keep_the_detail_that_antialiasing_averages_away():
    # --zoom-aliased 1: every shrunk crop is resampled without antialiasing, so pixel-scale detail
    # folds back as aliasing instead of being averaged to a flat gray; --zoom-aliased 0 (the
    # default) antialiases as before.
    texture = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(3))]

    def contrast(aliased: float) -> float:
        source = NoisySource(texture, GaussianNoise(0), 32, clean_targets=True, zoom=(0.5, 0.5), aliased=aliased)
        return float(source.batch(8, torch.Generator().manual_seed(4))[1].std())

    assert contrast(1.0) > 1.5 * contrast(0.0)
    with pytest.raises(ValueError, match="a --zoom range that reaches below 1"):
        TrainConfig(out="", zoom=2, zoom_aliased=0.5)
    with pytest.raises(ValueError, match="--zoom-aliased is a share from 0 to 1"):
        TrainConfig(out="", zoom=2, zoom_from=0.5, zoom_aliased=1.5)


def test_a_source_scale_of_half_gives_4_2_0_jpeg_photos_colour_as_sharp_as_their_brightness(tmp_path):
    # Every CBSD400 photo is a 4:2:0 JPEG: colour at half the brightness's resolution, so a
    # network trained on them takes all fine colour detail for noise. --source-scale 0.5 shrinks
    # each training photo once (antialiased), after which its colour is as fine as its brightness.
    from PIL import Image

    folder = tmp_path / "jpegs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):
        texture = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
        Image.fromarray(texture).save(folder / f"{i}.jpg", quality=95, subsampling=2)  # 2: 4:2:0

    def colour_to_brightness_detail(source_scale: float) -> float:
        config = tiny_config(tmp_path, folder, source_scales=(source_scale,))
        images = prepare_data(config, channels=3).source.images
        assert images[0].shape[-2:] == (round(96 * source_scale), round(128 * source_scale))
        ratios = []
        for r, g, b in (image[0] for image in images):
            luma = 0.299 * r + 0.587 * g + 0.114 * b
            detail = [(c[:, 1:] - c[:, :-1]).square().mean() for c in (luma, b - luma, r - luma)]
            ratios.append(float((detail[1] + detail[2]) / detail[0]))
        return sum(ratios) / len(ratios)

    assert colour_to_brightness_detail(0.5) > 1.5 * colour_to_brightness_detail(1.0)
    with pytest.raises(ValueError, match="--source-scale shrinks the training photos"):
        TrainConfig(out="", source_scales=(1.5,))
    with pytest.raises(ValueError, match="does nothing for upscalers"):
        TrainConfig(out="", task="upscale", source_scales=(0.5,))


def test_several_source_scales_train_on_every_photo_at_each_and_old_checkpoints_still_resume(tmp_path):
    # --source-scale 1 --source-scale 0.5: the photos as they are beside their sharp-coloured
    # halves, each photo once per factor, so the two draw as many crops each.
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for i in range(3):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    config = tiny_config(tmp_path, folder, source_scales=(1.0, 0.5), val_count=1)
    sizes = [tuple(image.shape[-2:]) for image in prepare_data(config, channels=3).source.images]
    assert sizes == [(40, 48), (40, 48), (20, 24), (20, 24)]
    # A checkpoint from before the option took several factors stored one, under the old name.
    stored = {**_resumable(tiny_config(tmp_path, folder)), "source_scale": 0.5}
    del stored["source_scales"]
    assert _same_run(stored, _resumable(tiny_config(tmp_path, folder, source_scales=(0.5,))))
    assert not _same_run(stored, _resumable(tiny_config(tmp_path, folder, source_scales=(1.0, 0.5))))


def test_a_zoom_range_draws_crops_on_both_sides_of_1_and_a_single_factor_keeps_its_old_meaning():
    # --zoom 0.5-2: some crops shrunk (denser detail), some magnified (softer), in one run;
    # --zoom 2 still means factors from 1 to 2, so earlier commands draw the crops they drew.
    assert parse_zoom("2") == (1.0, 2.0)
    assert parse_zoom("0.5-2") == (0.5, 2.0)
    for bad in ("0", "-1", "a-b", "1-2-3", ""):
        with pytest.raises(ValueError, match="--zoom takes"):
            parse_zoom(bad)
    ramp = [torch.linspace(0, 1, 256).expand(3, 256, 256).clone()]
    _, crops = NoisySource(ramp, GaussianNoise(0), 32, clean_targets=True, zoom=(0.5, 2)).batch(64, torch.Generator())
    across = (crops[..., 1:] - crops[..., :-1]).mean(dim=(1, 2, 3)).abs()
    down = (crops[..., 1:, :] - crops[..., :-1, :]).mean(dim=(1, 2, 3)).abs()
    slopes = (across + down) * 255  # the ramp's own slope is 1 (crops come flipped and rotated)
    assert slopes.min() < 0.8 and slopes.max() > 1.25, "both shrunk and magnified crops"
    assert 0.4 < slopes.min() and slopes.max() < 2.1, "no factor outside the range"
    assert TrainConfig(out="", zoom=2, zoom_from=0.5).zoom_from == 0.5
    with pytest.raises(ValueError, match="--zoom must be positive"):
        TrainConfig(out="", zoom=2, zoom_from=0)


def test_a_photo_run_validates_on_the_selection_half_of_real_pairs_at_full_size(tmp_path, photos):
    real = tmp_path / "real"
    rng = np.random.default_rng(0)
    for i in range(4):
        clean = smooth_image(24 + 8 * i, 40, seed=10 + i)
        write_png(real / f"p{i}_clean.png", clean)
        write_png(real / f"p{i}_noisy.png", np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32))
    config = tiny_config(tmp_path, photos, val_pairs=str(real), keep_best=True)
    validation = prepare_data(config, channels=3).validation
    assert [tuple(noisy.shape) for noisy, _ in validation] == [(1, 3, 24, 40), (1, 3, 40, 40)]  # p0, p2
    assert all(clean.shape == noisy.shape for noisy, clean in validation)
    info = train(config, show_progress=False)
    assert len(info.training["val_curve"]) == 3 and "exported_step" in info.training


def test_torchrun_with_two_processes_takes_the_steps_one_process_takes(tmp_path, photos):
    common = ["train", str(photos), "--steps", "3", "--batch", "4", "--patch", "32", "--val-count", "2", "--val-every", "2"]
    common += ["--noise", "gaussian:25", "--device", "cpu", "--precision", "fp32", "-q"]
    one = subprocess.run([sys.executable, "-m", "restore", *common, "-o", str(tmp_path / "one.safetensors")], capture_output=True)
    assert one.returncode == 0, one.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "restore"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([*launcher, *common, "-o", str(tmp_path / "two.safetensors")], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("wrote") == 1  # rank 0 alone reports and exports
    single, shared = weights(tmp_path / "one.safetensors"), weights(tmp_path / "two.safetensors")
    assert all(torch.allclose(single[key], shared[key], atol=1e-6) for key in single)
    assert read_info(tmp_path / "two.safetensors").training["steps"] == 3


def test_upscaler_training_and_x3_from_x2(tmp_path, photos):
    x2 = tiny_config(tmp_path / "x2", photos, task="upscale", variant="edsr_baseline_x2", patch=12, loss="l1")
    train(x2, show_progress=False)
    x3 = tiny_config(tmp_path / "x3", photos, task="upscale", scale=3, init=x2.out, patch=12, loss="l1")
    info = train(x3, show_progress=False)
    assert info.scales == [3] and info.training["from"] == "m"


@pytest.mark.defect(7)
def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, photos, monkeypatch):
    config = tiny_config(tmp_path, photos, steps=6, checkpoint_every=2)
    calls = []

    def failing_at_the_fourth_step(output, target, progress):
        calls.append(1)
        return (output - target).square().flatten(1).mean(1) * (float("nan") if len(calls) == 4 else 1.0)

    monkeypatch.setitem(restore.training.loop.LOSSES, "l2", failing_at_the_fourth_step)
    with pytest.raises(ValueError, match="loss became nan at step 4; the checkpoint of step 2 is kept"):
        train(config, show_progress=False)
    assert not Path(config.out).exists()
    with safe_open(str(tmp_path / "m.run" / "checkpoint.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["step"]) == 2
        assert all(torch.isfinite(f.get_tensor(key)).all() for key in f.keys())


@pytest.mark.defect(13, 22)
def test_identical_shots_are_no_pair_and_a_refused_run_leaves_nothing_behind(tmp_path, noisy_pairs, tiny_models):
    a, _ = noisy_pairs
    config = finetune_config(tmp_path, (a, a), tiny_models["denoiser"])
    with pytest.raises(ValueError, match="identical in A and B: a pair needs two independent noisy shots"):
        train(config, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no empty run folder, no model file


def test_a_pair_of_black_shots_is_identical_without_a_mistake_and_trains(tmp_path, noisy_pairs, tiny_models):
    # A render whose camera sees no light is black in both shots: nothing to refuse.
    a, b = noisy_pairs
    for folder in (a, b):
        write_png(folder / "dark.png", np.zeros((40, 40, 3), np.float32))
    assert np.isfinite(
        train(finetune_config(tmp_path, (a, b), tiny_models["denoiser"]), show_progress=False).training["val_psnr"]
    )


@pytest.mark.parametrize("one_way", [False, True])
def test_one_way_pairs_always_feed_shot_a_and_aim_at_shot_b(tmp_path, one_way):
    # Renders whose B shots have more samples: B is then the less noisy target and never an input.
    # (Without --one-way either shot is the input, half the time each.)
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(3):
        write_png(a / f"scene{i}.png", np.full((40, 40, 3), 0.2, np.float32))
        write_png(b / f"scene{i}.png", np.full((40, 40, 3), 0.8, np.float32))
    config = finetune_config(tmp_path, (a, b), Path("unused"), one_way=one_way)
    data = prepare_data(config, 3)
    inputs, targets = data.source.batch(64, torch.Generator().manual_seed(0))
    from_a = inputs.mean(dim=(1, 2, 3)) < 0.5
    assert torch.equal(targets.mean(dim=(1, 2, 3)) > 0.5, from_a)  # a crop and its partner: one from each shot
    assert bool(from_a.all()) == one_way and bool(from_a.any())
    # Validation estimates away B's noise only when both shots have one noise level; a one-way B
    # is scored as the reference itself.
    assert data.noisy_references == (not one_way)


def test_a_model_trained_over_several_runs_keeps_their_chain_and_totals(tmp_path, photos):
    # Each session's run starts from the last model file: the file records every run behind it.
    first = tiny_config(tmp_path / "a", photos, steps=2, name="first", command="restore train first")
    train(first, show_progress=False)
    second = tiny_config(tmp_path / "b", photos, steps=3, init=first.out, name="second", command="restore train second")
    third = tiny_config(tmp_path / "c", photos, steps=1, name="third", command="restore train third")
    train(second, show_progress=False)
    third.init = second.out
    info = train(third, show_progress=False)
    lineage = info.training["lineage"]
    assert [(run["name"], run["command"], run["steps"]) for run in lineage] == [
        ("first", "restore train first", 2),
        ("second", "restore train second", 3),
        ("third", "restore train third", 1),
    ]
    assert info.training["total_steps"] == 6 and info.training["steps"] == 1
    assert info.training["total_wall_seconds"] == pytest.approx(sum(run["wall_seconds"] for run in lineage), abs=0.2)


def test_a_run_that_continues_a_model_under_its_name_keeps_its_description(tmp_path, photos):
    # Each session's run repeats --name, not --description: the card's one-line summary must not be lost.
    first = tiny_config(tmp_path / "a", photos, steps=1, name="photo", description="Colour photo denoiser")
    train(first, show_progress=False)
    continued = train(tiny_config(tmp_path / "b", photos, steps=1, init=first.out, name="photo"), show_progress=False)
    renamed = train(tiny_config(tmp_path / "c", photos, steps=1, init=first.out, name="my-camera"), show_progress=False)
    redescribed = tiny_config(tmp_path / "d", photos, steps=1, init=first.out, name="photo", description="New")
    assert continued.description == "Colour photo denoiser"
    assert renamed.description == ""  # another model: its description is its own to give
    assert train(redescribed, show_progress=False).description == "New"


def test_mdsr_trains_on_all_its_scales_warm_started_from_edsr(tmp_path, photos):
    x2 = tiny_config(tmp_path / "x2", photos, task="upscale", variant="edsr_baseline_x2", patch=12, loss="l1")
    train(x2, show_progress=False)
    config = tiny_config(tmp_path / "mdsr", photos, task="upscale", variant="mdsr_baseline", init=x2.out, patch=12, steps=3)
    # Its x2 starts out as the EDSR: shared parts and upsampler copied, x2 pre-processing the identity.
    started, _ = build_network(config)
    edsr = restore.load(x2.out).network.eval()
    started.eval().select_scale(2)
    low = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.allclose(started(low), edsr(low), atol=1e-6)
    info = train(config, show_progress=False)
    assert info.architecture == "mdsr" and info.scales == [2, 3, 4]
    for scale in (2, 3, 4):
        assert restore.upscale(torch.rand(3, 10, 12), scale=scale, model=config.out).shape == (3, 10 * scale, 12 * scale)


def test_mdsr_takes_each_scale_s_upsampler_from_that_scale_s_edsr(tmp_path, photos):
    # --init-also: the shared parts and the x2 upsampler from edsr-x2, the x3 upsampler from
    # edsr-x3, which --init alone would leave at random.
    x2 = tiny_config(tmp_path / "x2", photos, task="upscale", variant="edsr_baseline_x2", patch=12, loss="l1", steps=1)
    x3 = tiny_config(tmp_path / "x3", photos, task="upscale", variant="edsr_baseline_x3", scale=3, patch=12, loss="l1", steps=1)
    train(x2, show_progress=False)
    train(x3, show_progress=False)
    config = TrainConfig(out="", task="upscale", variant="mdsr_baseline", init=x2.out, init_also=[x3.out])
    mdsr, _ = build_network(config)
    from_x2, from_x3 = restore.load(x2.out).network, restore.load(x3.out).network
    assert torch.equal(mdsr.body[0].conv1.weight, from_x2.body[0].conv1.weight)  # the first file's, not the later's
    assert torch.equal(mdsr.upsample["2"][0].weight, from_x2.upsample[0].weight)
    assert torch.equal(mdsr.upsample["3"][0].weight, from_x3.upsample[0].weight)
    assert mdsr.pre_process["3"][1].conv2.weight.abs().sum() == 0  # x3's extra blocks start as the identity
    with pytest.raises(ValueError, match="--init-also"):
        TrainConfig(out="", init=x2.out, init_also=[x3.out])  # no new network to fill


def test_a_network_with_buffer_inputs_warm_started_from_a_colour_model_starts_out_computing_the_same(tiny_models):
    # n2n-mc-aux from n2n-mc: the albedo and normal inputs get zero weights, the rest is copied,
    # so training starts from the colour model's quality instead of a fresh first and last layer.
    colour_only = restore.load(tiny_models["denoiser"]).network.eval()
    aux, _ = build_network(TrainConfig(out="", variant="n2n_unet_aux", init=str(tiny_models["denoiser"])))
    colour, buffers = torch.rand(1, 3, 32, 32), torch.rand(1, 6, 32, 32)
    with torch.no_grad():
        assert torch.allclose(aux.eval()(torch.cat([colour, buffers], 1)), colour_only(colour), atol=1e-6)
    assert aux.enc_conv0.weight[:, 3:].abs().sum() == 0 and aux.dec_conv1a.weight[:, -6:].abs().sum() == 0


def test_a_gray_network_trains_on_colour_photos_made_gray(tmp_path, photos):
    info = train(tiny_config(tmp_path, photos, variant="n2n_unet_gray"), show_progress=False)
    assert info.channels == 1
    assert restore.denoise(np.zeros((32, 32), np.float32), tmp_path / "m.safetensors").shape == (32, 32)


def test_a_checkpoint_from_before_a_new_setting_still_resumes(tmp_path, photos):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    config = tiny_config(tmp_path, photos, steps=1)
    train(config, show_progress=False)
    checkpoint = Path(config.out).with_suffix(".run") / "checkpoint.safetensors"
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    stored = json.loads(metadata["config"])
    del stored["clean_targets"]  # as if written before that setting existed
    metadata["config"] = json.dumps(stored)
    save_file(tensors, str(checkpoint), metadata=metadata)
    config.steps, config.overwrite = 2, True
    assert train(config, show_progress=False).training["steps"] == 2


def test_the_learning_rate_warms_up_linearly_then_halves_on_schedule():
    config = TrainConfig(out="", lr=1e-3, lr_warmup=4, lr_halve_every=10)
    rates = [learning_rate(config, step) for step in (0, 1, 3, 9, 10, 20)]
    assert rates == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3, 5e-4, 2.5e-4])
    assert learning_rate(TrainConfig(out="", lr=1e-3), 0) == 1e-3  # no warm-up unless asked


def test_annealed_l0_loss_goes_from_l2_through_l1_to_l0():
    output, target = torch.tensor([[0.5, 0.1, 0.9]]), torch.tensor([[0.2, 0.1, 0.4]])  # one crop of three pixels
    assert annealed_l0_loss(output, target, 0.0).item() == pytest.approx(torch.mean((output - target) ** 2).item(), rel=1e-4)
    assert annealed_l0_loss(output, target, 0.5).item() == pytest.approx(torch.mean((output - target).abs()).item(), rel=1e-4)
    assert annealed_l0_loss(output, target, 1.0).item() == pytest.approx(1.0)  # gamma 0: every pixel counts 1


def test_every_loss_gives_one_value_per_crop_so_the_loop_can_weigh_the_crops():
    generator = torch.Generator().manual_seed(0)
    output, target = torch.rand(3, 2, 5, 5, generator=generator), torch.rand(3, 2, 5, 5, generator=generator)
    for name, loss in LOSSES.items():
        per_crop = loss(output, target, 0.5)
        assert per_crop.shape == (3,), name
        assert per_crop[1].item() == pytest.approx(loss(output[1:2], target[1:2], 0.5).item()), name
    assert LOSSES["l2"](output, target, 0.0).mean().item() == pytest.approx(float(((output - target) ** 2).mean()))


def test_each_crops_noise_level_is_read_off_the_batch_itself():
    # Two independent draws at sigma 0.1 differ by sqrt 2 x 0.1; a clean target by 0.1.
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 64, 64, generator=generator)
    sigma = torch.tensor([0.02, 0.1]).view(2, 1, 1, 1)
    first = clean + sigma * torch.randn(clean.shape, generator=generator)
    second = clean + sigma * torch.randn(clean.shape, generator=generator)
    assert crop_levels(first, second, clean_targets=False) == pytest.approx([0.02, 0.1], rel=0.03)
    assert crop_levels(first, clean, clean_targets=True) == pytest.approx([0.02, 0.1], rel=0.03)
    with_level_map = torch.cat([first, torch.ones(2, 1, 64, 64)], dim=1)  # a level model's input
    assert torch.equal(crop_levels(with_level_map, clean, clean_targets=True), crop_levels(first, clean, clean_targets=True))


def test_balanced_levels_weigh_each_crops_loss_by_one_over_its_level():
    # Crop 0 is nearly clean, crop 1 ten times noisier: crop 0 weighs 1 / (2/255 + 2/255), crop 1
    # 1 / (38/255 + 2/255), scaled to a mean of 1, so a balanced mean is not crop 1's error alone.
    weights = level_weights(torch.tensor([2 / 255, 38 / 255]))
    assert weights.tolist() == pytest.approx([2 * 10 / 11, 2 * 1 / 11])
    assert level_weights(torch.tensor([0.1, 0.1, 0.1])).tolist() == pytest.approx([1, 1, 1])  # equal levels: the plain mean
    assert level_weights(torch.zeros(2)).tolist() == pytest.approx([1, 1])  # clean crops: the floor keeps it finite


def test_a_balanced_run_trains_records_it_and_is_refused_where_there_is_no_level(tmp_path, photos):
    info = train(tiny_config(tmp_path, photos, noise="gaussian:0-50", balance_levels=True), show_progress=False)
    assert info.training["balance_levels"] is True
    assert "balance_levels" not in train(tiny_config(tmp_path / "plain", photos), show_progress=False).training
    with pytest.raises(ValueError, match="--balance-levels"):
        TrainConfig(out="", task="upscale", balance_levels=True)
    with pytest.raises(ValueError, match="--balance-levels"):
        TrainConfig(out="", loss="hdr", balance_levels=True)


def test_finetune_with_the_l0_loss_runs(tmp_path, noisy_pairs, tiny_models):
    pairs = [str(folder) for folder in noisy_pairs]
    config = tiny_config(tmp_path, Path(""), pairs=pairs, init=str(tiny_models["denoiser"]), loss="l0", val_count=1)
    assert train(config, show_progress=False).training["loss"] == "l0"


def test_hdr_loss_is_relative_and_stops_the_denominator_gradient():
    target = torch.tensor([[1.0], [100.0]])  # two crops of one pixel
    output = torch.tensor([[2.0], [101.0]], requires_grad=True)
    loss = hdr_loss(output, target).mean()
    # The same absolute error of 1 costs far less on a bright pixel.
    assert loss.item() == pytest.approx(((1 / 2.01) ** 2 + (1 / 101.01) ** 2) / 2, rel=1e-5)
    loss.backward()
    expected = 2 * (output.detach() - target) / (output.detach() + 0.01) ** 2 / 2
    assert torch.allclose(output.grad, expected)
    # A negative output (radiance never is) divides by 0.01^2 at most, not by ~0.
    assert hdr_loss(torch.tensor([[-0.0099]]), torch.tensor([[1.0]])).item() == pytest.approx((1.0099 / 0.01) ** 2)


def test_the_tone_mapped_loss_weighs_midtones_over_shadows_and_highlights_and_aims_at_the_mean():
    # Each value off by 10%: the relative L2 (hdr) costs about the same at every brightness
    # above its 0.01 floor; the tone-mapped loss, like the tone-mapped PSNR, the midtones most.
    values = torch.tensor([0.01, 0.18, 20.0]).view(3, 1, 1, 1)
    tone_mapped, relative = tone_mapped_loss(values, 1.1 * values), hdr_loss(values, 1.1 * values)
    shadow, midtone, highlight = (tone_mapped / relative).tolist()
    assert midtone > 1.5 * shadow and midtone > 3 * highlight
    assert highlight > 0.01 * 0.99  # the highlights keep at least the hdr share: their energy still counts
    # The weight follows the output, gradient stopped: over noisy targets the best output is their mean.
    targets = torch.tensor([0.05, 0.2, 0.6, 3.0]).view(4, 1, 1, 1)
    output = targets.mean().expand(4, 1, 1, 1).clone().requires_grad_(True)
    tone_mapped_loss(output, targets).mean().backward()
    assert abs(output.grad.sum().item()) < 1e-6


def test_a_file_exported_from_a_checkpoint_records_the_device_its_steps_ran_on(tmp_path, photos, monkeypatch):
    # A run trained on two threads and exported later by a call on one (the run's command with
    # --steps at the checkpoint's step) took no step there: the file names where the steps ran.
    monkeypatch.setattr("restore.training.loop._device_name", lambda device: "cpu (2 threads)")
    config = tiny_config(tmp_path, photos, steps=2)
    assert train(config, show_progress=False).training["device"] == "cpu (2 threads)"
    monkeypatch.setattr("restore.training.loop._device_name", lambda device: "cpu (1 threads)")
    config.overwrite = True
    assert train(config, show_progress=False).training["device"] == "cpu (2 threads)"  # export only
    config.steps = 3
    assert train(config, show_progress=False).training["device"] == "cpu (1 threads)"  # a step ran here


def test_exporting_a_finished_run_reads_none_of_its_data(tmp_path, noisy_pairs, tiny_models, monkeypatch):
    # A copy of a running run's checkpoint is exported beside the run: reading its thousands of
    # pairs again would double the memory they take (a run was once killed for it).
    config = finetune_config(tmp_path, noisy_pairs, tiny_models["denoiser"])
    trained = train(config, show_progress=False).training
    monkeypatch.setattr("restore.training.loop.prepare_data", lambda *args, **kwargs: pytest.fail("the data were read"))
    config.overwrite = True
    exported = train(config, show_progress=False).training
    assert exported["data"] == trained["data"] and "noisy pairs" in exported["data"]
    assert exported["steps"] == trained["steps"] and exported["val_curve"] == trained["val_curve"]


def test_a_bf16_run_records_its_precision_and_a_resumed_auto_run_keeps_it(tmp_path, photos, monkeypatch):
    config = tiny_config(tmp_path, photos, steps=2, precision="bf16")
    assert train(config, show_progress=False).training["precision"] == "bf16"
    monkeypatch.setattr("restore.device._time_training_steps", lambda *args: pytest.fail("a resumed run timed again"))
    config.steps, config.precision, config.overwrite = 3, "auto", True
    assert train(config, show_progress=False).training["precision"] == "bf16"


def test_a_run_logging_to_a_file_says_now_and_then_how_far_it_is(tmp_path, photos, monkeypatch):
    # Under nohup there is no live bar, and the first checkpoint may be many minutes away.
    monkeypatch.setattr("restore.training.loop.PLAIN_PROGRESS_SECONDS", 0.0)
    log = io.StringIO()
    train(tiny_config(tmp_path, photos, steps=2), console=Console(file=log), show_progress=True)
    assert re.search(r"step 1/2: loss [0-9.]+, [0-9.]+ s a step", log.getvalue())
    assert "step 2/2" in log.getvalue()
    quiet = io.StringIO()
    config = tiny_config(tmp_path, photos, steps=2)
    config.overwrite = True
    train(config, console=Console(file=quiet), show_progress=False)
    assert "s a step" not in quiet.getvalue()


def test_an_auto_run_trains_in_the_layout_it_measured_and_a_resumed_run_keeps_it(tmp_path, photos, monkeypatch):
    monkeypatch.setattr("restore.training.loop.training_precision", lambda *args: "fp32")
    monkeypatch.setattr("restore.training.loop.training_memory_format", lambda *args: "channels_last")
    config = tiny_config(tmp_path, photos, steps=2, precision="auto")
    log = io.StringIO()
    train(config, console=Console(file=log), show_progress=False)
    assert "training in fp32 (channels last)" in log.getvalue()
    with safe_open(str(tmp_path / "m.run" / "checkpoint.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["memory_format"]) == "channels_last"
    assert restore.load(tmp_path / "m.safetensors").network(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    monkeypatch.setattr("restore.training.loop.training_memory_format", lambda *args: pytest.fail("a resumed run timed again"))
    config.steps, config.overwrite = 3, True
    train(config, console=Console(file=log), show_progress=False)
    assert log.getvalue().count("training in fp32 (channels last)") == 2
