"""cnnx.models: Model (the functional API), Sequential, and saving and loading."""
from .cloning import clone_model, model_from_json
from .functional import Functional, Model
from .saving import load_model, save_model
from .sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "clone_model",
           "model_from_json"]
