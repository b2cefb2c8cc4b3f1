"""Spec strings to noise models: one table row per family, `name:PARAM[,PARAM]`, plus `mix`.

Adding a noise family is one class (in models.py or corruptions.py) and one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from restore.noise.corruptions import BlockMask, GaussianBlur, MixedCorruption, PixelErasure
from restore.noise.models import (
    CorrelatedGaussianNoise,
    EightBitGaussianNoise,
    GaussianNoise,
    PhotoNoise,
    PoissonGaussianNoise,
    PoissonNoise,
)
from restore.noise.params import NoiseModel, parse_param


@dataclass(frozen=True)
class Family:
    """A kind of noise or corruption a spec names: `name:PARAM,...`, each a number or a range LOW-HIGH."""

    name: str
    params: tuple[str, ...]  # the parameter names, in the order the spec and the constructor take them
    build: Callable[..., NoiseModel]
    optional: tuple[str, ...] = ()  # trailing parameters a spec may leave out (the constructor's defaults)

    @property
    def usage(self) -> str:
        return f"{self.name}:{','.join(self.params)}" + "".join(f"[,{name}]" for name in self.optional)


FAMILIES: tuple[Family, ...] = (
    Family("gaussian", ("SIGMA",), GaussianNoise),
    Family("gaussian8", ("SIGMA",), EightBitGaussianNoise),
    Family("poisson", ("LAMBDA",), PoissonNoise),
    Family("poisson-gaussian", ("LAMBDA", "READ"), PoissonGaussianNoise),
    Family("correlated", ("SIGMA", "BLUR"), CorrelatedGaussianNoise),
    Family("photo", ("SHOT", "QUALITY"), PhotoNoise, optional=("COARSE", "BLUR", "GAMMA")),
    Family("erase", ("P",), PixelErasure),
    Family("blur", ("SIGMA",), GaussianBlur),
    Family("block", ("SIZE",), BlockMask),
)
_BY_NAME = {family.name: family for family in FAMILIES}
MIX_USAGE = "mix:SPEC|SPEC|..."


def parse_noise(spec: str) -> NoiseModel:
    """Build the noise model a spec string names; ``str()`` of the result gives the spec back.

    Args:
        spec: a row of FAMILIES, e.g. ``gaussian:25``, ``gaussian:0-50``,
            ``poisson-gaussian:30,5`` or ``photo:0.0001-0.012,70-99[,0-0.5[,0.3-0.8[,2.2-3]]]``, or ``mix:SPEC|SPEC|...``
            (each image gets one of the listed models; no nested mixes).

    Raises:
        ValueError: for an unknown family, a malformed or out-of-range parameter.
    """
    name, sep, args = spec.strip().partition(":")
    name = name.strip().lower()
    if sep and name == "mix":
        parts = [part.strip() for part in args.split("|")]
        if not all(parts):
            raise ValueError(f"empty entry in {spec!r} (expected {MIX_USAGE})")
        return MixedCorruption(tuple(parse_noise(part) for part in parts))
    family = _BY_NAME.get(name)
    if not sep or family is None:
        known = ", ".join(f.usage for f in FAMILIES)
        raise ValueError(f"unknown noise {spec!r} (expected {known} or {MIX_USAGE})")
    values = args.split(",")
    if not len(family.params) <= len(values) <= len(family.params) + len(family.optional):
        raise ValueError(f"noise spec {spec!r} needs {len(family.params)} parameter(s): {family.usage}")
    return family.build(*(parse_param(value, spec) for value in values))


def with_lossless_targets(noise: NoiseModel) -> NoiseModel:
    """`noise` with every photo family's Noise2Noise targets saved without JPEG compression
    (PhotoNoise.lossless_targets), inside a mix too; the other families are kept as they are.

    Raises:
        ValueError: `noise` holds no photo family, so the option would change nothing.
    """
    if isinstance(noise, PhotoNoise):
        return replace(noise, lossless_targets=True)
    if isinstance(noise, MixedCorruption) and any(isinstance(choice, PhotoNoise) for choice in noise.choices):
        return MixedCorruption(tuple(with_lossless_targets(c) if isinstance(c, PhotoNoise) else c for c in noise.choices))
    raise ValueError(f"lossless targets change photo noise's JPEG, and '{noise}' has no photo family")
