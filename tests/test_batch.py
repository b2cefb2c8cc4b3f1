"""Folder runs past one process: a killed run resumes with --skip-existing, shards split a folder
between machines, and a JSON Lines manifest records what became of every input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, manifest_lines, run, run_process, smooth_image, write_png
from restore.engines.batch import expand_inputs, parse_shard, plan_outputs, take_shard
from restore.io.images import Image, write_image


def image_folder(folder: Path, count: int, size: int = 24) -> Path:
    for i in range(count):
        write_png(folder / f"img{i:03d}.png", smooth_image(size, size, seed=i))
    return folder


@pytest.mark.defect(6)
def test_a_killed_folder_run_rerun_with_skip_existing_ends_with_the_bytes_of_an_uninterrupted_run(tmp_path, tiny_models):
    src = image_folder(tmp_path / "in", 200)
    model = ["--model", str(tiny_models["upscaler"]), "--precision", "fp32", "--device", "cpu", "-q"]
    assert run("upscale", str(src), "-o", str(tmp_path / "whole"), *model).returncode == 0

    out = tmp_path / "resumed"
    command = [sys.executable, "-m", "restore", "upscale", str(src), "-o", str(out), *model]
    started = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while started.poll() is None and len(list(out.glob("*.png"))) < 20:
        time.sleep(0.005)
    started.send_signal(signal.SIGKILL)
    started.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert 0 < len(finished) < 200, "the run should have been killed mid-way"

    assert_one_line_error(run("upscale", str(src), "-o", str(out), *model), "--skip-existing")
    manifest = tmp_path / "run.jsonl"
    rerun = run("upscale", str(src), "-o", str(out), *model, "--skip-existing", "--manifest", str(manifest))
    assert rerun.returncode == 0, rerun.stderr

    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime  # finished files are not redone
    statuses = {Path(line["output"]).name: line["status"] for line in manifest_lines(manifest)}
    assert {name for name, status in statuses.items() if status == "skipped"} == set(finished)
    assert sum(status == "written" for status in statuses.values()) == 200 - len(finished)
    whole = sorted(p.name for p in (tmp_path / "whole").glob("*.png"))
    assert sorted(p.name for p in out.glob("*.png")) == whole and len(whole) == 200
    assert all((out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes() for name in whole)
    # A SIGKILL mid-write can leave the hidden temporary of that write (nothing runs to delete it),
    # never a half-written file under an output's name: every visible output matched above.
    assert all(p.name.startswith(".img") and p.name.endswith(".tmp") for p in out.glob(".*"))


def test_shards_cover_every_input_exactly_once_taking_turns_along_the_sorted_list(tmp_path):
    src = image_folder(tmp_path / "in", 10, size=4)
    jobs = plan_outputs(expand_inputs([str(src)], recursive=False).files, str(tmp_path / "out"), ".x2")
    shards = [take_shard(jobs, i, 3) for i in range(3)]
    assert sorted(job.source.name for shard in shards for job in shard) == sorted(job.source.name for job in jobs)
    assert [job.source.name for job in shards[1]] == ["img001.png", "img004.png", "img007.png"]


def test_the_shard_comes_from_rank_and_world_size_when_torchrun_sets_them():
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    assert parse_shard(None, {}) == (0, 1)
    assert parse_shard("0/2", {"RANK": "1", "WORLD_SIZE": "2"}) == (0, 2)  # an explicit --shard wins


def test_a_shard_run_writes_only_its_share_and_a_bad_shard_is_a_usage_error(tmp_path, tiny_models):
    src = image_folder(tmp_path / "in", 5, size=16)
    model = ["--model", str(tiny_models["upscaler"]), "-q"]
    assert run("upscale", str(src), "-o", str(tmp_path / "out"), *model, "--shard", "1/2").returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img001.png", "img003.png"]
    assert_one_line_error(run("upscale", str(src), *model, "--shard", "2/2"), "--shard '2/2'", code=2)
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "1"}
    assert_one_line_error(run_process("upscale", str(src), *model, env=env), "RANK / WORLD_SIZE '1/1'", code=2)


def test_skip_existing_and_overwrite_together_are_a_usage_error(tmp_path, tiny_models):
    src = image_folder(tmp_path / "in", 1, size=16)
    result = run("upscale", str(src), "--model", str(tiny_models["upscaler"]), "--skip-existing", "--overwrite")
    assert_one_line_error(result, "give one", code=2)


def test_the_manifest_is_json_lines_for_written_and_failed_files_alike(tmp_path, tiny_models):
    src = image_folder(tmp_path / "in", 2, size=16)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    manifest = tmp_path / "logs" / "run.jsonl"
    result = run(
        "denoise", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_models["denoiser"]), "--manifest", str(manifest)
    )
    assert result.returncode == 1 and "2 of 3 written; 1 failed" in result.stderr
    lines = manifest_lines(manifest)
    assert [Path(line["source"]).name for line in lines] == ["broken.png", "img000.png", "img001.png"]
    broken, good = lines[0], lines[1]
    assert broken["status"] == "failed" and "broken.png" in broken["error"] and "\n" not in broken["error"]
    assert good["status"] == "written" and good["model"] == "tiny-denoiser" and good["error"] == ""
    assert good["precision"] in ("fp32", "bf16", "fp16") and good["seconds"] >= 0
    assert Path(good["output"]) == tmp_path / "out" / "img000.png"
    assert set(good) == {"source", "output", "status", "model", "precision", "seconds", "error"}


@pytest.mark.parametrize("text", ["3", "a/b", "-1/2", "1/0"])
def test_a_malformed_shard_is_refused(text):
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)


def test_an_empty_shard_writes_nothing_and_succeeds(tmp_path, tiny_models):
    src = image_folder(tmp_path / "in", 1, size=16)
    result = run("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_models["upscaler"]), "--shard", "1/2")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_ray_engine_writes_the_bytes_of_the_local_engine(tmp_path, tiny_models):
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    write_png(src / "eight.png", smooth_image(20, 28, seed=1))
    write_png(src / "sixteen.png", smooth_image(22, 18, seed=2), "u16")
    write_png(src / "alpha.png", smooth_image(16, 24, seed=3), "u8", rng.uniform(0, 1, (16, 24, 1)).astype(np.float32))
    model = ["--model", str(tiny_models["denoiser"]), "--precision", "fp32", "--device", "cpu", "-q"]
    assert run("denoise", str(src), "-o", str(tmp_path / "local"), *model).returncode == 0
    manifest = tmp_path / "ray.jsonl"
    on_ray = run_process(  # Ray's driver and workers belong to a process of their own
        "denoise", str(src), "-o", str(tmp_path / "ray"), *model, "--engine", "ray", "--workers", "2", "--manifest", str(manifest)
    )
    assert on_ray.returncode == 0, on_ray.stderr
    assert "Warning" not in on_ray.stderr, on_ray.stderr  # Ray's deprecation notices are not the user's business
    for name in ("eight.png", "sixteen.png", "alpha.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert sorted(line["status"] for line in manifest_lines(manifest)) == ["written"] * 3


def test_each_file_reports_the_level_read_and_the_buffer_prefilter_run_on_ray_as_locally(tmp_path):
    # The default photo model reads each photo's noise level, and the default render model cleans
    # a render's buffers with its prefilter first: both reach the printed line and the manifest,
    # through Ray just as locally.
    rng = np.random.default_rng(5)
    write_png(tmp_path / "in" / "grain.png", np.clip(smooth_image(32, 40, seed=4) + rng.normal(0, 0.06, (32, 40, 3)), 0, 1))
    render = smooth_image(24, 24, seed=6) * rng.gamma(4.0, 2.5, (24, 24, 3))
    normal = np.zeros((24, 24, 3))
    normal[..., 2] = 1
    for name, pixels in (("render", render), ("render.albedo", smooth_image(24, 24, seed=7)), ("render.normal", normal)):
        write_image(tmp_path / "in" / f"{name}.exr", Image(pixels.astype(np.float32), None, "f32", "linear"))
    reports = {}
    for engine in ("local", "ray"):
        manifest = tmp_path / f"{engine}.jsonl"
        result = run_process(
            "denoise", str(tmp_path / "in"), "-o", str(tmp_path / engine), "--engine", engine, "--manifest", str(manifest)
        )
        assert result.returncode == 0, result.stderr
        assert "n2n-photo-level, noise " in result.stdout + result.stderr
        assert "n2n-mc-aux, buffers cleaned by mc-aux-prefilter, " in result.stdout + result.stderr
        reports[engine] = {Path(line["source"]).name: line for line in manifest_lines(manifest)}
    for report in reports.values():
        assert "aux_prefilter" not in report["grain.png"] and report["render.exr"]["aux_prefilter"] == "mc-aux-prefilter"
    assert reports["ray"]["grain.png"]["noise_level"] == reports["local"]["grain.png"]["noise_level"] > 0


@pytest.mark.defect(13)
def test_a_folder_run_names_the_files_it_passes_over_unless_they_belong_to_an_image_beside_them(tmp_path, tiny_models):
    folder = tmp_path / "in"
    for name in ["a.png", "a.denoised.png", "b.x2.png", "c.albedo.png", "d.png", "d.albedo.png"]:
        write_png(folder / name, smooth_image(12, 12))
    found = expand_inputs([str(folder)], recursive=False)
    assert [f.name for f, _ in found.files] == ["a.png", "d.png"]
    assert [p.name for p in found.passed_over] == ["b.x2.png", "c.albedo.png"]  # no b.png, no c.png
    result = run("upscale", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_models["upscaler"]))
    assert result.returncode == 0, result.stderr
    assert "passing over 2 file(s) named like outputs or buffers (b.x2.png, c.albedo.png)" in result.stderr
    named = run("upscale", str(folder / "b.x2.png"), "-o", str(tmp_path / "b"), "--model", str(tiny_models["upscaler"]))
    assert named.returncode == 0 and (tmp_path / "b" / "b.x2.png").is_file()  # named on its own, it is restored


def test_a_file_name_with_brackets_is_printed_as_it_is(tmp_path, tiny_models):
    src = write_png(tmp_path / "[b]shot.png", smooth_image(12, 12))
    result = run("upscale", str(src), "--model", str(tiny_models["upscaler"]))
    assert result.returncode == 0 and "[b]shot.png ->" in result.stdout + result.stderr
