"""Compare a Kestrel op with real Keras 3 (torch backend) on the same inputs.

    check_op("mean", x, axis=1)                 # values, dtype and shape
    check_symbolic("mean", (None, 3, 4), axis=1)  # output spec on KerasTensors

Inputs may be NumPy arrays, Python values or lists; each side converts them itself.
"""
from __future__ import annotations

import os

import numpy as np
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")


def keras():
    import keras as real_keras

    return real_keras


def _kestrel_fn(name: str):
    from kestrel import ops

    target = ops
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _keras_fn(name: str):
    target = keras().ops
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _numpy(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [_numpy(v) for v in value]
    return np.asarray(value)


def _dtype(value):
    if isinstance(value, torch.Tensor):
        return str(value.dtype).split(".")[-1]
    if isinstance(value, (list, tuple)):
        return [_dtype(v) for v in value]
    return type(value).__name__


def _copy(value):
    """Fresh copies so that neither side sees the other's in-place changes."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value


def check_op(name: str, *args, rtol: float = 1e-5, atol: float = 1e-6, check_dtype: bool = True,
             **kwargs):
    """Assert that `kestrel.ops.<name>` and `keras.ops.<name>` agree; returns Kestrel's output."""
    expected = _keras_fn(name)(*_copy(args), **_copy(kwargs))
    got = _kestrel_fn(name)(*_copy(args), **_copy(kwargs))
    _assert_same(name, got, expected, rtol, atol, check_dtype)
    return got


def _assert_same(name, got, expected, rtol, atol, check_dtype):
    if isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)), f"{name}: expected a sequence, got {type(got)}"
        assert len(got) == len(expected), f"{name}: {len(got)} outputs, Keras {len(expected)}"
        for g, e in zip(got, expected):
            _assert_same(name, g, e, rtol, atol, check_dtype)
        return
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{name}: expected a tensor, got {type(got)}"
    if check_dtype:
        assert _dtype(got) == _dtype(expected), \
            f"{name}: dtype {_dtype(got)}, Keras {_dtype(expected)}"
    g, e = _numpy(got), _numpy(expected)
    assert g.shape == e.shape, f"{name}: shape {g.shape}, Keras {e.shape}"
    if e.dtype.kind in "fc":
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(g, e, err_msg=name)


def check_symbolic(name: str, *specs, **kwargs):
    """Call the op on symbolic inputs in both libraries; assert the same shapes and dtypes.

    Each positional spec is `(shape, dtype)`, a bare shape (float32), a list of those (for
    ops taking a list of tensors) or any other value, passed unchanged to both.
    """
    from kestrel.layers.node import KerasTensor

    def build(spec, make):
        if isinstance(spec, list):
            return [build(s, make) for s in spec]
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str):
            return make(spec[0], spec[1])
        if isinstance(spec, tuple):
            return make(spec, "float32")
        return spec

    ours = _kestrel_fn(name)(*[build(s, lambda sh, dt: KerasTensor(sh, dt)) for s in specs],
                             **kwargs)
    theirs = _keras_fn(name)(*[build(s, lambda sh, dt: keras().KerasTensor(sh, dt))
                               for s in specs], **kwargs)
    flat_ours = ours if isinstance(ours, (list, tuple)) else [ours]
    flat_theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    assert len(flat_ours) == len(flat_theirs), name
    for o, t in zip(flat_ours, flat_theirs):
        assert tuple(o.shape) == tuple(t.shape), f"{name}: shape {o.shape}, Keras {t.shape}"
        assert o.dtype == t.dtype, f"{name}: dtype {o.dtype}, Keras {t.dtype}"
    return ours
