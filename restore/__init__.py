"""restore: image restoration with networks that learn from degraded data alone.

import restore
model = restore.load("n2n-gaussian")
clean = restore.denoise(noisy, model)        # tensor C x H x W or array H x W x C in [0, 1]
big = restore.upscale(small, scale=2)
"""

from restore.api import InferenceOptions, Model, denoise, load, upscale

__version__ = "0.1.0"
__all__ = ["InferenceOptions", "Model", "__version__", "denoise", "load", "upscale"]
