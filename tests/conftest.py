"""Shared fixtures: where the read-only data sets live, and small synthetic images."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core. Each computes on one thread: with torch's
    # default of one thread per core, two workers put four busy threads on two cores, and the
    # OpenMP threads of each then spin waiting for one another. Set in the environment too, for
    # the processes tests start.
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def data_root() -> Path:
    """../shared/data beside the repository, or $RESTORE_DATA."""
    return Path(os.environ.get("RESTORE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"the shared data sets are not at {root}")
    return root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`restore ARGS` as the console script runs it, but in this process: exit code, stdout, stderr.

    In-process because starting Python and importing torch costs seconds per call and the suite
    makes a few hundred calls. An exception that escapes `main` is printed as Python would print
    it, with exit code 1, so a test asserting "no traceback" still sees one.
    """
    from restore.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["restore", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(["restore", *args], code, stdout.getvalue(), stderr.getvalue())


def run_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`restore ARGS` in a process of its own, for what a process owns: its environment, Ray, signals."""
    command = [sys.executable, "-m", "restore", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str, code: int = 1) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def manifest_lines(path: Path) -> list[dict]:
    """The records of a --manifest file, one a line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_png(path: Path, pixels: np.ndarray, bit_depth: str = "u8", alpha: np.ndarray | None = None) -> Path:
    """Write float pixels (H x W x C in [0, 1]) as a PNG through restore's own writer."""
    from restore.io.images import Image, write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(pixels=pixels, alpha=alpha, bit_depth=bit_depth, transfer="srgb"))
    return path


def smooth_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth colour test image: gradients plus a few soft blobs, H x W x C float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = []
    for c in range(channels):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.3 * max(height, width)) ** 2))
        planes.append(0.2 + 0.5 * blob + 0.3 * (x / max(width - 1, 1)) * (c % 2) + 0.3 * (y / max(height - 1, 1)) * (1 - c % 2))
    return np.clip(np.stack(planes, axis=-1), 0, 1).astype(np.float32)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Five small smooth colour photos in a folder: training data for a few steps."""
    folder = tmp_path / "photos"
    for i in range(5):
        write_png(folder / f"{i}.png", smooth_image(48, 56, seed=i))
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small random-weight model files: colour and gray U-Net denoisers and a 1-block EDSR x2 upscaler."""
    import torch

    from restore.archs import build, create
    from restore.modelfile import ModelInfo, save_model_file

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    unet = create("n2n_unet")
    gray = create("n2n_unet_gray")
    edsr = build("edsr", {"scale": 2, "n_resblocks": 1, "n_feats": 8})
    paths = {}
    for name, network, task in (("denoiser", unet, "denoise"), ("gray", gray, "denoise"), ("upscaler", edsr, "upscale")):
        info = ModelInfo(
            name=f"tiny-{name}",
            architecture=network.architecture,
            config=network.config_dict(),
            task=task,
            scales=list(network.scales),
            channels=network.in_channels,
        )
        paths[name] = folder / f"tiny-{name}.safetensors"
        save_model_file(paths[name], network, info)
    return paths
