"""Small name -> builder registries.

A registry maps snake_case names to builder functions. Registering a name twice raises, and looking
up an unknown name raises a ``KeyError`` whose message lists the valid choices, so a typo fails
loudly and early.
"""


class Registry:
    """A named mapping from string keys to callables, filled with the ``register`` decorator."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name):
        """Decorator: ``@ENCODERS.register("mobilenet")``."""

        def decorator(fn):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = fn
            return fn

        return decorator

    def get(self, name):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __len__(self):
        return len(self._items)


ENCODERS = Registry("encoder")
DECODERS = Registry("decoder")
MODELS = Registry("model")
DATASETS = Registry("dataset")
