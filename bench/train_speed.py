"""Seconds per training step of a network in fp32 and in bf16 autocast on this CPU: the
measurement behind `restore train --precision auto` (which times the run's own network the same way);
each also with the network and batch laid out channels last (NHWC), which `--precision auto` times too.

    OMP_NUM_THREADS=2 python bench/train_speed.py                          # the U-Net, 16 x 3 x 64 x 64
    OMP_NUM_THREADS=2 python bench/train_speed.py --arch edsr_baseline_x2   # EDSR, 16 x 3 x 48 x 48 LR patches
    OMP_NUM_THREADS=1 python bench/train_speed.py --noise 'photo:0.0001-0.012,60-99' --patch 128
        # only: seconds to draw a batch of training crops with that noise, with the Noise2Noise
        # target and without it (an estimator-only run), on 40 training photos
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.archs import create  # noqa: E402
from restore.device import _time_training_steps, cpu_name, cpu_precisions  # noqa: E402
from restore.io.datasets import image_files, load_images  # noqa: E402
from restore.noise import NoiseModel, parse_noise  # noqa: E402
from restore.training.sources import NoisySource  # noqa: E402

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "CBSD400"


def time_batches(noise: NoiseModel, patch: int) -> None:
    """Print the seconds to draw a 16-crop batch with its level channel, with and without targets."""
    photos = load_images(image_files(TRAIN)[:40], 3)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, {noise}, 16 crops of {patch} x {patch}")
    print("mean of 10 batches after a warm-up batch")
    for targets in (True, False):
        source = NoisySource(photos, noise, patch, False, level_channel=True, draw_targets=targets)
        source.batch(16, torch.Generator().manual_seed(0))
        started = time.perf_counter()
        for seed in range(10):
            source.batch(16, torch.Generator().manual_seed(seed))
        what = "with the Noise2Noise target" if targets else "without it (an estimator-only run)"
        print(f"{(time.perf_counter() - started) / 10:.3f} s per batch {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="n2n_unet", help="a registered variant (restore.archs)")
    parser.add_argument("--noise", help="only time drawing batches of crops with this noise spec")
    parser.add_argument("--patch", type=int, default=64, help="the crops' side, with --noise")
    args = parser.parse_args()
    if args.noise:
        time_batches(parse_noise(args.noise), args.patch)
        return
    torch.manual_seed(0)
    network = create(args.arch).train()
    side = 48 if network.scales != (1,) else 64  # the patch sizes `restore train` uses for upscalers and denoisers
    batch = torch.rand(16, network.in_channels, side, side)
    shape = "x".join(map(str, batch.shape))
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.arch}, batch {shape}")
    print("best of 3 steps after a warm-up step (forward and backward), the settings taking turns")
    nhwc_network = copy.deepcopy(network).to(memory_format=torch.channels_last)
    nhwc_batch = batch.contiguous(memory_format=torch.channels_last)
    steps = {}
    for name in cpu_precisions():
        steps[name] = (network, batch, name == "bf16")
        steps[f"{name} channels last"] = (nhwc_network, nhwc_batch, name == "bf16")
    timings = _time_training_steps(steps)
    for name in cpu_precisions():
        print(f"{name}: {timings[name]:.2f} s per step, {timings[f'{name} channels last']:.2f} channels last")


if __name__ == "__main__":
    main()
