"""cnnx.preprocessing: the image pipeline of Keras 2 (ImageDataGenerator and friends)."""
from . import image

__all__ = ["image"]
