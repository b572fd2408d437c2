"""TorchModuleWrapper: any `torch.nn.Module` used as a Kestrel layer."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from kestrel import config
from kestrel.layers import naming
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, flatten
from kestrel.variables import ParameterVariable, Variable

_PREFIX = "module."
_NOT_SERIALIZABLE = (
    "TorchModuleWrapper cannot be serialized: Kestrel never pickles modules into configs, so a "
    "wrapped torch.nn.Module cannot be rebuilt from a config. To save and load the model, "
    "subclass kestrel.layers.Layer instead (create the module in __init__, call it in call(), "
    "and return its constructor arguments from get_config())."
)


@register_layer()
class TorchModuleWrapper(Layer):
    """Wraps a `torch.nn.Module` so that it can be used in Kestrel models.

    The module's parameters (in `module.parameters()` order) are the layer's trainable weights
    and its persistent buffers (e.g. BatchNorm statistics) its non-trainable weights, in torch's
    own layouts. They stay the module's own tensors, given Keras' Variable API in place
    (`.value`, `.path`, `.trainable`, `.assign`): parameters are named as Keras names them
    (`variable`, `variable_1`, ...), buffers by their torch names. The module follows the
    layer's train/eval mode. Models holding this layer
    cannot be saved as configs (weights can).

    Args:
        module: the `torch.nn.Module` (lazy modules must be initialized first).
        name: the layer name.
        output_shape: the full output shape (batch axis as None), used for symbolic calls
            instead of running the module on placeholder data.

    Example:
        >>> layer = TorchModuleWrapper(torch.nn.Linear(3, 2))
        >>> layer(torch.ones(4, 3)).shape, len(layer.trainable_weights)
        (torch.Size([4, 2]), 2)
    """

    def __init__(self, module, name=None, output_shape=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"TorchModuleWrapper '{self.name}': module must be a torch.nn.Module. "
                f"Received: module={module!r}")
        if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(
                f"TorchModuleWrapper '{self.name}': lazy modules must be initialized (called "
                f"once) before they are wrapped. Received: module={module!r}")
        self.module = module.to(config.device())
        self.module.train(False)  # Kestrel layers start in inference mode
        persistent = set(module.state_dict(keep_vars=True))
        _give_variable_api(module, persistent)
        self._weight_order = [_PREFIX + n for n, _ in module.named_parameters()] + [
            _PREFIX + n for n, _ in module.named_buffers() if n in persistent]
        self._output_shape = None if output_shape is None else tuple(output_shape)
        self.autocast = False  # the module keeps its own dtypes
        self.built = True

    def __getattr__(self, name: str):
        if name.startswith(_PREFIX):  # a weight of the module, as listed in _weight_order
            try:
                return self.get_parameter(name)
            except AttributeError:
                return self.get_buffer(name)
        return super().__getattr__(name)

    def call(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        if self._output_shape is None:
            return super().compute_output_spec(*args, **kwargs)
        first = flatten((args, kwargs))[0]
        return KerasTensor(self._output_shape, getattr(first, "dtype", config.floatx()))

    def get_config(self):
        raise NotImplementedError(_NOT_SERIALIZABLE)

    @classmethod
    def from_config(cls, config):
        raise NotImplementedError(_NOT_SERIALIZABLE)


def _give_variable_api(module: nn.Module, persistent: set) -> None:
    """Turn the module's plain parameters into `ParameterVariable`s and its persistent plain
    buffers into `Variable`s, in place: the same tensor objects (so optimizers and references
    already holding them stay valid), now with Keras' Variable API."""
    for _, parameter in module.named_parameters():
        if type(parameter) is nn.Parameter:
            name = naming.unique_name("variable")
            _retype(parameter, ParameterVariable, name)
    for name, buffer in module.named_buffers():
        if name in persistent and type(buffer) is torch.Tensor:
            _retype(buffer, Variable, name)


def _retype(tensor, cls, name: str) -> None:
    tensor.__class__ = cls
    tensor.__dict__.update(_keras_name=name, _keras_path=name, aggregation="none")
