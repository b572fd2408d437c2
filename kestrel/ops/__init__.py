"""`kestrel.ops`: Keras 3's ops on torch tensors, one plain function each.

    from kestrel import ops
    ops.mean(ops.concatenate([a, b], axis=-1), axis=1)

Inputs may be torch tensors, NumPy arrays, Python scalars or lists; results are torch tensors on
the inputs' device, with Keras' dtypes. Called on `KerasTensor`s, every op records a node in the
functional graph (see `kestrel.ops.dispatch`). Families: `numpy`, `nn`, `math`, `linalg`,
`image`, `core`; all but `image` are also flat in `kestrel.ops`.
"""
from kestrel.ops import core, einops, image, linalg, math, nn, numpy  # noqa: F401
from kestrel.ops.core import *  # noqa: F401,F403
from kestrel.ops.einops import *  # noqa: F401,F403
from kestrel.ops.linalg import *  # noqa: F401,F403
from kestrel.ops.math import *  # noqa: F401,F403
from kestrel.ops.nn import *  # noqa: F401,F403
from kestrel.ops.numpy import *  # noqa: F401,F403


def __getattr__(name):
    if name == "backend":  # keras-core's `keras_core.ops.backend` (`ops.backend.shape(x)`)
        from kestrel import backend
        return backend
    raise AttributeError(f"module 'kestrel.ops' has no attribute {name!r}")
