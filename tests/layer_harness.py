"""One shared check for every layer: shapes, weights, config round trip, gradients.

    run_layer_test(Dense, {"units": 4}, input_shape=(2, 3), expected_output_shape=(2, 4),
                   expected_num_trainable_weights=2)
"""
from __future__ import annotations

import json

import numpy as np
import torch

from kestrel.layers.node import KerasTensor, flatten, map_structure


def _make_input(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    if dtype.startswith("int"):
        return torch.randint(0, 5, shape, generator=gen, dtype=getattr(torch, dtype))
    return torch.randn(shape, generator=gen, dtype=getattr(torch, dtype))


def _expected_shapes(shape):
    if shape is None:
        return None
    if shape and isinstance(shape[0], (tuple, list)):
        return [tuple(s) for s in shape]
    return [tuple(shape)]


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape=None,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   input_dtype="float32", input_data=None, call_kwargs=None,
                   supports_training=True, run_training_check=True):
    """Build `layer_cls(**init_kwargs)` and check it the way every Kestrel layer must behave.

    `input_shape` may be a tuple or a list of tuples (several inputs). Returns the eager output.
    """
    call_kwargs = call_kwargs or {}
    multi = isinstance(input_shape, list)
    shapes = input_shape if multi else [input_shape]
    if input_data is None:
        data = [_make_input(tuple(s), input_dtype, i) for i, s in enumerate(shapes)]
        input_data = data if multi else data[0]

    # 1. Symbolic call: output shape inferred without data.
    layer = layer_cls(**init_kwargs)
    symbolic = [KerasTensor((None,) + tuple(s[1:]), input_dtype) for s in shapes]
    sym_out = layer(symbolic if multi else symbolic[0], **call_kwargs)
    expected = _expected_shapes(expected_output_shape)
    if expected is not None:
        got = [t.shape[1:] for t in flatten(sym_out)]
        assert got == [e[1:] for e in expected], (got, expected)

    # 2. Eager call on real data, output shape exact.
    out = layer(input_data, **call_kwargs)
    if expected is not None:
        assert [tuple(t.shape) for t in flatten(out)] == expected

    # 3. Weight counts.
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    # 4. Config round trip (through JSON) + same weights -> same outputs.
    config = json.loads(json.dumps(layer.get_config()))
    clone = layer_cls.from_config(config)
    clone(input_data, **call_kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(flatten(layer(input_data, **call_kwargs)),
                    flatten(clone(input_data, **call_kwargs))):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)
    for w, v in zip(layer.get_weights(), clone.get_weights()):
        assert w.shape == v.shape

    # 5. Gradients reach every trainable weight.
    if run_training_check and layer.trainable_weights:
        layer.train()
        outs = flatten(layer(input_data, training=True, **call_kwargs)
                       if supports_training else layer(input_data, **call_kwargs))
        total = sum((o.float() ** 2).mean() for o in outs if o.is_floating_point())
        total.backward()
        for weight in layer.trainable_weights:
            assert weight.grad is not None, f"no gradient for a weight of {layer.name}"
        layer.eval()
    return out
