"""Keras 2 module paths (`keras.layers.recurrent`, `keras.utils.np_utils`, `keras.engine`, ...)
as lazy aliases of the modules that hold those names today.

One table; an import hook creates an alias module on first import, and each name is looked up
in the alias' target modules when first read. Nothing is imported at `import kestrel`.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

_LAYERS = ("kestrel.layers",)
ALIASES: dict[str, tuple[str, ...]] = {
    **{f"kestrel.layers.{name}": _LAYERS for name in (
        "recurrent", "convolutional_recurrent", "embeddings", "merge", "noise", "wrappers",
        "advanced_activations", "local", "cudnn_recurrent", "dense_attention",
        "recurrent_v2", "serialization")},
    "kestrel.layers.experimental": ("kestrel.layers.core.random_fourier_features",
                                    "kestrel.layers"),
    "kestrel.layers.experimental.preprocessing": _LAYERS,
    "kestrel.utils.np_utils": ("kestrel.utils",),
    "kestrel.utils.vis_utils": ("kestrel.utils",),
    "kestrel.utils.generic_utils": ("kestrel.utils", "kestrel.saving",
                                    "kestrel.utils.keras2_helpers"),
    "kestrel.utils.layer_utils": ("kestrel.utils", "kestrel.utils.keras2_helpers"),
    "kestrel.utils.conv_utils": ("kestrel.utils.keras2_helpers",),
    "kestrel.objectives": ("kestrel.losses",),
    "kestrel.utils.io_utils": ("kestrel.utils",),
    "kestrel.utils.training_utils": ("kestrel.utils.multi_gpu_utils",),  # Keras 2.0.9-2.1.4
    "kestrel.engine": ("kestrel.models", "kestrel.layers"),
    "kestrel.engine.topology": ("kestrel.models", "kestrel.layers", "kestrel.utils"),
    "kestrel.engine.training": ("kestrel.models",),
    "kestrel.engine.functional": ("kestrel.models",),
    "kestrel.engine.sequential": ("kestrel.models",),
    "kestrel.engine.input_layer": ("kestrel.layers",),
    "kestrel.engine.base_layer": ("kestrel.layers",),
}

# Keras 2.0-2.1's `keras.layers.merge` was both the module and Keras 1's `merge` function
CALLABLE = {"kestrel.layers.merge": ("kestrel.layers.merging.keras1_merge", "merge")}


def child_alias(package: str, name: str):
    """The alias module `package.name`, imported on first use, or None if there is none:
    Keras 2 code reads these as attributes (`keras.utils.np_utils.to_categorical(y)`)."""
    full = f"{package}.{name}"
    return importlib.import_module(full) if full in ALIASES else None


class AliasModule(types.ModuleType):
    """A module whose attributes are read from its target modules on first access."""

    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Keras 2 path; names come from {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        child = child_alias(self.__name__, attr)  # before the targets' own submodules
        if child is not None:
            return child
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                value = getattr(module, attr)
                setattr(self, attr, value)
                return value
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r} (Kestrel "
                             f"looks it up in {', '.join(self._targets)})")

    def __dir__(self):
        names = set()
        for target in self._targets:
            names |= {n for n in dir(importlib.import_module(target)) if not n.startswith("_")}
        return sorted(names)


class CallableAliasModule(AliasModule):
    """An alias module that can also be called, as the function of `CALLABLE`."""

    def __call__(self, *args, **kwargs):
        module, name = CALLABLE[self.__name__]
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in ALIASES:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module_class = CallableAliasModule if spec.name in CALLABLE else AliasModule
        return module_class(spec.name, ALIASES[spec.name])

    def exec_module(self, module):
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
