"""Integer and bool inputs of layers that compute in floating point."""
from __future__ import annotations

import torch

from kestrel import config


def promote(x: torch.Tensor, layer) -> torch.Tensor:
    """`x` in `layer`'s compute dtype when it holds integers or bools, as Keras' ops promote
    them against the layer's float weights (or to floatx); floating inputs pass unchanged."""
    if x.is_floating_point() or x.is_complex():
        return x
    return x.to(config.to_torch_dtype(layer.compute_dtype))
