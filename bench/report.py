"""What every result file under bench/results says about where it came from: the command that
wrote it, as typed from the repository root, and the machine it ran on. One home, so that every
table can be remade by the line above it and its timings read against the CPU that gave them."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

from restore.device import cpu_name


def command_line(script: str) -> str:
    """The command line that ran `script` (a bench script's __file__), in backticks:
    `python bench/NAME.py ARGS...`."""
    return f"`{' '.join(['python', f'bench/{Path(script).name}', *sys.argv[1:]])}`"


def machine() -> str:
    """This CPU's name (or its architecture), the threads torch runs on and torch's version."""
    return f"{cpu_name() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
