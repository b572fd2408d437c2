"""TensorLayout and distribute_tensor: Keras' layout API, honest about data parallelism.

Kestrel's distribution is data parallelism across processes (one device each): every process
holds the whole model and the whole value of every tensor, and `fit` shards the batches
itself. The only mesh axis is therefore `"batch"`, and placing a tensor on a layout leaves its
value unchanged in every process: `distribute_tensor` checks the layout against the tensor and
returns the tensor itself (no torch DTensor is made; model parallelism is not implemented).
"""
from __future__ import annotations

import torch

BATCH_AXIS = "batch"


class TensorLayout:
    """How a tensor's axes map onto the device mesh's axes (`None`: not sharded).

    Args:
        axes: one entry per tensor axis, `"batch"` or `None`.
        device_mesh: must be None (Kestrel has no DeviceMesh; DataParallel implies one).

    Example:
        >>> TensorLayout(("batch", None)).axes
        ('batch', None)
    """

    def __init__(self, axes, device_mesh=None):
        self._axes = tuple(axes)
        if device_mesh is not None:
            raise NotImplementedError("TensorLayout(device_mesh=...) is not supported: Kestrel "
                                      "has no DeviceMesh. Pass device_mesh=None.")
        self._device_mesh = None
        unknown = [a for a in self._axes if a is not None and a != BATCH_AXIS]
        if unknown:
            raise ValueError(f"TensorLayout: the only mesh axis in Kestrel is {BATCH_AXIS!r} "
                             f"(DataParallel; model parallelism is not implemented). "
                             f"Received: axes={self._axes!r:.200}")

    @property
    def axes(self) -> tuple:
        return self._axes

    @property
    def device_mesh(self):
        return self._device_mesh

    def __repr__(self) -> str:
        return f"<TensorLayout axes={self._axes}, device_mesh=None>"


def distribute_tensor(tensor, layout: TensorLayout):
    """Place `tensor` on `layout`; in Kestrel every process keeps the whole value, so this
    checks the layout and returns `tensor` unchanged (a KerasTensor is returned as is).

    Example:
        >>> x = torch.ones(4, 2)
        >>> distribute_tensor(x, TensorLayout(("batch", None))) is x
        True
    """
    if not isinstance(layout, TensorLayout):
        raise TypeError(f"distribute_tensor expects a TensorLayout as `layout`. "
                        f"Received: layout of type {type(layout).__name__}")
    from kestrel.layers.node import KerasTensor

    if isinstance(tensor, KerasTensor):
        return tensor
    ndim = tensor.ndim if hasattr(tensor, "ndim") else torch.as_tensor(tensor).ndim
    if ndim != len(layout.axes):
        raise ValueError(f"distribute_tensor: the layout's axes must have one entry per tensor "
                         f"axis. Received: axes={layout.axes} for a tensor of rank {ndim}")
    return tensor
