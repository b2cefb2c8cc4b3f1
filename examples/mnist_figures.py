"""The seed figures of MNIST denoising autoencoders, drawn with Pillow into examples/results/.

- mnist-corruption-<spec>.png: per corruption of the lecture, the seed's three rows: original,
  corrupted, reconstructed by one denoiser trained on a mix of all the corruptions;
- mnist-latent.png: the 2-D code of the test digits of the 8 + 8 stacked denoising autoencoder,
  coloured by digit;
- mnist-manifold.png: the decoder walked over a grid of 2-D codes;
- mnist-morph.png: digit morphing, decoding the straight line between two digits' codes;
- toy-ring-denoiser.png: the lecture's 2-D toy, an MLP 2-100-2 trained with the quadratic loss
  to denoise points of an open ring: it maps a point of the gap to E[X | X~], which lies in the
  gap, where the data has no mass.

Usage:

    OMP_NUM_THREADS=1 .venv/bin/python examples/mnist_table.py      # trains and saves the networks
    OMP_NUM_THREADS=1 .venv/bin/python examples/mnist_figures.py
    OMP_NUM_THREADS=1 .venv/bin/python examples/mnist_figures.py --quick --out /tmp/figures

The networks come from --models (where examples/mnist_table.py saves them); a missing one is
trained here, briefly. --quick always trains small stand-ins on a subset (seconds).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# Run as a script, this folder is on sys.path: the figures show the table's networks and corruptions.
from mnist_table import CORRUPTIONS, DEFAULT_DATA, DEFAULT_MODELS, MIX, MODEL_FILES, NOISE, mnist_folder
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from torch import nn

from restore.archs import create
from restore.archs.mnist import SDAE_HIDDEN, MLPAutoencoder
from restore.io.datasets import load_mnist
from restore.modelfile import load_model_file
from restore.noise import parse_noise
from restore.training.sdae import Schedule, decode_codes, encode_digits, finetune, reconstruct, train_sdae

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "results"

SIDE = 28
FONT = ImageFont.load_default()
INK = (20, 20, 20)
# Ten distinguishable colours, one per digit.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def digit_image(pixels: torch.Tensor, scale: int) -> Image.Image:
    """One 784-pixel digit (white on black) as a grey image enlarged `scale` times."""
    array = (pixels.view(SIDE, SIDE).clamp(0, 1) * 255).round().byte().numpy()
    return Image.fromarray(array, mode="L").resize((SIDE * scale, SIDE * scale), Image.NEAREST)


def labelled_rows(rows: Sequence[tuple[str, torch.Tensor]], scale: int = 2, label_width: int = 150) -> Image.Image:
    """Rows of digits (each a label and an N x 784 tensor) side by side, labels on the left."""
    cell = SIDE * scale
    columns = max(len(digits) for _, digits in rows)
    canvas = Image.new("RGB", (label_width + columns * cell, len(rows) * (cell + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, digits) in enumerate(rows):
        top = r * (cell + 4)
        draw.text((4, top + cell // 2 - 6), label, fill=INK, font=FONT)
        for c, digit in enumerate(digits):
            canvas.paste(digit_image(digit, scale), (label_width + c * cell, top))
    return canvas


def corruption_figures(denoiser: MLPAutoencoder, test_x: torch.Tensor, out: Path) -> list[Path]:
    """Per corruption, the seed's original / corrupted / reconstructed rows of 12 test digits."""
    originals = test_x[:12]
    paths = []
    for index, spec in enumerate(CORRUPTIONS):
        corrupted = parse_noise(spec).apply(originals.view(-1, 1, SIDE, SIDE), torch.Generator().manual_seed(index))
        corrupted = corrupted.clamp(0, 1).flatten(1)
        figure = labelled_rows(
            [("original", originals), (f"corrupted ({spec})", corrupted), ("reconstructed", reconstruct(denoiser, corrupted))]
        )
        paths.append(out / f"mnist-corruption-{spec.replace(':', '-')}.png")
        figure.save(paths[-1], optimize=True)
    return paths


def code_box(codes: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The corners of the box holding the middle of the codes (quantiles `low` .. `high` per axis)."""
    return torch.quantile(codes, low, dim=0), torch.quantile(codes, high, dim=0)


def latent_figure(network: MLPAutoencoder, test_x: torch.Tensor, test_y: torch.Tensor, path: Path, size: int = 480) -> None:
    """The 2-D codes of the test digits as dots coloured by digit (the middle 99 % per axis), with a legend."""
    codes = encode_digits(network, test_x)
    corner, far = code_box(codes, 0.005, 0.995)
    position = (codes - corner) / (far - corner)
    # The few outliers beyond the box would squeeze everything else into a corner: leave them out.
    inside = ((position >= 0) & (position <= 1)).all(dim=1)
    position, test_y = position[inside] * (size - 1), test_y[inside]
    legend = 60
    canvas = Image.new("RGB", (size + legend, size), "white")
    draw = ImageDraw.Draw(canvas)
    for (x, y), label in zip(position.tolist(), test_y.tolist(), strict=True):
        # Code y grows upwards, image rows downwards.
        draw.rectangle((x - 1, size - 1 - y - 1, x + 1, size - 1 - y + 1), fill=PALETTE[label])
    for digit in range(10):
        draw.rectangle((size + 10, 10 + 20 * digit, size + 22, 22 + 20 * digit), fill=PALETTE[digit])
        draw.text((size + 28, 10 + 20 * digit), str(digit), fill=INK, font=FONT)
    canvas.save(path, optimize=True)


def manifold_figure(network: MLPAutoencoder, test_x: torch.Tensor, path: Path, steps: int = 16) -> None:
    """Decode a `steps` x `steps` grid of 2-D codes spanning the test codes (2 % .. 98 % per axis)."""
    corner, far = code_box(encode_digits(network, test_x), 0.02, 0.98)
    t = torch.linspace(0, 1, steps)
    xs = corner[0] + t * (far[0] - corner[0])
    ys = corner[1] + t.flip(0) * (far[1] - corner[1])  # top row: the largest code y
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    digits = decode_codes(network, grid).view(steps, steps, SIDE, SIDE).permute(0, 2, 1, 3).reshape(steps * SIDE, steps * SIDE)
    Image.fromarray((digits * 255).round().byte().numpy(), mode="L").save(path, optimize=True)


def morph_figure(network: MLPAutoencoder, test_x: torch.Tensor, test_y: torch.Tensor, path: Path, steps: int = 10) -> None:
    """Per pair of digits: the first, the decoded straight line between their codes, the second."""
    pairs = [(3, 8), (1, 7), (4, 9), (0, 6), (2, 5)]
    rows = []
    for a, b in pairs:
        start, end = test_x[test_y == a][0], test_x[test_y == b][0]
        codes = encode_digits(network, torch.stack([start, end]))
        t = torch.linspace(0, 1, steps)[:, None]
        line = decode_codes(network, codes[0] + t * (codes[1] - codes[0]))
        rows.append((f"{a} -> {b}", torch.cat([start[None], line, end[None]])))
    labelled_rows(rows, label_width=60).save(path, optimize=True)


def open_ring(count: int, generator: torch.Generator, gap: float = math.radians(30)) -> torch.Tensor:
    """`count` points on the unit circle, uniform in angle outside a gap centred at angle 0."""
    angles = gap / 2 + torch.rand(count, generator=generator) * (2 * math.pi - gap)
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def toy_figure(path: Path, epochs: int, sigma: float = 0.15, size: int = 480) -> None:
    """The lecture's 2-D denoiser on an open ring, and E[X | X~ = x~] for x~ in the gap."""
    generator = torch.Generator().manual_seed(0)
    data = open_ring(1000, generator)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for clean in data[torch.randperm(len(data), generator=generator)].split(100):
            loss = nn.functional.mse_loss(model(clean + sigma * torch.randn(clean.shape, generator=generator)), clean)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    # The posterior at x~ by rejection, as in the lecture: many (X, X~) pairs, keep the X whose
    # X~ fell near x~; their mean is what the quadratic loss asks the network for.
    probe = torch.tensor([0.95, 0.0])
    many = open_ring(1_000_000, generator)
    noisy_many = many + sigma * torch.randn(many.shape, generator=generator)
    posterior = many[(noisy_many - probe).norm(dim=1) < 0.04]
    expected = posterior.mean(dim=0)
    with torch.no_grad():
        answer = model(probe[None])[0]
        denoised = model(data + sigma * torch.randn(data.shape, generator=generator))

    def pixel(point: torch.Tensor) -> tuple[float, float]:
        x, y = point.tolist()
        return (x + 1.6) / 3.2 * (size - 1), (1.6 - y) / 3.2 * (size - 1)

    canvas = Image.new("RGB", (size, size + 40), "white")
    draw = ImageDraw.Draw(canvas)

    def dot(point: torch.Tensor, radius: float, colour: tuple[int, int, int]) -> None:
        x, y = pixel(point)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)

    for point in data:
        dot(point, 1.5, (170, 170, 170))
    for point in denoised:
        dot(point, 1.2, (255, 160, 40))
    for point in posterior[:300]:
        dot(point, 1.5, (214, 39, 40))
    dot(probe, 4, (31, 119, 180))
    dot(expected, 4, (44, 160, 44))
    draw.line((*pixel(probe), *pixel(answer)), fill=INK, width=1)
    dot(answer, 3, INK)
    lines = [
        f"grey: data (open ring); orange: MLP 2-100-2 applied to noisy data (sigma {sigma}); blue: x~ = (0.95, 0);",
        f"red: X | X~ near x~ ({len(posterior)} samples); green: E[X | x~] = ({expected[0]:.2f}, {expected[1]:.2f}); "
        f"black: MLP(x~) = ({answer[0]:.2f}, {answer[1]:.2f})",
    ]
    for i, line in enumerate(lines):
        draw.text((6, size + 4 + 16 * i), line, fill=INK, font=FONT)
    canvas.save(path, optimize=True)


def load_or_train(path: Path | None, train: Callable[[], MLPAutoencoder], console: Console) -> MLPAutoencoder:
    """The network saved at `path` if there is one, else a freshly trained stand-in."""
    if path is not None and path.is_file():
        network, _ = load_model_file(path)
        return network
    console.print(f"training a stand-in for {path.name if path else 'a saved network'}")
    return train()


def networks(models: Path | None, train_x: torch.Tensor, quick: bool, console: Console) -> tuple[MLPAutoencoder, MLPAutoencoder]:
    """The 2-D stacked denoising autoencoder and the corruption denoiser: saved ones, or trained here."""
    schedule = Schedule(1) if quick else Schedule(5)

    def train_denoiser() -> MLPAutoencoder:
        torch.manual_seed(0)
        denoiser = create("mnist_dae")
        finetune(denoiser, train_x, parse_noise(MIX), schedule)
        return denoiser.eval()

    sdae = load_or_train(
        models / MODEL_FILES["sdae"] if models else None,
        lambda: train_sdae(SDAE_HIDDEN, train_x, parse_noise(NOISE), Schedule(1), schedule),
        console,
    )
    denoiser = load_or_train(models / MODEL_FILES["denoiser"] if models else None, train_denoiser, console)
    return sdae, denoiser


def main() -> None:
    """Draw every figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder, or the MNIST folder itself")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNG files")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="networks saved by examples/mnist_table.py")
    parser.add_argument("--quick", action="store_true", help="small stand-in networks trained on a subset: a smoke test")
    args = parser.parse_args()

    console = Console(stderr=True)
    folder = mnist_folder(args.data)
    train_x, _ = load_mnist(folder, "train")
    test_x, test_y = load_mnist(folder, "test")
    train_x = train_x[: 1000 if args.quick else None].flatten(1)
    test_x, test_y = test_x[: 2000 if args.quick else 5000].flatten(1), test_y[: 2000 if args.quick else 5000]
    sdae, denoiser = networks(None if args.quick else args.models, train_x, args.quick, console)

    args.out.mkdir(parents=True, exist_ok=True)
    written = corruption_figures(denoiser, test_x, args.out)
    for name, draw in (
        ("mnist-latent.png", lambda p: latent_figure(sdae, test_x, test_y, p)),
        ("mnist-manifold.png", lambda p: manifold_figure(sdae, test_x, p)),
        ("mnist-morph.png", lambda p: morph_figure(sdae, test_x, test_y, p)),
        ("toy-ring-denoiser.png", lambda p: toy_figure(p, epochs=20 if args.quick else 1000)),
    ):
        draw(args.out / name)
        written.append(args.out / name)
    for path in written:
        console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
