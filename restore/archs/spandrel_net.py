"""Community networks (ESRGAN, SwinIR, DRUNet, SCUNet, ...) through spandrel (extra restore-images[spandrel]).

spandrel rebuilds a network from its weights alone (it reads the hyperparameters off the
tensor shapes), so this architecture's config holds what restore's tiler needs instead: the
scale, channels, grid, and the receptive margin measured at import. The network is built when
its weights are loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from restore.archs.registry import Restorer, register_architecture


@dataclass
class SpandrelConfig:
    arch: str = ""  # spandrel's architecture id, e.g. "ESRGAN"
    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1  # spandrel pads the bottom and right edges up to it (mirrored)
    receptive_margin: int = 0  # measured at import (restore.interop.importer)
    tileable: bool = True  # False: spandrel advises against tiling, or the field has no bound
    floats_per_pixel: int = 256


def describe(state_dict: Mapping[str, torch.Tensor]) -> Any:
    """spandrel's descriptor (network and its needs) for a state dict; ValueError if it knows none."""
    try:
        import spandrel  # the optional extra: only a spandrel model file needs it
    except ImportError:
        raise ValueError("this model runs through spandrel: pip install 'restore-images[spandrel]'") from None

    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
    except spandrel.UnsupportedModelError:
        raise ValueError("spandrel recognises no architecture in these weights") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f"{descriptor.architecture.id} takes an image and a mask; restore runs image-to-image networks")
    return descriptor


@register_architecture
class SpandrelNet(Restorer):
    architecture = "spandrel"
    config_class = SpandrelConfig
    built_from_weights = True

    def __init__(self, config: SpandrelConfig) -> None:
        super().__init__(config)
        self.in_channels, self.out_channels = config.in_channels, config.out_channels
        self.scale, self.scales = config.scale, (config.scale,)
        self.size_multiple = config.size_multiple
        self.receptive_margin = config.receptive_margin
        self.tileable = config.tileable
        self.floats_per_pixel = config.floats_per_pixel
        self.descriptor: Any = None
        self.inner: nn.Module | None = None

    def attach(self, descriptor: Any) -> None:
        """Hold spandrel's network; its weights become this module's `inner.*`."""
        if descriptor.architecture.id != self.config.arch:
            raise ValueError(f"the weights are a {descriptor.architecture.id} network, the config says {self.config.arch}")
        self.descriptor, self.inner = descriptor, descriptor.model

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        if self.inner is None:
            self.attach(describe({key.removeprefix("inner."): value for key, value in state_dict.items()}))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.descriptor is None:
            raise RuntimeError("a spandrel network is built by loading its weights")
        # The descriptor pads to the size requirements, adds inputs some networks take (DRUNet's
        # noise level map), clamps to [0, 1] and crops the padding off again.
        return self.descriptor(x)
