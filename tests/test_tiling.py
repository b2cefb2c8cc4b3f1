"""The tiling engine: tiles of any size give the whole-image result, in bounded memory."""

import pytest
import torch

from restore.archs import create
from restore.tiling import margin_of, run_tiled, tile_for_memory


def whole(model, x):
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize(
    "variant,size,tile",
    [
        ("n2n_unet", (197, 229), 96),  # odd sizes, tiles far smaller than the U-Net's 160-pixel margin
        ("edsr_baseline_x2", (61, 47), 16),
        ("edsr_baseline_x3", (45, 53), 24),
        ("edsr_baseline_x4", (37, 41), 16),
        ("mdsr_baseline", (53, 47), 20),
        ("mnist_dae", (84, 112), 28),
        ("mnist_upscaler", (42, 56), 14),
    ],
)
def test_tiled_output_equals_whole_image_output(variant, size, tile):
    torch.manual_seed(0)
    model = create(variant).eval()
    if variant == "mdsr_baseline":
        model.select_scale(3)
    x = torch.rand(1, model.in_channels, *size)
    calls = []
    tiled = run_tiled(model, x, tile=tile, on_tile=lambda done, total: calls.append((done, total)))
    expected = whole(model, x)
    assert tiled.shape == expected.shape
    assert (tiled - expected).abs().max().item() < 1e-4
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1]  # really tiled, progress reported


@pytest.mark.parametrize("variant", ["n2n_unet", "edsr_baseline_x2", "mnist_upscaler"])
def test_channels_last_tiles_give_the_same_result(variant):
    # The layout the CPU probe may pick (restore.device.resolve_memory_format) changes speed only.
    torch.manual_seed(0)
    model = create(variant).eval()
    x = torch.rand(1, model.in_channels, 70, 84)
    tiled = run_tiled(model, x, tile=32, memory_format=torch.channels_last)
    assert (tiled - whole(model, x)).abs().max().item() < 1e-4


def test_unet_tile_windows_start_on_the_32_pixel_grid():
    model = create("n2n_unet").eval()
    seen = []
    forward = model.forward
    model.forward = lambda t: (seen.append(t.shape[-2:]), forward(t))[1]
    run_tiled(model, torch.rand(1, 3, 300, 200), tile=70)  # rounded down to 64
    assert margin_of(model) % 32 == 0
    assert all(h <= 64 + 2 * margin_of(model) for h, _ in seen)


def test_tile_size_follows_the_memory_budget():
    model = create("n2n_unet")
    small, large = tile_for_memory(model, 256 << 20), tile_for_memory(model, 4 << 30)
    assert small % 32 == 0 and large % 32 == 0
    assert 32 <= small < large


def test_out_of_memory_retries_with_smaller_tiles():
    model = create("edsr_baseline_x2").eval()
    forward = model.forward
    sizes = []

    def picky(t):
        sizes.append(t.shape[-1])
        if t.shape[-1] > 140:  # a 128 tile + margins fails, a 64 tile + margins fits
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(t)

    model.forward = picky
    x = torch.rand(1, 3, 200, 200)
    out = run_tiled(model, x, tile=128)
    assert out.shape == (1, 3, 400, 400)
    assert max(sizes) > 140 and sizes[-1] <= 140


def test_other_errors_are_not_retried():
    model = create("edsr_baseline_x2").eval()
    model.forward = lambda t: (_ for _ in ()).throw(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_tiled(model, torch.rand(1, 3, 20, 20), tile=8)


def test_digit_networks_refuse_sizes_off_their_cell_grid():
    with pytest.raises(ValueError, match="multiples of 28"):
        run_tiled(create("mnist_dae"), torch.rand(1, 1, 30, 28))
