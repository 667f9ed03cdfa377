"""cnnx.models: Sequential, load_model."""
from .saving import load_model, save_model
from .sequential import Sequential

__all__ = ["Sequential", "load_model", "save_model"]
