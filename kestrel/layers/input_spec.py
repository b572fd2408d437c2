"""InputSpec: what a layer accepts (rank, sizes of given axes, dtype), checked with clear errors."""
from __future__ import annotations


class InputSpec:
    """Constraints on one input of a layer.

    Args:
        dtype: expected dtype name, or None.
        shape: full expected shape (None entries match anything).
        ndim / min_ndim / max_ndim: expected rank bounds.
        axes: `{axis: size}` that must match, e.g. `{-1: 64}`.
    """

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None,
                 axes=None, allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(shape) if shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        self.name = name
        self.optional = optional

    def __repr__(self):
        return (f"InputSpec(ndim={self.ndim}, min_ndim={self.min_ndim}, "
                f"max_ndim={self.max_ndim}, axes={self.axes})")

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes,
                "optional": self.optional}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _axis_words(axis: int) -> str:
    return "last dimension (axis -1)" if axis == -1 else f"dimension {axis}"


def check_input_shapes(layer, specs, shapes) -> None:
    """Raise a ValueError naming `layer` when `shapes` break its `specs`."""
    if specs is None:
        return
    if not isinstance(specs, (list, tuple)):
        specs, shapes = [specs], [shapes]
    elif not (shapes and isinstance(shapes[0], (list, tuple))):
        shapes = [shapes]
    who = f"{type(layer).__name__} '{layer.name}'"
    for index, (spec, shape) in enumerate(zip(specs, shapes)):
        if spec is None or shape is None:
            continue
        shape = tuple(shape)
        where = "" if len(specs) == 1 else f" (input {index})"
        rank = len(shape)
        if spec.ndim is not None and rank != spec.ndim:
            raise ValueError(
                f"{who} expected an input of rank {spec.ndim}{where}, got rank {rank}. "
                f"Received: input shape={shape}")
        if spec.min_ndim is not None and rank < spec.min_ndim:
            raise ValueError(
                f"{who} expected an input of rank >= {spec.min_ndim}{where}, got rank {rank}. "
                f"Received: input shape={shape}")
        if spec.max_ndim is not None and rank > spec.max_ndim:
            raise ValueError(
                f"{who} expected an input of rank <= {spec.max_ndim}{where}, got rank {rank}. "
                f"Received: input shape={shape}")
        for axis, size in spec.axes.items():
            if size is None or -rank > axis or axis >= rank:
                continue
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(
                    f"{who} expected {_axis_words(axis)} {size}{where}, got {shape[axis]}. "
                    f"Received: input shape={shape}")
        if spec.shape is not None:
            for expected, got in zip(spec.shape, shape):
                if expected is not None and got is not None and expected != got:
                    raise ValueError(
                        f"{who} expected an input of shape {spec.shape}{where}, got {shape}. "
                        f"Received: input shape={shape}")
