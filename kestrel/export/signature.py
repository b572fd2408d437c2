"""Input signatures for export: which tensors a model takes, and example values of them.

A signature is a structure (one spec, a list, or a dict, as the model takes its inputs) of
`TensorSpec`s: a Keras shape (None for sizes fixed only at run time) and a dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kestrel import config
from kestrel.layers.node import flatten, map_structure

EXAMPLE_BATCH = 2  # torch.export specializes sizes 0 and 1, so a dynamic batch needs 2+
EXAMPLE_SIZE = 8  # stands in for other unknown sizes (e.g. a sequence length)


@dataclass(frozen=True)
class TensorSpec:
    """Shape (None = dynamic size) and dtype name of one model input."""

    shape: tuple
    dtype: str = "float32"
    name: str | None = None


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int)
                                                    for d in value)


def _to_spec(value) -> TensorSpec:
    """A spec from a KerasTensor, InputSpec, tensor, array, or a plain shape tuple."""
    if _is_shape(value):
        return TensorSpec(tuple(value))
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None:
        raise ValueError("Each entry of `input_signature` must be a shape tuple, a "
                         "KerasTensor, an InputSpec, a tensor or an array. "
                         f"Received: {value!r}")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        shape = (None,) + tuple(shape[1:])  # an example batch: keep the batch size dynamic
    dtype = config.dtype_name(config.to_torch_dtype(
        str(dtype).replace("torch.", "") if dtype is not None else "float32"))
    return TensorSpec(tuple(shape), dtype, getattr(value, "name", None))


def model_signature(model, input_signature=None):
    """The signature given by the user, else the one the model was built with.

    Like Keras, `input_signature` lists the positional arguments of the call, so a
    one-element list `[spec]` means the single input `spec`; `[[a, b]]` or `[a, b]` mean a
    list of two inputs, `{"name": spec}` a dict.
    """
    if input_signature is not None:
        if isinstance(input_signature, (list, tuple)) and len(input_signature) == 1 \
                and not _is_shape(input_signature):
            input_signature = input_signature[0]
        return _specs(input_signature)
    structure = getattr(model, "_inputs_struct", None)
    if structure is None and getattr(model, "inputs", None):
        structure = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    if structure is not None:
        return map_structure(lambda t: TensorSpec(t.shape, t.dtype, t.name), structure)
    shapes = getattr(model, "_build_input_shape", None)
    if shapes is None or not model.built:
        raise ValueError(f"Cannot export model '{model.name}': it has not been built, so its "
                         "input shapes are unknown. Call it on a batch of data or "
                         "`model.build(input_shape)` first, or pass `input_signature`.")
    # A subclassed model remembers the shapes of its first call: free the batch size.
    return map_structure(lambda s: TensorSpec((None,) + s.shape[1:], s.dtype),
                         _specs(shapes))


def _specs(structure):
    if _is_shape(structure):
        return _to_spec(structure)
    if isinstance(structure, dict):
        return {k: _specs(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_specs(v) for v in structure]
    return _to_spec(structure)


def example_inputs(signature, device) -> tuple[torch.Tensor, ...]:
    """Zeros for every spec, flat: batch `EXAMPLE_BATCH`, other unknown sizes `EXAMPLE_SIZE`."""
    def zeros(spec: TensorSpec) -> torch.Tensor:
        shape = [d if d is not None else (EXAMPLE_BATCH if i == 0 else EXAMPLE_SIZE)
                 for i, d in enumerate(spec.shape)]
        return torch.zeros(shape, dtype=config.to_torch_dtype(spec.dtype), device=device)
    return tuple(zeros(spec) for spec in flatten(signature))


def input_names(signature) -> list[str]:
    specs = flatten(signature)
    keys = list(signature) if isinstance(signature, dict) else [None] * len(specs)
    return [key or spec.name or f"input_{i}" for i, (key, spec) in enumerate(zip(keys, specs))]


def dynamic_dims(signature) -> list[dict[int, str]]:
    """Per flat input, `{axis: name}` of its unknown sizes (the batch axis is `"batch"`)."""
    return [{i: "batch" if i == 0 else f"dim_{n}_{i}" for i, d in enumerate(spec.shape)
             if d is None} for n, spec in enumerate(flatten(signature))]


class FlatModel(nn.Module):
    """Takes the model's inputs as flat positional tensors; returns a tensor or a flat tuple."""

    def __init__(self, model, signature):
        super().__init__()
        self.model = model
        self.signature = signature

    def forward(self, *tensors):
        values = iter(tensors)
        inputs = map_structure(lambda _: next(values), self.signature)
        outputs = flatten(self.model(inputs, training=False))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
