"""cnnx.layers: Keras-compatible layers."""
from .base import REGISTRY, Context, KerasTensor, Layer, Node, Variable, clear_session
from .convolutional import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Convolution2D,
    DepthwiseConv2D,
    SeparableConv2D,
)
from .core import (
    ELU,
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    Lambda,
    LeakyReLU,
    PReLU,
    ReLU,
    Reshape,
    Softmax,
)
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization, GroupNormalization, LayerNormalization
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .preprocessing import (
    CenterCrop,
    Normalization,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
    Resizing,
)
from .regularization import (
    ActivityRegularization,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout2D,
)
from .reshaping import Cropping2D, Permute, RepeatVector, UpSampling2D, ZeroPadding2D

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "Conv2D", "Convolution2D",
           "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv1D",
           "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D",
           "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Dense", "Dropout",
           "Reshape", "Lambda", "Activation", "ReLU", "LeakyReLU", "Softmax", "BatchNormalization",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
           "LayerNormalization", "GroupNormalization", "ELU", "PReLU", "UpSampling2D",
           "ZeroPadding2D", "Cropping2D", "Permute",
           "RepeatVector", "GaussianNoise", "GaussianDropout", "SpatialDropout2D",
           "ActivityRegularization",
           "Rescaling", "Resizing", "Normalization", "CenterCrop", "RandomFlip", "RandomRotation",
           "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness", "RandomCrop",
           "Node", "Context", "clear_session", "serialize", "deserialize"]



def serialize(layer):
    """The layer as a JSON-able config: {module, class_name, config, build_config}.

    >>> config = cnnx.layers.serialize(cnnx.layers.Dense(3, name="head"))
    >>> config["class_name"], config["config"]["units"]
    ('Dense', 3)
    """
    return {"module": "cnnx.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(),
            "build_config": layer._build_config()}


def deserialize(config):
    """The layer a serialize() config describes, built when the config says how.

    >>> config = cnnx.layers.serialize(cnnx.layers.Dense(3, name="head"))
    >>> layer = cnnx.layers.deserialize(config)
    >>> type(layer).__name__, layer.units, layer.name
    ('Dense', 3, 'head')
    """
    layer = REGISTRY.from_config(config)
    build = config.get("build_config")
    if isinstance(build, dict) and build.get("input_shape") is not None:
        shape = build["input_shape"]
        layer._build_once([tuple(s) for s in shape] if shape and isinstance(shape[0], list)
                          else tuple(shape))
    return layer
