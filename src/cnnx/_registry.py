"""Registries: the classes of one kind (layers, losses, metrics, optimizers,
initializers, regularizers, activations) by name, filled by a decorator where each
class is defined. What `get("adam")` and the loader accept is exactly what is
registered; an unknown name is an error that lists the known ones."""

__all__ = ["Registry"]


class Registry:
    def __init__(self, kind):
        self.kind = kind
        self._by_class = {}   # the class's own name: what configs and files hold
        self._by_name = {}    # Keras's string identifiers ("adam", "mse"), lower-case

    def register(self, *names, class_names=()):
        """Decorator: registers the class (or object with a __name__) under its own name
        and under each of `names`; `class_names` are further names a config may give
        its class (Keras's "Functional" for Model)."""
        def add(obj):
            self._by_class[obj.__name__] = obj
            for name in class_names:
                self._by_class[name] = obj
            for name in names:
                self._by_name[name.lower()] = obj
            return obj
        return add

    def by_name(self, identifier):
        """The entry a string identifier names: a Keras name ("adam"), or the class name
        ("Adam")."""
        found = self._by_name.get(identifier.lower()) or self._by_class.get(identifier)
        if found is None:
            raise ValueError(f"Unknown {self.kind} {identifier!r}; expected one of "
                             f"{sorted(self._by_name) or sorted(self._by_class)}")
        return found

    def by_class_name(self, class_name):
        """The class a config's "class_name" names."""
        found = self._by_class.get(class_name) if isinstance(class_name, str) else None
        if found is None:
            raise ValueError(f"Unknown {self.kind} class {class_name!r}; cnnx knows "
                             f"{sorted(self._by_class)}")
        return found

    def from_config(self, config):
        """An instance from {"class_name": ..., "config": {...}}."""
        if not isinstance(config, dict):
            raise ValueError(f"A {self.kind} config must be an object with class_name and "
                             f"config, received {type(config).__name__}")
        cls = self.by_class_name(config.get("class_name"))
        inner = config.get("config", {})
        if not isinstance(inner, dict):
            raise ValueError(f"The config of {self.kind} {cls.__name__} must be an object")
        return cls.from_config(dict(inner))

    def classes(self):
        return list({id(c): c for c in self._by_class.values()}.values())

    def __contains__(self, name):
        return name in self._by_class or (isinstance(name, str) and
                                          name.lower() in self._by_name)
