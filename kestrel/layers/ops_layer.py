"""TensorOp: the layer recorded when symbolic tensors meet Python operators (`a + b`, `x[:, 0]`)."""
from __future__ import annotations

import operator

from kestrel.layers.layer import Layer, register_layer

_OPS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
        "divide": operator.truediv}


@register_layer()
class TensorOp(Layer):
    """Apply a Python operator to one or two tensors, optionally with a constant operand."""

    _convert_input_args = False  # an op keeps its inputs' dtypes, as Keras' operations

    def __init__(self, op: str, constant=None, constant_first: bool = False, key=None, **kwargs):
        super().__init__(**kwargs)
        if op not in _OPS and op != "getitem":
            raise ValueError(f"TensorOp '{self.name}': unknown op. Received: op={op!r}")
        self.op = op
        self.constant = constant
        self.constant_first = constant_first
        self.key = key

    def call(self, a, b=None):
        if self.op == "getitem":
            return a[self.key]
        fn = _OPS[self.op]
        if b is not None:
            return fn(a, b)
        return fn(self.constant, a) if self.constant_first else fn(a, self.constant)

    def get_config(self):
        if self.key is not None:
            raise NotImplementedError(
                f"TensorOp '{self.name}' (slicing a symbolic tensor) cannot be serialized; use a "
                "Lambda or a custom layer with get_config() instead.")
        return {**super().get_config(), "op": self.op, "constant": self.constant,
                "constant_first": self.constant_first}
