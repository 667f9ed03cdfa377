"""cnnx.layers: Keras-compatible layers."""
from .base import REGISTRY, KerasTensor, Layer, Variable, clear_session
from .convolutional import Conv2D, Convolution2D
from .core import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    LeakyReLU,
    ReLU,
    Reshape,
    Softmax,
)
from .normalization import BatchNormalization
from .pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "Conv2D", "Convolution2D",
           "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Dense", "Dropout",
           "Reshape", "Activation", "ReLU", "LeakyReLU", "Softmax", "BatchNormalization",
           "clear_session", "get", "serialize", "deserialize"]



def serialize(layer):
    return {"module": "cnnx.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(),
            "build_config": ({"input_shape": list(layer.input_shape)} if layer.built
                             and layer.input_shape is not None else None)}


def deserialize(config):
    layer = REGISTRY.from_config(config)
    build = config.get("build_config")
    if build and build.get("input_shape") is not None:
        layer._build_once(tuple(build["input_shape"]))
    return layer
