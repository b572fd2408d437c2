"""InputLayer and `Input()`: the entry points of a functional model."""
from __future__ import annotations

import warnings

from kestrel import config, ops
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, Node, is_string_dtype
from kestrel.layers import naming
from kestrel.variables import Variable


@register_layer()
class InputLayer(Layer):
    """The layer behind `Input()`: holds one symbolic tensor of a fixed shape and dtype.

    Args:
        shape: shape without the batch dimension, e.g. `(32,)`.
        batch_size: optional fixed batch size.
        dtype: input dtype, `"float32"` by default.
        sparse / ragged: Keras' flags for sparse / ragged inputs; only falsy values (torch
            tensors are dense).
        batch_shape: full shape including the batch dimension (instead of `shape`).
        name: layer name.
        optional: whether the model accepts `None` for this input (passed on to the layers
            that read it, which must handle it).
        input_tensor: a symbolic tensor to become this input (as Keras 3), or a real tensor,
            array or variable that feeds it (as Keras 2's `Input(tensor=...)`): a graph that
            reaches this input without it being fed reads that value.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None,
                 batch_shape=None, input_tensor=None, optional=False, name=None,
                 batch_input_shape=None, **kwargs):
        if "input_shape" in kwargs:  # Keras 2's name for `shape`
            warnings.warn("Argument `input_shape` is deprecated. Use `shape` instead.")
            shape = kwargs.pop("input_shape")
        tensor_name = name  # an unnamed Input's tensor is `keras_tensor[_N]`, as Keras
        name = name or naming.unique_name("input_layer")
        string = is_string_dtype(dtype)
        for flag, value in (("sparse", sparse), ("ragged", ragged)):
            if value:
                raise ValueError(f"`{flag}=True` is not supported with the torch backend")
        super().__init__(name=name, **kwargs)  # its dtype policy is the global one, as Keras'
        self.optional = bool(optional)
        batch_shape = batch_shape if batch_shape is not None else batch_input_shape
        if isinstance(shape, int):
            shape = (shape,)
        self.constant = None
        if input_tensor is not None:
            input_tensor = self._take_tensor(input_tensor, shape, batch_size, batch_shape)
            batch_shape, dtype = tuple(input_tensor.shape), input_tensor.dtype
        if batch_shape is None:
            if shape is None:
                raise ValueError(
                    f"InputLayer '{name}' needs a shape. You must pass `shape` or `batch_shape`. "
                    f"Received: shape={shape}, batch_shape={batch_shape}")
            batch_shape = (batch_size,) + tuple(shape)
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self._input_dtype = "string" if string else config.dtype_name(config.to_torch_dtype(dtype))
        self.built = True
        tensor = input_tensor if isinstance(input_tensor, KerasTensor) else KerasTensor(
            self.batch_shape, self._input_dtype,
            name=tensor_name or naming.unique_name("keras_tensor"))
        node = Node(self, (), {}, tensor)
        self._inbound_nodes.append(node)
        tensor._keras_history = (self, 0, 0)
        self.output_tensor = tensor

    def _take_tensor(self, input_tensor, shape, batch_size, batch_shape):
        """`input_tensor` checked against the shapes also given (`None` matches any size);
        a real value is kept in `self.constant` (a variable as is, so it is read live)."""
        if not isinstance(input_tensor, KerasTensor):
            if not isinstance(input_tensor, Variable):
                input_tensor = ops.convert_to_tensor(input_tensor).detach()
            object.__setattr__(self, "constant", input_tensor)  # read, not a weight to track
        actual = tuple(input_tensor.shape)
        declared = batch_shape if batch_shape is not None else (
            None if shape is None else (batch_size,) + tuple(shape))
        if declared is not None and (len(declared) != len(actual) or any(
                d is not None and d != a for d, a in zip(declared, actual))):
            raise ValueError(
                f"InputLayer '{self.name}': when providing the `input_tensor` argument, you "
                f"cannot provide an incompatible `shape` argument. Received: shape {declared} "
                f"(batch included) for a tensor of shape {actual}")
        return input_tensor

    def call(self, inputs):
        return inputs

    @property
    def dtype(self) -> str:
        return self._input_dtype

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self._input_dtype,
                "sparse": False, "ragged": False, "name": self.name, "optional": self.optional}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
          name=None, tensor=None, optional=False, **kwargs) -> KerasTensor:
    """A symbolic input of `shape` (batch excluded): the start of a functional model.

    Example:
        >>> x = Input(shape=(32,))
        >>> x.shape
        (None, 32)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       ragged=ragged, batch_shape=batch_shape, input_tensor=tensor, name=name,
                       optional=optional, **kwargs)
    return layer.output_tensor
