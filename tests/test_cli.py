"""The command line: what a user types, what lands on disk, and one clear line on every error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image as PILImage
from safetensors import safe_open

from conftest import assert_one_line_error, run, smooth_image, write_png
from restore.io.images import read_image
from restore.pipeline import precision_for


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "photo.png", smooth_image(45, 67))


def test_denoise_writes_in_denoised_png_next_to_the_input(photo, tiny_models):
    result = run("denoise", str(photo), "--model", str(tiny_models["denoiser"]))
    assert result.returncode == 0, result.stderr
    out = photo.with_name("photo.denoised.png")
    assert read_image(out).pixels.shape == (45, 67, 3)


def test_denoise_keeps_16_bits_alpha_and_gray(tmp_path, tiny_models):
    rng = np.random.default_rng(1)
    alpha = rng.uniform(0, 1, (33, 41, 1)).astype(np.float32)
    src = write_png(tmp_path / "deep.png", smooth_image(33, 41), "u16", alpha)
    gray = write_png(tmp_path / "gray.png", smooth_image(33, 41, channels=1), "u8")
    out = tmp_path / "out"
    result = run("denoise", str(src), str(gray), "-o", str(out), "--model", str(tiny_models["denoiser"]))
    assert result.returncode == 0, result.stderr
    deep = read_image(out / "deep.png")
    assert deep.bit_depth == "u16" and deep.alpha is not None
    np.testing.assert_array_equal(deep.alpha, read_image(src).alpha)  # alpha passed through untouched
    assert read_image(out / "gray.png").pixels.shape == (33, 41, 1)


def test_upscale_x2_doubles_the_size_and_resizes_alpha(tmp_path, tiny_models):
    alpha = np.ones((21, 17, 1), np.float32)
    src = write_png(tmp_path / "small.png", smooth_image(21, 17), "u8", alpha)
    result = run("upscale", str(src), "--x2", "--model", str(tiny_models["upscaler"]))
    assert result.returncode == 0, result.stderr
    big = read_image(tmp_path / "small.x2.png")
    assert big.pixels.shape == (42, 34, 3) and big.alpha.shape == (42, 34, 1)
    assert np.all(big.alpha > 0.99)


@pytest.mark.defect(12)
def test_upscale_keeps_the_camera_exif_and_the_print_size(tmp_path, tiny_models):
    exif = PILImage.Exif()
    exif[ExifTags.Base.Model] = "Canon EOS 5D Mark II"
    pixels = np.round(smooth_image(21, 17) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "shot.jpg", exif=exif.tobytes(), dpi=(300, 300), quality=95)
    result = run("upscale", str(tmp_path / "shot.jpg"), "--x2", "--model", str(tiny_models["upscaler"]))
    assert result.returncode == 0, result.stderr
    big = read_image(tmp_path / "shot.x2.jpg")
    assert big.dpi == (600, 600)  # twice the pixels per inch: the same print size
    with PILImage.open(tmp_path / "shot.x2.jpg") as im:
        assert im.getexif()[ExifTags.Base.Model] == "Canon EOS 5D Mark II"


def test_upscale_outscale_and_ensemble(tmp_path, tiny_models):
    alpha = np.ones((20, 30, 1), np.float32)
    src = write_png(tmp_path / "small.png", smooth_image(20, 30), "u8", alpha)
    result = run("upscale", str(src), "--outscale", "1.5", "--ensemble", "--model", str(tiny_models["upscaler"]))
    assert result.returncode == 0, result.stderr
    out = read_image(tmp_path / "small.x1.5.png")  # a x2 network, resized to 1.5x the input
    assert out.pixels.shape == (30, 45, 3) and out.alpha.shape == (30, 45, 1)
    again = run("upscale", str(tmp_path), "--outscale", "1.5", "--model", str(tiny_models["upscaler"]), "--overwrite")
    assert again.returncode == 0 and "small.x1.5.png ->" not in again.stdout  # our outputs are not inputs
    assert_one_line_error(run("upscale", str(src), "--outscale", "-2"), "--outscale", code=2)


def test_upscale_refuses_a_scale_the_model_does_not_have(photo, tiny_models):
    assert_one_line_error(run("upscale", str(photo), "--x3", "--model", str(tiny_models["upscaler"])), "not x3")


def test_folders_recurse_and_keep_their_structure(tmp_path, tiny_models):
    src = tmp_path / "shots"
    write_png(src / "a.png", smooth_image(20, 20))
    write_png(src / "day2" / "b.png", smooth_image(20, 24))
    result = run("denoise", str(src), "--recursive", "-o", str(tmp_path / "clean"), "--model", str(tiny_models["denoiser"]))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "clean" / "a.png").is_file() and (tmp_path / "clean" / "day2" / "b.png").is_file()


def test_tiled_cli_run_matches_the_untiled_one(tmp_path, tiny_models):
    src = write_png(tmp_path / "p.png", smooth_image(70, 90), "u16")
    model = str(tiny_models["upscaler"])
    assert run("upscale", str(src), "-o", str(tmp_path / "whole.png"), "--model", model, "--precision", "fp32").returncode == 0
    assert (
        run(
            "upscale", str(src), "-o", str(tmp_path / "tiled.png"), "--model", model, "--tile", "16", "--precision", "fp32"
        ).returncode
        == 0
    )
    whole, tiled = read_image(tmp_path / "whole.png").pixels, read_image(tmp_path / "tiled.png").pixels
    levels = np.abs(np.round(whole * 65535) - np.round(tiled * 65535))
    assert levels.max() <= 1  # at most one 16-bit level apart (rounding ties)


def test_missing_file(tmp_path):
    assert_one_line_error(run("denoise", str(tmp_path / "nope.png")), "no such file")


@pytest.mark.defect(17)
def test_a_named_pipe_is_named_as_such(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    assert_one_line_error(run("denoise", str(tmp_path / "pipe.png")), "not a regular file")


def test_garbage_file(tmp_path, tiny_models):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all" * 10)
    assert_one_line_error(run("denoise", str(junk), "--model", str(tiny_models["denoiser"])), "junk.png")


def test_truncated_png(photo, tiny_models):
    data = photo.read_bytes()
    photo.write_bytes(data[: len(data) // 2])
    result = run("denoise", str(photo), "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "photo.png")
    assert not photo.with_name("photo.denoised.png").exists()


def test_unknown_model(photo):
    assert_one_line_error(run("denoise", str(photo), "--model", "no-such-model"), "unknown model 'no-such-model'")


def test_pickled_model_is_refused(photo, tmp_path):
    pth = tmp_path / "weights.pth"
    pth.write_bytes(b"\x80\x04K\x01.")
    assert_one_line_error(run("denoise", str(photo), "--model", str(pth)), "pickled")


def test_existing_output_is_never_replaced_without_overwrite(photo, tiny_models):
    target = photo.with_name("photo.denoised.png")
    target.write_bytes(b"precious")
    assert_one_line_error(run("denoise", str(photo), "--model", str(tiny_models["denoiser"])), "--overwrite")
    assert target.read_bytes() == b"precious"
    assert run("denoise", str(photo), "--model", str(tiny_models["denoiser"]), "--overwrite").returncode == 0
    assert read_image(target).pixels.shape == (45, 67, 3)


def test_unwritable_output_folder(photo, tmp_path, tiny_models):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = run("denoise", str(photo), "-o", str(blocker / "out.png"), "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "cannot write")


@pytest.mark.defect(23)
def test_the_parsers_own_usage_errors_are_one_line_with_exit_code_2(photo):
    assert_one_line_error(run("denoise", str(photo), "--tile", "zero"), "Invalid value for '--tile'", code=2)
    assert_one_line_error(run("denoise", str(photo), "--bogus"), "No such option: --bogus (see '", code=2)
    assert_one_line_error(run("frobnicate"), "No such command 'frobnicate'. (see '", code=2)
    alone = run()
    assert alone.returncode == 2 and "Usage: " in alone.stdout and "Commands" in alone.stdout  # `restore` alone shows the help


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["denoise", "{photo}", "--max-memory", "-1G"], "--max-memory '-1G': must be positive"),
        (["upscale", "{photo}", "--max-pixels", "0"], "--max-pixels '0': must be positive"),
        (["denoise", "{photo}", "--max-pixels", "lots"], "--max-pixels 'lots': expected an amount like 400M"),
        (["upscale", "{photo}", "--scale", "0"], "--scale 0: an upscaler's factor is 2 or more"),
        (["denoise", "{photo}", "--tile", "1"], "--tile must be at least 16 pixels"),
        (["train", "{folder}", "-o", "{folder}/m.safetensors", "--batch", "0"], "--batch must be at least 1, got 0"),
        (["train", "{folder}", "-o", "{folder}/m.safetensors", "--lr", "0"], "--lr must be positive"),
        (["train", "{folder}", "-o", "{folder}/m.safetensors", "--zoom", "0.5-x"], "--zoom takes a positive factor"),
        (["train", "{folder}", "-o", "{folder}/m.safetensors", "--one-way"], "--one-way fixes which shot of a pair"),
        (["finetune", "{folder}", "{folder}", "-o", "{folder}/m.safetensors", "--steps", "-5"], "--steps must be at least 1"),
        (["eval", "n2n-gaussian", "{folder}", "--noise", "gaussian:25", "--limit", "-1"], "--limit must be 0"),
    ],
)
@pytest.mark.defect(18, 19)
def test_impossible_option_values_are_usage_errors_before_any_work(photo, args, fragment):
    # Exit 2 and one line, before a model is loaded or a file read; nothing is written.
    before = sorted(photo.parent.iterdir())
    result = run(*(a.format(photo=photo, folder=photo.parent) for a in args))
    assert_one_line_error(result, fragment, code=2)
    assert sorted(photo.parent.iterdir()) == before


@pytest.mark.defect(1)
def test_train_and_finetune_refuse_an_existing_output_before_any_work(tmp_path, photo):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"a finished run")
    folder = str(photo.parent)
    for args in (["train", folder, "-o", str(model)], ["finetune", folder, folder, "-o", str(model)]):
        assert_one_line_error(run(*args), "exists (--overwrite, or overwrite=True in the library, replaces it)")
        assert model.read_bytes() == b"a finished run"


@pytest.mark.defect(10)
def test_one_render_buffer_without_the_other_is_refused_not_ignored(photo, tiny_models):
    albedo = write_png(photo.with_name("albedo.png"), smooth_image(45, 67, seed=3))
    result = run("denoise", str(photo), "--albedo", str(albedo), "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "--albedo needs the normal buffer too (--normal FILE)")
    assert not photo.with_name("photo.denoised.png").exists()


@pytest.mark.defect(20)
def test_several_inputs_and_an_output_file_name_is_a_usage_error(tmp_path, photo, tiny_models):
    second = write_png(tmp_path / "second.png", smooth_image(20, 20))
    result = run("denoise", str(photo), str(second), "-o", str(tmp_path / "two.png"), "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "names a file, but 2 inputs need an output folder", code=2)
    assert not (tmp_path / "two.png").exists()


@pytest.mark.defect(14)
def test_max_pixels_refuses_a_larger_image_by_its_header(photo, tiny_models):
    result = run("denoise", str(photo), "--max-pixels", "2K", "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "claims 67 x 45 pixels, more than the 2,000-pixel limit")
    assert not photo.with_name("photo.denoised.png").exists()
    assert run("denoise", str(photo), "--max-pixels", "4K", "--model", str(tiny_models["denoiser"])).returncode == 0


@pytest.mark.defect(14)
def test_a_png_bomb_in_a_folder_fails_alone_and_the_good_file_is_written(tmp_path, tiny_models):
    from test_imageio import sixteen_bit_png_bomb

    folder = tmp_path / "in"
    write_png(folder / "good.png", smooth_image(20, 20))
    sixteen_bit_png_bomb(folder / "bomb.png")
    result = run("denoise", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_models["denoiser"]))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bomb.png" in errors[0] and "claims 100000 x 100000 pixels" in errors[0]
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bomb.png").exists()


@pytest.mark.defect(3)
def test_two_inputs_that_would_share_one_output_are_refused_before_any_work(tmp_path, tiny_models):
    for shot in ("day1", "day2"):
        write_png(tmp_path / "shots" / shot / "a.png", smooth_image(20, 20))
    pattern = str(tmp_path / "shots" / "*" / "a.png")
    result = run("denoise", pattern, "-o", str(tmp_path / "out"), "--model", str(tiny_models["denoiser"]))
    assert_one_line_error(result, "would both be written to", code=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.defect(21)
def test_an_output_format_restore_cannot_write_is_refused_before_any_work(tmp_path):
    # A Radiance .hdr input would get a .denoised.hdr output, a format read but not written.
    (tmp_path / "render.hdr").write_bytes(b"#?RADIANCE\n")
    assert_one_line_error(run("denoise", str(tmp_path / "render.hdr")), "render.denoised.hdr': restore writes")


@pytest.mark.defect(16)
def test_a_folder_run_goes_on_past_bad_files_and_reports_at_the_end(tmp_path, tiny_models):
    folder = tmp_path / "in"
    write_png(folder / "good.png", smooth_image(20, 20))
    (folder / "empty.png").write_bytes(b"")
    (folder / "nothing.pfm").write_bytes(b"PF\n0 0\n-1.0\n")
    result = run("denoise", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_models["denoiser"]))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "empty.png': file is empty" in errors[0] and "0 x 0, without pixels" in errors[1]
    assert result.stderr.strip().splitlines()[-1] == "1 of 3 written; 2 failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_finetune_keeps_best_or_last_and_nothing_else(tmp_path):
    result = run("finetune", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "m.safetensors"), "--keep", "worst")
    assert result.returncode == 2 and "--keep is best or last" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_one_way_reaches_the_run_of_train_and_finetune(tmp_path, tiny_models, command):
    # Pairs whose B shots have more samples: the run keeps A as its input (train --pairs, finetune).
    for seed, folder in enumerate(("a", "b")):
        for i in range(3):
            write_png(tmp_path / folder / f"s{i}.png", smooth_image(32, 32, seed=10 * seed + i))
    a, b, out = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "m.safetensors")
    data = ["--pairs", a, b] if command == "train" else [a, b]
    result = run(
        command, *data, "-o", out, "--from" if command == "finetune" else "--init", str(tiny_models["denoiser"]),
        "--one-way", "--steps", "1", "--batch", "2", "--patch", "16", "--val-count", "1", "--precision", "fp32", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with safe_open(str(tmp_path / "m.run" / "checkpoint.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["config"])["one_way"] is True


def test_models_lists_the_bundled_models():
    result = run("models")
    assert result.returncode == 0
    for name in ("n2n-gaussian", "edsr-x2", "mnist-dae"):
        assert name in result.stdout


def test_info_prints_the_metadata(tiny_models):
    result = run("info", str(tiny_models["upscaler"]))
    assert result.returncode == 0
    assert '"architecture": "edsr"' in result.stdout and '"task": "upscale"' in result.stdout


def test_python_dash_m_and_help_work():
    result = run("--help")
    assert result.returncode == 0 and "denoise" in result.stdout and "upscale" in result.stdout


def test_globs_take_every_match_while_folders_skip_previous_outputs(tmp_path, tiny_models):
    for name in ("a.png", "b.png", "a.denoised.png"):
        write_png(tmp_path / "in" / name, smooth_image(16, 16))
    out = tmp_path / "out"
    result = run("denoise", str(tmp_path / "in" / "*.png"), "-o", str(out), "--model", str(tiny_models["denoiser"]), "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.denoised.png", "a.png", "b.png"]
    folder_run = run("denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--model", str(tiny_models["denoiser"]))
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["a.png", "b.png"]  # our own output skipped
    assert folder_run.returncode == 0


def test_shell_completion_is_offered_for_bash():
    command = Path(sys.executable).parent / "restore"  # completion is named after the command typed
    # Typer guesses the shell from the parent process (here Python); this makes it take the name given.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run([str(command), "--show-completion", "bash"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and "_restore_completion()" in result.stdout


@pytest.mark.defect(5)
@pytest.mark.parametrize("depth", ["u16", "f16", "f32"])
def test_auto_precision_keeps_fp32_for_every_image_that_is_not_8_bit(depth):
    assert precision_for(depth, "auto") == "fp32"
    assert precision_for("u8", "auto") == "auto"  # 8 bits: bf16 where it is measured faster
    assert precision_for(depth, "bf16") == "bf16"  # asked for explicitly


@pytest.mark.defect(5)
def test_a_clean_16_bit_ramp_keeps_its_levels_under_the_default_precision(tmp_path):
    # bf16 keeps 8 significant bits: "auto" must not pick it for a 16-bit file (it kept 915 levels).
    ramp = np.linspace(0.1, 0.9, 192 * 192, dtype=np.float32).reshape(192, 192, 1).repeat(3, axis=2)
    src = write_png(tmp_path / "ramp.png", ramp, "u16")
    manifest = tmp_path / "run.jsonl"
    result = run("denoise", str(src), "--manifest", str(manifest))
    assert result.returncode == 0, result.stderr
    out = read_image(tmp_path / "ramp.denoised.png")
    assert out.bit_depth == "u16" and len(np.unique(out.pixels[..., 1])) >= 10_000
    assert '"precision": "fp32"' in manifest.read_text()


def test_starting_the_cli_does_not_import_the_training_only_libraries():
    # Every `restore` run pays for what `restore.cli` imports; kornia alone costs a quarter second
    # and only training and the blur corruption use it.
    code = "import sys, restore.cli; print(sorted(m for m in ('kornia',) if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
