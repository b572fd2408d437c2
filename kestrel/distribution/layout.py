"""DeviceMesh, TensorLayout and distribute_tensor: Keras' layout API on torch DTensor.

A `DeviceMesh` arranges the processes (one device each) in a named grid and is backed by a
torch `DeviceMesh`; a `TensorLayout` names, for every axis of a tensor, the mesh axis it is
sharded over (`None`: not sharded, i.e. replicated over the mesh axes no tensor axis names).
`distribute_tensor` turns a tensor into a torch `DTensor` with the matching `Shard(i)` /
`Replicate()` placements.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class DeviceMesh:
    """A named grid of the devices taking part: one per process under torchrun.

    Args:
        shape: the size of each mesh axis, e.g. `(2, 4)`; the product is the device count.
        axis_names: one name per axis, e.g. `("batch", "model")`.
        devices: the devices (default: one per process, `list_devices()` in one process).

    Example:
        >>> DeviceMesh((1,), ["model"]).axis_names
        ['model']
    """

    def __init__(self, shape, axis_names, devices=None):
        if not shape or not axis_names:
            raise ValueError(f"DeviceMesh: shape and axis_names cannot be empty. Received: "
                             f"shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ValueError(f"DeviceMesh: shape and axis_names should have the same size. "
                             f"Received: shape={shape}, axis_names={axis_names}")
        if devices is None:
            from kestrel.distribution.api import list_devices

            devices = [f"process:{i}" for i in range(_world())] if _world() > 1 \
                else list_devices()
        devices = list(devices)
        if math.prod(shape) != len(devices):
            raise ValueError(f"DeviceMesh: shape does not match the number of devices. "
                             f"Received: shape={tuple(shape)}; {len(devices)} devices")
        self._shape = tuple(int(s) for s in shape)
        self._axis_names = list(axis_names)
        self._devices = devices
        self._torch_mesh = None

    shape = property(lambda self: self._shape)
    axis_names = property(lambda self: self._axis_names)
    devices = property(lambda self: self._devices)

    @property
    def backend_mesh(self):
        """The torch `DeviceMesh` (made on first use; needs the process group when > 1 device)."""
        if self._torch_mesh is None:
            from torch.distributed.device_mesh import init_device_mesh

            if math.prod(self._shape) != _world():
                raise ValueError(f"DeviceMesh: the mesh must span every process. Received: "
                                 f"shape={self._shape} with {_world()} processes")
            kind = "cuda" if torch.cuda.is_available() else "cpu"
            self._torch_mesh = init_device_mesh(kind, self._shape,
                                                mesh_dim_names=tuple(self._axis_names))
        return self._torch_mesh

    def coordinate(self, axis_name: str) -> int:
        """This process's index along `axis_name` (0 in a single process)."""
        if _world() == 1:
            return 0
        return self.backend_mesh.get_coordinate()[self._axis_names.index(axis_name)]

    def __repr__(self) -> str:
        return f"<DeviceMesh shape={self._shape}, axis_names={self._axis_names}>"


class TensorLayout:
    """How a tensor's axes map onto a mesh's axes (`None`: that axis is not sharded).

    Args:
        axes: one entry per tensor axis, a mesh axis name or `None`.
        device_mesh: the `DeviceMesh`; may be set later (once), e.g. by a `LayoutMap`.

    Example:
        >>> TensorLayout((None, "model")).axes
        (None, 'model')
    """

    def __init__(self, axes, device_mesh=None):
        self._axes = tuple(axes)
        self._device_mesh = None
        if device_mesh is not None:
            self.device_mesh = device_mesh

    @property
    def axes(self) -> tuple:
        return self._axes

    @property
    def device_mesh(self):
        return self._device_mesh

    @device_mesh.setter
    def device_mesh(self, device_mesh) -> None:
        if self._device_mesh is not None:
            raise ValueError(f"TensorLayout: cannot override the device mesh. Existing value: "
                             f"{self._device_mesh}")
        if not isinstance(device_mesh, DeviceMesh):
            raise TypeError(f"TensorLayout expects a DeviceMesh as `device_mesh`. Received: "
                            f"device_mesh of type {type(device_mesh).__name__}")
        unknown = sorted({a for a in self._axes if a is not None} - set(device_mesh.axis_names))
        if unknown:
            raise ValueError(f"TensorLayout: invalid axis names for the mesh; valid names: "
                             f"{device_mesh.axis_names}. Received: axes={self._axes!r:.200}")
        repeated = {a for a in self._axes if a is not None and self._axes.count(a) > 1}
        if repeated:
            raise ValueError(f"TensorLayout: a mesh axis can shard one tensor axis only. "
                             f"Received: axes={self._axes!r:.200}")
        self._device_mesh = device_mesh

    def placements(self) -> list:
        """torch placements, one per mesh axis: `Shard(i)` where tensor axis i names it."""
        from torch.distributed.tensor import Replicate, Shard

        return [Shard(self._axes.index(name)) if name in self._axes else Replicate()
                for name in self._device_mesh.axis_names]

    def is_replicated(self) -> bool:
        return all(a is None for a in self._axes)

    def __repr__(self) -> str:
        return f"<TensorLayout axes={self._axes}, device_mesh={self._device_mesh}>"


def distribute_tensor(tensor, layout: TensorLayout):
    """`tensor` placed on `layout`: a torch `DTensor` whose local piece is this process's shard,
    or `tensor` itself in a single process or when the layout shards nothing. Every process
    passes the whole value; process 0's is the one distributed. A KerasTensor is returned as is.

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
    if _world() == 1 or layout.is_replicated() or layout.device_mesh is None:
        return tensor
    from torch.distributed import tensor as dtensor

    return dtensor.distribute_tensor(torch.as_tensor(tensor), layout.device_mesh.backend_mesh,
                                     layout.placements())
