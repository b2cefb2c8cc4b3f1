"""Training the buffer prefilter of render denoisers (restore.archs.unet.BufferUNet).

A renderer writes its albedo and normal buffers from the colour's own few samples: noisy at
edges, through glass and out of focus. The prefilter learns to turn such buffers into the
converged ones, from pairs that tools/shot_buffers.py makes: each shot's own buffers (input)
and the render folder's clean buffers of the same scene (target). Buffers are geometry and
surface colour, not the image, so clean targets cost a renderer little; the denoiser itself
still learns from noisy pairs alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restore.archs import build
from restore.io.datasets import AUX_BUFFERS, load_aux
from restore.modelfile import ModelInfo, save_model_file

PREFILTER_NAME = "mc-aux-prefilter"


@dataclass
class PrefilterConfig:
    """One prefilter run: pairs of folders (each shot's own buffers, the clean ones) and the schedule."""

    own: list[str]  # tools/shot_buffers.py folders: a/NAME.albedo.exr, a/NAME.normal.exr (and b's)
    clean: list[str]  # the render folders they were made from: a/NAME.albedo.exr, ... (one pair for both shots)
    out: str
    steps: int = 4000
    batch: int = 16
    patch: int = 64
    lr: float = 1e-3  # a tenth of it from 60% of the steps on, a hundredth from 90%
    val_count: int = 32  # the last scenes by name, held out
    val_every: int = 500
    seed: int = 0
    features: tuple[int, int, int] = (8, 16, 32)  # the network's widths (restore.archs.unet.BufferUNetConfig)
    command: str = ""


def load_pairs(own: Sequence[str], clean: Sequence[str]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(scene names, own buffers, clean buffers), N x 6 x H x W float16: one shot a scene, a and b
    in turn, so that both shots' sampling is seen without holding twice the buffers."""
    if len(own) != len(clean):
        raise ValueError(f"{len(own)} folders of own buffers but {len(clean)} clean ones: give them in pairs")
    names, inputs, targets = [], [], []
    for own_folder, clean_folder in zip(own, clean, strict=True):
        for normal in sorted((Path(own_folder) / "a").glob("*.normal.exr")):
            name = normal.name.removesuffix(".normal.exr")
            shot = "ab"[len(names) % 2]
            if not (Path(own_folder) / shot / normal.name).is_file():
                shot = "a"
            names.append(name)
            inputs.append(load_aux(Path(own_folder) / shot / f"{name}.exr", AUX_BUFFERS).half())
            targets.append(load_aux(Path(clean_folder) / "a" / f"{name}.exr", AUX_BUFFERS).half())
    if not names:
        raise ValueError(f"no shot buffers (a/NAME.normal.exr) in {', '.join(own)}")
    order = np.argsort(names, kind="stable")
    return [names[i] for i in order], torch.stack([inputs[i] for i in order]), torch.stack([targets[i] for i in order])


def _l1(network: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.inference_mode():
        errors = [(network(x[None].float()) - y[None].float()).abs().mean() for x, y in zip(inputs, targets, strict=True)]
    return float(torch.stack(errors).mean())


def train_prefilter(config: PrefilterConfig, report: Callable[[str], None] = print) -> ModelInfo:
    """Train the prefilter (L1 to the clean buffers, random crops, Adam) and write its model file."""
    started = time.perf_counter()
    names, inputs, targets = load_pairs(config.own, config.clean)
    count = len(names) - config.val_count
    if count < 1:
        raise ValueError(f"{len(names)} scenes leave none to train on after {config.val_count} held out")
    val_inputs, val_targets = inputs[count:], targets[count:]
    generator = torch.Generator().manual_seed(config.seed)
    network = build("buffer_unet", {"features": list(config.features)})
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    height, width = inputs.shape[-2:]
    patch = min(config.patch, height, width)
    as_given = _l1(torch.nn.Identity(), val_inputs, val_targets)
    report(f"{count} scenes, {len(names) - count} held out; validation L1 of the buffers as given {as_given:.5f}")
    history: list[dict[str, float]] = []
    for step in range(1, config.steps + 1):
        rate = config.lr * (1.0 if step <= 0.6 * config.steps else 0.1 if step <= 0.9 * config.steps else 0.01)
        for group in optimizer.param_groups:
            group["lr"] = rate
        pick = torch.randint(0, count, (config.batch,), generator=generator)
        top = int(torch.randint(0, height - patch + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - patch + 1, (1,), generator=generator))
        crop = (slice(None), slice(None), slice(top, top + patch), slice(left, left + patch))
        loss = (network(inputs[pick][crop].float()) - targets[pick][crop].float()).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % config.val_every == 0 or step == config.steps:
            network.eval()
            l1 = _l1(network, val_inputs, val_targets)
            network.train()
            history.append({"step": step, "val_l1": l1, "seconds": round(time.perf_counter() - started, 1)})
            report(f"step {step}: loss {loss.item():.5f}, validation L1 {l1:.5f}, {time.perf_counter() - started:.0f} s")
    info = ModelInfo(
        name=PREFILTER_NAME,
        architecture=network.architecture,
        config=network.config_dict(),
        task="denoise",
        noise="render buffers",
        channels=network.out_channels,
        value_range=[-1.0, 1.0],
        transfer="linear",
        description="cleans a render's albedo and normal buffers before a render denoiser sees them",
        training={
            "data": f"{count} scenes: own buffers {', '.join(config.own)}; clean {', '.join(config.clean)}",
            "command": config.command,
            "steps": config.steps,
            "seconds": round(time.perf_counter() - started),
            "loss": "l1",
            "validation": {"scenes": len(names) - count, "l1_as_given": as_given},
            "history": history,
        },
    )
    save_model_file(config.out, network.eval(), info)
    return info
