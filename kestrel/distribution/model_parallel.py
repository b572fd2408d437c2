"""ModelParallel and FullyShardedDataParallel: weights as torch DTensors over a DeviceMesh.

`fit` shards every global batch over the mesh's batch axis (processes that differ only on
the other axes get the same rows), runs the model on DTensors and the loss on this process's
rows; DTensor's autograd sums the gradients over the mesh, each process's weighted by its
share of the global batch, so training equals single-process training on the global batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from kestrel.distribution import sharding
from kestrel.distribution.data_parallel import global_batches
from kestrel.distribution.layout import DeviceMesh, TensorLayout, _world
from kestrel.distribution.layout_map import LayoutMap
from kestrel.layers.node import flatten, map_structure
from kestrel.trainers import data_adapter


class ModelParallel:
    """Shard weights as a `LayoutMap` says and the data over the mesh's batch axis.

    Set it before the model is trained: `fit`, `evaluate` and `predict` shard the model's
    trainable weights (a weight no key matches is replicated) the first time they run.

    Args:
        layout_map: a `LayoutMap`; its device mesh is the distribution's.
        batch_dim_name: the mesh axis the batch is sharded over (default: the first axis).
        auto_shard_dataset: accepted for Keras compatibility (array data is always sharded).

    Example:
        mesh = DeviceMesh((1, 2), ["batch", "model"])
        layout_map = LayoutMap(mesh)
        layout_map["dense.*kernel"] = (None, "model")
        set_distribution(ModelParallel(layout_map=layout_map, batch_dim_name="batch"))
    """

    def __init__(self, *, layout_map=None, batch_dim_name=None, auto_shard_dataset=True,
                 **kwargs):
        kwargs.pop("device_mesh", None)
        if kwargs:
            raise TypeError(f"ModelParallel got unexpected arguments. Received: "
                            f"{sorted(kwargs)}")
        if not isinstance(layout_map, LayoutMap):
            raise ValueError(f"ModelParallel: `layout_map` must be a LayoutMap instance. "
                             f"Received: layout_map of type {type(layout_map).__name__}")
        self._layout_map = layout_map
        self.device_mesh = layout_map.device_mesh
        self.batch_dim_name = batch_dim_name or self.device_mesh.axis_names[0]
        if self.batch_dim_name not in self.device_mesh.axis_names:
            raise ValueError(f"ModelParallel: `batch_dim_name` must be an axis of the mesh "
                             f"{self.device_mesh.axis_names}. Received: "
                             f"batch_dim_name={self.batch_dim_name!r:.100}")
        self.auto_shard_dataset = auto_shard_dataset
        self.batch = None  # (global batch size, this process's share) while data is sharded

    @property
    def num_model_replicas(self) -> int:
        return self.device_mesh.shape[self.device_mesh.axis_names.index(self.batch_dim_name)]

    @property
    def world_size(self) -> int:
        return _world()

    @property
    def rank(self) -> int:
        return dist.get_rank() if _world() > 1 else 0

    def get_data_layout(self, data_shape) -> TensorLayout:
        axes = [self.batch_dim_name] + [None] * (len(data_shape) - 1)
        return TensorLayout(axes, self.device_mesh)

    def get_variable_layout(self, variable) -> TensorLayout:
        layout = self._layout_map[variable.path]
        if layout is None:
            return TensorLayout([None] * variable.ndim, self.device_mesh)
        if len(layout.axes) != variable.ndim:
            raise ValueError(f"ModelParallel: the layout for '{variable.path}' must have one "
                             f"axis per weight axis. Received: axes={layout.axes} for shape "
                             f"{tuple(variable.shape)}")
        return layout

    def get_tensor_layout(self, path: str):
        return self._layout_map[path]

    def session(self, model):
        return ModelParallelSession(model, self)


class FullyShardedDataParallel(ModelParallel):
    """Data parallelism with every weight sharded over the processes (ZeRO-3 / FSDP).

    Each process holds 1/N of every weight, gradient and optimizer slot (axis 0 is sharded;
    DTensor all-gathers a weight where a layer needs it whole and reduce-scatters gradients).

    Args:
        devices: accepted for Keras compatibility (one device per process).
        batch_dim_name: the name of the mesh's single axis (default `"batch"`).

    Example:
        set_distribution(FullyShardedDataParallel())
    """

    def __init__(self, devices=None, batch_dim_name: str = "batch", auto_shard_dataset=True):
        mesh = DeviceMesh((_world(),), [batch_dim_name], devices)
        super().__init__(layout_map=LayoutMap(mesh), batch_dim_name=batch_dim_name,
                         auto_shard_dataset=auto_shard_dataset)

    def get_variable_layout(self, variable) -> TensorLayout:
        axes = [None] * variable.ndim
        if variable.ndim:
            axes[0] = self.batch_dim_name
        return TensorLayout(axes, self.device_mesh)


class ModelParallelSession:
    """fit/evaluate/predict under a ModelParallel: shards data by mesh coordinate, not rank."""

    def __init__(self, model, distribution: ModelParallel):
        self.model = model
        self.distribution = distribution
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        mesh = distribution.device_mesh
        axis = mesh.axis_names.index(distribution.batch_dim_name)
        self.replicas = mesh.shape[axis]
        self.replica = mesh.coordinate(distribution.batch_dim_name)
        self.group = mesh.backend_mesh.get_group(axis) if self.replicas > 1 else None
        coordinate = mesh.backend_mesh.get_coordinate()
        self.leader = all(c == 0 for i, c in enumerate(coordinate) if i != axis)
        self.scale = 1.0
        self._restore = []
        self._flag = None

    def shard(self, adapter, training: bool):
        """This replica's rows of every batch (array data), or every batch (one replica)."""
        if isinstance(adapter, data_adapter.ArrayAdapter):
            return self._shard_arrays(adapter)
        return self._shard_stream(adapter)

    def _shard_arrays(self, adapter):
        try:
            yield from self._pieces(global_batches(adapter), adapter.batch_device)
        finally:
            self.distribution.batch = None

    def _pieces(self, batches, device):
        for batch in batches:
            n = flatten(batch[0])[0].shape[0]
            size = -(-n // self.replicas)  # torch.chunk's sizes, as DTensor's Shard(0)
            start, stop = min(self.replica * size, n), min((self.replica + 1) * size, n)
            if start == stop:
                raise ValueError(f"ModelParallel: every batch needs at least one sample per "
                                 f"model replica ({self.replicas}). Received: a batch of {n}")
            self.distribution.batch = (n, (stop - start) / n)
            yield map_structure(lambda t: None if t is None else
                                data_adapter.to_device(t[start:stop], device),
                                batch)

    def _shard_stream(self, adapter):
        if self.replicas > 1:
            raise ValueError("ModelParallel with more than one model replica needs array data "
                             "(NumPy arrays or tensors) to shard the batches.")
        yield from adapter

    def start(self, first_x) -> None:
        """Build the model if needed, shard its weights, keep gradients on their layouts."""
        model = self.model
        if not model.built and first_x is not None:
            with torch.no_grad():
                model(first_x)
        sharding.distribute_model(model, self.distribution)
        dispatcher = sharding._dtensor().DTensor._op_dispatcher
        self._flag = dispatcher._allow_implicit_replication  # backward may mix in constants
        dispatcher._allow_implicit_replication = True
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            return
        original_step = optimizer.step

        def placed_step(*args, **kwargs):
            for p in model.trainable_weights:
                if sharding.is_sharded(p.grad) and p.grad.placements != p.placements:
                    p.grad = p.grad.redistribute(p.device_mesh, p.placements)
            return original_step(*args, **kwargs)

        optimizer.step = placed_step
        self._restore = [(optimizer, "step")]

    def finish(self) -> None:
        self.distribution.batch = None
        if self._flag is not None:
            sharding._dtensor().DTensor._op_dispatcher._allow_implicit_replication = self._flag
            self._flag = None
        for owner, attr in self._restore:
            owner.__dict__.pop(attr, None)
        self._restore = []

    def reduce_metrics(self, metrics) -> None:
        """Sum the metric states over the model replicas (the batch axis) only."""
        if self.group is None:
            return
        for metric in metrics:
            for variable in metric.variables:
                dist.all_reduce(variable, group=self.group)

    def gather(self, local_batches: list):
        """Every replica's predictions (one process per replica), in sample order."""
        everyone = [None] * self.world
        dist.all_gather_object(everyone, (self.leader, self.replica, local_batches))
        replicas = sorted((r, b) for leader, r, b in everyone if leader)
        ordered = []
        for step in range(max(len(b) for _, b in replicas)):
            ordered.extend(b[step] for _, b in replicas if step < len(b))
        return ordered
