"""cnnx.preprocessing: the image pipeline of Keras 2 (ImageDataGenerator and friends), and
`image_dataset_from_directory`, which tutorials import from here as well as from utils."""
from . import image
from .image import image_dataset_from_directory

__all__ = ["image", "image_dataset_from_directory"]
