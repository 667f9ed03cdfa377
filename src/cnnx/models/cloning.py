"""clone_model and model_from_json: a model's architecture, rebuilt from its config."""
import json

from ..layers.base import REGISTRY

__all__ = ["clone_model", "model_from_json"]


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture and fresh weights (Keras's clone_model):
    rebuilt from model.get_config(), so that no layer or weight is shared.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> twin = cnnx.models.clone_model(model)   # the architecture, with fresh weights
    >>> twin.count_params() == model.count_params()
    True
    """
    from .._compat import refuse_unimplemented
    refuse_unimplemented("clone_model", input_tensors=(input_tensors, None),
                         clone_function=(clone_function, None))
    return type(model).from_config(_fresh_names(model.get_config()))


def _fresh_names(config):
    """The config as is: layer names stay (they are unique within the model)."""
    return json.loads(json.dumps(config))


def model_from_json(json_string, custom_objects=None):
    """The model a model.to_json() string describes (architecture only; the weights are
    freshly initialized).

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> again = cnnx.models.model_from_json(model.to_json())
    >>> [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    True
    """
    from .._compat import refuse_unimplemented
    refuse_unimplemented("model_from_json", custom_objects=(custom_objects, None))
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not a JSON string ({e})") from None
    if not isinstance(config, dict) or config.get("class_name") not in (
            "Sequential", "Model", "Functional"):
        raise ValueError("model_from_json: the JSON does not describe a Sequential model or "
                         "a Model")
    return REGISTRY.from_config(config)
