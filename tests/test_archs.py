"""The architectures: sizes as published, any input size, every family buildable from its config."""

import pytest
import torch

from restore.archs import ARCHITECTURES, VARIANTS, build, create
from restore.archs.edsr import MDSR_SHARED_LR_SCALE
from restore.archs.unet import reflect_pad_to_multiple


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_noise2noise_unet_has_the_papers_991203_parameters():
    assert n_params(create("n2n_unet")) == 991_203


def test_unet_counts_follow_input_and_output_channels():
    # 9 inputs (colour, albedo, normal) change only the first conv and the last concat.
    assert n_params(create("n2n_unet", in_channels=9, out_channels=3)) == 991_203 + 6 * 9 * 48 + 6 * 9 * 64


def test_edsr_baseline_x2_has_about_1_37_million_parameters():
    assert n_params(create("edsr_baseline_x2")) == 1_369_859


def test_large_edsr_has_the_papers_40_7_million_parameters():
    assert round(n_params(create("edsr_x2")) / 1e6, 1) == 40.7


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (37, 53), (64, 31)])
def test_unet_accepts_any_size_and_crops_back(size):
    x = torch.rand(1, 3, *size)
    assert create("n2n_unet")(x).shape == x.shape


@pytest.mark.parametrize("variant,scale", [("edsr_baseline_x2", 2), ("edsr_baseline_x3", 3), ("edsr_baseline_x4", 4)])
def test_edsr_output_is_scale_times_the_odd_input(variant, scale):
    x = torch.rand(1, 3, 13, 19)
    assert create(variant)(x).shape == (1, 3, 13 * scale, 19 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_mdsr_switches_scale_with_one_shared_body(scale):
    model = create("mdsr_baseline")
    model.select_scale(scale)
    assert model(torch.rand(1, 3, 11, 9)).shape == (1, 3, 11 * scale, 9 * scale)
    with pytest.raises(ValueError):
        model.select_scale(5)


def test_mdsr_trains_its_shared_body_slower_than_its_per_scale_parts():
    # One batch is one scale: the shared parts move at a tenth of the rate, so that the scale
    # furthest behind does not drag the body away from the others.
    model = create("mdsr_baseline")
    per_scale, shared = model.parameter_groups()
    assert per_scale["lr_scale"] == 1.0 and shared["lr_scale"] == MDSR_SHARED_LR_SCALE < 1
    assert any(p is model.upsample["3"][0].weight for p in per_scale["params"])
    assert any(p is model.body[0].conv1.weight for p in shared["params"])
    assert len(per_scale["params"]) + len(shared["params"]) == len(list(model.parameters()))


def test_tied_autoencoder_shares_encoder_weights_with_its_decoder():
    tied = create("mnist_dae", hidden=[256, 64, 2], tied=True)
    untied = create("mnist_dae", hidden=[256, 64, 2], tied=False)
    # Tied: only decoder biases are extra; untied: a full second set of weights.
    weights = 784 * 256 + 256 * 64 + 64 * 2
    assert n_params(untied) - n_params(tied) == weights
    # Changing an encoder weight changes the decoder's reconstruction through the same tensor.
    x = torch.rand(4, 784)
    code = tied.encode(x)
    before = tied.decode(code)
    with torch.no_grad():
        tied.encoder[0].weight.mul_(2)
    assert not torch.allclose(tied.decode(code), before)


def test_autoencoder_restores_a_grid_of_digits_cell_by_cell():
    model = create("mnist_dae")
    grid = torch.rand(1, 1, 56, 84)
    out = model(grid)
    assert out.shape == grid.shape
    # Cell (1, 2) of the grid is the network applied to that digit alone.
    cell = grid[:, :, 28:56, 56:84]
    assert torch.allclose(out[:, :, 28:56, 56:84], model(cell), atol=1e-6)


def test_mnist_upscaler_is_the_seeds_14_to_28_network():
    model = create("mnist_upscaler")
    shapes = []
    h = torch.rand(1, 1, 14, 14)
    for layer in model.encoder:
        h = layer(h)
        shapes.append(h.shape[-1])
    assert shapes == [10, 10, 6, 6, 3, 3, 1]
    for layer in model.decoder:
        h = layer(h)
        shapes.append(h.shape[-1])
    assert shapes[7:] == [4, 4, 9, 9, 20, 20, 24, 24, 28]
    assert model(torch.rand(2, 1, 28, 42)).shape == (2, 1, 56, 84)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_rebuilds_from_its_stored_config(variant):
    model = create(variant)
    rebuilt = build(model.architecture, model.config_dict())
    assert type(rebuilt) is type(model)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert model.architecture in ARCHITECTURES


def test_unknown_architecture_and_config_fields_are_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("resnet", {})
    with pytest.raises(ValueError, match="unknown config fields"):
        build("unet", {"depth": 3})


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 3), (33, 40), (481, 321)])
def test_unet_mirror_pads_to_its_32_pixel_grid(size):
    x = torch.arange(size[0] * size[1], dtype=torch.float32).view(1, 1, *size)
    padded = reflect_pad_to_multiple(x, 32)
    h, w = padded.shape[-2:]
    assert h % 32 == 0 and w % 32 == 0 and h - size[0] < 32 and w - size[1] < 32
    assert torch.equal(padded[..., : size[0], : size[1]], x)  # the image itself is untouched
    if min(size) > 1:  # mirrored about the last row: the row below it equals the row above it
        assert torch.equal(padded[..., size[0], : size[1]], x[..., size[0] - 2, :])
