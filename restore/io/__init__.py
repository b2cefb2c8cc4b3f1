"""Files in and out: image formats (`images`), non-finite pixel repair (`nonfinite`) and data on
disk as tensors (`datasets`: image folders, MNIST, a render's buffers, noisy pairs)."""

from restore.io.images import FORMATS, MAX_PIXELS, Image, ImageError, read_image, write_image

__all__ = ["FORMATS", "MAX_PIXELS", "Image", "ImageError", "read_image", "write_image"]
