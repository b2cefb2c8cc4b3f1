"""The tiling engine: the only way a network runs on an image.

The image is cut into tile cores on the network's grid. Each core is run with a margin of
context on every side wide enough to cover the network's receptive field, and only the core of
each output tile is written, so the result equals a whole-image run (up to float rounding)
while memory stays bounded by the tile size, whatever the image size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch

from restore.archs import Restorer
from restore.device import on_device

GiB = 1 << 30
# Beyond the activations: the network's weights, allocator slack, input and output tiles.
_OVERHEAD_FACTOR = 1.5

TileCallback = Callable[[int, int], None]


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return (oom,)


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA OOM and for CPU allocation failures (RuntimeError 'can't allocate memory')."""
    if isinstance(err, _out_of_memory_errors()):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def margin_of(network: Restorer) -> int:
    """Context pixels around each tile core: the receptive margin rounded up to the grid."""
    grid = network.size_multiple
    return math.ceil(network.receptive_margin / grid) * grid


def default_max_memory(device: torch.device) -> int:
    """Memory budget for one tile: a quarter of the RAM (1 to 8 GiB) on a CPU, 60% of a GPU's free memory.

    Larger tiles waste less work on margins (the U-Net's margin is 160 px on each side), so
    the budget is as large as a machine comfortably allows.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * GiB
    return min(max(total // 4, GiB), 8 * GiB)


def tile_for_memory(network: Restorer, max_memory: int, element_size: int = 4) -> int:
    """The largest tile core (a multiple of the grid) whose run fits in `max_memory` bytes."""
    grid = network.size_multiple
    margin = margin_of(network)
    per_pixel = network.floats_per_pixel * element_size * _OVERHEAD_FACTOR
    side = int(math.sqrt(max_memory / per_pixel))
    core = (side - 2 * margin) // grid * grid
    return max(core, grid)


def run_tiled(
    network: Restorer,
    image: torch.Tensor,
    *,
    tile: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    max_memory: int | None = None,
    on_tile: TileCallback | None = None,
) -> torch.Tensor:
    """Run `network` over `image` (1 x C x H x W, float32 on the CPU) tile by tile.

    `tile` is the core size in input pixels (rounded down to the network's grid); by default it
    is chosen from `max_memory`. On out-of-memory the run restarts with half the tile. The
    network runs in `dtype`, its weights and tiles laid out in `memory_format`. The result is
    float32 on the CPU, `network.scale` times larger.
    """
    device = torch.device(device)
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"run_tiled takes one image as 1 x C x H x W, got {tuple(image.shape)}")
    _, channels, height, width = image.shape
    if channels != network.in_channels:
        raise ValueError(f"the network takes {network.in_channels}-channel images, got {channels}")
    grid = network.size_multiple
    if not network.pads_input and (height % grid or width % grid):
        raise ValueError(f"this network needs image sides that are multiples of {grid}, got {width} x {height}")
    if tile is None:
        budget = max_memory if max_memory is not None else default_max_memory(device)
        tile = tile_for_memory(network, budget, torch.empty((), dtype=dtype).element_size())
    tile = max(grid, tile // grid * grid)
    if not network.tileable:
        tile = math.ceil(max(height, width) / grid) * grid  # one tile: the whole image

    network = on_device(network, device, dtype, memory_format)
    while True:
        try:
            return _run(network, image, tile, device, dtype, memory_format, on_tile)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is retried, the rest re-raised
            if not is_out_of_memory(err) or tile <= grid or not network.tileable:
                raise
            tile = max(grid, tile // 2 // grid * grid)
            if device.type == "cuda":
                torch.cuda.empty_cache()


def _run(
    network: Restorer,
    image: torch.Tensor,
    tile: int,
    device: torch.device,
    dtype: torch.dtype,
    memory_format: torch.memory_format,
    on_tile: TileCallback | None,
) -> torch.Tensor:
    _, _, height, width = image.shape
    scale = network.scale
    margin = margin_of(network)
    output = torch.empty(1, network.out_channels, height * scale, width * scale)
    cores = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    with torch.inference_mode():
        for done, (y0, x0) in enumerate(cores, start=1):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            # Core origins and the margin are multiples of the grid, so window origins are too.
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            wy1, wx1 = min(height, y1 + margin), min(width, x1 + margin)
            window = image[:, :, wy0:wy1, wx0:wx1].to(device=device, dtype=dtype, memory_format=memory_format)
            result = network(window)
            oy, ox = (y0 - wy0) * scale, (x0 - wx0) * scale
            core = result[:, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale]
            output[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = core.float().cpu()
            if on_tile is not None:
                on_tile(done, len(cores))
    return output
