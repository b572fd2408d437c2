"""Keras 3's `keras.distribution` API on torch.distributed: data-parallel `fit` under torchrun.

    import kestrel as keras
    keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model.fit(x, y, batch_size=256)   # batch_size is global
"""
from kestrel.distribution.api import (
    DataParallel,
    DeviceMesh,
    LayoutMap,
    ModelParallel,
    distribution,
    get_device_count,
    initialize,
    list_devices,
    set_distribution,
)
from kestrel.distribution.layout import TensorLayout, distribute_tensor
