"""restore import: community networks through spandrel, saved as restore model files that run
through the same tiler (tiled == whole), and pickles that would run code refused unrun."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.DnCNN import DnCNN
from spandrel.architectures.DRUNet import DRUNet

import restore
from conftest import assert_one_line_error, run, smooth_image, write_png
from restore.api import InferenceOptions, run_model
from restore.interop.importer import import_model
from restore.io.images import read_image
from restore.modelfile import ModelFileError


def community_files(folder) -> dict[str, object]:
    """Small random-weight networks saved the way their projects save them."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    compact = Compact(num_feat=8, num_conv=2, upscale=2)  # Real-ESRGAN's small SR network
    files["compact"] = folder / "compact.pth"
    torch.save({"params_ema": compact.state_dict()}, files["compact"])
    dncnn = DnCNN(in_nc=3, out_nc=3, nc=8, nb=4)  # a plain denoiser, KAIR's .pth
    files["dncnn"] = folder / "dncnn.pth"
    torch.save(dncnn.state_dict(), files["dncnn"])
    drunet = DRUNet(in_nc=4, out_nc=3, nc=[8, 8, 8, 8], nb=2)  # three downsamplings: sides padded to 8
    files["drunet"] = folder / "drunet.safetensors"
    save_file({k: v.contiguous() for k, v in drunet.state_dict().items()}, str(files["drunet"]))
    return files


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, object]:
    """The community files imported: name -> restore model file."""
    folder = tmp_path_factory.mktemp("community")
    models = {}
    for name, path in community_files(folder / "theirs").items():
        models[name] = folder / f"{name}.safetensors"
        import_model(path, models[name])
    return models


@pytest.mark.parametrize(("name", "scale", "grid"), [("compact", 2, 1), ("dncnn", 1, 1), ("drunet", 1, 8)])
def test_an_imported_network_runs_tiled_exactly_as_whole(imported, name, scale, grid):
    model = restore.load(imported[name])
    assert model.info.architecture == "spandrel" and model.network.scale == scale
    assert model.network.size_multiple == grid and model.network.tileable
    image = torch.rand(3, 45, 67)
    whole = run_model(model, image, InferenceOptions(device="cpu", precision="fp32", tile=4096))
    tiled = run_model(model, image, InferenceOptions(device="cpu", precision="fp32", tile=16))
    assert whole.shape == (3, 45 * scale, 67 * scale)
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_restore_import_then_denoise_with_the_file_in_tiles_and_whole(tmp_path, imported):
    src = community_files(tmp_path / "src")["drunet"]
    target = tmp_path / "drunet.safetensors"
    result = run("import", str(src), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {target}: DRUNet x1, 3 -> 3 channels, tiles with a ")
    photo = write_png(tmp_path / "photo.png", smooth_image(45, 67), "u16")
    for out, tile in (("whole.png", "4096"), ("tiled.png", "16")):
        done = run(
            "denoise", str(photo), "-o", str(tmp_path / out), "--model", str(target), "--tile", tile, "--precision", "fp32"
        )
        assert done.returncode == 0, done.stderr
    whole, tiled = read_image(tmp_path / "whole.png"), read_image(tmp_path / "tiled.png")
    assert whole.bit_depth == "u16" and np.abs(whole.pixels - tiled.pixels).max() <= 1 / 65535
    assert_one_line_error(run("import", str(src), "-o", str(target)), "exists")


class RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def save_with_pickle(obj: object, path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.mark.parametrize("save", [save_with_pickle, torch.save], ids=["raw pickle", "torch.save zip"])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, save):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    save({"conv.weight": RunsCode(str(marker))}, evil)
    with pytest.raises(ModelFileError, match="refused"):
        import_model(evil, tmp_path / "m.safetensors")
    assert not marker.exists() and not (tmp_path / "m.safetensors").exists()
    assert_one_line_error(run("import", str(evil), "-o", str(tmp_path / "m.safetensors")), "refused")
    assert not marker.exists()


def test_weights_spandrel_does_not_know_are_one_clear_error(tmp_path):
    unknown = tmp_path / "unknown.safetensors"
    save_file({"mystery.weight": torch.zeros(3, 3)}, str(unknown))
    assert_one_line_error(run("import", str(unknown), "-o", str(tmp_path / "m.safetensors")), "no architecture")
