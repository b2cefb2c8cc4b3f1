"""The 8 symmetries of a square (flips and 90-degree rotations): training augmentation draws
one of them, and the geometric self-ensemble, the "+" of EDSR (Lim et al. 2017, section 4.3),
runs the network on all 8, maps each output back and averages them. The ensemble costs 8 runs
and gains a little PSNR because the network's errors differ between orientations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TRANSFORMS = 8


def dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """Transform `index` (0-7) of the last two dimensions: bit 2 transposes, bit 0 flips W, bit 1 flips H."""
    if index & 4:
        image = image.transpose(-1, -2)
    if index & 1:
        image = image.flip(-1)
    if index & 2:
        image = image.flip(-2)
    return image


def undo_dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of `dihedral(., index)`: the same steps in reverse order."""
    if index & 2:
        image = image.flip(-2)
    if index & 1:
        image = image.flip(-1)
    if index & 4:
        image = image.transpose(-1, -2)
    return image


def self_ensemble(run: Callable[[torch.Tensor, int], torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """Mean of undo(run(transform(image))) over the 8 transforms; `run` also gets the pass number."""
    total = torch.zeros(())
    for index in range(TRANSFORMS):
        output = run(dihedral(image, index).contiguous(), index)
        total = total + undo_dihedral(output, index)
    return total / TRANSFORMS
