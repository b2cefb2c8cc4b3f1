"""Seconds per training step of the U-Net in fp32 and in bf16 autocast on this CPU: the
measurement behind `restore train --precision auto` (which times the run's own network the same way);
each also with the network and batch laid out channels last (NHWC), which `--precision auto` times too.

    OMP_NUM_THREADS=1 python bench/train_speed.py
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.archs import create  # noqa: E402
from restore.device import _time_training_step, cpu_name, cpu_precisions  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    network = create("n2n_unet").train()
    batch = torch.rand(16, 3, 64, 64)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, n2n_unet, batch 16x3x64x64")
    print("best of 2 steps after a warm-up step (forward and backward)")
    nhwc_network = copy.deepcopy(network).to(memory_format=torch.channels_last)
    nhwc_batch = batch.contiguous(memory_format=torch.channels_last)
    for name in cpu_precisions():
        nchw = _time_training_step(network, batch, name == "bf16")
        nhwc = _time_training_step(nhwc_network, nhwc_batch, name == "bf16")
        print(f"{name}: {nchw:.2f} s per step, {nhwc:.2f} channels last")


if __name__ == "__main__":
    main()
