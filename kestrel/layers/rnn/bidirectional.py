"""Bidirectional: run a recurrent layer forwards and a copy backwards, then merge."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.layers.layer import Layer, clean_config, register_layer
from kestrel.layers.rnn import fused
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _copy(layer: Layer, name: str, **overrides) -> Layer:
    """A fresh layer from `layer`'s config (no weights shared), renamed."""
    return type(layer).from_config({**layer.get_config(), "name": name, **overrides})


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


@register_layer()
class Bidirectional(Layer):
    """Bidirectional wrapper for RNNs.

    Args:
        layer: a recurrent layer (`LSTM`, `GRU`, `SimpleRNN`, `RNN`); its config makes the
            forward layer `forward_<name>` and, unless `backward_layer` is given, the backward
            layer `backward_<name>` (with `go_backwards=True`).
        merge_mode: `"concat"` (default), `"sum"`, `"mul"`, `"ave"` or None (a list of both).
        weights: optional initial weights, forward ones then backward ones.
        backward_layer: optional recurrent layer for the backward direction.

    Weights are the forward layer's then the backward layer's. When both directions are
    fused-eligible LSTM/GRU/SimpleRNN layers and no mask is given, one bidirectional torch
    kernel call computes both.

    Example:
        >>> from kestrel.layers.rnn import LSTM
        >>> Bidirectional(LSTM(4, return_sequences=True))(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = f"Bidirectional '{self.name}'"
        if not isinstance(layer, Layer):
            raise ValueError(f"{who}: layer must be a Layer instance. Received: layer={layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"{who}: backward_layer must be a Layer instance. "
                             f"Received: backward_layer={backward_layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"{who}: merge_mode must be one of {MERGE_MODES}. "
                             f"Received: merge_mode={merge_mode!r}")
        self.forward_layer = _copy(layer, "forward_" + _strip(layer.name, "forward_"))
        if backward_layer is None:
            backward_layer = _copy(layer, "backward_" + _strip(layer.name, "backward_"),
                                   go_backwards=True)
        self.backward_layer = backward_layer
        for sub in (self.forward_layer, self.backward_layer):
            if hasattr(layer, "use_cudnn"):
                sub.use_cudnn = layer.use_cudnn
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = sub.return_sequences
        for attr in ("go_backwards", "stateful", "return_sequences", "return_state"):
            forward, backward = (getattr(self.forward_layer, attr),
                                 getattr(self.backward_layer, attr))
            if (forward == backward) == (attr == "go_backwards"):
                raise ValueError(
                    f"{who}: the forward and backward layers must have "
                    f"{'different' if attr == 'go_backwards' else 'the same'} `{attr}`. "
                    f"Received: forward {attr}={forward}, backward {attr}={backward}")
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights is not None else None
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def build(self, sequences_shape, initial_state_shape=None):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub._build_from_shape(tuple(sequences_shape))
        if self._initial_weights is not None:
            half = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:half])
            self.backward_layer.set_weights(self._initial_weights[half:])
            self._initial_weights = None

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = self.forward_layer.compute_output_shape(sequences_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = (*shape[:-1], shape[-1] * 2)
        outputs = [shape, shape] if self.merge_mode is None else [shape]
        if self.return_state or self.merge_mode is None:
            return outputs + states + states
        return shape

    def compute_mask(self, inputs, previous_mask=None):
        mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            return masks + [None] * (2 * len(self.forward_layer.state_size))
        return masks if self.merge_mode is None else output_mask

    def call(self, sequences, initial_state=None, mask=None, training=None):
        training = self.training if training is None else bool(training)
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        if mask is None and not self.stateful and self.forward_layer.built and \
                fused.bidirectional_eligible(self.forward_layer, self.backward_layer, training):
            self.forward_layer._check_shape(tuple(sequences.shape))
            sequences = sequences.to(self.forward_layer._variable_dtype)
            forward_states = self.forward_layer._initial_states(sequences, forward_state)
            backward_states = self.backward_layer._initial_states(sequences, backward_state)
            if not training:  # each direction's call draws its (unused) dropout masks
                self.forward_layer._draw_unused_masks(sequences, forward_states)
                self.backward_layer._draw_unused_masks(sequences, backward_states)
            y, y_rev, forward_finals, backward_finals = fused.run_bidirectional(
                self.forward_layer, self.backward_layer, sequences, forward_states,
                backward_states)
        else:
            kwargs = {"mask": mask, "training": training}
            y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
            y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
            forward_finals = backward_finals = []
            if self.return_state:
                (y, *forward_finals), (y_rev, *backward_finals) = y, y_rev
            if self.return_sequences:
                y_rev = y_rev.flip(1)
        compute_dtype = config.to_torch_dtype(self.compute_dtype)  # Keras: in this layer's dtype
        output = self._merge(y.to(compute_dtype), y_rev.to(compute_dtype))
        if self.return_state:
            outputs = output if self.merge_mode is None else [output]
            return outputs + list(forward_finals) + list(backward_finals)
        return output

    def _merge(self, y, y_rev):
        if self.merge_mode == "concat":
            return torch.cat([y, y_rev], -1)
        if self.merge_mode == "sum":
            return y + y_rev
        if self.merge_mode == "ave":
            return (y + y_rev) / 2
        if self.merge_mode == "mul":
            return y * y_rev
        return [y, y_rev]

    @property
    def states(self):
        if self.forward_layer.states is not None and self.backward_layer.states is not None:
            return list(self.forward_layer.states) + list(self.backward_layer.states)
        return None

    def reset_state(self) -> None:
        """Zero the states of both stateful directions."""
        if not self.stateful:
            raise AttributeError(f"Bidirectional '{self.name}': the layer is not stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    reset_states = reset_state

    def get_config(self):
        return {
            **super().get_config(),
            "merge_mode": self.merge_mode,
            "layer": serialize_keras_object(self.forward_layer, "layers"),
            "backward_layer": serialize_keras_object(self.backward_layer, "layers"),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = deserialize_keras_object(config["layer"], "layers", custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_keras_object(
                config["backward_layer"], "layers", custom_objects)
        return cls(**clean_config(cls, config))
