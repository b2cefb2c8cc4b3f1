"""The buffer prefilter: a render model cleans its albedo and normal buffers with the small network
its file names before it denoises, and tools/train_aux_prefilter.py trains that network from each
shot's own buffers and the clean ones."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import restore
from conftest import run, smooth_image
from restore.api import InferenceOptions, Model, run_model
from restore.archs import create
from restore.hdr import LOG_DEMODULATED
from restore.io.images import Image, read_image, write_image
from restore.modelfile import ModelFileError, ModelInfo, save_model_file
from restore.training.aux_prefilter import PREFILTER_NAME, PrefilterConfig, train_prefilter
from restore.training.loop import prepare_data

TOOLS = Path(__file__).resolve().parents[1] / "tools"
EXACT = InferenceOptions(device="cpu", precision="fp32")


def prefilter_info(network) -> ModelInfo:
    return ModelInfo(
        name="prefilter", architecture=network.architecture, config=network.config_dict(), task="denoise",
        channels=6, value_range=[-1.0, 1.0], transfer="linear",
    )  # fmt: skip


def trained_looking(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The network with random weights everywhere, the zero-started last layer too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return network


def test_an_untrained_prefilter_hands_the_buffers_through_and_its_tiles_match_the_whole_image():
    prefilter = create("aux_prefilter")
    buffers = torch.rand(1, 6, 45, 61)
    assert torch.equal(prefilter(buffers), buffers)  # a new prefilter changes nothing
    model = Model(trained_looking(prefilter), prefilter_info(prefilter), "memory")
    whole = run_model(model, buffers, EXACT)
    tiled = run_model(model, buffers, replace(EXACT, tile=16))  # margins wide enough for what it sees
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_a_render_model_cleans_its_buffers_with_the_prefilter_its_file_names_before_denoising(tmp_path):
    prefilter = trained_looking(create("aux_prefilter"))
    save_model_file(tmp_path / "prefilter.safetensors", prefilter, prefilter_info(prefilter))
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise", transfer="linear",
        input_transform=LOG_DEMODULATED, aux=["albedo", "normal"], aux_prefilter="prefilter.safetensors",
    )  # fmt: skip
    save_model_file(tmp_path / "aux.safetensors", network, info)
    model = restore.load(tmp_path / "aux.safetensors")  # a relative path is found beside the model file
    assert model.aux_prefilter is not None and model.aux_prefilter.network.architecture == "buffer_unet"

    image, buffers = torch.rand(3, 24, 28) * 4, torch.rand(6, 24, 28)
    cleaned = run_model(model.aux_prefilter, buffers, EXACT)
    assert not torch.allclose(cleaned, buffers)
    without = replace(model, aux_prefilter=None)
    assert torch.equal(run_model(model, image, EXACT, aux=buffers), run_model(without, image, EXACT, aux=cleaned))
    # prefilter_aux=False hands the buffers to the denoiser as given.
    as_given = run_model(model, image, replace(EXACT, prefilter_aux=False), aux=buffers)
    assert torch.equal(as_given, run_model(without, image, EXACT, aux=buffers))

    # A file naming a prefilter that is nowhere: one line that says which.
    save_model_file(tmp_path / "lost.safetensors", network, replace(info, aux_prefilter="no-such-prefilter"))
    with pytest.raises(ModelFileError, match="names the buffer prefilter 'no-such-prefilter'"):
        restore.load(tmp_path / "lost.safetensors")


@pytest.mark.parametrize(
    "prefilter",
    ["aux.safetensors", "colour.safetensors"],  # itself (loading would never end); a map from 3 channels
)
def test_a_prefilter_that_is_no_map_from_the_buffers_to_themselves_is_refused(tmp_path, prefilter):
    colour = create("n2n_unet")
    save_model_file(tmp_path / "colour.safetensors", colour, replace(prefilter_info(colour), channels=3))
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise", transfer="linear",
        input_transform=LOG_DEMODULATED, aux=["albedo", "normal"], aux_prefilter=prefilter,
    )  # fmt: skip
    save_model_file(tmp_path / "aux.safetensors", network, info)
    with pytest.raises(ModelFileError, match=f"names '{prefilter}' as its buffer prefilter, which is no map from its 6"):
        restore.load(tmp_path / "aux.safetensors")


def test_a_model_that_names_a_prefilter_but_takes_no_buffers_is_refused(tmp_path):
    network = create("n2n_unet")
    info = ModelInfo("plain", network.architecture, network.config_dict(), "denoise", aux_prefilter="mc-aux-prefilter")
    save_model_file(tmp_path / "plain.safetensors", network, info)
    with pytest.raises(ModelFileError, match="names the buffer prefilter 'mc-aux-prefilter' but takes no buffers"):
        restore.load(tmp_path / "plain.safetensors")


def buffer_folders(root: Path, scenes: int, size: int = 40) -> tuple[Path, Path]:
    """A render folder with clean buffers, and a shot_buffers.py-like folder beside it whose
    shots' buffers are the clean ones with sampling noise."""
    rng = np.random.default_rng(7)
    clean, own = root / "clean", root / "own"
    for i in range(scenes):
        albedo = smooth_image(size, size, seed=i)
        normal = np.stack([np.zeros((size, size)), np.zeros((size, size)), np.ones((size, size))], -1).astype(np.float32)
        for folder, shot, noise in ((clean, "a", 0.0), (own, "a", 0.08), (own, "b", 0.08)):
            for buffer, pixels in (("albedo", albedo), ("normal", normal)):
                noisy = (pixels + rng.normal(0, noise, pixels.shape)).astype(np.float32)
                (folder / shot).mkdir(parents=True, exist_ok=True)
                write_image(folder / shot / f"scene{i:03d}.{buffer}.exr", Image(noisy, None, "f32", "linear"))
    return own, clean


def test_training_brings_each_shots_own_buffers_closer_to_the_clean_ones(tmp_path):
    own, clean = buffer_folders(tmp_path, scenes=6)
    reports: list[str] = []
    config = PrefilterConfig(
        own=[str(own)], clean=[str(clean)], out=str(tmp_path / "p.safetensors"), steps=150, batch=4, patch=32,
        lr=3e-3, val_count=2, val_every=150,
    )  # fmt: skip
    info = train_prefilter(config, report=reports.append)
    as_given = info.training["validation"]["l1_as_given"]
    assert info.training["history"][-1]["val_l1"] < 0.8 * as_given  # the held-out scenes' buffers came closer
    assert reports[0].startswith("4 scenes, 2 held out") and len(reports) == 2
    model = restore.load(tmp_path / "p.safetensors")
    assert model.info.name == PREFILTER_NAME and model.info.channels == 6 and model.info.transfer == "linear"


def test_set_config_links_a_prefilter_to_a_render_model_and_refuses_one_it_cannot_find(tmp_path):
    prefilter = create("aux_prefilter")
    save_model_file(tmp_path / "prefilter.safetensors", prefilter, prefilter_info(prefilter))
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise", transfer="linear",
        input_transform=LOG_DEMODULATED, aux=["albedo", "normal"],
    )  # fmt: skip
    save_model_file(tmp_path / "aux.safetensors", network, info)

    def set_config(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(TOOLS / "set_config.py"), str(tmp_path / "aux.safetensors"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    linked = set_config("--aux-prefilter", str(tmp_path / "prefilter.safetensors"), "-o", str(tmp_path / "linked.safetensors"))
    assert linked.returncode == 0, linked.stderr
    model = restore.load(tmp_path / "linked.safetensors")
    assert model.info.aux_prefilter == str(tmp_path / "prefilter.safetensors") and model.aux_prefilter is not None
    lost = set_config("--aux-prefilter", "no-such-prefilter", "-o", str(tmp_path / "lost.safetensors"))
    assert lost.returncode != 0 and "unknown model 'no-such-prefilter'" in lost.stderr
    assert not (tmp_path / "lost.safetensors").exists()  # refused before anything was written


def render_model_with_prefilter(folder: Path, prefilter: torch.nn.Module) -> None:
    """Tiny renders (a/, b/ with their buffers), FOLDER/prefilter.safetensors and an untrained
    render model FOLDER/aux.safetensors that names it."""
    from test_hdr import write_renders

    write_renders(folder, count=3, size=32)
    save_model_file(folder / "prefilter.safetensors", prefilter, prefilter_info(prefilter))
    network = create("n2n_unet_aux")
    info = ModelInfo(
        name="aux", architecture=network.architecture, config=network.config_dict(), task="denoise", transfer="linear",
        input_transform=LOG_DEMODULATED, aux=["albedo", "normal"], aux_prefilter=str(folder / "prefilter.safetensors"),
    )  # fmt: skip
    save_model_file(folder / "aux.safetensors", network, info)


def test_a_run_started_from_a_render_model_keeps_the_prefilter_it_names(tmp_path):
    render_model_with_prefilter(tmp_path, create("aux_prefilter"))
    options = ["--steps", "1", "--batch", "2", "--patch", "32", "--val-count", "1", "--loss", "hdr"]
    pairs = ["--pairs", str(tmp_path / "a"), str(tmp_path / "b")]
    result = run("train", *pairs, "-o", str(tmp_path / "next.safetensors"), "--init", str(tmp_path / "aux.safetensors"), *options)
    assert result.returncode == 0, result.stderr
    trained = restore.load(tmp_path / "next.safetensors").info
    assert trained.aux_prefilter == str(tmp_path / "prefilter.safetensors")
    assert "buffers_through" not in trained.training  # training sets come prefiltered (tools/prefilter_buffers.py)


def test_a_finetune_learns_from_its_pairs_buffers_as_the_starts_prefilter_cleans_them(tmp_path, monkeypatch):
    # `restore denoise` hands the network prefiltered buffers: a finetune on a user's raw renders
    # must train it on those, not on the noisy buffers it will never be given.
    render_model_with_prefilter(tmp_path, trained_looking(create("aux_prefilter")))
    prepared = []

    def recorded(*args, **kwargs):  # prepare_data, its Data kept for a look
        prepared.append(prepare_data(*args, **kwargs))
        return prepared[-1]

    monkeypatch.setattr("restore.training.loop.prepare_data", recorded)
    options = ["--steps", "1", "--batch", "2", "--patch", "32", "--val-count", "1", "--loss", "hdr"]
    result = run("finetune", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "ft.safetensors"),
                 "--from", str(tmp_path / "aux.safetensors"), *options)  # fmt: skip
    assert result.returncode == 0, result.stderr

    held_out, _ = prepared[0].validation[0]  # frame2's A shot: colour, then albedo and normal
    given = np.concatenate([read_image(tmp_path / "a" / f"frame2.{b}.exr").pixels for b in ("albedo", "normal")], -1)
    cleaned = run_model(restore.load(tmp_path / "prefilter.safetensors"), given, EXACT)
    np.testing.assert_allclose(held_out[0, 3:].permute(1, 2, 0).numpy(), cleaned, atol=1e-6)
    trained = restore.load(tmp_path / "ft.safetensors").info
    assert trained.training["buffers_through"] == str(tmp_path / "prefilter.safetensors")
    assert trained.aux_prefilter == str(tmp_path / "prefilter.safetensors")  # and inference cleans them the same way


def test_prefilter_buffers_writes_each_shots_buffers_as_the_model_would_clean_them(tmp_path):
    own, _ = buffer_folders(tmp_path, scenes=2, size=24)
    for shot in ("a", "b"):
        for i in range(2):
            write_image(own / shot / f"scene{i:03d}.exr", Image(np.ones((24, 24, 3), np.float32), None, "f32", "linear"))
    (own / "manifest.json").write_text('{"scenes": {}, "commands": ["made by the test"]}')
    prefilter = trained_looking(create("aux_prefilter"))
    save_model_file(tmp_path / "prefilter.safetensors", prefilter, prefilter_info(prefilter))
    command = [sys.executable, str(TOOLS / "prefilter_buffers.py"), str(own), str(tmp_path / "pf")]
    result = subprocess.run([*command, "--prefilter", str(tmp_path / "prefilter.safetensors")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    model = restore.load(tmp_path / "prefilter.safetensors")
    for shot in ("a", "b"):
        given = np.concatenate([read_image(own / shot / f"scene001.{b}.exr").pixels for b in ("albedo", "normal")], -1)
        cleaned = np.concatenate(
            [read_image(tmp_path / "pf" / shot / f"scene001.{b}.exr").pixels for b in ("albedo", "normal")], -1
        )
        np.testing.assert_allclose(cleaned, run_model(model, given, EXACT), atol=1e-6)
        assert (tmp_path / "pf" / shot / "scene001.exr").resolve() == (own / shot / "scene001.exr").resolve()
    assert "tools/prefilter_buffers.py" in (tmp_path / "pf" / "manifest.json").read_text()
