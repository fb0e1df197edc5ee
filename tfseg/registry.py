"""Small name -> builder registries, with metadata.

A registry maps snake_case names to builder functions. Registration may carry metadata that the rest
of tfseg reads instead of guessing it back from a built graph:

    @MODELS.register("enet", stride=8, paper="ENet (Paszke et al., 2016)")
    def enet(inputs, num_classes, *, name="enet"): ...

    MODELS.info("enet").stride   # 8

Registering a name twice raises, and looking up an unknown name raises a ``KeyError`` whose message
lists the valid choices, so a typo fails loudly and early.
"""

import dataclasses
import inspect
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Info:
    """What a registration says about its builder.

    Attributes:
      name: the registered name.
      fn: the builder.
      stride: input-size multiple a complete network needs (``MODELS``; 32 if not given).
      encoder_output_stride: what a decoder asks of its encoder (``DECODERS``; 32, or 8/16 for the
        dilated ones).
      paper: short citation for the model table.
      default_encoder: the encoder a complete network uses when none is given (zoo networks built
        on an ImageNet encoder).
      features: ``{stride: layer name}`` feature maps of a complete network that heads (e.g. the
        instance head) can attach to.
      heads: names of the extra outputs the builder can return besides the logits (``"aux"``,
        ``"detail"``).
      extra: anything else given as a keyword at registration.
    """

    name: str
    fn: Any
    stride: int = 32
    encoder_output_stride: int = 32
    paper: str = ""
    default_encoder: Optional[str] = None
    features: dict = dataclasses.field(default_factory=dict)
    heads: tuple = ()
    extra: dict = dataclasses.field(default_factory=dict)

    def accepted_kwargs(self):
        """Keyword-only parameter names of the builder (``None`` if it takes ``**kwargs``)."""
        params = inspect.signature(self.fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY)


_FIELDS = {f.name for f in dataclasses.fields(Info)} - {"name", "fn", "extra"}


class Registry:
    """A named mapping from string keys to callables, filled with the ``register`` decorator."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name, **metadata):
        """Decorator: ``@ENCODERS.register("mobilenet")``; keywords become the entry's ``Info``."""

        def decorator(fn):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            known = {k: v for k, v in metadata.items() if k in _FIELDS}
            extra = {k: v for k, v in metadata.items() if k not in _FIELDS}
            if "heads" in known:
                known["heads"] = tuple(known["heads"])
            self._items[name] = Info(name=name, fn=fn, extra=extra, **known)
            return fn

        return decorator

    def unregister(self, name):
        """Remove ``name`` (for throwaway registrations in tests); a KeyError if it is unknown."""
        self.info(name)
        del self._items[name]

    def info(self, name):
        """The ``Info`` of ``name``; an unknown name raises a KeyError listing the choices."""
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name):
        """The builder registered as ``name``."""
        return self.info(name).fn

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __len__(self):
        return len(self._items)


def check_kwargs(info, kwargs, what):
    """Raise a ValueError naming any key of ``kwargs`` that ``info``'s builder does not accept."""
    accepted = info.accepted_kwargs()
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{what} {info.name!r} does not accept {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(a for a in accepted if a != 'name') or 'none'}"
        )


ENCODERS = Registry("encoder")
DECODERS = Registry("decoder")
MODELS = Registry("model")
HEADS = Registry("head")
DATASETS = Registry("dataset")
TASKS = Registry("task")  # tfseg.tasks: semantic, instance
