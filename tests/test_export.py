"""ONNX export: a graph with a dynamic batch, height and width that matches torch at any size,
the padding to the network's grid left to the caller."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import torch

import restore
from conftest import assert_one_line_error, run
from restore.archs.unet import reflect_pad_to_multiple
from restore.interop.export import export_onnx


def run_onnx(path, image: torch.Tensor, multiple: int, scale: int) -> np.ndarray:
    """What a runner of the exported file does: mirror-pad to the grid, run, crop."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h, w = image.shape[-2:]
    out = session.run(None, {"image": reflect_pad_to_multiple(image, multiple).numpy()})[0]
    return out[..., : h * scale, : w * scale]


def test_an_exported_denoiser_matches_torch_at_sizes_off_its_32_pixel_grid(tmp_path, tiny_models):
    path = tmp_path / "unet.onnx"
    meta = export_onnx(tiny_models["denoiser"], path)
    assert meta["restore.size_multiple"] == "32" and meta["restore.scale"] == "1"
    graph = onnx.load(str(path))
    assert "Pad" not in {node.op_type for node in graph.graph.node}  # no padding baked in
    assert {p.key: p.value for p in graph.metadata_props}["restore.name"] == "tiny-denoiser"
    network = restore.load(tiny_models["denoiser"]).network.eval()
    for size in ((45, 67), (33, 100), (2, 45, 40)):
        image = torch.rand(size[0] if len(size) == 3 else 1, 3, *size[-2:])
        with torch.inference_mode():
            expected = network(image).numpy()
        assert np.abs(run_onnx(path, image, 32, 1) - expected).max() < 1e-4


def test_restore_export_writes_an_upscaler_that_matches_torch_at_odd_sizes_and_never_replaces_a_file(tmp_path, tiny_models):
    path = tmp_path / "edsr.onnx"
    result = run("export", str(tiny_models["upscaler"]), "--onnx", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {path}: tiny-upscaler, x2"
    network = restore.load(tiny_models["upscaler"]).network.eval()
    for size in ((21, 17), (9, 30)):
        image = torch.rand(1, 3, *size)
        with torch.inference_mode():
            expected = network(image).numpy()
        assert np.abs(run_onnx(path, image, 1, 2) - expected).max() < 1e-4
    assert_one_line_error(run("export", str(tiny_models["upscaler"]), "--onnx", str(path)), "exists")
