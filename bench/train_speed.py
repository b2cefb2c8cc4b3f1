"""Seconds per training step of the U-Net in fp32 and in bf16 autocast on this CPU: the
measurement behind `restore train --precision auto` (which times the run's own network the same way).

    OMP_NUM_THREADS=1 python bench/train_speed.py
"""

from __future__ import annotations

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
    for name in cpu_precisions():
        print(f"{name}: {_time_training_step(network, batch, name == 'bf16'):.2f} s per step")


if __name__ == "__main__":
    main()
