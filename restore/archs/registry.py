"""One registry from architecture name to network class and config, timm style.

A model file stores the architecture name and its config as JSON; `build` turns the pair back
into a network. Variants ("n2n_unet", "edsr_baseline_x2", ...) are small registered
constructors that fill in a config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn


class Restorer(nn.Module):
    """Base class of every network: declares what the tiling engine needs to run it.

    Subclasses set `architecture` and `config_class` as class attributes and fill the instance
    attributes in `__init__`.
    """

    architecture: ClassVar[str]
    # True when the weights define the network's shape (spandrel's networks): the file's
    # tensors are then not checked against a network built from the config alone.
    built_from_weights: ClassVar[bool] = False
    # True when the input ends with a noise-level channel (FFDNet's noise map): the network
    # then offers estimate_level(), and callers append the map (restore.api.run_model).
    takes_noise_level: ClassVar[bool] = False
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.in_channels: int = 3
        self.out_channels: int = 3
        # Scale of the output relative to the input (1 for denoisers).
        self.scale: int = 1
        # Scales the network can produce (MDSR holds several and switches with select_scale).
        self.scales: tuple[int, ...] = (1,)
        # Tile origins must lie on this grid so that pooling sees the same windows as on the
        # whole image; inputs must have H and W divisible by it when `pads_input` is False.
        self.size_multiple: int = 1
        # True when forward() pads any H x W itself (U-Net), False when the input must already be
        # a multiple of size_multiple (the MNIST networks work on 28 x 28 digit cells).
        self.pads_input: bool = True
        # Input pixels on each side that can change an output pixel: the tile margin.
        self.receptive_margin: int = 0
        # False when no margin makes tiles match the whole image: run it whole.
        self.tileable: bool = True
        # Rough peak number of activation floats per input pixel in inference; the tile size is
        # chosen from it and the memory budget.
        self.floats_per_pixel: int = 256

    def select_scale(self, scale: int) -> None:
        """Make forward() produce `scale`; only multi-scale networks accept more than one."""
        if scale not in self.scales:
            raise ValueError(f"{self.architecture} produces x{'/x'.join(map(str, self.scales))}, not x{scale}")
        self.scale = scale

    def extra_loss(self) -> torch.Tensor | None:
        """A loss the network computed in its last training forward besides the output's (a
        level estimator's), added by the training loop; None for most networks."""
        return None

    def weights_from(self, source: nn.Module) -> dict[str, torch.Tensor]:
        """`source`'s weights under this network's names, for a warm start from another network
        (restore.training.loop copies those whose names and shapes match): as they are for most."""
        return source.state_dict()

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The parameters as optimizer groups, each with an `lr_scale` on the run's learning rate:
        one group for most networks."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def config_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able data, stored in model files."""
        return dataclasses.asdict(self.config)


R = TypeVar("R", bound=type[Restorer])

ARCHITECTURES: dict[str, type[Restorer]] = {}
VARIANTS: dict[str, Callable[..., Restorer]] = {}


def register_architecture(cls: R) -> R:
    """Class decorator: make an architecture buildable by name from a model file."""
    ARCHITECTURES[cls.architecture] = cls
    return cls


def register_variant(fn: Callable[..., Restorer]) -> Callable[..., Restorer]:
    """Function decorator: register a named constructor such as `edsr_baseline_x2`."""
    VARIANTS[fn.__name__] = fn
    return fn


def build(architecture: str, config: dict[str, Any]) -> Restorer:
    """Rebuild a network from its architecture name and config dict (as stored in a model file)."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture '{architecture}' (known: {', '.join(sorted(ARCHITECTURES))})") from None
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"unknown config fields for {architecture}: {', '.join(sorted(unknown))}")
    return cls(cls.config_class(**config))


def create(variant: str, **overrides: Any) -> Restorer:
    """Construct a registered variant, e.g. `create("n2n_unet", in_channels=1, out_channels=1)`."""
    try:
        fn = VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant '{variant}' (known: {', '.join(sorted(VARIANTS))})") from None
    return fn(**overrides)
