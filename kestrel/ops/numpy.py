"""`kestrel.ops.numpy`: the NumPy-like ops (element-wise math and reductions, array building)."""
from kestrel.ops.numpy_array import *  # noqa: F401,F403
from kestrel.ops.numpy_array import __all__ as _array_names
from kestrel.ops.numpy_math import *  # noqa: F401,F403
from kestrel.ops.numpy_math import __all__ as _math_names

__all__ = [*_math_names, *_array_names]
