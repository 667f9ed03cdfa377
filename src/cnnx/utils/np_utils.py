"""Keras 2's `keras.utils.np_utils`, where course scripts import to_categorical from."""
from . import to_categorical

__all__ = ["to_categorical"]
