"""MNIST corruptions, tied stacked denoising autoencoders and the MNIST example scripts."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from restore.archs import create
from restore.io.datasets import load_mnist
from restore.noise import GaussianNoise, parse_noise
from restore.noise.corruptions import BlockMask, GaussianBlur, MixedCorruption, PixelErasure
from restore.training.sdae import (
    Schedule,
    classifier_accuracy,
    finetune,
    pretrain_greedy,
    pretrain_layer,
    reconstruct,
    reconstruction_errors,
    train_code_classifier,
    train_sdae,
)

REPO = Path(__file__).resolve().parents[1]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _white(count: int = 64, side: int = 28) -> torch.Tensor:
    return torch.ones(count, 1, side, side)


def _digits(shared_data: Path, count: int) -> torch.Tensor:
    digits, _ = load_mnist(shared_data / "mnist", "train")
    return digits[:count].flatten(1)


# Corruptions


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_erasure_blacks_out_about_a_fraction_p_of_the_pixels(p: float) -> None:
    erased = parse_noise(f"erase:{p}").apply(_white(), _gen(0))
    assert set(erased.unique().tolist()) <= {0.0, 1.0}
    assert (erased == 0).float().mean().item() == pytest.approx(p, abs=0.01)


def test_an_erasure_range_draws_p_per_image() -> None:
    erased = PixelErasure((0.5, 0.9)).apply(_white(), _gen(1))
    fractions = (erased == 0).float().mean(dim=(1, 2, 3))
    assert fractions.min() > 0.45 and fractions.max() < 0.95
    assert fractions.std() > 0.05


@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_blur_spreads_a_point_into_a_gaussian_of_that_sigma(sigma: float) -> None:
    point = torch.zeros(1, 1, 41, 41)
    point[0, 0, 20, 20] = 1
    response = parse_noise(f"blur:{sigma:g}").apply(point, _gen(0))[0, 0]
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    profile = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = torch.outer(profile, profile) / profile.sum() ** 2
    window = response[20 - radius : 21 + radius, 20 - radius : 21 + radius]
    assert torch.allclose(window, kernel, atol=1e-6)
    assert response.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_blur_treats_the_outside_of_a_digit_as_black() -> None:
    blurred = GaussianBlur(2.0).apply(_white(1), _gen(0))
    assert blurred[0, 0, 14, 14].item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[0, 0, 0, 0].item() < 0.5


@pytest.mark.parametrize("size", [10, 16])
def test_block_masking_blacks_out_exactly_one_size_x_size_square(size: int) -> None:
    masked = parse_noise(f"block:{size}").apply(_white(), _gen(2))
    for image in masked[:, 0]:
        rows, cols = (image == 0).nonzero(as_tuple=True)
        assert len(rows) == size * size
        assert rows.max() - rows.min() + 1 == size and cols.max() - cols.min() + 1 == size


def test_block_positions_cover_the_whole_image() -> None:
    masked = BlockMask(10.0).apply(_white(400), _gen(3))
    covered = (masked == 0).any(dim=0)[0]
    assert covered.all()


def test_a_block_range_draws_a_whole_side_per_image() -> None:
    masked = BlockMask((8.0, 16.0)).apply(_white(200), _gen(4))
    sides = (masked == 0).sum(dim=(1, 2, 3)).float().sqrt()
    assert torch.equal(sides, sides.round())
    assert sides.min() == 8 and sides.max() == 16


def test_a_block_larger_than_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        BlockMask(30.0).apply(_white(1), _gen(0))


def test_a_mix_gives_each_image_exactly_one_of_its_corruptions() -> None:
    mix = parse_noise("mix:erase:1|blur:1")
    out = mix.apply(_white(100), _gen(5))
    erased = (out == 0).all(dim=(1, 2, 3))
    blurred = GaussianBlur(1.0).apply(_white(1), _gen(0))
    assert all(erased[i] or torch.allclose(out[i], blurred[0]) for i in range(100))
    assert 30 < erased.sum() < 70


@pytest.mark.parametrize(
    "spec",
    ["erase:0.5", "erase:0.5-0.9", "blur:1-4", "block:10", "block:8-16", "gaussian:25",
     "mix:gaussian:0-100|erase:0.5-0.9|blur:1-4|block:8-16"],
)  # fmt: skip
def test_the_same_seed_gives_the_same_corruption(spec: str) -> None:
    model = parse_noise(spec)
    clean = torch.rand(16, 1, 28, 28, generator=_gen(6))
    assert torch.equal(model.apply(clean, _gen(7)), model.apply(clean, _gen(7)))
    assert not torch.equal(model.apply(clean, _gen(7)), model.apply(clean, _gen(8)))
    assert str(model) == spec and parse_noise(str(model)) == model


def test_a_fixed_blur_draws_nothing() -> None:
    blur = parse_noise("blur:2")
    clean = torch.rand(4, 1, 28, 28, generator=_gen(6))
    assert str(blur) == "blur:2"
    assert torch.equal(blur.apply(clean, _gen(7)), blur.apply(clean, _gen(8)))


def test_mix_specs_read_as_their_parts() -> None:
    mix = parse_noise("mix:gaussian:0-100|erase:0.5-0.9|blur:1-4|block:8-16")
    assert mix == MixedCorruption(
        (GaussianNoise((0.0, 100.0)), PixelErasure((0.5, 0.9)), GaussianBlur((1.0, 4.0)), BlockMask((8.0, 16.0)))
    )


@pytest.mark.parametrize(
    "spec",
    ["erase:1.5", "erase:", "blur:0", "blur:-2", "block:0", "block:2.5", "mix:", "mix:erase:0.5||blur:2",
     "mix:mix:erase:0.5|blur:2", "mix:smudge:3", "smudge:3"],
)  # fmt: skip
def test_bad_corruption_specs_raise_one_line_errors(spec: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_noise(spec)
    assert "\n" not in str(raised.value)


def test_unknown_specs_list_the_corruptions_too() -> None:
    with pytest.raises(ValueError, match=r"erase:P, blur:SIGMA, block:SIZE or mix:SPEC\|SPEC"):
        parse_noise("smudge:3")


# Tied weights


def test_the_tied_decoder_owns_biases_only() -> None:
    network = create("mnist_sdae")
    assert network.depth == 8 and network.config.hidden[-1] == 2
    own = {name: p for name, p in network.named_parameters() if not name.startswith("encoder.")}
    assert own and all(name.startswith("decoder_biases.") and p.ndim == 1 for name, p in own.items())
    matrices = [p for p in network.parameters() if p.ndim == 2]
    assert len(matrices) == network.depth


def test_the_decoder_trains_the_encoder_weight_it_borrows() -> None:
    network = create("mnist_sdae")
    hidden = torch.rand(4, 512)
    network.decode_layer(0, hidden).sum().backward()
    encoder = network.encoder[0]
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    # The decoder borrows the weight only: the encoder bias gets no gradient from it.
    assert encoder.bias.grad is None
    assert network.decoder_biases[0].grad is not None


# Stacked denoising autoencoder


def test_pretraining_a_layer_changes_that_layer_only() -> None:
    network = create("mnist_sdae")
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    inputs = torch.rand(128, network.config.hidden[1])

    def corrupt(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + 0.1 * torch.randn(batch.shape, generator=generator)

    losses = pretrain_layer(network, 2, inputs, corrupt, Schedule(1, batch=64), _gen(0))
    assert len(losses) == 1
    changed = {name for name, p in network.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"encoder.2.weight", "encoder.2.bias", "decoder_biases.2"}


def test_greedy_pretraining_then_finetuning_lowers_the_reconstruction_error(shared_data: Path) -> None:
    digits = _digits(shared_data, 512)
    noise = parse_noise("gaussian:12")
    torch.manual_seed(0)
    network = create("mnist_sdae")
    untrained = reconstruction_errors(partial(reconstruct, network), digits, noise)
    losses = pretrain_greedy(network, digits, noise, Schedule(1, batch=64))
    assert len(losses) == network.depth
    pretrained = reconstruction_errors(partial(reconstruct, network), digits, noise)
    finetune(network, digits, noise, Schedule(1, batch=64))
    finetuned = reconstruction_errors(partial(reconstruct, network), digits, noise)
    assert pretrained.clean < untrained.clean
    assert finetuned.clean < pretrained.clean and finetuned.denoised < pretrained.denoised


def test_training_is_reproducible_from_its_seed(shared_data: Path) -> None:
    digits = _digits(shared_data, 256)
    noise = parse_noise("erase:0.5")
    first, second = (train_sdae([64, 2], digits, noise, Schedule(1), Schedule(1), seed=3) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True))


def test_the_three_errors_compare_the_right_pairs_of_digits() -> None:
    clean = torch.rand(32, 784, generator=_gen(0))
    noise = GaussianNoise(50.0)
    # The identity reconstructs anything perfectly, and so denoises nothing.
    identity = reconstruction_errors(lambda x: x, clean, noise)
    noisy = noise.apply(clean.view(-1, 1, 28, 28), _gen(0)).clamp(0, 1).flatten(1)
    assert identity.clean == 0 and identity.noisy == 0
    assert identity.denoised == pytest.approx((noisy - clean).pow(2).mean().item())
    # A constant output is as far from the clean digit whatever the input.
    constant = reconstruction_errors(lambda x: torch.full_like(x, 0.5), clean, noise)
    assert constant.denoised == pytest.approx(constant.clean)
    assert constant.noisy == pytest.approx((noisy - 0.5).pow(2).mean().item())


def test_the_code_classifier_separates_separable_codes() -> None:
    generator = _gen(0)
    labels = torch.randint(0, 10, (2000,), generator=generator)
    centres = torch.randn(10, 2, generator=generator) * 10
    codes = centres[labels] + torch.randn(2000, 2, generator=generator)
    classifier = train_code_classifier(codes, labels, Schedule(5, batch=128))
    assert classifier_accuracy(classifier, codes, labels) > 0.9


# The example scripts


def _run_example(script: str, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "examples" / script), "--quick", *args], check=True, env=env, timeout=120)


def test_the_quick_table_writes_the_seed_rows_next_to_ours(shared_data: Path, tmp_path: Path) -> None:
    table = tmp_path / "table.md"
    _run_example("mnist_table.py", "--data", str(shared_data), "--out", str(table))
    text = table.read_text()
    assert "--quick" in text.splitlines()[2]
    for row in ("| 1 + 1 layers | 2 | 0.026 |", "| 8 + 8 layers, greedy pretraining + fine-tuning | 2 | 0.007 |", "**ours:"):
        assert row in text
    for spec in ("erase:0.5", "erase:0.9", "blur:2", "blur:4", "block:10", "block:16"):
        assert f"| `{spec}` |" in text


def test_the_quick_figures_are_small_pngs(shared_data: Path, tmp_path: Path) -> None:
    _run_example("mnist_figures.py", "--data", str(shared_data), "--out", str(tmp_path))
    names = {path.name for path in tmp_path.glob("*.png")}
    expected = {"mnist-latent.png", "mnist-manifold.png", "mnist-morph.png", "toy-ring-denoiser.png",
                "mnist-corruption-erase-0.5.png", "mnist-corruption-block-16.png", "mnist-corruption-blur-4.png"}  # fmt: skip
    assert expected <= names
    assert all(path.stat().st_size < 200_000 for path in tmp_path.glob("*.png"))
