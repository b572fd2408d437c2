"""`Operation`, the base of symbolic ops, and `FunctionOp`, the node every Kestrel op records."""
from __future__ import annotations

from kestrel.layers.layer import Layer, register_layer
from kestrel.layers import naming


@register_layer()
class Operation(Layer):
    """Base class of an op that can run on tensors and on `KerasTensor`s.

    Subclasses implement `call(*args, **kwargs)`; symbolic calls infer the output spec by
    running `call` on placeholders unless `compute_output_spec` is overridden.
    """


@register_layer()
class FunctionOp(Operation):
    """A recorded call of a registered Kestrel op (`kestrel.ops.mean`, `x[:, 0]`, `x * 2`).

    The node keeps the call's arguments (tensors and constants alike); the config keeps only
    the op's name, so saved graphs reload through the op registry without running file code.

    Args:
        function: the op's registered name, e.g. `"concatenate"` or `"image.resize"`.
    """

    def __init__(self, function: str, **kwargs):
        kwargs.setdefault("name", naming.unique_name(function.split(".")[-1]))
        super().__init__(**kwargs)
        from kestrel.ops.dispatch import get_op

        self.function = function
        self._fn = get_op(function).raw
        self.built = True

    def call(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        """The op's own shape rule where it has one (`get_item`), else placeholder runs that
        also vary an unknown batch size."""
        from kestrel.layers import shape_inference
        from kestrel.ops.dispatch import get_op

        rule = getattr(get_op(self.function), "output_spec", None)
        spec = rule(*args, **kwargs) if rule is not None else None
        if spec is not None:
            return spec
        return shape_inference.infer_output_spec(self, args, kwargs, vary_batch=True)

    def get_config(self):
        return {**super().get_config(), "function": self.function}
