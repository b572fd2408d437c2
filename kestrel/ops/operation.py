"""`Operation`, the base of symbolic ops, and `FunctionOp`, the node every Kestrel op records."""
from __future__ import annotations

import functools
import inspect

from kestrel.layers.layer import Layer, register_layer
from kestrel.layers import naming


@register_layer()
class Operation(Layer):
    """Base class of an op that can run on tensors and on `KerasTensor`s.

    Subclasses implement `call(*args, **kwargs)`; symbolic calls infer the output spec by
    running `call` on placeholders unless `compute_output_spec` is overridden.
    """

    is_op_node = True  # listed in a model's `operations`, not in its `layers` (as Keras)
    _convert_input_args = False  # an op keeps its inputs' dtypes, as Keras' operations
    _warned_mask_dropped = True  # Keras' ops are no layers: a masked input draws no warning


@register_layer()
class FunctionOp(Operation):
    """A recorded call of a registered Kestrel op (`kestrel.ops.mean`, `x[:, 0]`, `x * 2`).

    The node keeps the call's tensors and positional arguments; keyword constants (`axis=1`)
    are bound to the op, as Keras binds them to its op class. Saved, it is that Keras op class
    (`{"module": "keras.src.ops.numpy", "class_name": "Mean", "config": {"name", "axis"}}`),
    so Keras reads Kestrel's graphs and Kestrel reads Keras', without running file code.

    Args:
        function: the op's registered name, e.g. `"concatenate"` or `"image.resize"`.
        bound: keyword arguments the op is always called with.
    """

    def __init__(self, function: str, bound: dict | None = None, **kwargs):
        if kwargs.get("name") is None:  # a loaded op keeps its name and takes no new one
            kwargs["name"] = naming.unique_name(function.split(".")[-1])
        super().__init__(**kwargs)
        from kestrel.ops.dispatch import get_op

        self.function = function
        self.bound = dict(bound or {})
        self._fn = get_op(function).raw
        self.built = True

    def call(self, *args, **kwargs):
        leading = _leading_parameters(self._fn)
        if leading and any(name in self.bound for name in leading):  # einsum(subscripts, *ops)
            bound = dict(self.bound)
            first = [bound.pop(name) for name in leading if name in bound]
            return self._fn(*first, *args, **bound, **kwargs)
        return self._fn(*args, **self.bound, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        """The op's own shape rule where it has one (`get_item`), else placeholder runs that
        also vary an unknown batch size."""
        from kestrel.layers import shape_inference
        from kestrel.ops.dispatch import get_op

        rule = getattr(get_op(self.function), "output_spec", None)  # get_item: no bound args
        spec = rule(*args, **self.bound, **kwargs) if rule is not None else None
        if spec is not None:
            return spec
        return shape_inference.infer_output_spec(self, args, kwargs, vary_batch=True)

    @property
    def keras_identity(self) -> tuple | None:
        """`(module, class_name)` of Keras' op class, or None where Keras has none."""
        from kestrel.ops import keras_names

        module = keras_names.keras_module(self.function)
        return None if module is None else (module, keras_names.keras_class_name(self.function))

    def get_config(self):
        if self.keras_identity is None:
            return {"name": self.name, "function": self.function, **self.bound}
        own_config = _KERAS_OWN_CONFIGS.get(self.function)
        if own_config is not None:
            try:
                return own_config(**self.bound)
            except TypeError:  # its arguments are not all bound: the plain form
                pass
        return {"name": self.name, **self.bound}

    @classmethod
    def from_keras(cls, entry: dict) -> "FunctionOp":
        """The op node of a saved graph entry: Keras' op classes and Kestrel's own forms."""
        from kestrel.ops import keras_names

        config = dict(entry.get("config") or {})
        name = config.pop("name", None)
        for key in ("trainable", "dtype"):  # written by earlier Kestrel versions
            if entry.get("class_name") == "FunctionOp" and isinstance(config.get(key), (bool, dict)):
                config.pop(key)
        if entry.get("class_name") == "FunctionOp":
            function = config.pop("function")
        else:
            function = keras_names.op_name_for(entry.get("class_name"), entry.get("module", ""))
        return cls(function, bound=config, name=name)


def _extract_patches_config(size, strides=None, dilation_rate=1, padding="valid",
                            data_format=None) -> dict:
    """Keras' ExtractPatches writes its resolved arguments, and no name."""
    from kestrel import config

    size = (size, size) if isinstance(size, int) else size
    return {"size": size, "strides": size if strides is None else strides,
            "dilation_rate": dilation_rate, "padding": padding,
            "data_format": config.standardize_data_format(data_format)}


# the Keras op classes with a `get_config` of their own (not the name and bound arguments)
_KERAS_OWN_CONFIGS = {"image.extract_patches": _extract_patches_config}


@functools.cache
def _leading_parameters(fn) -> tuple:
    """Parameters before a `*args` (they can only be passed positionally when it is used)."""
    names = []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return tuple(names)
        names.append(parameter.name)
    return ()
