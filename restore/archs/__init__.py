"""Network architectures, one module per family, all reachable through one registry."""

from restore.archs import edsr, mnist, spandrel_net, unet  # noqa: F401  (importing registers them)
from restore.archs.registry import ARCHITECTURES, VARIANTS, Restorer, build, create

__all__ = ["ARCHITECTURES", "VARIANTS", "Restorer", "build", "create"]
