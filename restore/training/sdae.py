"""Stacked denoising autoencoders on MNIST (Vincent et al. 2010), as in the second seed.

The network is the tied-weight :class:`~restore.archs.mnist.MLPAutoencoder`. It can be trained

- by greedy layer-wise pretraining: encoder layer i and its decoder twin are trained alone, as
  a tied denoising autoencoder of the (frozen) code of layers 0 .. i-1, with noise on that
  layer's own input: the pixel noise model for layer 0, Gaussian noise scaled to each unit's
  spread for the layers above;
- by end-to-end fine-tuning of the whole network as a denoiser: noisy digits in, clean out;
- or by both, pretraining first.

A classifier trained on the frozen code (:func:`train_code_classifier`) measures how much of a
digit's identity the code keeps.

Digits are N x 784 rows (flattened 28 x 28 cells) on [0, 1]; errors are mean squared errors
over pixels and digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.mnist import MLPAutoencoder, MLPAutoencoderConfig
from restore.noise import NoiseModel

__all__ = [
    "CodeClassifier",
    "ReconstructionErrors",
    "Schedule",
    "classifier_accuracy",
    "decode_codes",
    "encode_digits",
    "finetune",
    "pretrain_greedy",
    "pretrain_layer",
    "reconstruct",
    "reconstruction_errors",
    "train_code_classifier",
    "train_sdae",
]


@dataclass(frozen=True)
class Schedule:
    """How long and how fast one training stage runs: Adam, cosine-annealed learning rate."""

    epochs: int
    batch: int = 128
    lr: float = 1e-3


def _fit(
    parameters: list[torch.Tensor],
    batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    count: int,
    schedule: Schedule,
    generator: torch.Generator,
) -> list[float]:
    """Minimise ``batch_loss(indices, generator)`` over shuffled minibatches of ``count`` samples.

    Returns the mean training loss of each epoch.
    """
    optimizer = torch.optim.Adam(parameters, lr=schedule.lr)
    steps_per_epoch = -(-count // schedule.batch)
    # Annealing to zero lets the last epochs settle instead of hopping around the minimum.
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(schedule.epochs * steps_per_epoch, 1))
    losses = []
    for _ in range(schedule.epochs):
        order = torch.randperm(count, generator=generator)
        total = 0.0
        for indices in order.split(schedule.batch):
            loss = batch_loss(indices, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            annealing.step()
            total += loss.item() * len(indices)
        losses.append(total / count)
    return losses


def _corrupt_pixels(digits: torch.Tensor, noise: NoiseModel, generator: torch.Generator) -> torch.Tensor:
    """Noisy copies of N x 784 digits, clipped to [0, 1] like any image."""
    cells = digits.view(-1, 1, MLPAutoencoder.cell, MLPAutoencoder.cell)
    return noise.apply(cells, generator).clamp(0, 1).flatten(1)


Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""``corrupt(batch, generator)``: a noisy copy of a batch of layer inputs."""


def _pixel_corruption(noise: NoiseModel) -> Corruption:
    """The pixel noise model as a corruption of N x 784 digit rows."""

    def corrupt(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _corrupt_pixels(batch, noise, generator)

    return corrupt


def _gaussian_corruption(spread: torch.Tensor) -> Corruption:
    """Additive Gaussian noise with standard deviation ``spread`` per unit."""

    def corrupt(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + spread * torch.randn(batch.shape, generator=generator)

    return corrupt


def _layer_parameters(network: MLPAutoencoder, layer: int) -> list[torch.Tensor]:
    """What pretraining layer ``layer`` trains: its encoder weight and bias and its decoder bias."""
    if not network.config.tied:
        raise ValueError("greedy pretraining here trains tied layers; build the network with tied=True")
    encoder = network.encoder[layer]
    return [encoder.weight, encoder.bias, network.decoder_biases[layer]]


def pretrain_layer(
    network: MLPAutoencoder,
    layer: int,
    inputs: torch.Tensor,
    corrupt: Corruption,
    schedule: Schedule,
    generator: torch.Generator,
) -> list[float]:
    """Train layer ``layer`` alone as a tied denoising autoencoder of ``inputs``.

    Args:
        network: a tied MLPAutoencoder; only this layer's encoder weight and bias and its
            decoder bias change.
        layer: the encoder layer index, 0 for the pixel layer.
        inputs: N x width, what this layer sees (pixels for layer 0, else the code of the layers
            below).
        corrupt: returns a noisy copy of a batch of ``inputs``.
        schedule: epochs, batch size and learning rate.
        generator: the source of shuffling and noise.

    Returns:
        The mean reconstruction loss of each epoch.
    """

    def batch_loss(indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        clean = inputs[indices]
        code = network.encode_layer(layer, corrupt(clean, generator))
        return F.mse_loss(network.decode_layer(layer, code), clean)

    return _fit(_layer_parameters(network, layer), batch_loss, len(inputs), schedule, generator)


def pretrain_greedy(
    network: MLPAutoencoder,
    digits: torch.Tensor,
    noise: NoiseModel,
    schedule: Schedule,
    hidden_noise: float = 0.2,
    seed: int = 0,
) -> list[list[float]]:
    """Greedy layer-wise pretraining, bottom layer first.

    Args:
        network: a tied MLPAutoencoder, trained in place.
        digits: N x 784 training digits on [0, 1].
        noise: the pixel noise of layer 0's input.
        schedule: the schedule of each layer.
        hidden_noise: the Gaussian noise of the higher layers' inputs, as a fraction of each
            unit's standard deviation over ``digits`` (a scale-free level: activations grow or
            shrink from layer to layer).
        seed: seeds shuffling and noise.

    Returns:
        Per layer, the mean reconstruction loss of each epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    losses = []
    inputs = digits
    for layer in range(network.depth):
        if layer == 0:
            corrupt = _pixel_corruption(noise)
        else:
            corrupt = _gaussian_corruption(hidden_noise * inputs.std(dim=0))
        losses.append(pretrain_layer(network, layer, inputs, corrupt, schedule, generator))
        with torch.no_grad():
            inputs = network.encode_layer(layer, inputs)
    return losses


def finetune(network: MLPAutoencoder, digits: torch.Tensor, noise: NoiseModel, schedule: Schedule, seed: int = 0) -> list[float]:
    """Train the whole network end to end to map noisy digits to clean ones.

    Returns the mean training loss of each epoch.
    """
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        clean = digits[indices]
        return F.mse_loss(network.decode(network.encode(_corrupt_pixels(clean, noise, generator))), clean)

    return _fit(list(network.parameters()), batch_loss, len(digits), schedule, generator)


def train_sdae(
    hidden: list[int],
    digits: torch.Tensor,
    noise: NoiseModel,
    pretraining: Schedule | None,
    finetuning: Schedule | None,
    hidden_noise: float = 0.2,
    seed: int = 0,
) -> MLPAutoencoder:
    """A tied MLPAutoencoder with these encoder widths, pretrained and/or fine-tuned.

    ``None`` skips a stage: both None gives the random initialisation itself. ``seed`` fixes the
    initial weights, the shuffling and the noise.
    """
    torch.manual_seed(seed)  # the initial weights
    network = MLPAutoencoder(MLPAutoencoderConfig(hidden=list(hidden), tied=True))
    if pretraining is not None:
        pretrain_greedy(network, digits, noise, pretraining, hidden_noise, seed)
    if finetuning is not None:
        finetune(network, digits, noise, finetuning, seed + 1)
    return network.eval()


@torch.no_grad()
def encode_digits(network: MLPAutoencoder, digits: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """The codes of N x 784 digits (N x code size)."""
    return torch.cat([network.encode(chunk) for chunk in digits.split(batch)])


@torch.no_grad()
def decode_codes(network: MLPAutoencoder, codes: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """The digits (N x 784) that N codes decode to."""
    return torch.cat([network.decode(chunk) for chunk in codes.split(batch)])


@torch.no_grad()
def reconstruct(network: MLPAutoencoder, digits: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """AE(digits) for N x 784 digits."""
    return torch.cat([network.decode(network.encode(chunk)) for chunk in digits.split(batch)])


@dataclass(frozen=True)
class ReconstructionErrors:
    """The seed's two errors and the denoising error, each a per-pixel mean.

    Attributes:
        clean: ||x - AE(x)||^2, the clean digit x reconstructed (the seed's "MSE").
        noisy: ||y - AE(y)||^2, the noisy digit y reconstructed (the seed's "MSE noisy").
        denoised: ||x - AE(y)||^2, the noisy digit's reconstruction against the clean one.
    """

    clean: float
    noisy: float
    denoised: float


def reconstruction_errors(
    autoencode: Callable[[torch.Tensor], torch.Tensor], digits: torch.Tensor, noise: NoiseModel, seed: int = 0
) -> ReconstructionErrors:
    """Measure the three errors on N x 784 clean digits, with noise drawn from ``seed``.

    ``autoencode`` maps N x 784 digits to their reconstructions, e.g.
    ``functools.partial(reconstruct, network)``.
    """
    noisy = _corrupt_pixels(digits, noise, torch.Generator().manual_seed(seed))
    from_noisy = autoencode(noisy)
    return ReconstructionErrors(
        clean=F.mse_loss(autoencode(digits), digits).item(),
        noisy=F.mse_loss(from_noisy, noisy).item(),
        denoised=F.mse_loss(from_noisy, digits).item(),
    )


class CodeClassifier(nn.Module):
    """A digit classifier on frozen codes: standardise, then an MLP (or a linear layer)."""

    def __init__(self, code_size: int, hidden: int, classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(code_size))
        self.register_buffer("std", torch.ones(code_size))
        if hidden:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(code_size, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, classes),
            )  # fmt: skip
        else:
            self.head = nn.Linear(code_size, classes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Class logits of N x code_size codes."""
        return self.head((codes - self.mean) / self.std)


def train_code_classifier(
    codes: torch.Tensor, labels: torch.Tensor, schedule: Schedule, hidden: int = 256, seed: int = 0
) -> CodeClassifier:
    """Fit a classifier of ``labels`` on fixed ``codes`` (N x code size).

    ``hidden`` is the width of the two hidden layers of the head; 0 gives a linear classifier.
    """
    torch.manual_seed(seed)
    classifier = CodeClassifier(codes.shape[1], hidden)
    # Codes of a deep autoencoder come at any scale; standardising makes one schedule fit all.
    classifier.mean.copy_(codes.mean(dim=0))
    classifier.std.copy_(codes.std(dim=0).clamp_min(1e-6))

    def batch_loss(indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return F.cross_entropy(classifier(codes[indices]), labels[indices])

    _fit(list(classifier.parameters()), batch_loss, len(codes), schedule, torch.Generator().manual_seed(seed))
    return classifier.eval()


@torch.no_grad()
def classifier_accuracy(classifier: CodeClassifier, codes: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``codes`` whose predicted class is their label."""
    return (classifier(codes).argmax(dim=1) == labels).float().mean().item()
