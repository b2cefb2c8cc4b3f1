"""Seconds per training step of a network in fp32 and in bf16 autocast on this CPU: the
measurement behind `restore train --precision auto` (which times the run's own network the same way);
each also with the network and batch laid out channels last (NHWC), which `--precision auto` times too.

    OMP_NUM_THREADS=2 python bench/train_speed.py                          # the U-Net, 16 x 3 x 64 x 64
    OMP_NUM_THREADS=2 python bench/train_speed.py --arch edsr_baseline_x2   # EDSR, 16 x 3 x 48 x 48 LR patches
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.archs import create  # noqa: E402
from restore.device import _time_training_step, cpu_name, cpu_precisions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="n2n_unet", help="a registered variant (restore.archs)")
    args = parser.parse_args()
    torch.manual_seed(0)
    network = create(args.arch).train()
    side = 48 if network.scales != (1,) else 64  # the patch sizes `restore train` uses for upscalers and denoisers
    batch = torch.rand(16, network.in_channels, side, side)
    shape = "x".join(map(str, batch.shape))
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.arch}, batch {shape}")
    print("best of 2 steps after a warm-up step (forward and backward)")
    nhwc_network = copy.deepcopy(network).to(memory_format=torch.channels_last)
    nhwc_batch = batch.contiguous(memory_format=torch.channels_last)
    for name in cpu_precisions():
        nchw = _time_training_step(network, batch, name == "bf16")
        nhwc = _time_training_step(nhwc_network, nhwc_batch, name == "bf16")
        print(f"{name}: {nchw:.2f} s per step, {nhwc:.2f} channels last")


if __name__ == "__main__":
    main()
