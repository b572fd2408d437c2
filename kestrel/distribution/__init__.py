"""Keras 3's `keras.distribution` API on torch.distributed: data-parallel `fit` under torchrun.

    import kestrel as keras
    keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model.fit(x, y, batch_size=256)   # batch_size is global

ModelParallel (weights sharded as a LayoutMap says) and FullyShardedDataParallel run on torch
DTensors; see docs/distribution.md.
"""
from kestrel.distribution.api import (
    DataParallel,
    distribution,
    get_device_count,
    initialize,
    list_devices,
    set_distribution,
)
from kestrel.distribution.layout import DeviceMesh, TensorLayout, distribute_tensor
from kestrel.distribution.layout_map import LayoutMap
from kestrel.distribution.model_parallel import FullyShardedDataParallel, ModelParallel
from kestrel.distribution.sharding import gathered, local_numel
