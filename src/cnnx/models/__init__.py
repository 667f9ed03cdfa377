"""cnnx.models: Sequential, Model, load_model."""
from .saving import load_model, save_model
from .sequential import Model, Sequential

__all__ = ["Sequential", "Model", "load_model", "save_model"]
