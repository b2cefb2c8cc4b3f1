"""ONNX export: a model's network as an ONNX graph with a dynamic batch, height and width.

The graph holds no padding. A network that needs its sides on a grid (the U-Net: 32, for its
five pools) takes input already padded to that grid, and the caller pads and crops: traced
padding is computed from the export example's size, so a graph with the padding inside works
at that size only. The graph's metadata says what a runner needs: the grid, the scale, the
channels, the value range and how restore pads (mirror the bottom and right edges).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import onnx  # the optional extra restore-images[onnx]
import torch

from restore.api import Model, load
from restore.io.images import atomic_write

MAX_SIDE = 16384  # the largest height or width the exported graph accepts


def export_onnx(
    model: Model | str | os.PathLike[str], path: str | os.PathLike[str], scale: int | None = None, overwrite: bool = False
) -> dict[str, str]:
    """Write `model` (a Model, bundled name or file) as ONNX to `path`; return the metadata stored in it.

    `scale` picks one scale of a multi-scale upscaler (default: its first). The input is named
    "image" (N x C x H x W, H and W multiples of `size_multiple`), the output "restored".
    """
    loaded = model if isinstance(model, Model) else load(model)
    network = loaded.network.eval()
    scale = scale or network.scales[0]
    network.select_scale(scale)
    multiple = network.size_multiple
    # Sides as multiples of the grid: the network's own padding then provably does nothing, and
    # the exporter drops it instead of baking in the example's padding.
    side = max(multiple, 16)
    example = torch.rand(1, network.in_channels, 2 * side, 3 * side)
    if multiple > 1:
        height = multiple * torch.export.Dim("height_blocks", min=1, max=MAX_SIDE // multiple)
        width = multiple * torch.export.Dim("width_blocks", min=1, max=MAX_SIDE // multiple)
    else:
        height, width = torch.export.Dim("height", min=2, max=MAX_SIDE), torch.export.Dim("width", min=2, max=MAX_SIDE)
    batch = torch.export.Dim("batch", min=1, max=1024)
    metadata = {
        "restore.name": loaded.name,
        "restore.task": loaded.info.task,
        "restore.scale": str(scale),
        "restore.size_multiple": str(multiple),
        "restore.padding": "mirror the bottom and right edges up to size_multiple; crop the output back",
        "restore.channels": json.dumps({"in": network.in_channels, "out": network.out_channels, "aux": loaded.info.aux}),
        "restore.value_range": json.dumps(loaded.info.value_range),
        "restore.transfer": loaded.info.transfer,
        "restore.input_transform": loaded.info.input_transform,
    }

    def encode(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            program = torch.onnx.export(
                network,
                (example,),
                dynamo=True,
                input_names=["image"],
                output_names=["restored"],
                dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
                verbose=False,
            )
        graph = program.model_proto
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save_model(graph, tmp)

    atomic_write(str(Path(path)), overwrite, encode)
    return metadata
