"""Turning a built model's weights into DTensors, feeding it DTensors, and gathering it back.

`distribute_model` replaces every trainable weight by an `nn.Parameter` holding a torch
`DTensor` placed as the distribution's layout for the weight's path says (unlisted weights are
replicated), and wraps the model's `forward`: inputs become DTensors (sharded over the batch
axis while `fit`/`evaluate`/`predict` shard the data, replicated otherwise) and outputs come
back as plain tensors, so losses and metrics never see a DTensor. `gathered(model)` swaps
whole-valued Variables in (for saving, `get_weights`, loading) and re-shards on exit.
"""
from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

from kestrel.layers.node import map_structure


def _dtensor():
    from torch.distributed import tensor
    from torch.distributed.tensor import experimental  # noqa: F401 (implicit_replication)

    return tensor


def is_sharded(tensor) -> bool:
    return isinstance(tensor, _dtensor().DTensor)


def _torch_axes(owner, attr: str, axes: tuple) -> tuple:
    """`axes` (Keras layout) moved to the axes of the layer's torch layout of the weight."""
    layout = owner._weight_layouts.get(attr)
    if layout is None or all(a is None for a in axes):
        return axes
    probe = layout[0](torch.empty(*[2 + i for i in range(len(axes))], device="meta"))
    sizes = [2 + i for i in range(len(axes))]
    if sorted(probe.shape) != sizes:
        raise ValueError(f"Layer '{owner.name}': weight '{attr}' is stored in a layout that is "
                         f"not a permutation of Keras'; it cannot be sharded. Received: "
                         f"axes={axes}")
    return tuple(axes[sizes.index(s)] for s in probe.shape)


def distribute_model(model, distribution) -> None:
    """Shard `model`'s trainable weights as `distribution` lays them out (once per model)."""
    dtensor = _dtensor()
    for owner, attr in model._weight_entries():
        tensor = getattr(owner, attr)
        if not isinstance(tensor, nn.Parameter) or is_sharded(tensor):
            continue
        layout = distribution.get_variable_layout(tensor)
        axes = _torch_axes(owner, attr, layout.axes)
        placements = type(layout)(axes, layout.device_mesh).placements()
        value = dtensor.distribute_tensor(tensor.detach(), layout.device_mesh.backend_mesh,
                                          placements)
        param = nn.Parameter(value, requires_grad=tensor.requires_grad)
        param.__dict__.update(_keras_name=tensor.name, _keras_path=tensor.path,
                              aggregation=getattr(tensor, "aggregation", "none"))
        owner._parameters[attr] = param
    if "forward" not in model.__dict__:
        model.forward = _sharded_forward(model.forward, distribution)


class _ScaleGrad(torch.autograd.Function):
    """Identity whose gradient is multiplied by `scale` (this rank's share of the batch)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def _sharded_forward(forward, distribution):
    dtensor = _dtensor()
    mesh = distribution.device_mesh
    data = [dtensor.Shard(0) if name == distribution.batch_dim_name else dtensor.Replicate()
            for name in mesh.axis_names]
    replicated = [dtensor.Replicate()] * len(mesh.axis_names)

    def to_dtensor(t):
        if not isinstance(t, torch.Tensor) or is_sharded(t):
            return t
        batch = distribution.batch  # (global size, scale) while a session shards the data
        if batch is None or t.ndim == 0:
            return dtensor.DTensor.from_local(t, mesh.backend_mesh, replicated, run_check=False)
        shape = (batch[0],) + tuple(t.shape[1:])
        return dtensor.DTensor.from_local(t, mesh.backend_mesh, data, run_check=False,
                                          shape=shape, stride=_contiguous_stride(shape))

    def to_local(t):
        if not is_sharded(t):
            return t
        batch = distribution.batch
        if batch is None or t.ndim == 0:
            return t.full_tensor()
        return _ScaleGrad.apply(t.redistribute(mesh.backend_mesh, data).to_local(), batch[1])

    def sharded_forward(*args, **kwargs):
        with dtensor.experimental.implicit_replication():
            args, kwargs = map_structure(to_dtensor, (args, kwargs))
            return map_structure(to_local, forward(*args, **kwargs))

    return sharded_forward


def _contiguous_stride(shape) -> tuple:
    stride, out = 1, []
    for size in reversed(shape):
        out.append(stride)
        stride *= size
    return tuple(reversed(out))


@contextlib.contextmanager
def gathered(model):
    """Inside, every sharded weight of `model` is a whole-valued Variable (a collective: every
    process enters it); on exit the values, possibly changed (`load_weights`), are re-sharded.

    Example:
        with keras.distribution.gathered(model):
            model.save("model.keras")
    """
    from kestrel.variables import wrap

    swapped = []  # (container, key, sharded, whole)
    for owner, attr in model._weight_entries():
        param = getattr(owner, attr)
        if is_sharded(param):
            whole = wrap(param.full_tensor().detach(), trainable=True, name=param._keras_name,
                         path=param._keras_path, requires_grad=param.requires_grad)
            swapped.append((owner._parameters, attr, param, whole))
    optimizer = getattr(model, "optimizer", None)
    for slots in (optimizer._slots.values() if getattr(optimizer, "built", False) else ()):
        swapped.extend((slots, i, t, t.full_tensor()) for i, t in enumerate(slots)
                       if is_sharded(t))
    for container, key, _, whole in swapped:
        container[key] = whole
    try:
        yield model
    finally:
        dtensor = _dtensor()
        for container, key, sharded, whole in swapped:
            with torch.no_grad():
                value = dtensor.distribute_tensor(whole.detach(), sharded.device_mesh,
                                                  sharded.placements, src_data_rank=None)
                sharded.to_local().copy_(value.to_local())
            container[key] = sharded


def whole_weights(model):
    """`gathered(model)` when some weight of `model` is sharded, else a no-op context (saving
    and loading enter it, so every process must save or load a sharded model)."""
    if "torch.distributed.tensor" in sys.modules and any(is_sharded(p) for p in model.parameters()):
        return gathered(model)
    return contextlib.nullcontext(model)


def local_numel(model) -> int:
    """How many weight elements this process holds (its shards of the sharded ones)."""
    return sum(p.to_local().numel() if is_sharded(p) else p.numel() for p in model.weights)
